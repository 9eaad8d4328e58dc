#include "core/ops.h"

#include <math.h>
#include <omp.h>
#include <stdlib.h>
#include <string.h>

#include "core/err.h"
#include "core/fastmath.h"
#include "core/gemm.h"


/* ---------------------------------------------------------------- linear */

void linear_forward(float *out, const float *in, const float *W, const float *b, int N, int IC, int OC) {
    if (b) {
#pragma omp parallel for if ((long)N * OC > 65536)
        for (int i = 0; i < N; i++) memcpy(out + (size_t)i * OC, b, (size_t)OC * sizeof(float));
    }
    sgemm(false, true, N, OC, IC, 1.0f, in, IC, W, IC, b ? 1.0f : 0.0f, out, OC);
}

/* Rows added into one row, contiguously: each thread sums its own range of rows into its own partial
 * row, then the partials are added in thread order (the same order every run: deterministic). */
HOT static void add_rows(float *acc, const float *x, long r0, long r1, int C) {
    for (long i = r0; i < r1; i++)
        for (int c = 0; c < C; c++) acc[c] += x[(size_t)i * C + c];
}

static void column_sums(float *db, const float *dout, int N, int C) {
    const int nt = (long)N * C > 65536 ? omp_get_max_threads() : 1;
    float *part = xcalloc((size_t)nt * C, sizeof(float));
#pragma omp parallel num_threads(nt)
    {
        const int t = omp_get_thread_num(), n = omp_get_num_threads();
        add_rows(part + (size_t)t * C, dout, (long)N * t / n, (long)N * (t + 1) / n, C);
    }
    for (int t = 0; t < nt; t++) add_rows(db, part + (size_t)t * C, 0, 1, C);
    free(part);
}

void linear_backward(float *din, float *dW, float *db, const float *dout, const float *in, const float *W,
                     int N, int IC, int OC) {
    if (din) sgemm(false, false, N, IC, OC, 1.0f, dout, OC, W, IC, 1.0f, din, IC);
    if (dW) sgemm(true, false, OC, IC, N, 1.0f, dout, OC, in, IC, 1.0f, dW, IC);
    if (db) column_sums(db, dout, N, OC);
}

/* ------------------------------------------------------------- embedding */

void embedding_forward(float *out, const int32_t *ids, const float *table, int T, int C) {
    for (int t = 0; t < T; t++) memcpy(out + (size_t)t * C, table + (size_t)ids[t] * C, (size_t)C * sizeof(float));
}

void embedding_backward(float *dtable, const float *dout, const int32_t *ids, int T, int C) {
    for (int t = 0; t < T; t++) {
        float *row = dtable + (size_t)ids[t] * C;
        const float *g = dout + (size_t)t * C;
        for (int c = 0; c < C; c++) row[c] += g[c];
    }
}

/* ------------------------------------------------------------- layernorm */

HOT void layernorm_forward(float *out, float *mean, float *rstd, const float *in, const float *w, const float *b,
                           int N, int C, float eps) {
#pragma omp parallel for if ((long)N * C > 65536)
    for (int i = 0; i < N; i++) {
        const float *x = in + (size_t)i * C;
        float *y = out + (size_t)i * C;
        float m = 0.0f;
#pragma omp simd reduction(+ : m)
        for (int c = 0; c < C; c++) m += x[c];
        m /= (float)C;
        float v = 0.0f;
#pragma omp simd reduction(+ : v)
        for (int c = 0; c < C; c++) v += (x[c] - m) * (x[c] - m);
        float r = 1.0f / sqrtf(v / (float)C + eps);
#pragma omp simd
        for (int c = 0; c < C; c++) y[c] = (x[c] - m) * r * w[c] + b[c];
        if (mean) mean[i] = m;
        if (rstd) rstd[i] = r;
    }
}

HOT void layernorm_backward(float *din, float *dw, float *db, const float *dout, const float *in, const float *w,
                        const float *mean, const float *rstd, int N, int C) {
    const int nt = omp_get_max_threads();
    /* dw/db are sums over rows: each thread sums its rows, then the partial sums are added in thread order
     * (a fixed order, so results do not depend on scheduling). */
    float *part = (dw || db) ? xcalloc((size_t)nt * 2 * C, sizeof(float)) : NULL;
#pragma omp parallel num_threads(nt) if ((long)N * C > 16384)
    {
        const int tid = omp_get_thread_num();
        float *pw = part ? part + (size_t)tid * 2 * C : NULL, *pb = pw ? pw + C : NULL;
#pragma omp for schedule(static)
        for (int i = 0; i < N; i++) {
            const float *x = in + (size_t)i * C, *dy = dout + (size_t)i * C;
            const float m = mean[i], r = rstd[i];
            float sum_g = 0.0f, sum_gx = 0.0f; /* over dxhat and dxhat*xhat */
            for (int c = 0; c < C; c++) {
                float xhat = (x[c] - m) * r, g = dy[c] * w[c];
                sum_g += g;
                sum_gx += g * xhat;
                if (pw) pw[c] += dy[c] * xhat;
                if (pb) pb[c] += dy[c];
            }
            sum_g /= (float)C;
            sum_gx /= (float)C;
            if (din) {
                float *dx = din + (size_t)i * C;
                for (int c = 0; c < C; c++) {
                    float xhat = (x[c] - m) * r;
                    dx[c] += r * (dy[c] * w[c] - sum_g - xhat * sum_gx);
                }
            }
        }
    }
    if (part)
        for (int t = 0; t < nt; t++)
            for (int c = 0; c < C; c++) {
                if (dw) dw[c] += part[(size_t)t * 2 * C + c];
                if (db) db[c] += part[(size_t)t * 2 * C + C + c];
            }
    free(part);
}

