/* The key/value cache of causal decoding, for any stack of transformer blocks: each layer keeps
 * the keys and values of every position seen so far, per sequence, so a new token costs one
 * row's projections and its attention over the cached positions (not the whole prefix again).
 * The CLIP text tower's prefix cache (models/text_cache.c) shares prompt prefixes across
 * requests; this is the per-sequence cache an LM decodes with. */
#ifndef FORGET_NN_KV_CACHE_H
#define FORGET_NN_KV_CACHE_H

#include "core/err.h"
#include "nn/block.h"

typedef struct {
    int layers, width, n_seq, max_len;
    float *k, *v; /* [layers][n_seq][max_len][width] */
    int *len;     /* positions cached per sequence */
} KvCache;

void kv_cache_init(KvCache *c, int layers, int width, int n_seq, int max_len);
void kv_cache_free(KvCache *c);
/* Forgets sequence s (its slot is reused for a new one). */
void kv_cache_reset(KvCache *c, int s);

/* Runs the blocks on the new rows of every sequence: x [sum n_new, W] (sequence after sequence) is
 * updated in place to the last block's output, and the new rows' keys and values join the cache.
 * Fails, changing nothing, when a sequence would pass max_len. */
int kv_cache_forward(KvCache *c, const BlockConfig *bc, const BlockParams *blocks, float *x, const int *n_new, Err *e);

#endif
