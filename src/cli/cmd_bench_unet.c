/* forget bench unet: training images/s of the Stable-Diffusion-shaped UNet (eps-prediction MSE,
 * AdamW, through the one trainer) and guided DDIM sampling images/s (two UNet rows a sample a
 * step), on synthetic samples and contexts: the work tools/torch_unet.py bench measures PyTorch
 * doing on the same network, so bench/run.sh prints the ratio. Sampling is timed per step
 * (median) and reported for --ddim-steps steps, as the PyTorch side does. */
#include <cjson/cJSON.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/cli.h"
#include "core/gemm_mixed.h"
#include "cli/cli_groups.h"
#include "core/ops.h"
#include "core/rng.h"
#include "core/threads.h"
#include "eval/gen_metrics.h"
#include "models/diffusion.h"
#include "models/unet.h"
#include "train/trainer.h"

extern const Command cmd_bench;

typedef struct {
    UNet m;
    UNetGrads g;
    UNetActs *a;
    DiffSchedule s;
    DiffLossWork w;
    float *x0, *eps, *ctx;
    int32_t *t;
    int B, side, L;
    long per;
} Bench;

static int bench_step(void *user, long step, float *loss, Err *e) {
    (void)e;
    Bench *b = user;
    Rng r;
    rng_seed(&r, rng_mix(7, (uint64_t)step));
    for (int i = 0; i < b->B; i++) b->t[i] = (int32_t)rng_below(&r, (uint32_t)b->s.T);
    rng_fill_normal(&r, b->eps, (long)b->B * b->per, 0, 1);
    *loss = diffusion_eps_loss(&b->m, b->a, &b->s, &b->w, b->x0, b->eps, b->t, b->ctx, 1.0f, &b->g);
    return 0;
}

