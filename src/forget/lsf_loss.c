#include "forget/lsf_loss.h"

#include <math.h>
#include <stdlib.h>

#include "core/err.h"

/* log-softmax of one row of K values into out; returns nothing, out[k] = v[k] - logsumexp(v). */
static void log_softmax_row(const float *v, int K, double *out) {
    double mx = v[0];
    for (int k = 1; k < K; k++) mx = v[k] > mx ? v[k] : mx;
    double s = 0;
    for (int k = 0; k < K; k++) s += exp(v[k] - mx);
    const double lse = mx + log(s);
    for (int k = 0; k < K; k++) out[k] = v[k] - lse;
}

float am_softmax_loss(const float *cos, const int32_t *y, int N, int K, float s, float m, float weight, float *dcos) {
    float *z = xalloc_floats((size_t)K);
    double *ls = xmalloc(sizeof(double) * (size_t)K), loss = 0;
    for (int i = 0; i < N; i++) {
        for (int k = 0; k < K; k++) z[k] = s * (cos[(size_t)i * K + k] - (k == y[i] ? m : 0.0f));
        log_softmax_row(z, K, ls);
        loss -= ls[y[i]];
        if (dcos) /* d/dz = softmax - onehot; dz/dcos = s */
            for (int k = 0; k < K; k++)
                dcos[(size_t)i * K + k] += (float)(weight * s * (exp(ls[k]) - (k == y[i])) / N);
    }
    free(z), free(ls);
    return (float)(weight * loss / N);
}

/* One KL(softmax(t / T) || softmax(q / T)) term of a row, masked inputs already applied to t and q;
 * returns the KL and adds d/dq (before the mask) scaled into dq. */
static double kl_row(const float *t, const float *q, int K, float T, double *lt, double *lq, float *tmp) {
    for (int k = 0; k < K; k++) tmp[k] = t[k] / T;
    log_softmax_row(tmp, K, lt);
    for (int k = 0; k < K; k++) tmp[k] = q[k] / T;
    log_softmax_row(tmp, K, lq);
    double kl = 0;
    for (int k = 0; k < K; k++) kl += exp(lt[k]) * (lt[k] - lq[k]);
    return kl;
}

float selective_lwf_loss(const float *cos, const float *cos_old, const uint8_t *keep, int N, int K, float T, float u,
                         float weight, float *dcos) {
    float *t = xalloc_floats((size_t)K), *q = xalloc_floats((size_t)K), *tmp = xalloc_floats((size_t)K);
    double *lt = xmalloc(sizeof(double) * (size_t)K), *lq = xmalloc(sizeof(double) * (size_t)K), loss = 0;
    if (u < 0) u = 1.0f / (float)K;
    for (int i = 0; i < N; i++) {
        const float *z = cos + (size_t)i * K, *zo = cos_old + (size_t)i * K;
        for (int part = 0; part < 2; part++) { /* 0: kept classes follow the old head; 1: deleted ones the fixed target */
            for (int k = 0; k < K; k++) {
                const int on = part == 0 ? keep[k] : !keep[k];
                t[k] = on ? (part == 0 ? zo[k] : u) : 0.0f;
                q[k] = on ? z[k] : 0.0f;
            }
            loss += kl_row(t, q, K, T, lt, lq, tmp);
            if (dcos) /* d KL / d q_k = (softmax(q/T)_k - softmax(t/T)_k) / T, only where the mask lets z through */
                for (int k = 0; k < K; k++) {
                    const int on = part == 0 ? keep[k] : !keep[k];
                    if (on) dcos[(size_t)i * K + k] += (float)(weight * (exp(lq[k]) - exp(lt[k])) / T / N);
                }
        }
    }
    free(t), free(q), free(tmp), free(lt), free(lq);
    return (float)(weight * loss / N);
}

float ewc_loss(const float *theta, const float *anchor, const float *fisher, long n, float lambda, float *grad) {
    double s = 0;
#pragma omp parallel for reduction(+ : s) if (n > 65536)
    for (long i = 0; i < n; i++) {
        const float d = theta[i] - anchor[i];
        s += (double)fisher[i] * d * d;
        if (grad) grad[i] += lambda * fisher[i] * d;
    }
    return (float)(0.5 * lambda * s);
}
