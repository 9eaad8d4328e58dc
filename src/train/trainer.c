#include "train/trainer.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "core/gemm_mixed.h"
#include "core/fastmath.h"
#include "core/ops.h"
#include "core/optim.h"
#include "core/rng.h"
#include "core/threads.h"
#include "io/atomic_file.h"
#include "io/safetensors.h"

uint64_t train_mix(uint64_t a, uint64_t b) { return rng_mix(a, b); }

void train_epoch_order(int *perm, int n, uint64_t seed, int epoch) {
    Rng r;
    rng_seed(&r, train_mix(seed, 1000003ull + (uint64_t)epoch));
    rng_permutation(&r, perm, n);
}

double train_lr_at(const TrainSpec *s, long step) {
    const long total = s->total_steps, warm = (long)(s->warmup_frac * total);
    if (step < warm) return s->lr * (double)(step + 1) / warm;
    if (s->n_milestones > 0) {
        double lr = s->lr;
        for (int i = 0; i < s->n_milestones; i++)
            if (step >= (long)(s->milestones[i] * total)) lr *= s->gamma;
        return lr;
    }
    if (!s->cosine) return s->lr;
    double p = total > warm ? (double)(step - warm) / (double)(total - warm) : 1.0;
    return s->lr * 0.5 * (1.0 + cos(M_PI * p));
}

HOT double train_global_norm(const float *g, long n) {
    double s = 0;
#pragma omp parallel for reduction(+ : s)
    for (long i = 0; i < n; i++) s += (double)g[i] * g[i];
    return sqrt(s);
}

/* ------------------------------------------------------------- checkpoints */

static int save_checkpoint(const TrainSpec *s, const AdamW *opt, long step, Err *e) {
    char steps[32], ts[32];
    snprintf(steps, sizeof steps, "%ld", step);
    snprintf(ts, sizeof ts, "%ld", opt->t);
    StWriteTensor t[4] = {
        {.name = "params", .dtype = ST_F32, .ndim = 1, .shape = {s->n_params}, .f32 = s->params},
        {.name = "adam_m", .dtype = ST_F32, .ndim = 1, .shape = {s->n_params}, .f32 = opt->m},
        {.name = "adam_v", .dtype = ST_F32, .ndim = 1, .shape = {s->n_params}, .f32 = opt->v},
        {.name = "extra", .dtype = ST_F32, .ndim = 1, .shape = {s->n_extra}, .f32 = s->extra},
    };
    const char *meta[] = {"step", steps, "adam_t", ts, "recipe", s->recipe ? s->recipe : "",
                          "producer", s->producer ? s->producer : "forget train"};
    return st_write(s->ckpt, t, s->extra ? 4 : 3, meta, 4, e);
}

static int parse_count(const char *v, long *out) {
    char *end;
    errno = 0;
    long x = strtol(v, &end, 10);
    if (errno || end == v || *end || x < 0) return -1;
    *out = x;
    return 0;
}

/* Returns the step to continue from (0 when there is no checkpoint), or -1. */
static long load_checkpoint(const TrainSpec *s, AdamW *opt, Err *e) {
    if (access(s->ckpt, F_OK) != 0) return 0;
    SafeTensors st;
    if (st_open(&st, s->ckpt, e) != 0) return -1;
    const char *r = st_meta(&st, "recipe"), *sv = st_meta(&st, "step"), *t = st_meta(&st, "adam_t");
    const StTensor *p = st_find(&st, "params"), *mm = st_find(&st, "adam_m"), *vv = st_find(&st, "adam_v");
    const StTensor *ex = st_find(&st, "extra");
    const char *recipe = s->recipe ? s->recipe : "";
    long rc, step = 0, at = 0;
    if (!r || !sv || !t || !p || !mm || !vv) {
        rc = err_set(e, "%s: not a forget training checkpoint", s->ckpt);
    } else if (strcmp(r, recipe) != 0) {
        rc = err_set(e, "%s: checkpoint of a different recipe (%s); remove it or pass --fresh", s->ckpt, r);
    } else if (st_numel(p) != s->n_params || st_numel(mm) != s->n_params || st_numel(vv) != s->n_params) {
        rc = err_set(e, "%s: parameter count differs from this model", s->ckpt);
    } else if (s->extra && (!ex || st_numel(ex) != s->n_extra)) {
        rc = err_set(e, "%s: no \"extra\" state of %ld values (the weights' average) for this run", s->ckpt, s->n_extra);
    } else if (s->extra && st_to_f32(ex, s->extra, e)) {
        rc = err_prefix(e, "%s: ", s->ckpt);
    } else if (parse_count(sv, &step) || parse_count(t, &at) || step > s->total_steps) {
        rc = err_set(e, "%s: step \"%s\" / adam_t \"%s\" are not counts within the %ld steps of this recipe", s->ckpt, sv,
                     t, s->total_steps);
    } else if (st_to_f32(p, s->params, e) || st_to_f32(mm, opt->m, e) || st_to_f32(vv, opt->v, e)) {
        rc = err_prefix(e, "%s: ", s->ckpt);
    } else {
        opt->t = at;
        rc = step;
    }
    st_close(&st);
    return rc;
}

