#include "eval/gen_metrics.h"

#include <lapacke.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

void feature_stats(const float *x, int n, int D, double *mean, double *cov) {
    memset(mean, 0, sizeof(double) * (size_t)D);
    memset(cov, 0, sizeof(double) * (size_t)D * D);
    for (int i = 0; i < n; i++)
        for (int d = 0; d < D; d++) mean[d] += x[(size_t)i * D + d];
    for (int d = 0; d < D; d++) mean[d] /= n;
    double *c = xmalloc(sizeof(double) * (size_t)D);
    for (int i = 0; i < n; i++) {
        for (int d = 0; d < D; d++) c[d] = x[(size_t)i * D + d] - mean[d];
        for (int a = 0; a < D; a++)
            for (int b = a; b < D; b++) cov[(size_t)a * D + b] += c[a] * c[b];
    }
    for (int a = 0; a < D; a++)
        for (int b = a; b < D; b++) cov[(size_t)b * D + a] = cov[(size_t)a * D + b] /= (n > 1 ? n - 1 : 1);
    free(c);
}

/* V diag(f(w)) V^T of a symmetric matrix, f = sqrt of the clipped eigenvalues. */
static int sym_sqrt(const double *S, int D, double *out, Err *e) {
    double *V = xmalloc(sizeof(double) * (size_t)D * D), *w = xmalloc(sizeof(double) * (size_t)D);
    memcpy(V, S, sizeof(double) * (size_t)D * D);
    const int info = LAPACKE_dsyevd(LAPACK_ROW_MAJOR, 'V', 'U', D, V, D, w);
    if (info == 0) {
        memset(out, 0, sizeof(double) * (size_t)D * D);
        for (int k = 0; k < D; k++) {
            const double s = sqrt(w[k] > 0 ? w[k] : 0);
            for (int a = 0; a < D; a++)
                for (int b = 0; b < D; b++) out[(size_t)a * D + b] += V[(size_t)a * D + k] * s * V[(size_t)b * D + k];
        }
    }
    free(V), free(w);
    return info == 0 ? 0 : err_set(e, "frechet distance: LAPACK dsyevd failed (info %d)", info);
}

int frechet_distance(const double *m1, const double *s1, const double *m2, const double *s2, int D, double *out,
                     Err *e) {
    double *A = xmalloc(sizeof(double) * (size_t)D * D), *T = xcalloc((size_t)D * D, sizeof(double));
    double *M = xcalloc((size_t)D * D, sizeof(double));
    int rc = sym_sqrt(s1, D, A, e);
    if (!rc) { /* M = A S2 A */
        for (int a = 0; a < D; a++)
            for (int k = 0; k < D; k++) {
                const double v = A[(size_t)a * D + k];
                for (int b = 0; b < D; b++) T[(size_t)a * D + b] += v * s2[(size_t)k * D + b];
            }
        for (int a = 0; a < D; a++)
            for (int k = 0; k < D; k++) {
                const double v = T[(size_t)a * D + k];
                for (int b = 0; b < D; b++) M[(size_t)a * D + b] += v * A[(size_t)k * D + b];
            }
        for (int a = 0; a < D; a++) /* exact symmetry for the eigensolver */
            for (int b = a + 1; b < D; b++) M[(size_t)a * D + b] = M[(size_t)b * D + a] = 0.5 * (M[(size_t)a * D + b] + M[(size_t)b * D + a]);
        rc = sym_sqrt(M, D, T, e);
    }
    if (!rc) {
        double d2 = 0, tr = 0;
        for (int d = 0; d < D; d++) {
            d2 += (m1[d] - m2[d]) * (m1[d] - m2[d]);
            tr += s1[(size_t)d * D + d] + s2[(size_t)d * D + d] - 2 * T[(size_t)d * D + d];
        }
        *out = d2 + tr;
    }
    free(A), free(T), free(M);
    return rc;
}

double row_cosine(const float *a, const float *b, long D) {
    double dot = 0, aa = 0, bb = 0;
    for (long d = 0; d < D; d++) {
        const double x = a[d], y = b[d];
        dot += x * y, aa += x * x, bb += y * y;
    }
    return aa > 0 && bb > 0 ? dot / sqrt(aa * bb) : 0;
}

double worst_row_cosine(const float *a, const float *b, int rows, long D) {
    double worst = 1;
    for (int i = 0; i < rows; i++) worst = fmin(worst, row_cosine(a + (size_t)i * D, b + (size_t)i * D, D));
    return worst;
}

double clip_score(const float *img, const float *txt, int n, int D) {
    double s = 0;
    for (int i = 0; i < n; i++) {
        const double c = row_cosine(img + (size_t)i * D, txt + (size_t)i * D, D);
        s += 100 * (c > 0 ? c : 0);
    }
    return n ? s / n : 0;
}
