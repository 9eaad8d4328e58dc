/* String -> int map (open addressing, FNV-1a). Keys are byte strings with an
 * explicit length and are copied into the map, which owns them. */
#ifndef FORGET_STRMAP_H
#define FORGET_STRMAP_H

#include <stddef.h>
#include <stdint.h>

typedef struct {
    char **keys;
    uint32_t *key_len;
    int32_t *vals;
    size_t cap, count;
} StrMap;

void strmap_init(StrMap *m, size_t expected);
void strmap_free(StrMap *m);
/* Inserts or overwrites. */
void strmap_put(StrMap *m, const char *key, size_t len, int32_t val);
/* Returns 1 and sets *val when present. */
int strmap_get(const StrMap *m, const char *key, size_t len, int32_t *val);

#endif
