#include "core/strmap.h"

#include <stdlib.h>
#include <string.h>

#include "core/err.h"

static uint64_t fnv1a(const char *s, size_t n) {
    uint64_t h = 1469598103934665603ull;
    for (size_t i = 0; i < n; i++) h = (h ^ (uint8_t)s[i]) * 1099511628211ull;
    return h;
}

void strmap_init(StrMap *m, size_t expected) {
    size_t cap = 16;
    while (cap < expected * 2) cap <<= 1;
    m->cap = cap;
    m->count = 0;
    m->keys = xcalloc(cap, sizeof(char *));
    m->key_len = xcalloc(cap, sizeof(uint32_t));
    m->vals = xcalloc(cap, sizeof(int32_t));
}

void strmap_free(StrMap *m) {
    if (!m->keys) return;
    for (size_t i = 0; i < m->cap; i++) free(m->keys[i]);
    free(m->keys);
    free(m->key_len);
    free(m->vals);
    memset(m, 0, sizeof *m);
}

static size_t slot_of(const StrMap *m, const char *key, size_t len) {
    size_t i = (size_t)fnv1a(key, len) & (m->cap - 1);
    while (m->keys[i] && !(m->key_len[i] == len && memcmp(m->keys[i], key, len) == 0)) i = (i + 1) & (m->cap - 1);
    return i;
}

static void grow(StrMap *m) {
    StrMap bigger;
    strmap_init(&bigger, m->cap);
    for (size_t i = 0; i < m->cap; i++)
        if (m->keys[i]) {
            size_t j = slot_of(&bigger, m->keys[i], m->key_len[i]);
            bigger.keys[j] = m->keys[i];
            bigger.key_len[j] = m->key_len[i];
            bigger.vals[j] = m->vals[i];
            bigger.count++;
        }
    free(m->keys);
    free(m->key_len);
    free(m->vals);
    *m = bigger;
}

void strmap_put(StrMap *m, const char *key, size_t len, int32_t val) {
    if ((m->count + 1) * 2 > m->cap) grow(m);
    size_t i = slot_of(m, key, len);
    if (!m->keys[i]) {
        m->keys[i] = xmalloc(len + 1);
        memcpy(m->keys[i], key, len);
        m->keys[i][len] = 0;
        m->key_len[i] = (uint32_t)len;
        m->count++;
    }
    m->vals[i] = val;
}

int strmap_get(const StrMap *m, const char *key, size_t len, int32_t *val) {
    if (!m->cap) return 0;
    size_t i = slot_of(m, key, len);
    if (!m->keys[i]) return 0;
    *val = m->vals[i];
    return 1;
}
