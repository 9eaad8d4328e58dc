/* The Stable-Diffusion-shaped UNet against tests/ref/unet-tiny.safetensors, written by
 * tools/torch_unet.py (PyTorch autograd in float64 on the same structure, diffusers keys): the
 * predicted noise, the gradients of the input, the context and every parameter. Then finite
 * differences through the model, a frozen backward, the two key layouts (one file through the
 * other), a config read from shapes alone, SD-1.x's published shapes, and the errors a user can
 * reach with a truncated or mis-shaped file. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "core/err.h"
#include "core/gradcheck.h"
#include "io/safetensors.h"
#include "models/unet.h"
#include "models/ref_trace.h"
#include "test.h"

enum { TB = 2, TSIDE = 8, TLC = 5 };

static UNetConfig tiny(void) {
    UNetConfig c;
    Err e = {0};
    CHECK(unet_config_named(&c, "unet-tiny", &e) == 0);
    return c;
}

TEST(unet_matches_pytorch_reference) {
    const char *path = "tests/ref/unet-tiny.safetensors";
    UNet m;
    Err e = {0};
    if (unet_load(&m, path, 0, &e) != 0) {
        CHECK_MSG(0, "%s", e.msg);
        return;
    }
    const UNetConfig c = tiny();
    CHECK(memcmp(&m.cfg, &c, sizeof c) == 0); /* the config the file's shapes and metadata give */
    SafeTensors st;
    CHECK(st_open(&st, path, &e) == 0);
    const long nx = (long)TB * c.in_ch * TSIDE * TSIDE, nc = (long)TB * TLC * c.ctx_dim;
    float *x = ref_tensor(&st, "ref.x", nx), *t = ref_tensor(&st, "ref.t", TB), *ctx = ref_tensor(&st, "ref.ctx", nc);
    float *R = ref_tensor(&st, "ref.R", nx), *reps = ref_tensor(&st, "ref.eps", nx);
    float *rdx = ref_tensor(&st, "ref.dx", nx), *rdc = ref_tensor(&st, "ref.dctx", nc);
    if (x && t && ctx && R && reps && rdx && rdc) {
        UNetActs *a = unet_acts_new(&m, TB, TSIDE, TLC, 1);
        float *eps = xalloc_floats((size_t)nx), *dx = xcalloc((size_t)nx, sizeof(float));
        float *dctx = xcalloc((size_t)nc, sizeof(float));
        unet_forward(&m, a, x, t, ctx, eps);
        CHECK_CLOSE(eps, reps, nx, 1e-4, 1e-4);
        UNetGrads g;
        unet_grads_alloc(&g, &m);
        unet_backward(&m, a, R, &g, dx, dctx);
        CHECK_CLOSE(dx, rdx, nx, 1e-4, 1e-4);
        CHECK_CLOSE(dctx, rdc, nc, 1e-4, 1e-4);
        int checked = 0;
        for (int i = 0; i < g.table.n; i++) {
            const NnParam *p = &g.table.p[i];
            char name[NN_NAME + 8];
            snprintf(name, sizeof name, "grad.%s", p->key[UNET_DIFFUSERS][0]);
            if (p->parts[UNET_DIFFUSERS] > 1) { /* fused in the model, split in the file: compare each part */
                const long part = p->count / p->parts[UNET_DIFFUSERS];
                for (int k = 0; k < p->parts[UNET_DIFFUSERS]; k++) {
                    snprintf(name, sizeof name, "grad.%s", p->key[UNET_DIFFUSERS][k]);
                    float *r = ref_tensor(&st, name, part);
                    if (r) CHECK_CLOSE(*p->slot + k * part, r, part, 1e-4, 1e-4);
                    free(r);
                }
                checked++;
                continue;
            }
            float *r = ref_tensor(&st, name, p->count);
            if (r && !check_close(__FILE__, __LINE__, name, *p->slot, r, p->count, 1e-4, 1e-4)) {
                free(r);
                break;
            }
            free(r);
            checked++;
        }
        CHECK_INT(checked, g.table.n);
        unet_grads_free(&g);
        unet_acts_free(a);
        free(eps), free(dx), free(dctx);
    }
    free(x), free(t), free(ctx), free(R), free(reps), free(rdx), free(rdc);
    st_close(&st);
    unet_free(&m);
}

/* Finite differences of sum(eps * R) through a randomly initialised tiny net (every weight
 * random, so no zero-initialised layer hides a path): the input, the context, and parameters of
 * the time MLP, a resnet, an attention, the up-sampler and the output. */
