/* The one training loop every trainer in forget runs: a step callback computes a loss and
 * accumulates gradients; the loop zeroes them, all-reduces them over MPI ranks, clips their
 * global norm, moves the trainable entries with AdamW (decay per entry), follows a warm-up +
 * cosine (or constant) learning rate, draws a progress bar, calls an evaluation every so many
 * steps, and writes checkpoints a rerun resumes from with byte-identical results (every random
 * choice of a step must derive from (seed, step), see train_mix). The CLIP trainer, the zoo,
 * CoOp, prompt-array, DEAR and `forget bench train` all run through it. */
#ifndef FORGET_TRAINER_H
#define FORGET_TRAINER_H

#include <stddef.h>
#include <stdint.h>

#include "core/dist.h"
#include "core/err.h"
#include "core/progress.h"
#include "nn/params.h"

typedef struct {
    const char *label;   /* the progress bar's */
    long total_steps;
    /* schedule and optimiser */
    double lr, warmup_frac; /* linear warm-up over warmup_frac of the steps, then: */
    int cosine;             /* 1: cosine decay to 0; 0: constant */
    double wd;              /* decoupled weight decay where the entry decays */
    float grad_clip;        /* global L2 norm; <= 0: off */
    float beta1, beta2, eps;  /* all three 0: AdamW's defaults 0.9, 0.999, 1e-8 */
    int sgd;                /* 1: SGD with momentum (coupled weight decay, as torch.optim.SGD) for AdamW */
    float momentum;
    /* step decay on top of warm-up (cosine 0): the rate is multiplied by gamma at each milestone,
     * given as fractions of total_steps (MultiStepLR scaled to the run) */
    const double *milestones;
    int n_milestones;
    double gamma;
    /* what moves: the arena and its gradient, entries from the table (NULL: all of it, decaying) */
    float *params, *grads;
    long n_params;
    const NnTable *table;   /* slots point into params; frozen and buffer entries do not move */
    /* the work */
    int (*step)(void *user, long step, float *loss, Err *e);
    void (*after_update)(void *user, long step);                 /* may be NULL */
    /* may be NULL; rank 0 only; returns 0 to go on, > 0 to end the run there (early stopping), -1 on error */
    int (*evaluate)(void *user, long steps_done, Progress *bar, Err *e);
    long eval_every;        /* steps between evaluations (and after the last); 0: only after the last */
    int eval_at_start;      /* also before the first step */
    void (*status)(void *user, long step, float loss, char *buf, size_t cap); /* the bar's text, may be NULL */
    void *user;
    double samples_per_step;
    const char *unit;       /* what the bar's rate counts ("img", "steps") */
    int quiet;
    const Dist *dist;       /* NULL: serial */
    /* checkpoints (NULL ckpt: none) */
    const char *ckpt, *recipe, *producer;
    long ckpt_every;
    int fresh;              /* ignore an existing checkpoint */
    long stop_after;        /* > 0: stop after this many steps in this run, with a checkpoint, as if killed */
    double *step_seconds;   /* optional: wall time of each step of this run (benchmarks) */
    /* state that moves with the run but not by the optimiser (an EMA of the weights): saved in
     * and restored from the checkpoint beside the parameters; NULL: none */
    float *extra;
    long n_extra;
    /* mixed precision: the context whose bf16 weight copies follow params (told after every update
     * and after a checkpoint is restored); NULL: none */
    struct Gemm *gemm;
} TrainSpec;

typedef struct {
    long step;              /* steps done (a resumed run starts past 0) */
    long steps_this_run;
    float last_loss;
    double samples_per_s;   /* this run's */
    int finished;           /* step == total_steps */
    int stopped_early;      /* the evaluation ended the run before total_steps */
} TrainState;

/* Runs from the checkpoint (if any) to total_steps or stop_after. */
int train_run(const TrainSpec *s, TrainState *st, Err *e);

/* Learning rate at a step under the spec's schedule. */
double train_lr_at(const TrainSpec *s, long step);
/* A 64-bit mix of two values: seeds of per-step, per-sample random streams. */
uint64_t train_mix(uint64_t a, uint64_t b);
/* The sample order of an epoch: a seeded Fisher-Yates from (seed, epoch). */
void train_epoch_order(int *perm, int n, uint64_t seed, int epoch);
double train_global_norm(const float *g, long n);

#endif
