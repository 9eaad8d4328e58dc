#include "models/diffusion.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/ops.h"
#include "core/rng.h"

int diffusion_beta_parse(const char *name, BetaKind *out) {
    if (strcmp(name, "sd") == 0) return *out = BETA_SD, 0;
    if (strcmp(name, "linear") == 0) return *out = BETA_LINEAR, 0;
    return -1;
}

const char *diffusion_beta_name(BetaKind k) { return k == BETA_SD ? "sd" : "linear"; }

int diffusion_sampler_parse(const char *name, SamplerKind *out) {
    if (strcmp(name, "ddim") == 0) return *out = SAMPLER_DDIM, 0;
    if (strcmp(name, "ddpm") == 0) return *out = SAMPLER_DDPM, 0;
    return -1;
}

int diffusion_schedule_init(DiffSchedule *s, int T, BetaKind kind, double beta0, double beta1, Err *e) {
    memset(s, 0, sizeof *s);
    if (beta0 <= 0) beta0 = kind == BETA_SD ? 0.00085 : 1e-4;
    if (beta1 <= 0) beta1 = kind == BETA_SD ? 0.012 : 0.02;
    if (T < 2 || T > 100000) return err_set(e, "diffusion: %d timesteps (2..100000)", T);
    if (!(beta0 < beta1) || beta1 >= 1) return err_set(e, "diffusion: betas %g..%g (0 < start < end < 1)", beta0, beta1);
    s->T = T, s->kind = kind, s->beta0 = beta0, s->beta1 = beta1;
    s->abar = xmalloc(sizeof(double) * (size_t)T);
    double a = 1;
    for (int t = 0; t < T; t++) {
        const double f = (double)t / (T - 1);
        const double beta = kind == BETA_SD ? pow(sqrt(beta0) + f * (sqrt(beta1) - sqrt(beta0)), 2)
                                            : beta0 + f * (beta1 - beta0);
        a *= 1 - beta;
        s->abar[t] = a;
    }
    return 0;
}

void diffusion_schedule_free(DiffSchedule *s) {
    free(s->abar);
    memset(s, 0, sizeof *s);
}

void diffusion_add_noise(float *xt, const float *x0, const float *eps, const int32_t *t, int B, long per,
                         const DiffSchedule *s) {
    for (int b = 0; b < B; b++) {
        const float ca = (float)sqrt(s->abar[t[b]]), cb = (float)sqrt(1 - s->abar[t[b]]);
        const size_t o = (size_t)b * per;
        for (long i = 0; i < per; i++) xt[o + i] = ca * x0[o + i] + cb * eps[o + i];
    }
}

int diffusion_timesteps(int32_t *ts, int T, int K) {
    if (K < 1) K = 1;
    if (K > T) K = T;
    const int stride = T / K, offset = stride > 1 ? 1 : 0;
    for (int k = 0; k < K; k++) ts[K - 1 - k] = (int32_t)(k * stride + offset);
    return K;
}

void diffusion_ddim_step(float *x, const float *eps, long n, double abar_t, double abar_prev, double eta,
                         const float *noise) {
    /* x0 = (x - sqrt(1 - a_t) eps) / sqrt(a_t); sigma = eta sqrt((1 - a_p)/(1 - a_t)) sqrt(1 - a_t/a_p);
     * x_prev = sqrt(a_p) x0 + sqrt(1 - a_p - sigma^2) eps + sigma z */
    const double sigma = eta > 0 ? eta * sqrt((1 - abar_prev) / (1 - abar_t)) * sqrt(1 - abar_t / abar_prev) : 0;
    const double dir = sqrt(fmax(0.0, 1 - abar_prev - sigma * sigma));
    const double ra = 1 / sqrt(abar_t), sa = sqrt(1 - abar_t), sp = sqrt(abar_prev);
    for (long i = 0; i < n; i++) {
        const double x0 = (x[i] - sa * eps[i]) * ra;
        double v = sp * x0 + dir * eps[i];
        if (sigma > 0 && noise) v += sigma * noise[i];
        x[i] = (float)v;
    }
}

void diffusion_loss_work_alloc(DiffLossWork *w, int B, long per) {
    const size_t n = (size_t)B * per;
    *w = (DiffLossWork){B, per, xalloc_floats(n), xalloc_floats(n), xalloc_floats(n), xalloc_floats((size_t)B)};
}

void diffusion_loss_work_free(DiffLossWork *w) {
    free(w->xt), free(w->pred), free(w->dpred), free(w->tt);
    memset(w, 0, sizeof *w);
}

float diffusion_eps_loss(const UNet *m, UNetActs *a, const DiffSchedule *s, DiffLossWork *w, const float *x0,
                         const float *eps, const int32_t *t, const float *ctx, float dscale, UNetGrads *g) {
    const long n = (long)w->B * w->per;
    for (int i = 0; i < w->B; i++) w->tt[i] = (float)t[i];
    diffusion_add_noise(w->xt, x0, eps, t, w->B, w->per, s);
    unet_forward(m, a, w->xt, w->tt, ctx, w->pred);
    const float loss = mse_forward(w->pred, eps, n);
    memset(w->dpred, 0, sizeof(float) * (size_t)n);
    mse_backward(w->dpred, w->pred, eps, n, dscale);
    unet_backward(m, a, w->dpred, g, NULL, NULL);
    return loss;
}

void diffusion_guide(float *out, const float *u, const float *c, long n, float w) {
    for (long i = 0; i < n; i++) out[i] = u[i] + w * (c[i] - u[i]);
}