typedef struct {
    UNet m;
    UNetActs *a;
    float *x, *t, *ctx, *R, *eps;
    long nx;
} FdCtx;

static double fd_loss(void *ctx) {
    FdCtx *k = ctx;
    unet_forward(&k->m, k->a, k->x, k->t, k->ctx, k->eps);
    double s = 0;
    for (long i = 0; i < k->nx; i++) s += (double)k->eps[i] * k->R[i];
    return s;
}

static void random_weights(UNet *m, uint64_t seed) {
    Rng r;
    rng_seed(&r, seed);
    rng_fill_normal(&r, m->arena, m->n_params, 0, 0.3f);
    for (int i = 0; i < m->table.n; i++)
        if (strstr(m->table.p[i].key[0][0], "norm") && strstr(m->table.p[i].key[0][0], ".weight"))
            for (long j = 0; j < m->table.p[i].count; j++) (*m->table.p[i].slot)[j] += 1.0f;
}

TEST(unet_backward_finite_differences) {
    FdCtx k;
    const UNetConfig c = tiny();
    unet_alloc(&k.m, &c);
    random_weights(&k.m, 3);
    const int side = 4;
    Rng r;
    rng_seed(&r, 4);
    k.nx = (long)TB * c.in_ch * side * side;
    const long nc = (long)TB * 3 * c.ctx_dim;
    k.x = randn(&r, k.nx, 1.0f), k.ctx = randn(&r, nc, 1.0f), k.R = randn(&r, k.nx, 1.0f);
    k.eps = xalloc_floats((size_t)k.nx);
    float tt[TB] = {10.0f, 700.0f};
    k.t = tt;
    k.a = unet_acts_new(&k.m, TB, side, 3, 1);
    fd_loss(&k);
    UNetGrads g;
    unet_grads_alloc(&g, &k.m);
    float *dx = xcalloc((size_t)k.nx, sizeof(float)), *dctx = xcalloc((size_t)nc, sizeof(float));
    unet_backward(&k.m, k.a, k.R, &g, dx, dctx);
    const FdProbe p = {fd_loss, &k, 10, 1e-2f, 2e-3, 2e-2, 7};
    fd_check_coords(&p, k.x, dx, k.nx, "input");
    fd_check_coords(&p, k.ctx, dctx, nc, "context");
    fd_check_coords(&p, k.m.p.t1_w, g.p.t1_w, 16 * 4, "time_embedding.linear_1.weight");
    fd_check_coords(&p, k.m.p.res[1].conv1_w, g.p.res[1].conv1_w, 8 * 4 * 9, "down_blocks.1.resnets.0.conv1.weight");
    fd_check_coords(&p, k.m.p.att[0].blk[0].xkv_w, g.p.att[0].blk[0].xkv_w, 16 * 6, "attn2.to_k/to_v");
    fd_check_coords(&p, k.m.p.att[0].norm_w, g.p.att[0].norm_w, 8, "attentions.0.norm.weight");
    fd_check_coords(&p, k.m.p.up_w[0], g.p.up_w[0], 8 * 8 * 9, "up_blocks.0.upsamplers.0.conv.weight");
    fd_check_coords(&p, k.m.p.out_w, g.p.out_w, 3 * 4 * 9, "conv_out.weight");
    fd_check_coords(&p, k.m.p.nout_b, g.p.nout_b, 4, "conv_norm_out.bias");
    /* a frozen backward (no parameter gradients) gives the same input and context gradients */
    float *dx2 = xcalloc((size_t)k.nx, sizeof(float)), *dctx2 = xcalloc((size_t)nc, sizeof(float));
    fd_loss(&k);
    unet_backward(&k.m, k.a, k.R, NULL, dx2, dctx2);
    CHECK_CLOSE(dx2, dx, k.nx, 1e-6, 1e-5);
    CHECK_CLOSE(dctx2, dctx, nc, 1e-6, 1e-5);
    free(dx), free(dctx), free(dx2), free(dctx2), free(k.x), free(k.ctx), free(k.R), free(k.eps);
    unet_grads_free(&g);
    unet_acts_free(k.a);
    unet_free(&k.m);
}

static void run(const UNet *m, int side, float *eps) {
    Rng r;
    rng_seed(&r, 12);
    const long nx = (long)TB * m->cfg.in_ch * side * side, nc = (long)TB * 4 * m->cfg.ctx_dim;
    float *x = randn(&r, nx, 1.0f), *ctx = randn(&r, nc, 1.0f), t[TB] = {0.0f, 999.0f};
    UNetActs *a = unet_acts_new(m, TB, side, 4, 0);
    unet_forward(m, a, x, t, ctx, eps);
    unet_acts_free(a);
    free(x), free(ctx);
}