int bench_unet(int argc, char **argv) {
    const char *net = "unet-latent-8", *model = NULL;
    int B = 32, side = 0, steps = 8, S = 16, sample_steps = 4, ddim_steps = 25, L = 77, json = 0;
    const char *precisions = "fp32";
    const Opt opts[] = {
        O_STR("--net", "NAME", &net, 0, "unet-latent-8 (default), unet-latent-8s, unet-pixel-32, unet-tiny, sd-1"),
        O_STR("--model", "FILE", &model, 0, "a UNet file instead of a named config (either key layout)"),
        O_INT("--batch", "B", &B, 1, 4096, "training samples per step"),
        O_INT("--side", "PX", &side, 0, 512, "sample side (default: 8 for 4-channel latents, else 32)"),
        O_INT("--steps", "N", &steps, 0, 1000, "timed training steps after a warm-up (0: sampling only)"),
        O_INT("--sample-batch", "S", &S, 1, 1024, "samples a sampling call"),
        O_INT("--sample-steps", "N", &sample_steps, 1, 1000, "timed sampling steps"),
        O_INT("--ddim-steps", "K", &ddim_steps, 1, 1000, "steps of the sampling figure"),
        O_INT("--ctx-len", "L", &L, 1, 256, "context rows a sample"),
        O_STR("--precision", "LIST", &precisions, 0, "sampling precisions to time, of fp32,bf16,int8 (training: fp32)"),
        opt_bind(OPT_JSON, &json),
        O_END,
    };
    const int st = cli_parse(&cmd_bench, argc, argv, 2, opts, NULL);
    if (st >= 0) return st;
    Precision precs[3]; /* checked before minutes of training, not after */
    int np = 0;
    if (cli_parse_precisions("bench", precisions, precs, 3, &np)) return EXIT_USAGE;
    Err e = {{0}};
    UNetConfig c;
    Bench b = {.B = B, .side = side, .L = L};
    if (model) {
        if (unet_load(&b.m, model, 0, &e)) return cli_error("bench", EXIT_WORK, "%s", e.msg);
        c = b.m.cfg, net = model;
    } else if (unet_config_named(&c, net, &e)) {
        return cli_error("bench", EXIT_USAGE, "%s", e.msg);
    }
    if (!side) side = c.in_ch == 4 ? 8 : 32;
    b.side = side;
    if (unet_config_check(&c, side, &e)) {
        if (model) unet_free(&b.m);
        return cli_error("bench", EXIT_USAGE, "%s", e.msg);
    }
    const double peak = bench_sgemm_peak(3);
    if (!model) {
        unet_alloc(&b.m, &c);
        unet_init(&b.m, 1);
    }
    if (steps) unet_grads_alloc(&b.g, &b.m);
    diffusion_schedule_init(&b.s, 1000, BETA_SD, 0, 0, &e);
    b.a = steps ? unet_acts_new(&b.m, B, side, L, 1) : NULL;
    b.per = (long)c.in_ch * side * side;
    const long n = (long)B * b.per, nc = (long)B * L * c.ctx_dim;
    b.x0 = xalloc_floats((size_t)n), b.eps = xalloc_floats((size_t)n), b.ctx = xalloc_floats((size_t)nc);
    b.t = xmalloc(sizeof(int32_t) * (size_t)B);
    diffusion_loss_work_alloc(&b.w, B, b.per);
    Rng r;
    rng_seed(&r, 2);
    rng_fill_normal(&r, b.x0, n, 0, 1);
    rng_fill_normal(&r, b.ctx, nc, 0, 1);
    double *t = xmalloc(sizeof(double) * (size_t)(steps + 1 > sample_steps + 1 ? steps + 1 : sample_steps + 1));
    TrainSpec spec = {.label = "bench unet", .total_steps = steps + 1, .lr = 1e-4, .wd = 1e-2, .params = b.m.arena,
                      .grads = b.g.arena, .n_params = b.m.n_params, .table = &b.m.table, .step = bench_step,
                      .user = &b, .samples_per_step = B, .unit = "img", .quiet = 1, .step_seconds = t};
    TrainState ts;
    int rc = steps ? train_run(&spec, &ts, &e) : 0;
    const double train_ips = rc || !steps ? 0 : B / cli_median(t + 1, steps);
    unet_acts_free(b.a);
    b.a = NULL;
    /* sampling: one guided DDIM step at a time, S samples (2S UNet rows), each precision in turn
     * (round-robin, as bench clip), with the worst cosine of a precision's output to fp32's */
    double sample_ips = 0, prec_ips[3] = {0}, prec_cos[3] = {0};
    Gemm *ctxs[3] = {0};
    for (int i = 0; i < np && !rc; i++)
        if (!(ctxs[i] = gemm_new(precs[i], &e))) rc = -1;
    if (!rc) {
        float *cond = xalloc_floats((size_t)S * L * c.ctx_dim), *unc = xalloc_floats((size_t)L * c.ctx_dim);
        float *out = xalloc_floats((size_t)S * b.per), *first[3] = {0};
        double *tp = xmalloc(sizeof(double) * (size_t)(3 * (sample_steps + 1)));
        rng_fill_normal(&r, cond, (long)S * L * c.ctx_dim, 0, 1);
        rng_fill_normal(&r, unc, (long)L * c.ctx_dim, 0, 1);
        for (int k = 0; k <= sample_steps && !rc; k++)
            for (int i = 0; i < np && !rc; i++) {
                unet_set_gemm(&b.m, precs[i] == PREC_FP32 ? NULL : ctxs[i]);
                const SampleSpec sp = {.side = side, .ctx_len = L, .steps = 1, .cfg = 7.5f, .seed = 3, .batch = S};
                const double t0 = now_seconds();
                rc = diffusion_sample(&b.m, &b.s, &sp, cond, unc, S, out, &e);
                tp[i * (sample_steps + 1) + k] = now_seconds() - t0;
                if (k == 0) first[i] = memcpy(xalloc_floats((size_t)S * b.per), out, sizeof(float) * (size_t)S * b.per);
            }
        unet_set_gemm(&b.m, NULL);
        for (int i = 0; i < np && !rc; i++) {
            prec_ips[i] = S / (cli_median(tp + i * (sample_steps + 1) + 1, sample_steps) * ddim_steps);
            prec_cos[i] = worst_row_cosine(first[i], first[0], S, b.per);
        }
        if (!rc) sample_ips = prec_ips[0];
        for (int i = 0; i < np; i++) free(first[i]);
        free(cond), free(unc), free(out), free(tp);
    }
    for (int i = 0; i < np; i++) gemm_free(ctxs[i]);
    const double fl = unet_forward_flops(&b.m, side, L), gf = train_ips * 3 * fl / 1e9;
    if (rc) {
        rc = cli_error("bench", EXIT_WORK, "%s", e.msg);
    } else if (json) {
        cJSON *j = cJSON_CreateObject();
        cJSON_AddStringToObject(j, "net", net);
        cJSON_AddNumberToObject(j, "params", (double)b.m.n_params);
        cJSON_AddNumberToObject(j, "side", side);
        cJSON_AddNumberToObject(j, "batch", B);
        cJSON_AddNumberToObject(j, "threads", threads_get());
        cJSON_AddNumberToObject(j, "train_images_per_s", train_ips);
        cJSON_AddNumberToObject(j, "sample_batch", S);
        cJSON_AddNumberToObject(j, "ddim_steps", ddim_steps);
        cJSON_AddNumberToObject(j, "sample_images_per_s", sample_ips);
        cJSON *pr = cJSON_AddObjectToObject(j, "precisions");
        for (int i = 0; i < np; i++) {
            cJSON *q = cJSON_AddObjectToObject(pr, precision_name(precs[i]));
            cJSON_AddNumberToObject(q, "sample_images_per_s", prec_ips[i]);
            cJSON_AddNumberToObject(q, "cosine_to_first", prec_cos[i]);
        }
        cJSON_AddNumberToObject(j, "train_gflops", gf);
        cJSON_AddNumberToObject(j, "sgemm_gflops", peak);
        cJSON_AddNumberToObject(j, "peak_ratio", gf / peak);
        rc = cli_json_line("bench", j);
        cJSON_Delete(j);
    } else {
        printf("forget bench unet: %s (%ld parameters, %dx%dx%d), %d threads: training %.1f images/s (batch %d, "
               "%.1f GFLOP/s, %.1f%% of a %.0f GFLOP/s sgemm peak); guided DDIM sampling %.2f images/s (batch %d, "
               "%d steps)\n",
               net, b.m.n_params, c.in_ch, side, side, threads_get(), train_ips, B, gf, 100 * gf / peak, peak,
               sample_ips, S, ddim_steps);
        for (int i = 1; i < np; i++)
            printf("  sampling in %s: %.2f images/s (%.2fx %s), worst cosine of a sample to %s's %.5f\n",
                   precision_name(precs[i]), prec_ips[i], prec_ips[i] / prec_ips[0], precision_name(precs[0]),
                   precision_name(precs[0]), prec_cos[i]);
    }
    free(t), free(b.x0), free(b.eps), free(b.ctx), free(b.t);
    diffusion_loss_work_free(&b.w);
    diffusion_schedule_free(&b.s);
    if (steps) unet_grads_free(&b.g);
    unet_free(&b.m);
    return rc;
}
