/* The generic transformer block against the ops it is made of: finite differences through the
 * whole block (input, context and every parameter) for configurations CLIP does not use
 * (cross-attention with GEGLU as Stable Diffusion; RMSNorm, RoPE and SwiGLU without biases as
 * Llama), and a frozen backward (NULL gradients) giving the same input gradient as a full one. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/err.h"
#include "core/rng.h"
#include "core/gradcheck.h"
#include "nn/block.h"
#include "test.h"

typedef struct {
    BlockConfig c;
    BlockParams b;
    float *arena, *garena;
    long n_params;
    int T, Tk;
    int start[2], len[2], kstart[2], klen[2];
    long off[2], xoff[2];
    Packing pk;
    AttnPacking xpk;
    BlockContext ctx;
    long att_size;
    float *x0, *ctxx, *R;
} BlockCase;

/* Every BlockParams field the config uses, with its size, in one arena. */
static long param_sizes(const BlockConfig *c, long *sz) {
    const long W = c->width, F = (c->act == ACT_GEGLU || c->act == ACT_SWIGLU) ? 2L * c->hidden : c->hidden;
    const long X = c->cross_width;
    const int bias = c->norm == NORM_LAYER, cross = X > 0;
    long v[20] = {W, bias ? W : 0, 3 * W * W, bias ? 3 * W : 0, W * W, bias ? W : 0,
                  cross ? W : 0, cross && bias ? W : 0, cross ? W * W : 0, cross && bias ? W : 0,
                  cross ? 2 * W * X : 0, cross && bias ? 2 * W : 0, cross ? W * W : 0, cross && bias ? W : 0,
                  W, bias ? W : 0, F * W, bias ? F : 0, W * c->hidden, bias ? W : 0};
    long total = 0;
    for (int i = 0; i < 20; i++) sz[i] = v[i], total += v[i];
    return total;
}

static void point(BlockParams *b, float *arena, const long *sz) {
    float **f[20] = {&b->ln1_w, &b->ln1_b, &b->qkv_w, &b->qkv_b, &b->out_w, &b->out_b, &b->lnx_w,
                     &b->lnx_b, &b->xq_w,  &b->xq_b,  &b->xkv_w, &b->xkv_b, &b->xout_w, &b->xout_b,
                     &b->ln2_w, &b->ln2_b, &b->fc_w,  &b->fc_b,  &b->proj_w, &b->proj_b};
    float *at = arena;
    for (int i = 0; i < 20; i++) {
        *f[i] = sz[i] ? at : NULL;
        at += sz[i];
    }
}

static void case_init(BlockCase *k, BlockConfig c, uint64_t seed) {
    memset(k, 0, sizeof *k);
    k->c = c;
    long sz[20];
    k->n_params = param_sizes(&c, sz);
    k->arena = xalloc_floats((size_t)k->n_params);
    k->garena = xcalloc((size_t)k->n_params, sizeof(float));
    Rng r;
    rng_seed(&r, seed);
    rng_fill_normal(&r, k->arena, k->n_params, 0, 0.3f);
    point(&k->b, k->arena, sz);
    /* two sequences of 3 and 4 rows; contexts of 5 and 2 rows */
    k->start[0] = 0, k->len[0] = 3, k->start[1] = 3, k->len[1] = 4, k->T = 7;
    k->kstart[0] = 0, k->klen[0] = 5, k->kstart[1] = 5, k->klen[1] = 2, k->Tk = 7;
    k->att_size = packing_att_offsets(k->off, k->len, 2, c.heads);
    k->pk = (Packing){2, k->start, k->len, k->off};
    const long xs = attn_packing_offsets(k->xoff, k->len, k->klen, 2, c.heads);
    k->xpk = (AttnPacking){2, k->start, k->len, k->kstart, k->klen, k->xoff};
    k->x0 = xalloc_floats((size_t)k->T * c.width);
    rng_fill_normal(&r, k->x0, (long)k->T * c.width, 0, 1);
    if (c.cross_width) {
        k->ctxx = xalloc_floats((size_t)k->Tk * c.cross_width);
        rng_fill_normal(&r, k->ctxx, (long)k->Tk * c.cross_width, 0, 1);
        k->ctx = (BlockContext){k->ctxx, k->Tk, &k->xpk, xs};
    }
    k->R = xalloc_floats((size_t)k->T * c.width);
    rng_fill_normal(&r, k->R, (long)k->T * c.width, 0, 1);
}

static void case_free(BlockCase *k) {
    free(k->arena), free(k->garena), free(k->x0), free(k->ctxx), free(k->R);
}

static double loss(BlockCase *k) {
    BlockActs a;
    const BlockContext *ctx = k->c.cross_width ? &k->ctx : NULL;
    block_acts_alloc(&a, &k->c, k->T, k->att_size, ctx, 0);
    float *x = xalloc_floats((size_t)k->T * k->c.width);
    memcpy(x, k->x0, sizeof(float) * (size_t)k->T * k->c.width);
    block_forward(&k->c, &k->b, &a, x, k->T, &k->pk, ctx);
    double s = 0;
    for (long i = 0; i < (long)k->T * k->c.width; i++) s += (double)x[i] * k->R[i];
    free(x);
    block_acts_free(&a);
    return s;
}

