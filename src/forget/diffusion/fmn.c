/* FMN, Forget-Me-Not attention re-steering (Zhang et al. 2023; diffusion-erasure.md 3.2): over
 * real images of the concept, noised, with the concept's prompt, minimise the L2 norm of every
 * cross-attention map's columns at the concept's tokens (and at EOT, the official use_pooler):
 *   L = || concat_{layers, heads, pixels} A[:, :, concept tokens] ||_2
 * so the UNet stops attending to them. The whole UNet is tuned (only_optimize_ca: false) with
 * AdamW (lr 2e-6, weight decay 0.01, gradient norm clipped at 1), 35 steps of batch 1: the
 * official configs/attn.yaml. The optional textual-inversion stage (use_ti) is left out. */
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "core/ops.h"
#include "core/rng.h"
#include "forget/diffusion/erase.h"
#include "io/dataset.h"
#include "train/trainer.h"

typedef struct {
    Text2Image *g;
    const Dataset *d;
    const int *pool;
    int n_pool;
    UNetGrads grads;
    UNetActs *a, *enc;
    float *px, *mom, *x0, *eps, *xt, *ctx, *pred, *deps;
    float **datt;
    int n_cross, *cols, n_cols;
    long per;
    uint64_t seed;
} FmnRun;

static int fmn_step(void *user, long step, float *loss, Err *e) {
    (void)e;
    FmnRun *r = user;
    Text2Image *g = r->g;
    Rng rg;
    rng_seed(&rg, train_mix(r->seed ^ 0xf3a, (uint64_t)step));
    const int smp = r->pool[rng_below(&rg, (uint32_t)r->n_pool)];
    dataset_pixels(r->d, &smp, 1, g->image_side, &PIXELS_HALF, r->px, NULL, 0);
    if (g->has_vae) { /* z = scale (mean + std n) from the image's posterior, as the UNet was trained */
        vae_encode(&g->vae, r->enc, r->px, r->mom);
        const float *mu = r->mom, *lv = r->mom + r->per;
        for (long j = 0; j < r->per; j++)
            r->x0[j] = g->vae.scale * (mu[j] + expf(0.5f * fminf(20.0f, fmaxf(-30.0f, lv[j]))) * rng_normal(&rg));
    } else
        memcpy(r->x0, r->px, sizeof(float) * (size_t)r->per);
    const int32_t t = (int32_t)rng_below(&rg, (uint32_t)g->sched.T);
    rng_fill_normal(&rg, r->eps, r->per, 0, 1);
    diffusion_add_noise(r->xt, r->x0, r->eps, &t, 1, r->per, &g->sched);
    const float tf = (float)t;
    unet_forward(&g->unet, r->a, r->xt, &tf, r->ctx, r->pred);
    double ss = 0;
    for (int j = 0; j < r->n_cross; j++) {
        int Lq, Lk, H;
        const float *A = unet_cross_probs(r->a, j, &Lq, &Lk, &H);
        for (long row = 0; row < (long)H * Lq; row++)
            for (int c = 0; c < r->n_cols; c++) {
                const double v = A[row * Lk + r->cols[c]];
                ss += v * v;
            }
    }
    const double norm = sqrt(ss) > 1e-12 ? sqrt(ss) : 1e-12;
    for (int j = 0; j < r->n_cross; j++) { /* dL/dA = A / ||A_cols|| on the concept's columns */
        int Lq, Lk, H;
        const float *A = unet_cross_probs(r->a, j, &Lq, &Lk, &H);
        memset(r->datt[j], 0, sizeof(float) * (size_t)H * Lq * Lk);
        for (long row = 0; row < (long)H * Lq; row++)
            for (int c = 0; c < r->n_cols; c++) r->datt[j][row * Lk + r->cols[c]] = (float)(A[row * Lk + r->cols[c]] / norm);
        unet_cross_set_grad(r->a, j, r->datt[j]);
    }
    memset(r->deps, 0, sizeof(float) * (size_t)r->per);
    unet_backward(&g->unet, r->a, r->deps, &r->grads, NULL, NULL);
    for (int j = 0; j < r->n_cross; j++) unet_cross_set_grad(r->a, j, NULL);
    *loss = (float)sqrt(ss);
    return 0;
}

