/* A prefix cache for the causal text tower. In a causal transformer the keys and values at
 * position j depend only on tokens 0..j, so prompts that share a beginning ("a photo of a
 * t-shirt" + a different word suffix for every candidate of a search) share those rows in
 * every layer. The cache keeps, for recently encoded token sequences, each layer's Q/K/V rows;
 * a new sequence reuses the rows of its longest common prefix with any entry and computes only
 * the rest. Results equal clip_encode_text's up to float summation order. Entries are replaced
 * least recently used first; the memory budget bounds how many are kept. Not thread-safe: one
 * owner (the server keeps it under its model lock). */
#ifndef FORGET_TEXT_CACHE_H
#define FORGET_TEXT_CACHE_H

#include <stdint.h>

#include "models/clip.h"

typedef struct TextCacheEntry TextCacheEntry;

typedef struct {
    int cap, n;
    long clock;
    TextCacheEntry *entries;
    long rows_reused, rows_computed; /* positions served from the cache vs computed */
    long rows_deduplicated;          /* whole prompts repeated within one call, encoded once */
} TextPrefixCache;

/* Room for entries of about 16 positions within max_bytes (8 to 1024 entries). */
void text_cache_init(TextPrefixCache *c, const ClipModel *m, long max_bytes);
void text_cache_free(TextPrefixCache *c);
/* Like clip_encode_text: ids [N, context] -> out [N, embed_dim], unnormalised. Identical rows
 * within the call are encoded once. */
int clip_encode_text_cached(const ClipModel *m, TextPrefixCache *c, const int32_t *ids, int N, float *out, Err *e);

#endif
