/* Judging a text-to-image model class by class (forget eval generate): per_class images of the
 * template filled with each class name the judge knows, then
 *   judged accuracy  the judge (eval/judge.h) names the prompted class,
 *   CLIP score       against the prompt, by a CLIP other than the one that conditions the model,
 *   Frechet distance between the generated images and as many real ones in that CLIP's image
 *                    embedding space (both read as 8-bit RGB at the model's side first).
 * Image i of class k is drawn from (seed, k * per_class + i): a rerun repeats it exactly. */
#ifndef FORGET_GEN_EVAL_H
#define FORGET_GEN_EVAL_H

#include <stdint.h>

#include "core/err.h"
#include "eval/judge.h"
#include "models/clip.h"
#include "models/text2image.h"

typedef struct {
    const char *template_; /* "a photo of a {}." */
    int per_class, steps, batch;
    float cfg;
    SamplerKind sampler;
    uint64_t seed;
    const char *real, *data_dir; /* the real images of the distance (NULL: no distance) */
    int keep;              /* images a class kept in the result (for a report); 0: none */
    int quiet;
} GenEvalOpts;

typedef struct {
    int n_classes;
    double *accuracy;      /* [n_classes] */
    double mean_accuracy;
    double clip_score;     /* -1 without a judging CLIP */
    double fid;            /* -1 without one or without real images */
    long images;
    double seconds, images_per_s;
    uint8_t *kept;         /* [n_classes, keep, side, side, 3] the first images of each class, or NULL */
    int keep, side;
} GenEvalResult;

/* CLIP image embeddings [n, embed_dim] of n 8-bit RGB images [n, side, side, 3] (the CLIP transform
 * at the model's resolution, 32 at a time). */
int gen_clip_images(const ClipModel *m, const uint8_t *rgb, int n, int side, float *out, Err *e);
int gen_eval(const Text2Image *g, const Judge *j, const ClipModel *clip, const GenEvalOpts *o, GenEvalResult *r,
             Err *e);
void gen_eval_result_free(GenEvalResult *r);

#endif
