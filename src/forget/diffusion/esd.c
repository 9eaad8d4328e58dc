/* ESD, Erased Stable Diffusion (Gandikota et al., ICCV 2023; diffusion-erasure.md 3.1):
 *   L = || e_theta(x_t, t, c) - [ e*(x_t, t, 0) - eta (e*(x_t, t, c) - e*(x_t, t, 0)) ] ||^2
 * e* the frozen original, x_t sampled from the model being trained (DDIM guided at scale 3 from
 * noise down to a random one of the K = 50 steps), a new seed every iteration. ESD-x trains the
 * cross-attention (every tensor whose diffusers key holds "attn2."), ESD-u everything else.
 * Defaults: the current official code's (esd_sd.py: 200 iterations, lr 5e-5, eta 2, guidance 3,
 * 50 steps); the paper era's (1000 iterations, lr 1e-5, eta 1) are --steps 1000 --lr 1e-5 --eta 1.
 * One deviation: the official code draws a DDPM timestep inside the DDIM step's interval; here
 * the regression runs at the DDIM step's own timestep. Runs on the one trainer (Adam). */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "core/ops.h"
#include "core/rng.h"
#include "forget/diffusion/erase.h"
#include "train/trainer.h"

enum { ESD_K = 50 };
static const float ESD_START_GUIDANCE = 3.0f;

typedef struct {
    Text2Image *g;
    UNet frozen;
    UNetGrads grads;
    UNetActs *train_a, *inf_a;
    float *cond, *x, *xin, *tt, *ctx2, *eps2, *pred, *target, *dpred;
    int32_t ts[ESD_K];
    double eta;
    uint64_t seed;
    long per, crow;
} EsdRun;

static int esd_step(void *user, long step, float *loss, Err *e) {
    EsdRun *r = user;
    Text2Image *g = r->g;
    Rng rg;
    rng_seed(&rg, train_mix(r->seed ^ 0xe5d, (uint64_t)step));
    const int stop = (int)rng_below(&rg, ESD_K); /* x_t after `stop` of the K steps */
    SampleSpec sp = {.side = g->side, .ctx_len = g->ctx_len, .steps = ESD_K, .cfg = ESD_START_GUIDANCE,
                     .sampler = SAMPLER_DDIM, .seed = rng_u64(&rg), .batch = 1, .stop_at = stop};
    if (stop == 0) { /* no step taken: pure noise */
        Rng z;
        rng_seed(&z, rng_mix(sp.seed, 0));
        rng_fill_normal(&z, r->x, r->per, 0, 1);
    } else if (diffusion_sample(&g->unet, &g->sched, &sp, r->cond, g->uncond, 1, r->x, e))
        return -1;
    const float t = (float)r->ts[stop];
    /* the frozen model's conditional and unconditional predictions, in one call */
    memcpy(r->xin, r->x, sizeof(float) * (size_t)r->per), memcpy(r->xin + r->per, r->x, sizeof(float) * (size_t)r->per);
    r->tt[0] = r->tt[1] = t;
    unet_forward(&r->frozen, r->inf_a, r->xin, r->tt, r->ctx2, r->eps2);
    const float *ec = r->eps2, *eu = r->eps2 + r->per;
    for (long i = 0; i < r->per; i++) r->target[i] = eu[i] - (float)r->eta * (ec[i] - eu[i]);
    unet_forward(&g->unet, r->train_a, r->x, r->tt, r->cond, r->pred);
    *loss = mse_forward(r->pred, r->target, r->per);
    memset(r->dpred, 0, sizeof(float) * (size_t)r->per);
    mse_backward(r->dpred, r->pred, r->target, r->per, 1.0f);
    unet_backward(&g->unet, r->train_a, r->dpred, &r->grads, NULL, NULL);
    return 0;
}

int esd_train(Text2Image *g, const char *concept, int cross_only, double lr, int steps, double eta, uint64_t seed,
              int quiet, long *trainable, double *loss, Err *e) {
    if (lr <= 0) lr = 5e-5;   /* the current official defaults [V]: 200 iterations, lr 5e-5 (eta 2: the caller's) */
    if (steps <= 0) steps = 200;
    UNet *m = &g->unet;
    EsdRun r = {.g = g, .eta = eta, .seed = seed};
    r.per = (long)m->cfg.in_ch * g->side * g->side, r.crow = (long)g->ctx_len * m->cfg.ctx_dim;
    unet_alloc(&r.frozen, &m->cfg); /* e*: a copy of the original */
    memcpy(r.frozen.arena, m->arena, sizeof(float) * (size_t)m->n_params);
    unet_grads_alloc(&r.grads, m);
    long n_train = 0;
    uint8_t *was = xmalloc((size_t)m->table.n + 1);
    for (int i = 0; i < m->table.n; i++) was[i] = m->table.p[i].frozen;
    for (int i = 0; i < m->table.n; i++) { /* which tensors move */
        NnParam *p = &m->table.p[i];
        if (p->buffer) continue;
        const int cross = strstr(p->key[UNET_DIFFUSERS][0], "attn2.") != NULL;
        p->frozen = was[i] || (cross_only ? !cross : cross);
        if (!p->frozen) n_train += p->count;
    }
    r.train_a = unet_acts_new(m, 1, g->side, g->ctx_len, 1);
    r.inf_a = unet_acts_new(m, 2, g->side, g->ctx_len, 0);
    r.cond = xalloc_floats((size_t)r.crow), r.ctx2 = xalloc_floats((size_t)2 * r.crow);
    r.x = xalloc_floats((size_t)r.per), r.xin = xalloc_floats((size_t)2 * r.per), r.tt = xalloc_floats(2);
    r.eps2 = xalloc_floats((size_t)2 * r.per), r.pred = xalloc_floats((size_t)r.per);
    r.target = xalloc_floats((size_t)r.per), r.dpred = xalloc_floats((size_t)r.per);
    diffusion_timesteps(r.ts, g->sched.T, ESD_K);
    int rc = t2i_encode(g, &concept, 1, r.cond, e);
    if (!rc) {
        memcpy(r.ctx2, r.cond, sizeof(float) * (size_t)r.crow);
        memcpy(r.ctx2 + r.crow, g->uncond, sizeof(float) * (size_t)r.crow);
        TrainSpec spec = {.label = cross_only ? "esd-x" : "esd-u", .total_steps = steps, .lr = lr, .beta1 = 0.9f,
                          .beta2 = 0.999f, .eps = 1e-8f, .params = m->arena, .grads = r.grads.arena,
                          .n_params = m->n_params, .table = &m->table, .step = esd_step, .user = &r,
                          .samples_per_step = 1, .unit = "steps", .quiet = quiet};
        TrainState st;
        rc = train_run(&spec, &st, e);
        *loss = st.last_loss;
    }
    for (int i = 0; i < m->table.n; i++) m->table.p[i].frozen = was[i];
    free(was);
    *trainable = n_train;
    unet_acts_free(r.train_a), unet_acts_free(r.inf_a);
    unet_grads_free(&r.grads);
    unet_free(&r.frozen);
    free(r.cond), free(r.ctx2), free(r.x), free(r.xin), free(r.tt), free(r.eps2), free(r.pred), free(r.target), free(r.dpred);
    return rc;
}