int fmn_train(Text2Image *g, const char *concept, const char *dataset, const char *data_dir, double lr, int steps,
              uint64_t seed, int quiet, long *trainable, double *loss, Err *e) {
    if (lr <= 0) lr = 2e-6; /* configs/attn.yaml [V] */
    if (steps <= 0) steps = 35;
    Dataset d;
    if (dataset_load_named(&d, dataset, data_dir, e)) return -1;
    int cls = -1;
    for (int c = 0; c < d.n_classes; c++)
        if (strcasecmp(d.class_names[c], concept) == 0) cls = c;
    if (cls < 0) {
        dataset_free(&d);
        return err_set(e, "fmn: %s has no class named \"%s\" (FMN needs real images of the concept)", dataset, concept);
    }
    FmnRun r = {.g = g, .d = &d, .seed = seed};
    int *pool = xmalloc(sizeof(int) * (size_t)d.n);
    for (int i = 0; i < d.n; i++)
        if (d.labels[i] == cls) pool[r.n_pool++] = i;
    r.pool = pool;
    UNet *m = &g->unet;
    r.per = (long)m->cfg.in_ch * g->side * g->side;
    const long crow = (long)g->ctx_len * m->cfg.ctx_dim, ipx = 3L * g->image_side * g->image_side;
    /* the prompt, and the columns of its concept tokens and EOT */
    char *prompt = xasprintf("a photo of a %s.", concept);
    int32_t *ids = xmalloc(sizeof(int32_t) * (size_t)g->ctx_len), *cids = NULL;
    int nc = 0, rc = tokenizer_encode(&g->tok, concept, &cids, &nc, e);
    const int pre = 1 + 4; /* SOT + "a photo of a" */
    const int len = rc ? -1 : tokenizer_tokenize(&g->tok, prompt, g->ctx_len, ids, e);
    if (!rc && len < 0) rc = -1;
    r.cols = xmalloc(sizeof(int) * (size_t)(nc + 1));
    for (int i = 0; i < nc && !rc; i++)
        if (pre + i < len && ids[pre + i] == cids[i]) r.cols[r.n_cols++] = pre + i;
    if (!rc && r.n_cols != nc) rc = err_set(e, "fmn: the concept's tokens were not found in \"%s\"", prompt);
    if (!rc) r.cols[r.n_cols++] = len - 1; /* EOT: the pooler token */
    r.ctx = xalloc_floats((size_t)crow);
    if (!rc) rc = t2i_encode(g, (const char *const *)&prompt, 1, r.ctx, e);
    unet_grads_alloc(&r.grads, m);
    r.a = unet_acts_new(m, 1, g->side, g->ctx_len, 1);
    r.enc = g->has_vae ? unet_acts_new(&g->vae.enc, 1, g->image_side, 1, 0) : NULL;
    r.px = xalloc_floats((size_t)ipx), r.mom = xalloc_floats((size_t)2 * r.per), r.x0 = xalloc_floats((size_t)r.per);
    r.eps = xalloc_floats((size_t)r.per), r.xt = xalloc_floats((size_t)r.per), r.pred = xalloc_floats((size_t)r.per);
    r.deps = xalloc_floats((size_t)r.per);
    r.n_cross = unet_cross_count(r.a);
    r.datt = xcalloc((size_t)r.n_cross, sizeof(float *));
    for (int j = 0; j < r.n_cross; j++) {
        int Lq, Lk, H;
        unet_cross_probs(r.a, j, &Lq, &Lk, &H);
        r.datt[j] = xalloc_floats((size_t)H * Lq * Lk);
    }
    if (!rc) {
        TrainSpec spec = {.label = "fmn", .total_steps = steps, .lr = lr, .wd = 0.01, .grad_clip = 1.0f, .beta1 = 0.9f,
                          .beta2 = 0.999f, .eps = 1e-8f, .params = m->arena, .grads = r.grads.arena,
                          .n_params = m->n_params, .step = fmn_step, .user = &r, .samples_per_step = 1,
                          .unit = "steps", .quiet = quiet};
        TrainState st;
        rc = train_run(&spec, &st, e);
        *loss = st.last_loss;
    }
    *trainable = m->n_params;
    for (int j = 0; j < r.n_cross; j++) free(r.datt[j]);
    free(r.datt), free(r.cols), free(ids), free(cids), free(prompt), free(pool);
    unet_acts_free(r.a);
    if (r.enc) unet_acts_free(r.enc);
    unet_grads_free(&r.grads);
    free(r.ctx), free(r.px), free(r.mom), free(r.x0), free(r.eps), free(r.xt), free(r.pred), free(r.deps);
    dataset_free(&d);
    return rc;
}
