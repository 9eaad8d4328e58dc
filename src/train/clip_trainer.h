/* Contrastive CLIP training on a labelled image set with generated captions:
 * symmetric InfoNCE, AdamW with decoupled weight decay, linear warm-up then
 * cosine decay, global gradient-norm clipping, logit scale clamped at ln(100).
 * Every random choice derives from (seed, step), so a run killed and resumed from
 * its checkpoint ends with the same weights as one never interrupted. */
#ifndef FORGET_CLIP_TRAINER_H
#define FORGET_CLIP_TRAINER_H

#include "core/dist.h"
#include "eval/zeroshot.h"
#include "io/emoji_bias.h"
#include "models/clip.h"
#include "models/clip_train.h"

typedef struct {
    const char *train_set;  /* e.g. "fmnist:train" */
    const char *eval_set;   /* e.g. "fmnist:test"; NULL: no evaluation */
    const char *data_dir;   /* NULL: the dataset's default location */
    ClipConfig cfg;
    int epochs, batch;
    double lr, wd, warmup_frac;
    float grad_clip;        /* global L2 norm; <= 0: off */
    uint64_t seed;
    int shift;              /* augmentation: random shift in pixels */
    int eval_samples;       /* images evaluated (<= 0: all) */
    int eval_every;         /* epochs between evaluations (and after the last) */
    const char *out;        /* final model; the checkpoint is "<out>.ckpt" */
    int ckpt_every;         /* steps between checkpoints */
    int fresh;              /* ignore an existing checkpoint */
    int limit;              /* > 0: train on the first `limit` samples only */
    long stop_after;        /* > 0: stop (as if killed) after this many steps in this run */
    int quiet;
    const Dist *dist;       /* NULL: serial; else the global batch is split over the ranks */
    const BiasSpec *bias;   /* people-emoji sampling skew (emoji-biased-clip), or NULL */
    const char *templates;  /* caption template file (one per line, "{}" = class), or NULL for the built-in set */
    long bench_steps;       /* > 0: a benchmark: this many steps from scratch, no checkpoint, evaluation or output */
    double *step_seconds;   /* bench_steps: each step's wall time (data pipeline included) */
    Precision precision;    /* PREC_BF16: mixed precision (fp32 master weights and AdamW state, bf16 products
                             * forward and backward); int8 is refused (inference only) */
} TrainOpts;

typedef struct {
    long steps_done, total_steps;
    double last_loss, images_per_s;
    int evaluated;
    ZeroShot eval;
    int finished; /* 1 when the final model was written */
} TrainResult;

void train_opts_default(TrainOpts *o);

/* One contrastive step on a batch (this rank's B samples of a global batch of B * size under
 * dist): forward both towers, the loss on the gathered features, backward; gradients accumulate
 * into g (a zeroed model of the same config). The trainer's loop does the rest. acts: the towers'
 * activations, kept by the caller from step to step so their buffers are not allocated again
 * (zeroed TowerActs at first; the caller frees them). */
int clip_contrastive_step(ClipModel *m, ClipModel *g, const float *px, const int32_t *ids, int B, const Dist *dist,
                          TowerActs *ia, TowerActs *ta, float *loss_out, Err *e);
int clip_train(const TrainOpts *o, TrainResult *res, Err *e);

#endif
