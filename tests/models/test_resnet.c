/* The CIFAR ResNet against tests/ref/resnet-tiny.safetensors, written by tools/torch_resnet.py
 * (PyTorch autograd in float64 on the same structure): head cosines, the normalised feature,
 * the input gradient, every parameter gradient and the running statistics after a training
 * forward, in three passes (training mode with a feature code, eval mode without, the code
 * alone). Then finite differences through the model, a save/load round trip, and the config
 * errors a user can reach. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/err.h"
#include "core/gradcheck.h"
#include "io/safetensors.h"
#include "models/resnet.h"
#include "models/ref_trace.h"
#include "test.h"

static const ResNetConfig TINY = {.in_ch = 3, .res = 8, .width = 2, .n = 1, .n_heads = 2, .head_classes = {3, 2},
                                  .code_layer = 1, .eps = 1e-5f, .momentum = 0.1f};
enum { TB = 2 };

static void load_ref_weights(ResNet *m, SafeTensors *st) {
    for (int i = 0; i < m->table.n; i++) {
        char name[160];
        snprintf(name, sizeof name, "w.%s", m->table.p[i].key[0][0]);
        float *v = ref_tensor(st, name, m->table.p[i].count);
        if (v) memcpy(*m->table.p[i].slot, v, sizeof(float) * (size_t)m->table.p[i].count);
        free(v);
    }
}

static void run_case(SafeTensors *st, const char *which, int training, int with_code, int code_only) {
    ResNet m;
    resnet_alloc(&m, &TINY);
    load_ref_weights(&m, st);
    const long nx = (long)TB * 3 * 8 * 8, F = resnet_feature_dim(&TINY);
    int C, H, W;
    resnet_layer_shape(&TINY, 1, &C, &H, &W);
    float *x = ref_tensor(st, "x", nx), *code = ref_tensor(st, "code", (long)TB * C * H * W);
    ResNetActs a;
    resnet_acts_alloc(&a, &TINY, TB);
    resnet_forward(&m, &a, x, with_code ? code : NULL, 0.5f, code_only, training);
    char name[192];
    snprintf(name, sizeof name, "%s.feat", which);
    float *rf = ref_tensor(st, name, TB * F);
    if (rf) CHECK_CLOSE(a.feat, rf, TB * F, 1e-4, 1e-4);
    ResNetGrads g;
    resnet_grads_alloc(&g, &TINY);
    float *dfeat = xcalloc((size_t)(TB * F), sizeof(float)), *dx = xcalloc((size_t)nx, sizeof(float));
    for (int h = 0; h < 2; h++) {
        const int K = TINY.head_classes[h];
        float cos[TB * 3];
        resnet_head_forward(&m, h, a.feat, TB, cos);
        snprintf(name, sizeof name, "%s.cos.%d", which, h);
        float *rc = ref_tensor(st, name, TB * K);
        if (rc) CHECK_CLOSE(cos, rc, TB * K, 1e-4, 1e-4);
        snprintf(name, sizeof name, "R.%d", h);
        float *R = ref_tensor(st, name, TB * K);
        if (R) resnet_head_backward(&m, h, a.feat, TB, R, dfeat, &g.p);
        free(rc), free(R);
    }
    resnet_backward(&m, &a, dfeat, &g.p, dx);
    if (!code_only) {
        snprintf(name, sizeof name, "%s.dx", which);
        float *rdx = ref_tensor(st, name, nx);
        if (rdx) CHECK_CLOSE(dx, rdx, nx, 1e-4, 1e-4);
        free(rdx);
    }
    for (int i = 0; i < g.table.n; i++) {
        const NnParam *p = &g.table.p[i];
        if (p->buffer) continue;
        snprintf(name, sizeof name, "%s.grad.%s", which, p->key[0][0]);
        float *r = ref_tensor(st, name, p->count);
        if (r && !check_close(__FILE__, __LINE__, name, *p->slot, r, p->count, 1e-4, 1e-4)) break;
        free(r);
    }
    if (training && !code_only)
        for (int i = 0; i < m.table.n; i++) {
            const NnParam *p = &m.table.p[i];
            if (!p->buffer) continue;
            snprintf(name, sizeof name, "train.after.%s", p->key[0][0]);
            float *r = ref_tensor(st, name, p->count);
            if (r) CHECK_CLOSE(*p->slot, r, p->count, 1e-4, 1e-4);
            free(r);
        }
    free(x), free(code), free(rf), free(dfeat), free(dx);
    resnet_grads_free(&g);
    resnet_acts_free(&a);
    resnet_free(&m);
}

TEST(resnet_matches_pytorch_reference) {
    SafeTensors st;
    Err e = {0};
    if (st_open(&st, "tests/ref/resnet-tiny.safetensors", &e) != 0) {
        CHECK_MSG(0, "%s", e.msg);
        return;
    }
    run_case(&st, "train", 1, 1, 0);
    run_case(&st, "eval", 0, 0, 0);
    run_case(&st, "code_only", 1, 1, 1);
    st_close(&st);
}

/* Finite differences of sum(cos * R) in eval mode (fixed statistics, so a perturbation does not
 * move the running buffers): parameters of the stem, a block, a head, and the input. */