/* ---------------------------------------------------------------- the loop */

/* SGD keeps its momentum buffer where AdamW keeps its first moment (and so in the checkpoint). */
static void move(const TrainSpec *s, AdamW *opt, long off, long n, double lr, double wd) {
    if (s->sgd) sgd_update(opt->m, s->params, s->grads, off, n, lr, wd, s->momentum);
    else adamw_update(opt, s->params, s->grads, off, n, lr, wd);
}

static void update(const TrainSpec *s, AdamW *opt, double lr) {
    adamw_begin_step(opt);
    if (!s->table) {
        move(s, opt, 0, s->n_params, lr, s->wd);
        return;
    }
    for (int i = 0; i < s->table->n; i++) {
        const NnParam *p = &s->table->p[i];
        if (p->frozen || p->buffer || !*p->slot) continue;
        move(s, opt, *p->slot - s->params, p->count, lr, p->decay ? s->wd : 0.0);
    }
}

static int due(long done, long every, long total) { return done == total || (every > 0 && done % every == 0); }

int train_run(const TrainSpec *s, TrainState *st, Err *e) {
    memset(st, 0, sizeof *st);
    const int lead = !s->dist || s->dist->rank == 0, quiet = s->quiet || !lead;
    AdamW opt;
    const int adam_defaults = s->beta1 == 0 && s->beta2 == 0 && s->eps == 0; /* torch.optim.AdamW's */
    adamw_init(&opt, s->n_params, adam_defaults ? 0.9f : s->beta1, adam_defaults ? 0.999f : s->beta2,
               adam_defaults ? 1e-8f : s->eps);
    int rc = 0;
    if (s->ckpt && lead) { /* refuse an unwritable target before hours of training; clear what killed runs left */
        if (atomic_check_target(s->ckpt, e)) rc = -1;
        else atomic_clean_stale(s->ckpt);
    }
    long step = rc || !s->ckpt || s->fresh ? 0 : load_checkpoint(s, &opt, e);
    if (step < 0) rc = -1, step = 0;
    gemm_weights_changed(s->gemm); /* restored (or initialised by the caller) weights */
    if (rc == 0 && step > 0 && !quiet) fprintf(stderr, "resuming %s from step %ld of %ld\n", s->ckpt, step, s->total_steps);
    Progress bar;
    progress_start(&bar, s->label, s->total_steps, quiet);
    if (rc == 0 && step == 0 && s->eval_at_start && s->evaluate && lead) rc = s->evaluate(s->user, 0, &bar, e);
    const double t0 = now_seconds();
    char status[192] = "";
    while (rc == 0 && step < s->total_steps) {
        const double ts = now_seconds();
        memset(s->grads, 0, sizeof(float) * (size_t)s->n_params);
        float loss = 0;
        if ((rc = s->step(s->user, step, &loss, e)) != 0) {
            err_prefix(e, "step %ld: ", step);
            break;
        }
        dist_allreduce_sum(s->dist, s->grads, s->n_params);
        st->last_loss = loss;
        if (!isfinite(loss)) {
            rc = err_set(e, "step %ld: loss is %f: lower the learning rate", step, (double)loss);
            break;
        }
        const double norm = train_global_norm(s->grads, s->n_params);
        if (s->grad_clip > 0 && norm > s->grad_clip) scale_inplace(s->grads, (float)(s->grad_clip / norm), s->n_params);
        update(s, &opt, train_lr_at(s, step));
        gemm_weights_changed(s->gemm);
        if (s->after_update) s->after_update(s->user, step);
        if (s->step_seconds) s->step_seconds[st->steps_this_run] = now_seconds() - ts;
        step++;
        st->steps_this_run++;
        st->samples_per_s = (double)st->steps_this_run * s->samples_per_step / (now_seconds() - t0);
        if (s->status) s->status(s->user, step, loss, status, sizeof status);
        progress_update(&bar, step, s->samples_per_step, s->unit, status);
        const int stopping = s->stop_after > 0 && st->steps_this_run == s->stop_after;
        if (s->ckpt && lead && (due(step, s->ckpt_every, s->total_steps) || stopping))
            if ((rc = save_checkpoint(s, &opt, step, e)) != 0) break;
        if (s->evaluate && lead && due(step, s->eval_every, s->total_steps))
            if ((rc = s->evaluate(s->user, step, &bar, e)) != 0) {
                if (rc > 0) st->stopped_early = 1, rc = 0; /* the evaluation ends the run here */
                break;
            }
        if (stopping) break;
    }
    progress_end(&bar);
    st->step = step;
    st->finished = rc == 0 && step == s->total_steps;
    adamw_free(&opt);
    return rc;
}
