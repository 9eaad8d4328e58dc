/* Exact t-SNE (van der Maaten and Hinton 2008), written here because Debian ships no C library for
 * it: O(N^2) per iteration, meant for a few thousand points (the feature maps of a report).
 *   p_j|i from a Gaussian whose bandwidth is binary-searched to the perplexity, P = (P + P^T) / 2N;
 *   q_ij = (1 + |y_i - y_j|^2)^-1 / Z;  dC/dy_i = 4 sum_j (p_ij - q_ij)(y_i - y_j)(1 + |y_i - y_j|^2)^-1
 * with early exaggeration (x12 for the first 250 iterations), momentum 0.5 then 0.8, and the
 * per-coordinate gains of the original implementation. Deterministic for a seed. */
#ifndef FORGET_TSNE_H
#define FORGET_TSNE_H

#include <stdint.h>

typedef struct {
    double perplexity; /* default 30 */
    int iters;         /* default 1000 */
    double lr;         /* default 200 */
    uint64_t seed;
} TsneOpts;

void tsne_defaults(TsneOpts *o);
/* x [n, d] -> y [n, 2]. Returns the final KL divergence. */
double tsne_run(const float *x, int n, int d, const TsneOpts *o, float *y);

#endif
