/* forget experiment erasure: every erasure method (forget erase) erasing each class of a
 * text-to-image model in turn, judged on what it still generates:
 *   erased_acc   the judge names the erased class on images of its prompt (lower: erased)
 *   others_acc   the judge names the prompted class on the other classes' images (higher: kept)
 *   H            the programme's harmonic mean of 1 - erased_acc and others_acc
 *   fd, clip     Frechet distance to real images of the kept classes and CLIP score of their images
 *                (in a CLIP other than the one conditioning the model): quality kept
 * each for the bare template "a photo of a {}." and for prompts with context words around the
 * class (templates held out from the escape token's training), plus the trainable parameters, the
 * erasure's peak resident memory (VmHWM of its own process: `forget erase` is run as a child)
 * and wall time. The unerased model is the reference row. Image i of class k is drawn from the
 * same seed for every method, so the report's grids compare the same samples.
 * DIR/results.json ({"summary": [...], "runs": [...]}, rewritten after every run: a rerun with
 * the same DIR resumes), results.md, report.html (tables and one grid per method: rows = erased
 * class, columns = seeds, the original model's images beside), images/. */
#ifndef FORGET_ERASURE_EXPERIMENT_H
#define FORGET_ERASURE_EXPERIMENT_H

#include <stdint.h>

#include "core/err.h"

typedef struct {
    const char *exe;        /* the forget binary the erasures run as (its own path) */
    const char *unet, *clip, *vae, *judge;
    const char *score_clip; /* the CLIP of the CLIP score and the distance (NULL: none) */
    const char *real, *data_dir; /* real images for the distance ("fmnist:test") */
    const char *out;        /* DIR */
    const char *concepts;   /* "all" or a comma list of the judge's class names */
    const char *methods;    /* comma list of variants (NULL: all): escape escape-pooled escape-proj esd-x esd-u fmn
                             * uce sld sld-strong */
    int per_class, per_class_ctx; /* images a class: bare template, context templates */
    int steps, batch;       /* sampling steps of the evaluation, images a UNet call */
    float cfg;
    int esd_steps, escape_steps; /* 0: the methods' defaults */
    uint64_t seed;
    int quiet;
} ErasureExpOpts;

void erasure_exp_defaults(ErasureExpOpts *o);
/* The variants' names, NULL-terminated. */
const char *const *erasure_exp_methods(void);
int erasure_exp_run(const ErasureExpOpts *o, Err *e);

#endif