/* Analytic gradients: of the input (dx), the context (dctx) and, unless frozen, the parameters. */
static void grads(BlockCase *k, int frozen, float *dx, float *dctx) {
    BlockActs a;
    const BlockContext *ctx = k->c.cross_width ? &k->ctx : NULL;
    block_acts_alloc(&a, &k->c, k->T, k->att_size, ctx, 1);
    const long n = (long)k->T * k->c.width;
    float *x = xalloc_floats((size_t)n);
    memcpy(x, k->x0, sizeof(float) * (size_t)n);
    block_forward(&k->c, &k->b, &a, x, k->T, &k->pk, ctx);
    memcpy(dx, k->R, sizeof(float) * (size_t)n);
    BlockParams gb;
    long sz[20];
    param_sizes(&k->c, sz);
    point(&gb, k->garena, sz);
    block_backward(&k->c, &k->b, frozen ? NULL : &gb, &a, dx, k->T, &k->pk, ctx, dctx);
    free(x);
    block_acts_free(&a);
}

static double loss_ctx(void *k) { return loss(k); }

/* Up to 16 coordinates of v (all when fewer); a tolerance well below the size of the attention
 * paths' gradients, so a missing term (RoPE's backward, a softmax path) fails. */
static void fd_check(float *v, const float *g, long count, BlockCase *k, const char *what) {
    const FdProbe p = {loss_ctx, k, 16, 1e-2f, 2e-3, 1e-2, 77};
    fd_check_coords(&p, v, g, count, what);
}

static void check_config(BlockConfig c, const char *name) {
    BlockCase k;
    case_init(&k, c, 5);
    const long n = (long)k.T * c.width, nc = (long)k.Tk * c.cross_width;
    float *dx = xalloc_floats((size_t)n), *dctx = nc ? xcalloc((size_t)nc, sizeof(float)) : NULL;
    grads(&k, 0, dx, dctx);
    fd_check(k.x0, dx, n, &k, name);
    if (nc) fd_check(k.ctxx, dctx, nc, &k, name);
    long sz[20];
    param_sizes(&c, sz);
    for (long f = 0, at = 0; f < 20; at += sz[f], f++) /* each tensor on its own */
        if (sz[f]) {
            char what[64];
            snprintf(what, sizeof what, "%s param %ld", name, f);
            fd_check(k.arena + at, k.garena + at, sz[f], &k, what);
        }
    /* frozen: the same input and context gradients, no parameter gradient written */
    float *dx2 = xalloc_floats((size_t)n), *dctx2 = nc ? xcalloc((size_t)nc, sizeof(float)) : NULL;
    memset(k.garena, 0, sizeof(float) * (size_t)k.n_params);
    grads(&k, 1, dx2, dctx2);
    CHECK_CLOSE(dx2, dx, n, 1e-6, 1e-6);
    if (nc) CHECK_CLOSE(dctx2, dctx, nc, 1e-6, 1e-6);
    double gsum = 0;
    for (long i = 0; i < k.n_params; i++) gsum += fabs(k.garena[i]);
    CHECK_NEAR(gsum, 0, 0);
    free(dx), free(dctx), free(dx2), free(dctx2);
    case_free(&k);
}

TEST(block_cross_attention_geglu_grad) {
    BlockConfig c = {.width = 8, .heads = 2, .hidden = 12, .act = ACT_GEGLU, .norm = NORM_LAYER, .eps = 1e-5f,
                     .cross_width = 6};
    check_config(c, "block(cross, geglu)");
}

TEST(block_rmsnorm_rope_swiglu_causal_grad) {
    BlockConfig c = {.width = 8, .heads = 2, .hidden = 10, .act = ACT_SWIGLU, .norm = NORM_RMS, .eps = 1e-6f,
                     .causal = 1, .rope = 1, .rope_base = 10000.0f};
    check_config(c, "block(rms, rope, swiglu)");
}

TEST(block_clip_shape_grad) {
    BlockConfig c = {.width = 8, .heads = 2, .hidden = 32, .act = ACT_QUICKGELU, .norm = NORM_LAYER, .eps = 1e-5f,
                     .causal = 1};
    check_config(c, "block(clip)");
}

/* The cached path computes the same rows as the full forward, with RoPE positions continuing
 * after the cached prefix. */
