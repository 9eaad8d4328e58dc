/* Denoising diffusion around the UNet (../shared/methods/diffusion-erasure.md section 1):
 *   forward process  x_t = sqrt(abar_t) x_0 + sqrt(1 - abar_t) eps,  eps ~ N(0, I), t in 0..T-1;
 *   training         the UNet predicts eps (mean squared error);
 *   guidance         eps_hat = eps(x_t, t, empty) + w (eps(x_t, t, c) - eps(x_t, t, empty));
 *   sampling         DDIM (Song et al. 2021) on K of the T steps, eta = 0 deterministic, eta = 1
 *                    ancestral (DDPM's posterior variance on the sub-sequence).
 * The beta schedules: Stable Diffusion's (CompVis "linear": linear in sqrt(beta), 0.00085 to
 * 0.012) and DDPM's linear one (1e-4 to 0.02). Timesteps of K-step sampling are SD's "leading"
 * spacing with offset 1: t_k = k * (T / K) + 1, run from the largest; the last step goes to
 * abar = 1. */
#ifndef FORGET_DIFFUSION_H
#define FORGET_DIFFUSION_H

#include <stdint.h>

#include "core/err.h"
#include "core/progress.h"
#include "models/unet.h"

typedef enum { BETA_SD = 0, BETA_LINEAR = 1 } BetaKind;

typedef struct {
    int T;
    BetaKind kind;
    double beta0, beta1;
    double *abar; /* [T] cumulative products of 1 - beta */
} DiffSchedule;

/* beta0/beta1 <= 0 take the kind's defaults. */
int diffusion_schedule_init(DiffSchedule *s, int T, BetaKind kind, double beta0, double beta1, Err *e);
void diffusion_schedule_free(DiffSchedule *s);
int diffusion_beta_parse(const char *name, BetaKind *out);
const char *diffusion_beta_name(BetaKind k);

/* x_t for B samples of `per` values each at timesteps t[B]. */
void diffusion_add_noise(float *xt, const float *x0, const float *eps, const int32_t *t, int B, long per,
                         const DiffSchedule *s);
/* The K timesteps of a K-step sampler, largest first; K is clamped to 1..T. */
int diffusion_timesteps(int32_t *ts, int T, int K);
/* One DDIM step of n values from abar_t to abar_prev with the predicted eps, in place; eta > 0
 * adds sigma * noise (noise may be NULL when eta == 0). */
void diffusion_ddim_step(float *x, const float *eps, long n, double abar_t, double abar_prev, double eta,
                         const float *noise);
/* out = u + w (c - u) over n values (classifier-free guidance). */
void diffusion_guide(float *out, const float *u, const float *c, long n, float w);

/* Scratch of diffusion_eps_loss for B samples of per values each. */
typedef struct {
    int B;
    long per;
    float *xt, *pred, *dpred, *tt; /* x_t, the prediction, its gradient [B, per]; timesteps as floats [B] */
} DiffLossWork;
void diffusion_loss_work_alloc(DiffLossWork *w, int B, long per);
void diffusion_loss_work_free(DiffLossWork *w);
/* One eps-prediction training step (what train-diffusion and forget bench unet both run): x_t from
 * x0 and eps at timesteps t[B], the UNet's prediction from x_t, t and ctx (a training UNetActs for
 * B samples), the mean squared error against eps (returned), and its backward, the loss gradient
 * scaled by dscale, accumulated into g. */
float diffusion_eps_loss(const UNet *m, UNetActs *a, const DiffSchedule *s, DiffLossWork *w, const float *x0,
                         const float *eps, const int32_t *t, const float *ctx, float dscale, UNetGrads *g);

typedef enum { SAMPLER_DDIM = 0, SAMPLER_DDPM = 1 } SamplerKind;
int diffusion_sampler_parse(const char *name, SamplerKind *out);

/* Safe Latent Diffusion's guidance (Schramowski et al. 2023; diffusion-erasure.md 3.4), one more
 * UNet row a sample conditioned on the safety concept S, per entry:
 *   g = e_p - e_0;  mu = min(scale |e_p - e_S|, 1), 0 where e_p - e_S >= threshold;
 *   gamma = mu (e_S - e_0) + momentum nu;  nu <- beta nu + (1 - beta) gamma;
 *   from step `warmup` on g <- g - gamma;  e = e_0 + w g. */
typedef struct {
    const float *rows;  /* S's context rows [ctx_len, ctx_dim] */
    float scale, threshold, momentum, beta;
    int warmup;
} SafeGuidance;

typedef struct {
    int side, ctx_len;
    int steps;          /* K */
    float cfg;          /* guidance scale; 1: the conditional branch alone (one forward a step) */
    SamplerKind sampler;
    uint64_t seed;      /* sample i's noise derives from (seed, first + i): batching does not change it */
    long first;         /* index of the first sample (a call that continues earlier ones) */
    int batch;          /* samples per UNet call (guided calls run 2 x batch rows) */
    Progress *bar;      /* may be NULL */
    const SafeGuidance *safe; /* NULL: plain guidance; needs cfg != 1 */
    int stop_at;        /* > 0: only the first stop_at of the K steps (x is then at timestep ts[stop_at]) */
} SampleSpec;

/* n samples [n, in_ch, side, side] from the prompts' context rows cond [n, ctx_len, ctx_dim] and
 * the empty prompt's uncond [ctx_len, ctx_dim] (unused when cfg == 1). */
int diffusion_sample(const UNet *m, const DiffSchedule *s, const SampleSpec *sp, const float *cond,
                     const float *uncond, int n, float *out, Err *e);

#endif