/* ------------------------------------------------------------ activations */

HOT void quickgelu_forward(float *out, const float *in, long n) {
#pragma omp parallel for simd if (n > 65536)
    for (long i = 0; i < n; i++) out[i] = in[i] / (1.0f + fast_expf(-1.702f * in[i]));
}

HOT void quickgelu_backward(float *din, const float *dout, const float *in, long n) {
#pragma omp parallel for simd if (n > 65536)
    for (long i = 0; i < n; i++) {
        float s = 1.0f / (1.0f + fast_expf(-1.702f * in[i]));
        din[i] += dout[i] * (s + 1.702f * in[i] * s * (1.0f - s));
    }
}

HOT void gelu_forward(float *out, const float *in, long n) {
#pragma omp parallel for simd if (n > 65536)
    for (long i = 0; i < n; i++) out[i] = 0.5f * in[i] * (1.0f + erff(in[i] * (float)M_SQRT1_2));
}

void gelu_backward(float *din, const float *dout, const float *in, long n) {
    const float inv_sqrt_2pi = 0.3989422804014327f;
#pragma omp parallel for simd if (n > 65536)
    for (long i = 0; i < n; i++) {
        float x = in[i];
        float cdf = 0.5f * (1.0f + erff(x * (float)M_SQRT1_2));
        din[i] += dout[i] * (cdf + x * inv_sqrt_2pi * expf(-0.5f * x * x));
    }
}

/* ------------------------------------------------------ softmax and losses */

HOT void softmax_forward(float *out, const float *in, int N, int K) {
#pragma omp parallel for if ((long)N * K > 65536)
    for (int i = 0; i < N; i++) {
        const float *x = in + (size_t)i * K;
        float *y = out + (size_t)i * K;
        float mx = -INFINITY, sum = 0.0f;
        for (int k = 0; k < K; k++) mx = fmaxf(mx, x[k]);
        for (int k = 0; k < K; k++) sum += (y[k] = expf(x[k] - mx));
        for (int k = 0; k < K; k++) y[k] /= sum;
    }
}

HOT void softmax_backward(float *din, const float *dout, const float *out, int N, int K) {
    for (int i = 0; i < N; i++) {
        const float *y = out + (size_t)i * K, *dy = dout + (size_t)i * K;
        float s = 0.0f;
        for (int k = 0; k < K; k++) s += y[k] * dy[k];
        for (int k = 0; k < K; k++) din[(size_t)i * K + k] += y[k] * (dy[k] - s);
    }
}

float cross_entropy_forward(float *probs, const float *logits, const int32_t *targets, int N, int K) {
    softmax_forward(probs, logits, N, K);
    double loss = 0.0;
#pragma omp parallel for reduction(+ : loss) if ((long)N * K > 65536)
    for (int i = 0; i < N; i++) {
        /* log-softmax from the logits directly: exact even when a probability underflows */
        const float *x = logits + (size_t)i * K;
        float mx = -INFINITY;
        for (int k = 0; k < K; k++) mx = fmaxf(mx, x[k]);
        double lse = 0.0;
        for (int k = 0; k < K; k++) lse += exp((double)(x[k] - mx));
        loss += log(lse) + mx - x[targets[i]];
    }
    return (float)(loss / N);
}

void cross_entropy_backward(float *dlogits, const float *probs, const int32_t *targets, int N, int K, float dloss) {
    const float g = dloss / (float)N;
#pragma omp parallel for if ((long)N * K > 65536)
    for (int i = 0; i < N; i++)
        for (int k = 0; k < K; k++)
            dlogits[(size_t)i * K + k] += g * (probs[(size_t)i * K + k] - (k == targets[i] ? 1.0f : 0.0f));
}

void l2norm_forward(float *out, float *norms, const float *in, int N, int C) {
    for (int i = 0; i < N; i++) {
        const float *x = in + (size_t)i * C;
        float s = 0.0f;
        for (int c = 0; c < C; c++) s += x[c] * x[c];
        float nrm = sqrtf(s);
        if (norms) norms[i] = nrm;
        for (int c = 0; c < C; c++) out[(size_t)i * C + c] = x[c] / nrm;
    }
}

void l2norm_backward(float *din, const float *dout, const float *out, const float *norms, int N, int C) {
    for (int i = 0; i < N; i++) {
        const float *y = out + (size_t)i * C, *dy = dout + (size_t)i * C;
        float yd = 0.0f;
        for (int c = 0; c < C; c++) yd += y[c] * dy[c];
        for (int c = 0; c < C; c++) din[(size_t)i * C + c] += (dy[c] - y[c] * yd) / norms[i];
    }
}

/* -------------------------------------------------------------- elementwise */

HOT void add_forward(float *out, const float *a, const float *b, long n) {
#pragma omp parallel for simd if (n > 65536)
    for (long i = 0; i < n; i++) out[i] = a[i] + b[i];
}

HOT void add_inplace(float *acc, const float *x, long n) {
#pragma omp parallel for simd if (n > 65536)
    for (long i = 0; i < n; i++) acc[i] += x[i];
}

HOT void scale_inplace(float *x, float s, long n) {
    for (long i = 0; i < n; i++) x[i] *= s;
}