TEST(block_prefix_forward_matches_full_with_rope) {
    BlockConfig c = {.width = 8, .heads = 2, .hidden = 10, .act = ACT_SWIGLU, .norm = NORM_RMS, .eps = 1e-6f,
                     .causal = 1, .rope = 1, .rope_base = 10000.0f};
    BlockCase k;
    case_init(&k, c, 9);
    const int W = c.width;
    BlockActs a;
    block_acts_alloc(&a, &c, k.T, k.att_size, NULL, 0);
    float *full = xalloc_floats((size_t)k.T * W);
    memcpy(full, k.x0, sizeof(float) * (size_t)k.T * W);
    block_forward(&c, &k.b, &a, full, k.T, &k.pk, NULL);
    float *full_qkv = xalloc_floats((size_t)k.T * 3 * W);
    memcpy(full_qkv, a.qkv, sizeof(float) * (size_t)k.T * 3 * W); /* rotated Q, K of every row */
    block_acts_free(&a);
    /* cache the first 2 rows of sequence 0 and 1 row of sequence 1; compute the rest */
    const int pre[2] = {2, 1}, new_start[2] = {0, 1}, Tn = 1 + 3;
    float *xn = xalloc_floats((size_t)Tn * W), *fattn = xalloc_floats((size_t)k.T * W);
    memcpy(xn, k.x0 + 2 * W, sizeof(float) * W);            /* seq 0 row 2 */
    memcpy(xn + W, k.x0 + 4 * W, sizeof(float) * 3 * W);    /* seq 1 rows 1-3 */
    float *cache = xcalloc((size_t)k.T * 3 * W, sizeof(float));
    memcpy(cache, full_qkv, sizeof(float) * 2 * 3 * W);
    memcpy(cache + 3 * 3 * W, full_qkv + 3 * 3 * W, sizeof(float) * 3 * W);
    block_acts_alloc(&a, &c, Tn, k.att_size, NULL, 0);
    block_forward_prefix(&c, &k.b, &a, xn, Tn, &k.pk, pre, new_start, cache, fattn);
    CHECK_CLOSE(xn, full + 2 * W, W, 1e-5, 1e-5);
    CHECK_CLOSE(xn + W, full + 4 * W, 3 * W, 1e-5, 1e-5);
    block_acts_free(&a);
    free(full), free(full_qkv), free(xn), free(fattn), free(cache);
    case_free(&k);
}

/* Decoding through the key/value cache (a prefill, then one token at a time, two sequences
 * of different lengths, two layers) gives the rows of the full causal forward. */
#include "nn/kv_cache.h"
TEST(kv_cache_decoding_matches_the_full_forward) {
    BlockConfig c = {.width = 8, .heads = 2, .hidden = 10, .act = ACT_SWIGLU, .norm = NORM_RMS, .eps = 1e-6f,
                     .causal = 1, .rope = 1, .rope_base = 10000.0f};
    BlockCase k;
    case_init(&k, c, 13);
    const int W = c.width;
    const BlockParams blocks[2] = {k.b, k.b};
    /* full: both layers over the whole sequences (rows 0-2 and 3-6) */
    BlockActs a;
    block_acts_alloc(&a, &c, k.T, k.att_size, NULL, 0);
    float *full = xalloc_floats((size_t)k.T * W);
    memcpy(full, k.x0, sizeof(float) * (size_t)k.T * W);
    for (int l = 0; l < 2; l++) block_forward(&c, &blocks[l], &a, full, k.T, &k.pk, NULL);
    block_acts_free(&a);
    KvCache kv;
    kv_cache_init(&kv, 2, W, 2, 6);
    Err e = {{0}};
    /* prefill: 2 rows of sequence 0, 1 row of sequence 1 */
    float *x = xalloc_floats((size_t)3 * W);
    memcpy(x, k.x0, sizeof(float) * 2 * W);
    memcpy(x + 2 * W, k.x0 + 3 * W, sizeof(float) * W);
    const int pre[2] = {2, 1};
    CHECK_INT(kv_cache_forward(&kv, &c, blocks, x, pre, &e), 0);
    CHECK_CLOSE(x, full, 2 * W, 1e-5, 1e-5);
    CHECK_CLOSE(x + 2 * W, full + 3 * W, W, 1e-5, 1e-5);
    /* then one token at a time: sequence 0 has 1 more, sequence 1 has 3 more */
    for (int step = 0; step < 3; step++) {
        const int nn[2] = {step == 0, 1};
        float row[16];
        int at = 0;
        if (nn[0]) memcpy(row, k.x0 + 2 * W, sizeof(float) * W), at = W;
        memcpy(row + at, k.x0 + (size_t)(4 + step) * W, sizeof(float) * W);
        CHECK_INT(kv_cache_forward(&kv, &c, blocks, row, nn, &e), 0);
        if (nn[0]) CHECK_CLOSE(row, full + 2 * W, W, 1e-5, 1e-5);
        CHECK_CLOSE(row + at, full + (size_t)(4 + step) * W, W, 1e-5, 1e-5);
    }
    CHECK_INT(kv.len[0], 3);
    CHECK_INT(kv.len[1], 4);
    const int too_many[2] = {4, 0}; /* 3 + 4 > 6: refused, nothing changed */
    float big[4 * 8];
    CHECK(kv_cache_forward(&kv, &c, blocks, big, too_many, &e) != 0 && strstr(e.msg, "pass the cache"));
    CHECK_INT(kv.len[0], 3);
    kv_cache_free(&kv);
    free(full), free(x);
    case_free(&k);
}
