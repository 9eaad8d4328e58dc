#include "nn/kv_cache.h"

#include <stdlib.h>
#include <string.h>

void kv_cache_init(KvCache *c, int layers, int width, int n_seq, int max_len) {
    memset(c, 0, sizeof *c);
    c->layers = layers, c->width = width, c->n_seq = n_seq, c->max_len = max_len;
    const size_t n = (size_t)layers * n_seq * max_len * width;
    c->k = xalloc_floats(n);
    c->v = xalloc_floats(n);
    c->len = xcalloc((size_t)n_seq, sizeof(int));
}

void kv_cache_free(KvCache *c) {
    free(c->k), free(c->v), free(c->len);
    memset(c, 0, sizeof *c);
}

void kv_cache_reset(KvCache *c, int s) { c->len[s] = 0; }

int kv_cache_forward(KvCache *c, const BlockConfig *bc, const BlockParams *blocks, float *x, const int *n_new, Err *e) {
    const int S = c->n_seq, W = c->width;
    int *qs = xmalloc(sizeof(int) * (size_t)S), *ks = xmalloc(sizeof(int) * (size_t)S), *kl = xmalloc(sizeof(int) * (size_t)S);
    long *off = xmalloc(sizeof(long) * (size_t)S);
    int Tn = 0, rc = 0;
    for (int s = 0; s < S && rc == 0; s++) {
        if (c->len[s] + n_new[s] > c->max_len)
            rc = err_set(e, "sequence %d: %d cached + %d new positions pass the cache's %d", s, c->len[s], n_new[s], c->max_len);
        qs[s] = Tn, ks[s] = s * c->max_len, kl[s] = c->len[s] + n_new[s];
        Tn += n_new[s];
    }
    if (rc == 0 && Tn > 0) {
        const long att = attn_packing_offsets(off, n_new, kl, S, bc->heads);
        const AttnPacking pk = {S, qs, n_new, ks, kl, off};
        int32_t *pos = xmalloc(sizeof(int32_t) * (size_t)Tn);
        for (int s = 0; s < S; s++)
            for (int i = 0; i < n_new[s]; i++) pos[qs[s] + i] = c->len[s] + i;
        BlockActs a;
        block_acts_alloc(&a, bc, Tn, att, NULL, 0);
        const size_t per_layer = (size_t)S * c->max_len * W;
        for (int l = 0; l < c->layers; l++)
            block_forward_kv(bc, &blocks[l], &a, x, Tn, &pk, c->k + l * per_layer, c->v + l * per_layer, pos);
        block_acts_free(&a);
        free(pos);
        for (int s = 0; s < S; s++) c->len[s] += n_new[s];
    }
    free(qs), free(ks), free(kl), free(off);
    return rc;
}