/* A file written in either layout loads back (through the other layout's writer too) with the
 * same outputs; a foreign file without our metadata still loads, its config from the shapes. */
TEST(unet_layouts_round_trip) {
    UNetConfig c = tiny();
    c.layers = 2, c.attn[0] = 1; /* two resnets a level and attention everywhere: every CompVis index */
    UNet m;
    unet_alloc(&m, &c);
    random_weights(&m, 8);
    const long nx = (long)TB * c.in_ch * 8 * 8;
    float *e0 = xalloc_floats((size_t)nx), *e1 = xalloc_floats((size_t)nx);
    run(&m, 8, e0);
    char path[2][512];
    snprintf(path[0], 512, "%s/unet-diffusers.safetensors", scratch_dir());
    snprintf(path[1], 512, "%s/unet-compvis.safetensors", scratch_dir());
    Err e = {0};
    CHECK(unet_save(&m, path[0], UNET_DIFFUSERS, ST_F32, NULL, 0, &e) == 0);
    for (int L = 0; L < 2; L++) {
        UNet back;
        CHECK_MSG(unet_load(&back, path[L], 0, &e) == 0, "%s", e.msg);
        if (!back.arena) continue;
        CHECK(memcmp(&back.cfg, &c, sizeof c) == 0);
        run(&back, 8, e1);
        CHECK_CLOSE(e1, e0, nx, 0, 0);
        if (L == 0) CHECK(unet_save(&back, path[1], UNET_COMPVIS, ST_F32, NULL, 0, &e) == 0);
        unet_free(&back);
    }
    SafeTensors st;
    CHECK(st_open(&st, path[1], &e) == 0);
    CHECK_INT(unet_detect_layout(&st), UNET_COMPVIS);
    CHECK(st_find(&st, "model.diffusion_model.input_blocks.4.1.transformer_blocks.0.attn2.to_v.weight") != NULL);
    CHECK(st_find(&st, "model.diffusion_model.output_blocks.2.2.conv.weight") != NULL); /* the upsampler */
    st_close(&st);
    /* a foreign CompVis file: no forget metadata; heads given by the caller */
    snprintf(path[1], 512, "%s/unet-foreign.safetensors", scratch_dir());
    CHECK(nn_save(&m.table, path[1], UNET_COMPVIS, ST_F16, NULL, NULL, 0, &e) == 0);
    UNet f;
    CHECK_MSG(unet_load(&f, path[1], c.heads, &e) == 0, "%s", e.msg);
    if (f.arena) {
        UNetConfig want = c;
        want.groups = 4; /* inferred: the largest power of two up to 32 dividing every width */
        CHECK(memcmp(&f.cfg, &want, sizeof want) == 0);
        unet_free(&f);
    }
    free(e0), free(e1);
    unet_free(&m);
}

/* SD-1.x: 859,520,964 parameters, as published for its UNet, and the shapes of keys of the
 * CompVis and diffusers layouts as real checkpoints hold them (the table only: no 3.4 GB arena). */
