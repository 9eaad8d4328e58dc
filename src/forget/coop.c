#include "forget/coop.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/gemm.h"
#include "core/ops.h"
#include "core/optim.h"
#include "core/progress.h"
#include "core/rng.h"
#include "eval/forget_metrics.h"
#include "models/clip_encode.h"
#include "models/clip_train.h"

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
    ClipModel g;
    clip_init_zeros(&g, &m->cfg); /* the tower's parameter gradients: computed, not used */
    AdamW opt;
    adamw_init(&opt, (long)M * W, 0.9f, 0.999f, 1e-8f);
    *best_h = -1;
    Progress prog;
    progress_start(&prog, "coop", o->steps, o->quiet);
    for (int step = 0; step <= o->steps; step++) {
        if (step % o->eval_every == 0 || step == o->steps) {
            double h = val_h(m, ids, C, ctx, M, iva, y_va, nva, forget, rep);
            if (h > *best_h) *best_h = h, memcpy(ctx_out, ctx, sizeof(float) * (size_t)M * W);
        }
        if (step == o->steps) break;
        TowerActs a;
        clip_text_forward_context(m, &a, ids, C, ctx, M, rep, tf, 1);
        l2norm_forward(tn, norms, tf, C, E);
        sgemm(false, true, ntr, C, E, scale, itr, E, tn, E, 0.0f, lg, C);
        double loss = bbf_loss_grad(lg, y_tr, ntr, C, forget, dlg);
        /* logits = s I T^T: dT = s dlogits^T I, then back through the normalisation and the tower */
        sgemm(true, false, C, E, ntr, scale, dlg, C, itr, E, 0.0f, dtn, E);
        memset(dtf, 0, sizeof(float) * (size_t)C * E);
        l2norm_backward(dtf, dtn, tn, norms, C, E);
        memset(drep, 0, sizeof(float) * (size_t)C * M * W);
        a.dctx = drep;
        text_backward(m, &g, &a, dtf, NULL);
        tower_acts_free(&a);
        memset(grad, 0, sizeof(float) * (size_t)M * W);
        for (int k = 0; k < C; k++)
            for (int j = 0; j < M * W; j++) grad[j] += drep[(size_t)k * M * W + j];
        adamw_begin_step(&opt);
        adamw_update(&opt, ctx, grad, 0, (long)M * W, o->lr, 0.0);
        char st[96];
        snprintf(st, sizeof st, "loss %.3f  best validation H %.3f", loss, *best_h);
        progress_update(&prog, step + 1, 1, "steps", st);
    }
    progress_end(&prog);
    adamw_free(&opt);
    clip_free(&g);
    free(ids), free(itr), free(iva), free(ctx), free(grad), free(rep), free(drep), free(tf), free(tn), free(norms);
    free(lg), free(dlg), free(dtn), free(dtf);
    return 0;
}
