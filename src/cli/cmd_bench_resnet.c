/* forget bench resnet: training images/s of the CIFAR ResNet (models/resnet.h) through the one
 * trainer, on a fixed synthetic batch: the work tools/torch_resnet.py bench measures PyTorch doing
 * (same network, batch, loss and optimiser), so bench/run.sh can print the ratio. */
#include <cjson/cJSON.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/cli.h"
#include "cli/cli_groups.h"
#include "core/rng.h"
#include "core/threads.h"
#include "forget/lsf_loss.h"
#include "models/resnet.h"
#include "train/trainer.h"

extern const Command cmd_bench;

typedef struct {
    ResNet m;
    ResNetGrads g;
    ResNetActs a;
    float *x, *cos, *dcos, *df;
    int32_t *y;
    int B, K;
} Bench;

static int bench_step(void *user, long step, float *loss, Err *e) {
    (void)step, (void)e;
    Bench *b = user;
    const int F = resnet_feature_dim(&b->m.cfg);
    resnet_forward(&b->m, &b->a, b->x, NULL, 0, 0, 1);
    resnet_head_forward(&b->m, 0, b->a.feat, b->B, b->cos);
    memset(b->dcos, 0, sizeof(float) * (size_t)b->B * b->K);
    memset(b->df, 0, sizeof(float) * (size_t)b->B * F);
    *loss = am_softmax_loss(b->cos, b->y, b->B, b->K, 30, 0.35f, 1, b->dcos);
    resnet_head_backward(&b->m, 0, b->a.feat, b->B, b->dcos, b->df, &b->g.p);
    resnet_backward(&b->m, &b->a, b->df, &b->g.p, NULL);
    return 0;
}

int bench_resnet(int argc, char **argv) {
    const char *net = "resnet-20";
    int B = 128, res = 28, in_ch = 1, steps = 10, json = 0;
    const Opt opts[] = {
        O_STR("--net", "NAME", &net, 0, "resnet-20 (default), resnet-32, resnet-56, resnet-8n"),
        O_INT("--batch", "B", &B, 2, 4096, "images per step"),
        O_INT("--res", "PX", &res, 8, 512, "input side (default 28: Fashion-MNIST)"),
        O_INT("--in-ch", "C", &in_ch, 1, 3, "input channels"),
        O_INT("--steps", "N", &steps, 1, 1000, "timed steps after a warm-up"),
        opt_bind(OPT_JSON, &json),
        O_END,
    };
    const int st = cli_parse(&cmd_bench, argc, argv, 2, opts, NULL);
    if (st >= 0) return st;
    Err e = {{0}};
    ResNetConfig c = {.in_ch = in_ch, .res = res, .n_heads = 1, .head_classes = {2}, .code_layer = -1};
    if (resnet_config_named(&c, net, &e) || resnet_config_check(&c, &e)) return cli_error("bench", EXIT_USAGE, "%s", e.msg);
    const double peak = bench_sgemm_peak(3);
    Bench b = {.B = B, .K = 2};
    resnet_alloc(&b.m, &c);
    resnet_init(&b.m, 1);
    resnet_grads_alloc(&b.g, &c);
    resnet_acts_alloc(&b.a, &c, B);
    const long nx = (long)B * in_ch * res * res;
    b.x = xalloc_floats((size_t)nx), b.cos = xalloc_floats((size_t)B * 2), b.dcos = xalloc_floats((size_t)B * 2);
    b.df = xalloc_floats((size_t)B * resnet_feature_dim(&c));
    b.y = xmalloc(sizeof(int32_t) * (size_t)B);
    Rng r;
    rng_seed(&r, 2);
    rng_fill_normal(&r, b.x, nx, 0, 1);
    for (int i = 0; i < B; i++) b.y[i] = (int32_t)rng_below(&r, 2);
    double *t = xmalloc(sizeof(double) * (size_t)(steps + 1));
    TrainSpec spec = {.label = "bench resnet", .total_steps = steps + 1, .lr = 0.1, .wd = 5e-4, .sgd = 1,
                      .momentum = 0.9f, .params = b.m.arena, .grads = b.g.arena, .n_params = b.m.n_params,
                      .table = &b.m.table, .step = bench_step, .user = &b, .samples_per_step = B, .unit = "img",
                      .quiet = 1, .step_seconds = t};
    TrainState ts;
    int rc = train_run(&spec, &ts, &e);
    const double med = rc ? 0 : cli_median(t + 1, steps), ips = rc ? 0 : B / med;
    const double gf = ips * 3 * resnet_forward_flops(&c) / 1e9;
    if (rc) {
        rc = cli_error("bench", EXIT_WORK, "%s", e.msg);
    } else if (json) {
        cJSON *j = cJSON_CreateObject();
        cJSON_AddStringToObject(j, "net", net);
        cJSON_AddNumberToObject(j, "batch", B);
        cJSON_AddNumberToObject(j, "res", res);
        cJSON_AddNumberToObject(j, "threads", threads_get());
        cJSON_AddBoolToObject(j, "blocked_layout", resnet_blocked(&c));
        cJSON_AddNumberToObject(j, "train_images_per_s", ips);
        cJSON_AddNumberToObject(j, "gflops", gf);
        cJSON_AddNumberToObject(j, "sgemm_gflops", peak);
        cJSON_AddNumberToObject(j, "peak_ratio", gf / peak);
        rc = cli_json_line("bench", j);
        cJSON_Delete(j);
    } else {
        printf("forget bench resnet: %s, batch %d, %dx%dx%d, %d threads%s: %.1f training images/s, %.1f GFLOP/s "
               "(%.1f%% of a %.0f GFLOP/s sgemm peak)\n",
               net, B, in_ch, res, res, threads_get(), resnet_blocked(&c) ? " (oneDNN blocked layout)" : " (im2col)", ips,
               gf, 100 * gf / peak, peak);
    }
    free(t), free(b.x), free(b.cos), free(b.dcos), free(b.df), free(b.y);
    resnet_acts_free(&b.a);
    resnet_grads_free(&b.g);
    resnet_free(&b.m);
    return rc;
}
