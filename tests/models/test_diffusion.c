/* The diffusion process around the UNet: Stable Diffusion's beta schedule (its published
 * alphas_cumprod at the ends), the forward process, DDIM's algebra (a step with the true noise
 * lands on the clean sample; eta = 0 is deterministic), the timestep spacing, guidance, and
 * the sampler's promise that a sample depends on its seed and index, not on the batching. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "core/rng.h"
#include "models/diffusion.h"
#include "test.h"

TEST(diffusion_sd_schedule_matches_published_values) {
    DiffSchedule s;
    Err e = {0};
    CHECK(diffusion_schedule_init(&s, 1000, BETA_SD, 0, 0, &e) == 0);
    /* SD-1.x (scaled_linear 0.00085..0.012): alphas_cumprod[0] = 0.99915, [999] = 0.0046 */
    CHECK_NEAR(s.abar[0], 0.99915, 1e-6);
    CHECK_NEAR(s.abar[999], 0.0046, 1e-4);
    for (int t = 1; t < 1000; t++) CHECK(s.abar[t] < s.abar[t - 1]);
    diffusion_schedule_free(&s);
    CHECK(diffusion_schedule_init(&s, 1000, BETA_LINEAR, 0, 0, &e) == 0);
    CHECK_NEAR(s.abar[0], 1 - 1e-4, 1e-9);
    CHECK(s.abar[999] < 1e-4); /* DDPM's: about 4e-5 */
    diffusion_schedule_free(&s);
    CHECK(diffusion_schedule_init(&s, 1000, BETA_SD, 0.02, 0.01, &e) != 0);
    CHECK(diffusion_schedule_init(&s, 1, BETA_SD, 0, 0, &e) != 0);
}

TEST(diffusion_timesteps_leading_spacing) {
    int32_t ts[1000];
    CHECK_INT(diffusion_timesteps(ts, 1000, 50), 50);
    CHECK_INT(ts[0], 981); /* diffusers' DDIM, steps_offset 1: 981, 961, ..., 1 */
    CHECK_INT(ts[1], 961);
    CHECK_INT(ts[49], 1);
    CHECK_INT(diffusion_timesteps(ts, 1000, 5000), 1000);
    CHECK_INT(ts[0], 999);
    CHECK_INT(ts[999], 0);
}

TEST(diffusion_ddim_step_algebra) {
    DiffSchedule s;
    Err e = {0};
    CHECK(diffusion_schedule_init(&s, 1000, BETA_SD, 0, 0, &e) == 0);
    Rng r;
    rng_seed(&r, 3);
    enum { N = 64 };
    float x0[N], eps[N], xt[N], x[N], x2[N];
    rng_fill_normal(&r, x0, N, 0, 1);
    rng_fill_normal(&r, eps, N, 0, 1);
    const int32_t t = 600;
    diffusion_add_noise(xt, x0, eps, &t, 1, N, &s);
    for (int i = 0; i < N; i++)
        CHECK_NEAR(xt[i], sqrt(s.abar[600]) * x0[i] + sqrt(1 - s.abar[600]) * eps[i], 1e-5);
    /* to abar = 1 with the true noise: the clean sample */
    memcpy(x, xt, sizeof x);
    diffusion_ddim_step(x, eps, N, s.abar[600], 1.0, 0, NULL);
    CHECK_CLOSE(x, x0, N, 1e-4, 1e-4);
    /* to an intermediate step: the forward process at that step with the same noise */
    memcpy(x, xt, sizeof x);
    diffusion_ddim_step(x, eps, N, s.abar[600], s.abar[300], 0, NULL);
    const int32_t t2 = 300;
    diffusion_add_noise(x2, x0, eps, &t2, 1, N, &s);
    CHECK_CLOSE(x, x2, N, 1e-4, 1e-4);
    /* guidance: w = 0 is the unconditional, w = 1 the conditional prediction */
    float u[4] = {1, 2, 3, 4}, c[4] = {2, 2, 5, 0}, o[4];
    diffusion_guide(o, u, c, 4, 0);
    CHECK_CLOSE(o, u, 4, 0, 0);
    diffusion_guide(o, u, c, 4, 7.5f);
    CHECK_NEAR(o[2], 3 + 7.5 * 2, 1e-5);
    diffusion_schedule_free(&s);
}

/* Three samples drawn in one batch equal the same samples drawn one at a time; another seed
 * differs; DDPM (eta = 1) differs from DDIM and is also batch-independent. */
/* A random unet-tiny (weights N(0, 0.2^2) from seed, r left after them) and SD's schedule. */
static void random_tiny(UNet *m, UNetConfig *c, DiffSchedule *s, Rng *r, uint64_t seed) {
    Err e = {0};
    CHECK(unet_config_named(c, "unet-tiny", &e) == 0);
    unet_alloc(m, c);
    rng_seed(r, seed);
    rng_fill_normal(r, m->arena, m->n_params, 0, 0.2f);
    CHECK(diffusion_schedule_init(s, 1000, BETA_SD, 0, 0, &e) == 0);
}

