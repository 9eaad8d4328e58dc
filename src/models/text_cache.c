#include "models/text_cache.h"

#include <stdlib.h>
#include <string.h>

#include "models/clip_train.h"
#include "nn/block.h"

struct TextCacheEntry {
    int32_t *tokens;
    int len;
    float *qkv; /* [layers][len][3W] */
    long stamp;
};

void text_cache_init(TextPrefixCache *c, const ClipModel *m, long max_bytes) {
    memset(c, 0, sizeof *c);
    const long per = (long)m->cfg.t_layers * 16 * 3 * m->cfg.t_width * (long)sizeof(float);
    c->cap = (int)(max_bytes / per);
    if (c->cap < 8) c->cap = 8;
    if (c->cap > 1024) c->cap = 1024; /* lookups scan every entry; two populations of 30 x 10 prompts fit */
    c->entries = xcalloc((size_t)c->cap, sizeof(TextCacheEntry));
}

static void entry_clear(TextCacheEntry *e) {
    free(e->tokens);
    free(e->qkv);
    memset(e, 0, sizeof *e);
}

void text_cache_free(TextPrefixCache *c) {
    for (int i = 0; i < c->n; i++) entry_clear(&c->entries[i]);
    free(c->entries);
    memset(c, 0, sizeof *c);
}

/* The entry sharing the longest prefix with tokens[0..len), capped at len - 1 so the pooled
 * (EOT) row is always computed here. */
static TextCacheEntry *longest_prefix(TextPrefixCache *c, const int32_t *tokens, int len, int *pre) {
    TextCacheEntry *best = NULL;
    *pre = 0;
    for (int i = 0; i < c->n; i++) {
        const TextCacheEntry *e = &c->entries[i];
        int k = 0, lim = e->len < len - 1 ? e->len : len - 1;
        while (k < lim && e->tokens[k] == tokens[k]) k++;
        if (k > *pre) *pre = k, best = &c->entries[i];
    }
    return best;
}

/* Keeps tokens + qkv (takes ownership of qkv); an entry with the same tokens is refreshed instead. */
static void remember(TextPrefixCache *c, const int32_t *tokens, int len, float *qkv) {
    for (int i = 0; i < c->n; i++) {
        TextCacheEntry *e = &c->entries[i];
        if (e->len == len && memcmp(e->tokens, tokens, sizeof(int32_t) * (size_t)len) == 0) {
            e->stamp = ++c->clock;
            free(qkv);
            return;
        }
    }
    TextCacheEntry *slot = NULL;
    if (c->n < c->cap) {
        slot = &c->entries[c->n++];
    } else {
        slot = &c->entries[0];
        for (int i = 1; i < c->n; i++)
            if (c->entries[i].stamp < slot->stamp) slot = &c->entries[i];
        entry_clear(slot);
    }
    slot->tokens = xmalloc(sizeof(int32_t) * (size_t)len);
    memcpy(slot->tokens, tokens, sizeof(int32_t) * (size_t)len);
    slot->len = len;
    slot->qkv = qkv;
    slot->stamp = ++c->clock;
}