TEST(unet_sd1_shapes_match_published_layout) {
    UNetConfig c;
    Err e = {0};
    CHECK(unet_config_named(&c, "sd-1", &e) == 0);
    CHECK(unet_config_check(&c, 64, &e) == 0);
    CHECK(unet_param_count(&c) == 859520964L);
    NnTable t;
    UNetParams slots;
    unet_table(&c, &t, &slots);
    static const struct {
        int layout;
        const char *key;
        int ndim;
        int64_t shape[4];
    } KEYS[] = {
        {1, "model.diffusion_model.input_blocks.0.0.weight", 4, {320, 4, 3, 3}},
        {1, "model.diffusion_model.time_embed.0.weight", 2, {1280, 320}},
        {1, "model.diffusion_model.input_blocks.1.1.transformer_blocks.0.attn2.to_k.weight", 2, {320, 768}},
        {1, "model.diffusion_model.input_blocks.3.0.op.weight", 4, {320, 320, 3, 3}},
        {1, "model.diffusion_model.input_blocks.4.0.skip_connection.weight", 4, {640, 320, 1, 1}},
        {1, "model.diffusion_model.input_blocks.4.0.emb_layers.1.weight", 2, {640, 1280}},
        {1, "model.diffusion_model.middle_block.1.proj_in.weight", 4, {1280, 1280, 1, 1}},
        {1, "model.diffusion_model.output_blocks.0.0.skip_connection.weight", 4, {1280, 2560, 1, 1}},
        {1, "model.diffusion_model.output_blocks.2.1.conv.weight", 4, {1280, 1280, 3, 3}},
        {1, "model.diffusion_model.output_blocks.5.2.conv.weight", 4, {1280, 1280, 3, 3}},
        {1, "model.diffusion_model.output_blocks.8.2.conv.weight", 4, {640, 640, 3, 3}},
        {1, "model.diffusion_model.output_blocks.11.1.transformer_blocks.0.ff.net.0.proj.weight", 2, {2560, 320}},
        {1, "model.diffusion_model.out.2.weight", 4, {4, 320, 3, 3}},
        {0, "up_blocks.3.resnets.2.conv_shortcut.weight", 4, {320, 640, 1, 1}},
        {0, "mid_block.attentions.0.transformer_blocks.0.attn1.to_q.weight", 2, {1280, 1280}},
        {0, "down_blocks.2.attentions.1.transformer_blocks.0.ff.net.2.weight", 2, {1280, 5120}},
    };
    int keys = 0;
    for (int i = 0; i < t.n; i++) keys += t.p[i].parts[0];
    CHECK_INT(keys, 686); /* the diffusers UNet's state dict */
    for (size_t k = 0; k < sizeof KEYS / sizeof *KEYS; k++) {
        int found = 0;
        for (int i = 0; i < t.n && !found; i++)
            for (int part = 0; part < t.p[i].parts[KEYS[k].layout]; part++)
                if (strcmp(t.p[i].key[KEYS[k].layout][part], KEYS[k].key) == 0) {
                    found = 1;
                    const int parts = t.p[i].parts[KEYS[k].layout];
                    CHECK_INT(t.p[i].ndim, KEYS[k].ndim);
                    CHECK_MSG(t.p[i].shape[0] / parts == KEYS[k].shape[0], "%s: dim 0 %lld", KEYS[k].key,
                              (long long)(t.p[i].shape[0] / parts));
                    for (int d = 1; d < KEYS[k].ndim; d++)
                        CHECK_MSG(t.p[i].shape[d] == KEYS[k].shape[d], "%s: dim %d %lld", KEYS[k].key, d,
                                  (long long)t.p[i].shape[d]);
                }
        CHECK_MSG(found, "no key %s", KEYS[k].key);
    }
    nn_table_free(&t);
}

/* Truncated and mis-shaped files name the file and the tensor. */
TEST(unet_bad_files_give_clear_errors) {
    const UNetConfig c = tiny();
    UNet m;
    unet_alloc(&m, &c);
    unet_init(&m, 1);
    char path[512], bad[512];
    snprintf(path, sizeof path, "%s/unet-ok.safetensors", scratch_dir());
    snprintf(bad, sizeof bad, "%s/unet-bad.safetensors", scratch_dir());
    Err e = {0};
    CHECK(unet_save(&m, path, UNET_DIFFUSERS, ST_F32, NULL, 0, &e) == 0);
    FILE *f = fopen(path, "rb");
    CHECK(f != NULL);
    if (!f) return;
    fseek(f, 0, SEEK_END);
    const long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    char *buf = xmalloc((size_t)n);
    CHECK(fread(buf, 1, (size_t)n, f) == (size_t)n);
    fclose(f);
    f = fopen(bad, "wb");
    fwrite(buf, 1, (size_t)(n - 100), f); /* cut into the last tensor */
    fclose(f);
    UNet back;
    CHECK(unet_load(&back, bad, 0, &e) != 0);
    CHECK_MSG(strstr(e.msg, "unet-bad") != NULL, "%s", e.msg);
    free(buf);
    /* mis-shaped: conv_out's input width wrong in the file, everything else right */
    m.table.p[m.table.n - 2].shape[1] = 3; /* conv_out.weight [3, 4, 3, 3] -> [3, 3, 3, 3] in the file */
    m.table.p[m.table.n - 2].count = 3 * 3 * 9;
    CHECK(nn_save(&m.table, bad, UNET_DIFFUSERS, ST_F32, NULL, NULL, 0, &e) == 0);
    m.table.p[m.table.n - 2].shape[1] = 4, m.table.p[m.table.n - 2].count = 3 * 4 * 9;
    CHECK(unet_load(&back, bad, 2, &e) != 0);
    CHECK_MSG(strstr(e.msg, "conv_out.weight") != NULL, "%s", e.msg);
    /* not a UNet at all */
    CHECK(unet_load(&back, "tests/ref/resnet-tiny.safetensors", 0, &e) != 0);
    CHECK_MSG(strstr(e.msg, "not a UNet") != NULL, "%s", e.msg);
    unet_free(&m);
}