TEST(diffusion_sampler_deterministic_and_batch_independent) {
    UNetConfig c;
    Err e = {0};
    UNet m;
    Rng r;
    DiffSchedule s;
    random_tiny(&m, &c, &s, &r, 9);
    enum { n = 3, side = 4, L = 3 };
    const long per = (long)c.in_ch * side * side;
    float cond[n * L * 6], unc[L * 6];
    rng_fill_normal(&r, cond, n * L * 6, 0, 1);
    rng_fill_normal(&r, unc, L * 6, 0, 1);
    float a[n * 48], b[n * 48], d[n * 48];
    for (int sampler = 0; sampler < 2; sampler++) {
        SampleSpec sp = {.side = side, .ctx_len = L, .steps = 4, .cfg = 3.0f, .sampler = sampler, .seed = 5, .batch = n};
        CHECK(diffusion_sample(&m, &s, &sp, cond, unc, n, a, &e) == 0);
        sp.batch = 1;
        for (int i = 0; i < n; i++) {
            sp.first = i;
            CHECK(diffusion_sample(&m, &s, &sp, cond + i * L * 6, unc, 1, b + i * per, &e) == 0);
        }
        CHECK_CLOSE(b, a, n * per, 1e-5, 1e-5);
        sp.first = 0, sp.batch = n, sp.seed = 6;
        CHECK(diffusion_sample(&m, &s, &sp, cond, unc, n, d, &e) == 0);
        double diff = 0;
        for (long i = 0; i < n * per; i++) diff += fabs(d[i] - a[i]);
        CHECK(diff > 1e-3);
        for (long i = 0; i < n * per; i++) CHECK(isfinite(a[i]));
        if (sampler == 0) memcpy(d, a, sizeof a);
        else {
            SampleSpec sd = {.side = side, .ctx_len = L, .steps = 4, .cfg = 3.0f, .seed = 5, .batch = n};
            CHECK(diffusion_sample(&m, &s, &sd, cond, unc, n, b, &e) == 0);
            diff = 0;
            for (long i = 0; i < n * per; i++) diff += fabs(b[i] - a[i]);
            CHECK(diff > 1e-3); /* ancestral noise moved the DDPM samples */
        }
    }
    diffusion_schedule_free(&s);
    unet_free(&m);
}

/* Safe latent diffusion's guidance: no effect before its warm-up or with the safety concept equal
 * to the prompt, an effect otherwise; and one step by hand (stop_at 1 of 3 steps) against the
 * formula of diffusion.h from the three raw predictions. */
TEST(diffusion_safe_guidance) {
    UNetConfig c;
    Err e = {0};
    UNet m;
    Rng r;
    DiffSchedule s;
    random_tiny(&m, &c, &s, &r, 19);
    enum { n = 2, side = 4, L = 3, D = 6, K = 3 };
    const long per = (long)c.in_ch * side * side;
    float cond[n * L * D], unc[L * D], saf[L * D];
    rng_fill_normal(&r, cond, n * L * D, 0, 1);
    rng_fill_normal(&r, unc, L * D, 0, 1);
    rng_fill_normal(&r, saf, L * D, 0, 1);
    float plain[n * 48], a[n * 48];
    SampleSpec sp = {.side = side, .ctx_len = L, .steps = K, .cfg = 4.0f, .seed = 3, .batch = n};
    CHECK(diffusion_sample(&m, &s, &sp, cond, unc, n, plain, &e) == 0);
    SafeGuidance sg = {.rows = saf, .scale = 1000, .threshold = 0.01f, .momentum = 0.3f, .beta = 0.4f, .warmup = K};
    sp.safe = &sg;
    CHECK(diffusion_sample(&m, &s, &sp, cond, unc, n, a, &e) == 0);
    CHECK_CLOSE(a, plain, n * per, 1e-6, 1e-6); /* warm-up never ends */
    sg.warmup = 0, sg.rows = cond;               /* one prompt: S is the first sample's prompt */
    CHECK(diffusion_sample(&m, &s, &sp, cond, unc, 1, a, &e) == 0);
    CHECK_CLOSE(a, plain, per, 1e-6, 1e-6);
    sg.rows = saf;
    CHECK(diffusion_sample(&m, &s, &sp, cond, unc, n, a, &e) == 0);
    double diff = 0;
    for (long i = 0; i < n * per; i++) diff += fabs(a[i] - plain[i]);
    CHECK(diff > 1e-3);
    /* by hand: one step from sample 0's noise */
    sp.stop_at = 1;
    CHECK(diffusion_sample(&m, &s, &sp, cond, unc, 1, a, &e) == 0);
    float x[48], xin[3 * 48], eps[3 * 48], ctx[3 * L * D], tt[3];
    Rng z;
    rng_seed(&z, rng_mix(3, 0));
    rng_fill_normal(&z, x, per, 0, 1);
    int32_t ts[K];
    diffusion_timesteps(ts, 1000, K);
    for (int b = 0; b < 3; b++) memcpy(xin + b * per, x, sizeof(float) * per), tt[b] = (float)ts[0];
    memcpy(ctx, cond, sizeof(float) * L * D), memcpy(ctx + L * D, unc, sizeof(float) * L * D);
    memcpy(ctx + 2 * L * D, saf, sizeof(float) * L * D);
    UNetActs *act = unet_acts_new(&m, 3, side, L, 0);
    unet_forward(&m, act, xin, tt, ctx, eps);
    unet_acts_free(act);
    float g[48];
    for (long i = 0; i < per; i++) { /* nu starts at 0: gamma = mu (e_S - e_0) */
        const double ep = eps[i], e0 = eps[per + i], es = eps[2 * per + i];
        double mu = fabs(ep - es) * 1000 < 1 ? fabs(ep - es) * 1000 : 1;
        if (ep - es >= 0.01) mu = 0;
        g[i] = (float)(e0 + 4.0 * ((ep - e0) - mu * (es - e0)));
    }
    diffusion_ddim_step(x, g, per, s.abar[ts[0]], s.abar[ts[1]], 0, NULL);
    CHECK_CLOSE(a, x, per, 1e-5, 1e-5);
    diffusion_schedule_free(&s);
    unet_free(&m);
}
