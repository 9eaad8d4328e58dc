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
} TrainOpts;

typedef struct {
    long steps_done, total_steps;
    double last_loss, images_per_s;
    int evaluated;
    ZeroShot eval;
    int finished; /* 1 when the final model was written */
} TrainResult;

void train_opts_default(TrainOpts *o);

#include "core/optim.h"
#include "models/clip_params.h"
/* One optimisation step on a batch: forward both towers, contrastive loss, backward,
 * clip the global gradient norm, AdamW (decay per the table's flags), clamp the logit scale.
 * g is the gradient buffer (clip_init_zeros); params from clip_param_table(m).
 * dist (NULL: serial): px/ids are this rank's B samples of a global batch of B * size. */
int clip_train_step(ClipModel *m, ClipModel *g, AdamW *opt, const NnTable *params, const float *px,
                    const int32_t *ids, int B, const Dist *dist, double lr, double wd, float grad_clip,
                    float *loss_out, Err *e);
int clip_train(const TrainOpts *o, TrainResult *res, Err *e);

#endif