TEST(unet_config_errors) {
    UNetConfig c = tiny();
    Err e = {0};
    CHECK(unet_config_check(&c, 8, &e) == 0);
    CHECK(unet_config_check(&c, 7, &e) != 0);
    CHECK_MSG(strstr(e.msg, "multiple of 2") != NULL, "%s", e.msg);
    c.ch[1] = 9;
    CHECK(unet_config_check(&c, 8, &e) != 0);
    CHECK(unet_config_named(&c, "sd-3", &e) != 0);
    CHECK_MSG(strstr(e.msg, "sd-1") != NULL, "%s", e.msg);
}

/* Forget-Me-Not's path: a loss on the cross-attention maps themselves, L = sum_j A_j . R_j, its
 * gradient set with unet_cross_set_grad and no gradient from the output; finite differences in
 * the context and in a cross-attention projection. */
typedef struct {
    FdCtx *k;
    float **R;
    int n;
} MapCtx;

static double map_loss(void *ctx) {
    MapCtx *c = ctx;
    unet_forward(&c->k->m, c->k->a, c->k->x, c->k->t, c->k->ctx, c->k->eps);
    double s = 0;
    for (int j = 0; j < c->n; j++) {
        int Lq, Lk, H;
        const float *A = unet_cross_probs(c->k->a, j, &Lq, &Lk, &H);
        for (long i = 0; i < (long)TB * H * Lq * Lk; i++) s += (double)A[i] * c->R[j][i];
    }
    return s;
}

TEST(unet_cross_attention_map_gradient) {
    FdCtx k;
    const UNetConfig c = tiny();
    unet_alloc(&k.m, &c);
    random_weights(&k.m, 5);
    const int side = 4, L = 3;
    Rng r;
    rng_seed(&r, 6);
    k.nx = (long)TB * c.in_ch * side * side;
    const long nc = (long)TB * L * c.ctx_dim;
    k.x = randn(&r, k.nx, 1.0f), k.ctx = randn(&r, nc, 1.0f), k.R = NULL;
    k.eps = xalloc_floats((size_t)k.nx);
    float tt[TB] = {30.0f, 500.0f};
    k.t = tt;
    k.a = unet_acts_new(&k.m, TB, side, L, 1);
    MapCtx mc = {&k, NULL, unet_cross_count(k.a)};
    CHECK(mc.n >= 2);
    mc.R = xcalloc((size_t)mc.n, sizeof(float *));
    for (int j = 0; j < mc.n; j++) {
        int Lq, Lk, H;
        unet_cross_probs(k.a, j, &Lq, &Lk, &H);
        CHECK_INT(Lk, L);
        mc.R[j] = randn(&r, (long)TB * H * Lq * Lk, 1.0f);
    }
    map_loss(&mc);
    for (int j = 0; j < mc.n; j++) { /* each query's weights sum to one */
        int Lq, Lk, H;
        const float *A = unet_cross_probs(k.a, j, &Lq, &Lk, &H);
        for (long q = 0; q < (long)TB * H * Lq; q++) CHECK_NEAR(A[q * Lk] + A[q * Lk + 1] + A[q * Lk + 2], 1.0, 1e-5);
        unet_cross_set_grad(k.a, j, mc.R[j]);
    }
    UNetGrads g;
    unet_grads_alloc(&g, &k.m);
    float *zero = xcalloc((size_t)k.nx, sizeof(float)), *dctx = xcalloc((size_t)nc, sizeof(float));
    unet_backward(&k.m, k.a, zero, &g, NULL, dctx);
    const FdProbe p = {map_loss, &mc, 12, 1e-2f, 2e-3, 2e-2, 9};
    fd_check_coords(&p, k.ctx, dctx, nc, "context");
    fd_check_coords(&p, k.m.p.att[0].blk[0].xkv_w, g.p.att[0].blk[0].xkv_w, 16 * 6, "attn2.to_k/to_v");
    fd_check_coords(&p, k.m.p.att[0].blk[0].xq_w, g.p.att[0].blk[0].xq_w, 8 * 8, "attn2.to_q");
    for (int j = 0; j < mc.n; j++) unet_cross_set_grad(k.a, j, NULL), free(mc.R[j]);
    free(mc.R), free(zero), free(dctx), free(k.x), free(k.ctx), free(k.eps);
    unet_grads_free(&g);
    unet_acts_free(k.a);
    unet_free(&k.m);
}
