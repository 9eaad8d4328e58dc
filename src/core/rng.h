/* Deterministic random numbers: xoshiro256** seeded through splitmix64. Every
 * random choice in forget takes an Rng the caller owns, so --seed reproduces runs. */
#ifndef FORGET_RNG_H
#define FORGET_RNG_H

#include <stddef.h>
#include <stdint.h>

typedef struct {
    uint64_t s[4];
} Rng;

void rng_seed(Rng *r, uint64_t seed);
/* A 64-bit mix of two values: the seed of a stream keyed by (seed, index). */
uint64_t rng_mix(uint64_t a, uint64_t b);
uint64_t rng_u64(Rng *r);
/* Uniform in [0, 1). */
float rng_uniform(Rng *r);
/* Standard normal (Box-Muller). */
float rng_normal(Rng *r);
/* Uniform integer in [0, n). */
uint32_t rng_below(Rng *r, uint32_t n);
void rng_fill_normal(Rng *r, float *x, long n, float mean, float std);
void rng_fill_uniform(Rng *r, float *x, long n, float lo, float hi);
/* Fisher-Yates on n elements of `size` bytes (i from n-1 down to 1 swaps with rng_below(i+1)):
 * the one shuffle every seeded order in forget uses. */
void rng_shuffle(Rng *r, void *base, long n, size_t size);
/* perm[i] = i, then shuffled. */
void rng_permutation(Rng *r, int *perm, int n);

#endif
