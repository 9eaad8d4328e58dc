#include "core/sort.h"

#include <stdlib.h>

#include "core/err.h"

/* Bottom-up merge sort of indices by key; `less` compares two indices. Stable because a tie takes
 * the left run's element first. */
#define DEFINE_ARGSORT(NAME, T)                                                                     \
    void NAME(const T *v, int n, int *order) {                                                      \
        for (int i = 0; i < n; i++) order[i] = i;                                                   \
        if (n < 2) return;                                                                          \
        int *tmp = xmalloc(sizeof(int) * (size_t)n), *src = order, *dst = tmp;                      \
        for (int w = 1; w < n; w *= 2) {                                                            \
            for (int lo = 0; lo < n; lo += 2 * w) {                                                 \
                int mid = lo + w < n ? lo + w : n, hi = lo + 2 * w < n ? lo + 2 * w : n;            \
                int a = lo, b = mid, k = lo;                                                        \
                while (a < mid && b < hi) dst[k++] = v[src[b]] < v[src[a]] ? src[b++] : src[a++];   \
                while (a < mid) dst[k++] = src[a++];                                                \
                while (b < hi) dst[k++] = src[b++];                                                 \
            }                                                                                       \
            int *t = src;                                                                           \
            src = dst;                                                                              \
            dst = t;                                                                                \
        }                                                                                           \
        if (src != order)                                                                           \
            for (int i = 0; i < n; i++) order[i] = src[i];                                          \
        free(tmp);                                                                                  \
    }

DEFINE_ARGSORT(argsort_f64, double)
DEFINE_ARGSORT(argsort_f32, float)