static int encode_unique(const ClipModel *m, TextPrefixCache *c, const int32_t *ids, int N, float *out, Err *e) {
    const ClipConfig *cf = &m->cfg;
    const int W = cf->t_width, H = cf->t_heads, Ly = cf->t_layers, ctx = cf->context;
    int *len = xmalloc(sizeof(int) * (size_t)N), *pre = xmalloc(sizeof(int) * (size_t)N);
    int *fstart = xmalloc(sizeof(int) * (size_t)N), *nstart = xmalloc(sizeof(int) * (size_t)N);
    TextCacheEntry **from = xmalloc(sizeof(TextCacheEntry *) * (size_t)N);
    int Tf = 0, Tn = 0;
    for (int n = 0; n < N; n++) {
        const int32_t *row = ids + (size_t)n * ctx;
        if ((len[n] = clip_text_len(m, row, n, e)) < 0) {
            free(len), free(pre), free(fstart), free(nstart), free(from);
            return -1;
        }
        from[n] = longest_prefix(c, row, len[n], &pre[n]);
        if (from[n]) from[n]->stamp = ++c->clock; /* in use: keep it through this call */
        fstart[n] = Tf, nstart[n] = Tn;
        Tf += len[n], Tn += len[n] - pre[n];
        c->rows_reused += pre[n], c->rows_computed += len[n] - pre[n];
    }
    long *off = xmalloc(sizeof(long) * (size_t)N);
    const long att_size = packing_att_offsets(off, len, N, H);
    const Packing pk = {N, fstart, len, off};
    float *x = xalloc_floats((size_t)Tn * W), *full_attn = xalloc_floats((size_t)Tf * W);
    float **qkv = xmalloc(sizeof(float *) * (size_t)N); /* each sequence's future entry, all layers */
    for (int n = 0; n < N; n++) qkv[n] = xalloc_floats((size_t)Ly * len[n] * 3 * W);
    float *full_qkv = xalloc_floats((size_t)Tf * 3 * W);
    for (int n = 0; n < N; n++)
        for (int k = pre[n]; k < len[n]; k++) {
            float *r = x + (size_t)(nstart[n] + k - pre[n]) * W;
            clip_token_row(m, ids[(size_t)n * ctx + k], r);
            for (int j = 0; j < W; j++) r[j] += m->t_pos[(size_t)k * W + j];
        }
    BlockActs a;
    BlockConfig bc = clip_block_config(cf, 1);
    bc.gemm = m->gemm;
    block_acts_alloc(&a, &bc, Tn, att_size, NULL, 0);
    for (int l = 0; l < Ly; l++) {
        for (int n = 0; n < N; n++)
            if (pre[n])
                memcpy(full_qkv + (size_t)fstart[n] * 3 * W, from[n]->qkv + (size_t)l * from[n]->len * 3 * W,
                       sizeof(float) * (size_t)pre[n] * 3 * W);
        block_forward_prefix(&bc, &m->t_blocks[l], &a, x, Tn, &pk, pre, nstart, full_qkv, full_attn);
        for (int n = 0; n < N; n++)
            memcpy(qkv[n] + (size_t)l * len[n] * 3 * W, full_qkv + (size_t)fstart[n] * 3 * W,
                   sizeof(float) * (size_t)len[n] * 3 * W);
    }
    float *pool = xalloc_floats((size_t)N * W), *pool_ln = xalloc_floats((size_t)N * W);
    for (int n = 0; n < N; n++)
        memcpy(pool + (size_t)n * W, x + (size_t)(nstart[n] + len[n] - pre[n] - 1) * W, sizeof(float) * (size_t)W);
    layernorm_forward(pool_ln, NULL, NULL, pool, m->ln_final_w, m->ln_final_b, N, W, CLIP_LN_EPS);
    gemm_linear(m->gemm, out, pool_ln, m->t_proj, NULL, N, W, cf->embed_dim);
    for (int n = 0; n < N; n++) remember(c, ids + (size_t)n * ctx, len[n], qkv[n]);
    block_acts_free(&a);
    free(qkv), free(full_qkv), free(x), free(full_attn), free(pool), free(pool_ln);
    free(len), free(pre), free(fstart), free(nstart), free(from), free(off);
    return 0;
}

/* A search's population often holds the same string several times (a concentrated sampling
 * distribution draws it again): each distinct token row is encoded once and its feature copied. */
int clip_encode_text_cached(const ClipModel *m, TextPrefixCache *c, const int32_t *ids, int N, float *out, Err *e) {
    const ClipConfig *cf = &m->cfg;
    if (!cf->has_text) return err_set(e, "this model has no text tower");
    if (N <= 0) return 0;
    const int ctx = cf->context, E = cf->embed_dim;
    /* distinct[n]: the distinct row that row n equals; slot[k]: where distinct row k first appears */
    int *distinct = xmalloc(sizeof(int) * (size_t)N), *slot = xmalloc(sizeof(int) * (size_t)N), nu = 0;
    for (int n = 0; n < N; n++) {
        int k = 0;
        while (k < nu && memcmp(ids + (size_t)slot[k] * ctx, ids + (size_t)n * ctx, sizeof(int32_t) * (size_t)ctx) != 0) k++;
        if (k == nu) slot[nu++] = n;
        distinct[n] = k;
    }
    c->rows_deduplicated += N - nu;
    int rc;
    if (nu == N) {
        rc = encode_unique(m, c, ids, N, out, e);
    } else {
        int32_t *u = xmalloc(sizeof(int32_t) * (size_t)nu * ctx);
        float *uo = xalloc_floats((size_t)nu * E);
        for (int k = 0; k < nu; k++) memcpy(u + (size_t)k * ctx, ids + (size_t)slot[k] * ctx, sizeof(int32_t) * (size_t)ctx);
        rc = encode_unique(m, c, u, nu, uo, e);
        for (int n = 0; n < N && rc == 0; n++) memcpy(out + (size_t)n * E, uo + (size_t)distinct[n] * E, sizeof(float) * (size_t)E);
        free(u), free(uo);
    }
    free(distinct), free(slot);
    return rc;
}