/* SLD's combination of the three predictions at step k (diffusion.h), nu updated in place. */
static void safe_guide(float *out, const float *ep, const float *e0, const float *es, float *nu, long n, float w,
                       const SafeGuidance *sg, int k) {
    for (long i = 0; i < n; i++) {
        const float d = ep[i] - es[i];
        float mu = fminf(fabsf(d) * sg->scale, 1.0f);
        if (d >= sg->threshold) mu = 0;
        const float gamma = mu * (es[i] - e0[i]) + sg->momentum * nu[i];
        nu[i] = sg->beta * nu[i] + (1 - sg->beta) * gamma;
        float gd = ep[i] - e0[i];
        if (k >= sg->warmup) gd -= gamma;
        out[i] = e0[i] + w * gd;
    }
}

int diffusion_sample(const UNet *m, const DiffSchedule *s, const SampleSpec *sp, const float *cond,
                     const float *uncond, int n, float *out, Err *e) {
    const UNetConfig *c = &m->cfg;
    if (unet_config_check(c, sp->side, e)) return -1;
    if (sp->steps < 1 || sp->batch < 1 || sp->ctx_len < 1) return err_set(e, "sample: steps, batch and context length must be positive");
    const int guided = sp->cfg != 1.0f, bs = sp->batch < n ? sp->batch : n, L = sp->ctx_len, D = c->ctx_dim;
    const long per = (long)c->in_ch * sp->side * sp->side, crow = (long)L * D;
    int32_t *ts = xmalloc(sizeof(int32_t) * (size_t)sp->steps);
    const int K = diffusion_timesteps(ts, s->T, sp->steps);
    const SafeGuidance *sg = guided ? sp->safe : NULL;
    const int branches = sg ? 3 : guided ? 2 : 1, rows = branches * bs;
    UNetActs *a = unet_acts_new(m, rows, sp->side, L, 0);
    float *xin = xalloc_floats((size_t)rows * per), *eps = xalloc_floats((size_t)rows * per);
    float *ctx = xalloc_floats((size_t)rows * crow), *tt = xalloc_floats((size_t)rows);
    float *g = xalloc_floats((size_t)bs * per), *z = xalloc_floats((size_t)bs * per);
    float *nu = sg ? xalloc_floats((size_t)bs * per) : NULL;
    const double eta = sp->sampler == SAMPLER_DDPM ? 1.0 : 0.0;
    for (int b0 = 0; b0 < n; b0 += bs) {
        const int nb = n - b0 < bs ? n - b0 : bs, nr = branches * nb;
        float *x = out + (size_t)b0 * per;
        for (int i = 0; i < nb; i++) { /* sample i's starting noise from its own stream */
            Rng r;
            rng_seed(&r, rng_mix(sp->seed, (uint64_t)(sp->first + b0 + i)));
            rng_fill_normal(&r, x + (size_t)i * per, per, 0, 1);
        }
        /* rows: the conditional branch of each sample, then (guided) the unconditional ones */
        memcpy(ctx, cond + (size_t)b0 * crow, sizeof(float) * (size_t)nb * crow);
        if (guided)
            for (int i = 0; i < nb; i++) memcpy(ctx + (size_t)(nb + i) * crow, uncond, sizeof(float) * (size_t)crow);
        if (sg) { /* and the safety concept's */
            for (int i = 0; i < nb; i++) memcpy(ctx + (size_t)(2 * nb + i) * crow, sg->rows, sizeof(float) * (size_t)crow);
            memset(nu, 0, sizeof(float) * (size_t)nb * per);
        }
        UNetActs *use = a;
        if (nr != rows) use = unet_acts_new(m, nr, sp->side, L, 0); /* a short last batch */
        const int run = sp->stop_at > 0 && sp->stop_at < K ? sp->stop_at : K;
        for (int k = 0; k < run; k++) {
            const int t = ts[k];
            for (int i = 0; i < nr; i++) tt[i] = (float)t;
            memcpy(xin, x, sizeof(float) * (size_t)nb * per);
            for (int b = 1; b < branches; b++) memcpy(xin + (size_t)b * nb * per, x, sizeof(float) * (size_t)nb * per);
            unet_forward(m, use, xin, tt, ctx, eps);
            const float *eh = eps;
            if (sg) {
                safe_guide(g, eps, eps + (size_t)nb * per, eps + (size_t)2 * nb * per, nu, (long)nb * per, sp->cfg, sg, k);
                eh = g;
            } else if (guided) {
                diffusion_guide(g, eps + (size_t)nb * per, eps, (long)nb * per, sp->cfg);
                eh = g;
            }
            const double ap = k + 1 < K ? s->abar[ts[k + 1]] : 1.0;
            if (eta > 0)
                for (int i = 0; i < nb; i++) {
                    Rng r;
                    rng_seed(&r, rng_mix(rng_mix(sp->seed, (uint64_t)(sp->first + b0 + i)), (uint64_t)k + 1));
                    rng_fill_normal(&r, z + (size_t)i * per, per, 0, 1);
                }
            diffusion_ddim_step(x, eh, (long)nb * per, s->abar[t], ap, eta, z);
            if (sp->bar) progress_update(sp->bar, (long)(b0 * K + (k + 1) * nb), 1.0 / K, "img", NULL);
        }
        if (use != a) unet_acts_free(use);
    }
    unet_acts_free(a);
    free(ts), free(xin), free(eps), free(ctx), free(tt), free(g), free(z), free(nu);
    return 0;
}