typedef struct {
    ResNet m;
    ResNetActs a;
    float *x, *R;
} FdCtx;

static double fd_loss(void *ctx) {
    FdCtx *k = ctx;
    resnet_forward(&k->m, &k->a, k->x, NULL, 0, 0, 0);
    float cos[TB * 3];
    resnet_head_forward(&k->m, 0, k->a.feat, TB, cos);
    double s = 0;
    for (int i = 0; i < TB * 3; i++) s += (double)cos[i] * k->R[i];
    return s;
}

TEST(resnet_backward_finite_differences) {
    FdCtx k;
    ResNetConfig c = TINY;
    c.code_layer = 2, c.smooth = 1; /* ReLU's kinks would test the difference quotient (its gradient: test_ops_more.c) */
    resnet_alloc(&k.m, &c);
    resnet_init(&k.m, 5);
    Rng r;
    rng_seed(&r, 9);
    for (int i = 0; i < k.m.table.n; i++) /* non-trivial running statistics */
        if (k.m.table.p[i].buffer)
            for (long j = 0; j < k.m.table.p[i].count; j++)
                (*k.m.table.p[i].slot)[j] = strstr(k.m.table.p[i].key[0][0], "var") ? 0.5f + rng_uniform(&r)
                                                                                     : 0.3f * rng_normal(&r);
    resnet_acts_alloc(&k.a, &c, TB);
    const long nx = (long)TB * 3 * 8 * 8, F = resnet_feature_dim(&c);
    k.x = randn(&r, nx, 1.0f), k.R = randn(&r, TB * 3, 1.0f);
    fd_loss(&k);
    ResNetGrads g;
    resnet_grads_alloc(&g, &c);
    float *dfeat = xcalloc((size_t)(TB * F), sizeof(float)), *dx = xcalloc((size_t)nx, sizeof(float));
    resnet_head_backward(&k.m, 0, k.a.feat, TB, k.R, dfeat, &g.p);
    resnet_backward(&k.m, &k.a, dfeat, &g.p, dx);
    const FdProbe p = {fd_loss, &k, 12, 1e-3f, 2e-3, 2e-2, 3};
    fd_check_coords(&p, k.x, dx, nx, "input");
    fd_check_coords(&p, k.m.p.stem_w, g.p.stem_w, 2 * 3 * 9, "conv1.weight");
    fd_check_coords(&p, k.m.p.blk[1].conv1_w, g.p.blk[1].conv1_w, 4 * 2 * 9, "layer2.0.conv1.weight");
    fd_check_coords(&p, k.m.p.blk[2].skip_w, g.p.blk[2].skip_w, 8 * 4, "layer3.0.downsample.0.weight");
    fd_check_coords(&p, k.m.p.head[0], g.p.head[0], 3 * F, "heads.0.weight");
    free(k.x), free(k.R), free(dfeat), free(dx);
    resnet_grads_free(&g);
    resnet_acts_free(&k.a);
    resnet_free(&k.m);
}

TEST(resnet_save_load_round_trip) {
    ResNet m, back;
    resnet_alloc(&m, &TINY);
    resnet_init(&m, 3);
    char path[512];
    snprintf(path, sizeof path, "%s/resnet.safetensors", scratch_dir());
    Err e = {0};
    const char *meta[] = {"note", "test"};
    CHECK(resnet_save(&m, path, meta, 1, &e) == 0);
    CHECK_MSG(resnet_load(&back, path, &e) == 0, "%s", e.msg);
    CHECK_INT(back.cfg.code_layer, 1);
    CHECK_INT(back.cfg.n_heads, 2);
    CHECK_INT(back.cfg.head_classes[0], 3);
    CHECK_INT(back.n_params, m.n_params);
    if (back.arena) CHECK_CLOSE(back.arena, m.arena, m.n_params, 0, 0);
    resnet_free(&back);
    resnet_free(&m);
}

