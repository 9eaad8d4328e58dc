/* What forget experiment erasure's files share (erasure_experiment.c, erasure_report.c). */
#ifndef FORGET_ERASURE_INTERNAL_H
#define FORGET_ERASURE_INTERNAL_H

#include <cjson/cJSON.h>
#include <stdint.h>

#include "eval/judge.h"
#include "forget/diffusion/erasure_experiment.h"
#include "models/text2image.h"

/* One model's images judged class by class. */
typedef struct {
    int K, P, PC, side, E, shown_n;
    double *acc, *acc_ctx; /* [K] judged accuracy: bare template, context templates */
    float *feat;           /* [K, P, E] scoring-CLIP features of the bare images (NULL without one) */
    uint8_t *shown;        /* [K, shown_n, side, side, 3] the first bare images of each class */
} ErasureEval;

int erasure_evaluate(const Text2Image *g, const Judge *j, const ClipModel *sc, const ErasureExpOpts *o, ErasureEval *ev,
                     Err *e);
void erasure_eval_free(ErasureEval *ev);
/* The summary over the picked classes' runs (into root) and DIR/results.md, DIR/report.html. */
int erasure_write_reports(const ErasureExpOpts *o, cJSON *root, const char *const *classes, const int *pick, int K,
                          Err *e);

/* Runs argv (argv[0] the binary) with its stdout captured into *out (malloc'd); an error names the
 * exit status. */
int erasure_spawn_capture(char *const *argv, char **out, Err *e);
/* forget erase of variant v (erasure_exp_methods()'s index) for one concept into file, with
 * o's model, seed and step overrides; its JSON figures into run. */
int erasure_exp_erase(const ErasureExpOpts *o, int v, const char *concept, const char *preserve, const char *file,
                      cJSON *run, Err *e);

#endif
