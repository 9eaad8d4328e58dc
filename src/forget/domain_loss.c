/* The Domain Disentangling Loss's two parts; the header gives the formulas. */
#include "forget/domain_loss.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "core/err.h"
#include "core/ops.h"
#include "core/sort.h"

double domain_ce_grad(const float *f, int N, int E, const float *W, const float *b, int D, const int32_t *dom,
                      float *df, float *dW, float *db) {
    float *z = xalloc_floats((size_t)D);
    double loss = 0;
    for (int i = 0; i < N; i++) {
        const float *x = f + (size_t)i * E;
        float mx = -INFINITY;
        for (int d = 0; d < D; d++) {
            double s = b ? b[d] : 0;
            for (int k = 0; k < E; k++) s += (double)W[(size_t)d * E + k] * x[k];
            z[d] = (float)s;
            mx = fmaxf(mx, z[d]);
        }
        double se = 0;
        for (int d = 0; d < D; d++) se += exp((double)z[d] - mx);
        loss += -((double)z[dom[i]] - mx - log(se));
        for (int d = 0; d < D; d++) { /* dL/dz = (softmax - onehot) / N */
            const double g = (exp((double)z[d] - mx) / se - (d == dom[i])) / N;
            if (db) db[d] += (float)g;
            for (int k = 0; k < E; k++) {
                if (dW) dW[(size_t)d * E + k] += (float)(g * x[k]);
                if (df) df[(size_t)i * E + k] += (float)(g * W[(size_t)d * E + k]);
            }
        }
    }
    free(z);
    return N ? loss / N : 0;
}

static double sqdist(const float *a, const float *b, int E) {
    double s = 0;
    for (int k = 0; k < E; k++) s += ((double)a[k] - b[k]) * ((double)a[k] - b[k]);
    return s;
}

double mmd_median_scale(const float *f, int N, int E) {
    const long n = (long)N * (N - 1) / 2;
    if (n <= 0) return 1;
    double *d = xmalloc(sizeof(double) * (size_t)n);
    long k = 0;
    for (int i = 0; i < N; i++)
        for (int j = i + 1; j < N; j++) d[k++] = sqdist(f + (size_t)i * E, f + (size_t)j * E, E);
    int *idx = xmalloc(sizeof(int) * (size_t)n);
    argsort_f64(d, (int)n, idx);
    const double med = d[idx[n / 2]];
    free(d), free(idx);
    return med > 1e-12 ? med : 1;
}

/* k(x, y) and dk/d(|x - y|^2). */
static double kernel(double r2, double scale, double *dk) {
    double k = 0, g = 0;
    for (int s = -2; s <= 2; s++) {
        const double bw = scale * ldexp(1.0, s), e = exp(-r2 / bw);
        k += e;
        g -= e / bw;
    }
    *dk = g;
    return k;
}

double mmd2_grad(const float *f, int N, int E, const int32_t *dom, int D, double scale, float *df) {
    if (scale <= 0) scale = mmd_median_scale(f, N, E);
    int *cnt = xcalloc((size_t)D, sizeof(int));
    for (int i = 0; i < N; i++) cnt[dom[i]]++;
    int present = 0;
    for (int d = 0; d < D; d++) present += cnt[d] > 0;
    if (present < 2) {
        free(cnt);
        return 0;
    }
    const double pairs = present * (present - 1) / 2.0;
    /* MMD^2(a, b) sums k(x_i, x_j) with weight w_ij: 1/n_a^2 within a, 1/n_b^2 within b, -2/(n_a n_b)
     * across. Over all pairs (a, b): within-a terms appear once per other present domain. */
    double total = 0;
    for (int i = 0; i < N; i++)
        for (int j = 0; j < N; j++) {
            const int a = dom[i], b = dom[j];
            double w;
            if (a == b) w = (present - 1) / ((double)cnt[a] * cnt[a]);
            else w = -1.0 / ((double)cnt[a] * cnt[b]); /* (i, j) and (j, i) make the -2 */
            w /= pairs;
            const float *x = f + (size_t)i * E, *y = f + (size_t)j * E;
            double dk;
            total += w * kernel(sqdist(x, y, E), scale, &dk);
            if (df && i != j) /* d|x - y|^2 / dx = 2 (x - y), and the same negated for y */
                for (int k = 0; k < E; k++) {
                    const double g = w * dk * 2.0 * ((double)x[k] - y[k]);
                    df[(size_t)i * E + k] += (float)g;
                    df[(size_t)j * E + k] -= (float)g;
                }
        }
    free(cnt);
    return total;
}