TEST(resnet_config_errors) {
    ResNetConfig c = TINY;
    Err e = {0};
    CHECK(resnet_config_check(&c, &e) == 0);
    c.code_layer = 4;
    CHECK(resnet_config_check(&c, &e) != 0);
    CHECK_MSG(strstr(e.msg, "no layer 4") != NULL, "%s", e.msg);
    c = TINY, c.n_heads = 0;
    CHECK(resnet_config_check(&c, &e) != 0);
    CHECK(resnet_config_named(&c, "resnet-19", &e) != 0);
    CHECK_MSG(strstr(e.msg, "resnet-20") != NULL, "%s", e.msg);
    CHECK(resnet_config_named(&c, "resnet-20", &e) == 0);
    CHECK_INT(resnet_depth(&c), 20);
    int C, H, W;
    c.res = 28;
    CHECK(resnet_layer_shape(&c, 9, &C, &H, &W) == 0);
    CHECK_INT(C, 64);
    CHECK_INT(H, 7);
    CHECK(resnet_layer_shape(&c, 10, &C, &H, &W) != 0);
}

/* A width-16 network runs blocked (oneDNN's kernels, nChw16c); forced plain it runs im2col on
 * NCHW (the path the PyTorch reference checks): the two agree on features, every parameter
 * gradient, the input gradient and the running statistics, with and without the code layer. */
static void blocked_vs_plain(int code_layer, int code_only) {
    ResNetConfig c = {.in_ch = 1, .res = 9, .width = 16, .n = 1, .n_heads = 1, .head_classes = {3},
                      .code_layer = code_layer, .eps = 1e-5f, .momentum = 0.1f};
    ResNetConfig cp = c;
    cp.plain = 1;
    CHECK(resnet_blocked(&c) && !resnet_blocked(&cp));
    ResNet m[2];
    resnet_alloc(&m[0], &c), resnet_alloc(&m[1], &cp);
    resnet_init(&m[0], 4);
    resnet_copy(&m[1], &m[0]);
    Rng r;
    rng_seed(&r, 8);
    const int B = 3;
    const long nx = (long)B * 81, F = resnet_feature_dim(&c);
    float *x = randn(&r, nx, 1.0f), *R = randn(&r, B * 3, 1.0f), *code = NULL;
    if (code_layer >= 0) {
        int C, H, W;
        resnet_layer_shape(&c, code_layer, &C, &H, &W);
        float *raw = randn(&r, (long)B * C * H * W, 1.0f);
        code = xalloc_floats((size_t)B * C * H * W);
        resnet_standardise(code, raw, B, C, (long)H * W);
        free(raw);
    }
    float *feat[2], *dx[2], *g[2];
    ResNetGrads gr[2];
    ResNetActs a[2];
    for (int k = 0; k < 2; k++) {
        resnet_acts_alloc(&a[k], k ? &cp : &c, B);
        resnet_grads_alloc(&gr[k], k ? &cp : &c);
        resnet_forward(&m[k], &a[k], x, code, 0.7f, code_only, 1);
        float cos[9], *df = xcalloc((size_t)(B * F), sizeof(float));
        resnet_head_forward(&m[k], 0, a[k].feat, B, cos);
        resnet_head_backward(&m[k], 0, a[k].feat, B, R, df, &gr[k].p);
        dx[k] = xcalloc((size_t)nx, sizeof(float));
        resnet_backward(&m[k], &a[k], df, &gr[k].p, dx[k]);
        feat[k] = a[k].feat, g[k] = gr[k].arena;
        free(df);
    }
    CHECK_CLOSE(feat[0], feat[1], B * F, 1e-5, 1e-4);
    CHECK_CLOSE(g[0], g[1], gr[0].n, 1e-4, 1e-3);
    if (!code_only) CHECK_CLOSE(dx[0], dx[1], nx, 1e-5, 1e-3);
    CHECK_CLOSE(m[0].arena, m[1].arena, m[0].n_params, 1e-6, 1e-5); /* running statistics moved alike */
    for (int k = 0; k < 2; k++) {
        resnet_acts_free(&a[k]);
        resnet_grads_free(&gr[k]);
        resnet_free(&m[k]);
        free(dx[k]);
    }
    free(x), free(R), free(code);
}

TEST(resnet_blocked_layout_matches_plain) {
    blocked_vs_plain(-1, 0);
    blocked_vs_plain(2, 0);
    blocked_vs_plain(0, 0);
    blocked_vs_plain(2, 1);
}
