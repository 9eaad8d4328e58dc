#include "forget/coop.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/gemm.h"
#include "core/ops.h"
#include "core/rng.h"
#include "eval/forget_metrics.h"
#include "models/clip_encode.h"
#include "models/clip_train.h"
#include "train/trainer.h"

void coop_defaults(CoopOpts *o) {
    *o = (CoopOpts){.n_ctx = 4, .steps = 300, .eval_every = 5, .lr = 5e-3, .seed = 0};
}

static double val_h(const ClipModel *m, const int32_t *ids, int C, const float *ctx, int n_ctx, const float *img_n,
                    const int32_t *y, int N, const uint8_t *forget, float *rep) {
    const int E = m->cfg.embed_dim;
    float *tf = xalloc_floats((size_t)C * E), *tn = xalloc_floats((size_t)C * E), *lg = xalloc_floats((size_t)N * C);
    TowerActs a;
    clip_text_forward_context(m, &a, ids, C, ctx, n_ctx, rep, tf, 0);
    tower_acts_free(&a);
    l2norm_forward(tn, NULL, tf, C, E);
    sgemm(false, true, N, C, E, 1.0f, img_n, E, tn, E, 0.0f, lg, C);
    ForgetScore fs;
    forget_score(lg, y, N, C, forget, &fs);
    free(tf), free(tn), free(lg);
    return fs.h;
}

/* The training problem: the frozen text tower with the context at positions 1..M of every class
 * prompt, cached normalised image features, and the best validation H seen so far. */
typedef struct {
    const ClipModel *m;
    const int32_t *ids;
    int C, M;
    float *ctx, *grad, *rep, *drep, *tf, *tn, *norms, *lg, *dlg, *dtn, *dtf;
    const float *itr;
    int ntr;
    const int32_t *y_tr;
    const float *iva;
    int nva;
    const int32_t *y_va;
    const uint8_t *forget;
    float scale;
    double *best_h;
    float *ctx_out;
} CoopRun;

static int coop_step(void *user, long step, float *loss, Err *e) {
    (void)step, (void)e;
    CoopRun *r = user;
    const int E = r->m->cfg.embed_dim, W = r->m->cfg.t_width, C = r->C, M = r->M;
    TowerActs a;
    clip_text_forward_context(r->m, &a, r->ids, C, r->ctx, M, r->rep, r->tf, 1);
    l2norm_forward(r->tn, r->norms, r->tf, C, E);
    sgemm(false, true, r->ntr, C, E, r->scale, r->itr, E, r->tn, E, 0.0f, r->lg, C);
    *loss = (float)bbf_loss_grad(r->lg, r->y_tr, r->ntr, C, r->forget, r->dlg);
    /* logits = s I T^T: dT = s dlogits^T I, then back through the normalisation and the frozen tower */
    sgemm(true, false, C, E, r->ntr, r->scale, r->dlg, C, r->itr, E, 0.0f, r->dtn, E);
    memset(r->dtf, 0, sizeof(float) * (size_t)C * E);
    l2norm_backward(r->dtf, r->dtn, r->tn, r->norms, C, E);
    memset(r->drep, 0, sizeof(float) * (size_t)C * M * W);
    a.dctx = r->drep;
    text_backward(r->m, NULL, &a, r->dtf, NULL);
    tower_acts_free(&a);
    for (int k = 0; k < C; k++) /* the context is shared by every class prompt */
        for (int j = 0; j < M * W; j++) r->grad[j] += r->drep[(size_t)k * M * W + j];
    return 0;
}

static int coop_validate(void *user, long steps_done, Progress *bar, Err *e) {
    (void)steps_done, (void)bar, (void)e;
    CoopRun *r = user;
    const double h = val_h(r->m, r->ids, r->C, r->ctx, r->M, r->iva, r->y_va, r->nva, r->forget, r->rep);
    if (h > *r->best_h) *r->best_h = h, memcpy(r->ctx_out, r->ctx, sizeof(float) * (size_t)r->M * r->m->cfg.t_width);
    return 0;
}

static void coop_status(void *user, long step, float loss, char *buf, size_t cap) {
    (void)step;
    snprintf(buf, cap, "loss %.3f  best validation H %.3f", (double)loss, *((CoopRun *)user)->best_h);
}

int coop_run(const ClipModel *m, const Tokenizer *t, const char *const *prompts, int C, const uint8_t *forget,
             const float *img_tr, const int32_t *y_tr, int ntr, const float *img_va, const int32_t *y_va, int nva,
             const CoopOpts *o, float *ctx_out, double *best_h, Err *e) {
    const int E = m->cfg.embed_dim, W = m->cfg.t_width, ctxlen = m->cfg.context, M = o->n_ctx;
    if (!m->cfg.has_text) return err_set(e, "coop: the model has no text tower");
    int32_t *ids = xmalloc(sizeof(int32_t) * (size_t)C * ctxlen);
    if (clip_context_ids(m, t, NULL, prompts, C, M, ids, e)) {
        free(ids);
        return err_prefix(e, "coop: ");
    }
    /* normalised image features: the logits are e^s cos(img, txt) */
    float *itr = xalloc_floats((size_t)ntr * E), *iva = xalloc_floats((size_t)nva * E);
    l2norm_forward(itr, NULL, img_tr, ntr, E);
    l2norm_forward(iva, NULL, img_va, nva, E);
    const float scale = expf(m->logit_scale[0]);
    float *ctx = xalloc_floats((size_t)M * W), *grad = xalloc_floats((size_t)M * W);
    float *rep = xalloc_floats((size_t)C * M * W), *drep = xalloc_floats((size_t)C * M * W);
    float *tf = xalloc_floats((size_t)C * E), *tn = xalloc_floats((size_t)C * E), *norms = xalloc_floats((size_t)C);
    float *lg = xalloc_floats((size_t)ntr * C), *dlg = xalloc_floats((size_t)ntr * C);
    float *dtn = xalloc_floats((size_t)C * E), *dtf = xalloc_floats((size_t)C * E);
    Rng r;
    rng_seed(&r, o->seed ^ 0xc00b);
    for (int k = 0; k < M * W; k++) ctx[k] = 0.02f * rng_normal(&r); /* CoOp's initialisation */
    *best_h = -1;
    CoopRun run = {m, ids, C, M, ctx, grad, rep, drep, tf, tn, norms, lg, dlg, dtn, dtf, itr, ntr, y_tr, iva, nva, y_va,
                   forget, scale, best_h, ctx_out};
    TrainSpec spec = {.label = "coop", .total_steps = o->steps, .lr = o->lr, .beta1 = 0.9f, .beta2 = 0.999f,
                      .eps = 1e-8f, .params = ctx, .grads = grad, .n_params = (long)M * W, .step = coop_step,
                      .evaluate = coop_validate, .eval_every = o->eval_every, .eval_at_start = 1,
                      .status = coop_status, .user = &run, .samples_per_step = 1, .unit = "steps", .quiet = o->quiet};
    TrainState st;
    int rc = train_run(&spec, &st, e);
    free(ids), free(itr), free(iva), free(ctx), free(grad), free(rep), free(drep), free(tf), free(tn), free(norms);
    free(lg), free(dlg), free(dtn), free(dtf);
    return rc;
}
