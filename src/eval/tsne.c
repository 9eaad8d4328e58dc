/* Exact t-SNE; written by hand: no Debian C library does it (see the header). */
#include "eval/tsne.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "core/err.h"
#include "core/rng.h"

void tsne_defaults(TsneOpts *o) { *o = (TsneOpts){.perplexity = 30, .iters = 1000, .lr = 200, .seed = 0}; }

/* Row i of the conditional P: the bandwidth beta = 1 / (2 sigma^2) binary-searched so that the
 * entropy is log(perplexity). */
static void p_row(const double *d2, int n, int i, double perp, double *row) {
    const double target = log(perp);
    double beta = 1, lo = 0, hi = INFINITY;
    for (int it = 0; it < 64; it++) {
        double sum = 0, hs = 0;
        for (int j = 0; j < n; j++) {
            row[j] = j == i ? 0 : exp(-beta * d2[(size_t)i * n + j]);
            sum += row[j];
        }
        if (sum <= 0) sum = 1e-300;
        for (int j = 0; j < n; j++) hs += beta * d2[(size_t)i * n + j] * row[j];
        const double H = log(sum) + hs / sum; /* entropy of the normalised row */
        for (int j = 0; j < n; j++) row[j] /= sum;
        if (fabs(H - target) < 1e-5) break;
        if (H > target) lo = beta, beta = isinf(hi) ? beta * 2 : (beta + hi) / 2;
        else hi = beta, beta = (beta + lo) / 2;
    }
}

double tsne_run(const float *x, int n, int d, const TsneOpts *o, float *y) {
    if (n <= 1) {
        if (n == 1) y[0] = y[1] = 0;
        return 0;
    }
    double *d2 = xmalloc(sizeof(double) * (size_t)n * n), *P = xmalloc(sizeof(double) * (size_t)n * n);
    /* squared distances, scaled so that the bandwidth search starts near its answer */
    double mean = 0;
#pragma omp parallel for reduction(+ : mean)
    for (int i = 0; i < n; i++)
        for (int j = 0; j < n; j++) {
            double s = 0;
            for (int k = 0; k < d; k++) {
                const double t = (double)x[(size_t)i * d + k] - x[(size_t)j * d + k];
                s += t * t;
            }
            d2[(size_t)i * n + j] = s;
            mean += s;
        }
    mean /= (double)n * n;
    for (size_t k = 0; k < (size_t)n * n; k++) d2[k] /= mean > 0 ? mean : 1;
    const double perp = o->perplexity < n - 1 ? o->perplexity : (n - 1) / 3.0 + 1;
#pragma omp parallel for
    for (int i = 0; i < n; i++) p_row(d2, n, i, perp, P + (size_t)i * n);
    for (int i = 0; i < n; i++) /* symmetrise */
        for (int j = i + 1; j < n; j++) {
            const double v = (P[(size_t)i * n + j] + P[(size_t)j * n + i]) / (2.0 * n);
            P[(size_t)i * n + j] = P[(size_t)j * n + i] = v > 1e-12 ? v : 1e-12;
        }
    for (int i = 0; i < n; i++) P[(size_t)i * n + i] = 0;
    double *Y = xmalloc(sizeof(double) * 2 * (size_t)n), *dY = xmalloc(sizeof(double) * 2 * (size_t)n);
    double *upd = xcalloc(2 * (size_t)n, sizeof(double)), *gain = xmalloc(sizeof(double) * 2 * (size_t)n);
    double *num = d2; /* reused: (1 + |y_i - y_j|^2)^-1 */
    Rng r;
    rng_seed(&r, o->seed ^ 0x75e);
    for (int k = 0; k < 2 * n; k++) Y[k] = 1e-4 * rng_normal(&r), gain[k] = 1;
    double kl = 0;
    for (int it = 0; it < o->iters; it++) {
        const double exag = it < 250 ? 12 : 1, mom = it < 250 ? 0.5 : 0.8;
        double Z = 0;
#pragma omp parallel for reduction(+ : Z)
        for (int i = 0; i < n; i++)
            for (int j = 0; j < n; j++) {
                const double a = Y[2 * i] - Y[2 * j], b = Y[2 * i + 1] - Y[2 * j + 1];
                const double q = i == j ? 0 : 1.0 / (1.0 + a * a + b * b);
                num[(size_t)i * n + j] = q;
                Z += q;
            }
#pragma omp parallel for
        for (int i = 0; i < n; i++) {
            double g0 = 0, g1 = 0;
            for (int j = 0; j < n; j++) {
                const double q = num[(size_t)i * n + j], w = (exag * P[(size_t)i * n + j] - q / Z) * q;
                g0 += w * (Y[2 * i] - Y[2 * j]);
                g1 += w * (Y[2 * i + 1] - Y[2 * j + 1]);
            }
            dY[2 * i] = 4 * g0, dY[2 * i + 1] = 4 * g1;
        }
        for (int k = 0; k < 2 * n; k++) { /* gains grow where the step keeps its direction */
            gain[k] = (dY[k] > 0) != (upd[k] > 0) ? gain[k] + 0.2 : gain[k] * 0.8;
            if (gain[k] < 0.01) gain[k] = 0.01;
            upd[k] = mom * upd[k] - o->lr * gain[k] * dY[k];
            Y[k] += upd[k];
        }
        double m0 = 0, m1 = 0; /* keep the map centred */
        for (int i = 0; i < n; i++) m0 += Y[2 * i], m1 += Y[2 * i + 1];
        for (int i = 0; i < n; i++) Y[2 * i] -= m0 / n, Y[2 * i + 1] -= m1 / n;
        if (it == o->iters - 1) {
            kl = 0;
            for (size_t k = 0; k < (size_t)n * n; k++)
                if (P[k] > 0 && num[k] > 0) kl += P[k] * log(P[k] / (num[k] / Z));
        }
    }
    for (int k = 0; k < 2 * n; k++) y[k] = (float)Y[k];
    free(d2), free(P), free(Y), free(dY), free(upd), free(gain);
    return kl;
}
