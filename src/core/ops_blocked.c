/* Ops on oneDNN's blocked activation layout nChw16c ([B][C/16][H*W][16], C a multiple of 16),
 * the layout its fastest convolution kernels read and write (src/core/conv_dnnl.c): a network
 * that stays in it pays no reorder between layers. BatchNorm, global average pooling and the
 * conversions to and from NCHW; elementwise ops (ReLU, add) are layout-free. Written by hand:
 * oneDNN's own batch normalisation cannot accumulate into the caller's gradients, and these
 * are memory-bound loops the compiler vectorises along the 16 lanes. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "core/err.h"
#include "core/fastmath.h"
#include "core/ops.h"

enum { LANES = 16 };

HOT void nchw_to_blocked16(float *out, const float *in, int B, int C, long HW) {
    const int CB = C / LANES;
#pragma omp parallel for collapse(2) if ((long)B * C * HW > 65536)
    for (int n = 0; n < B; n++)
        for (int cb = 0; cb < CB; cb++)
            for (long p = 0; p < HW; p++)
                for (int j = 0; j < LANES; j++)
                    out[(((size_t)n * CB + cb) * HW + p) * LANES + j] = in[((size_t)n * C + cb * LANES + j) * HW + p];
}

HOT void blocked16_to_nchw(float *out, const float *in, int B, int C, long HW) {
    const int CB = C / LANES;
#pragma omp parallel for collapse(2) if ((long)B * C * HW > 65536)
    for (int n = 0; n < B; n++)
        for (int cb = 0; cb < CB; cb++)
            for (long p = 0; p < HW; p++)
                for (int j = 0; j < LANES; j++)
                    out[((size_t)n * C + cb * LANES + j) * HW + p] = in[(((size_t)n * CB + cb) * HW + p) * LANES + j];
}

/* Both passes of BatchNorm parallelise over (image, channel block): per-image partial sums in
 * double, then a serial reduction over images (B x C values), so a net of one channel block
 * still uses every thread. */
HOT static void partial_sums(const float *x, const float *y, int B, int CB, long HW, const float *shift, const float *rs,
                         double *s1, double *s2) {
    /* x only: s1 = sum (x - shift), s2 = sum (x - shift)^2; with y: s1 = sum y, s2 = sum y * (x - shift) * rs */
#pragma omp parallel for collapse(2) if ((long)B * CB * HW * LANES > 65536)
    for (int n = 0; n < B; n++)
        for (int cb = 0; cb < CB; cb++) {
            double a[LANES] = {0}, q[LANES] = {0};
            const size_t base = ((size_t)n * CB + cb) * HW * LANES;
            const float *sh = shift + cb * LANES;
            if (!y) {
                for (long p = 0; p < HW; p++)
                    for (int j = 0; j < LANES; j++) {
                        const double d = x[base + p * LANES + j] - sh[j];
                        a[j] += d, q[j] += d * d;
                    }
            } else {
                const float *r = rs + cb * LANES;
                for (long p = 0; p < HW; p++)
                    for (int j = 0; j < LANES; j++) {
                        const float g = y[base + p * LANES + j];
                        a[j] += g, q[j] += (double)g * ((x[base + p * LANES + j] - sh[j]) * r[j]);
                    }
            }
            for (int j = 0; j < LANES; j++) {
                s1[((size_t)n * CB + cb) * LANES + j] = a[j];
                s2[((size_t)n * CB + cb) * LANES + j] = q[j];
            }
        }
    for (int n = 1; n < B; n++)
        for (long k = 0; k < (long)CB * LANES; k++) s1[k] += s1[(size_t)n * CB * LANES + k], s2[k] += s2[(size_t)n * CB * LANES + k];
}

HOT void batchnorm16_forward(float *out, float *mean, float *rstd, const float *in, const float *w, const float *b,
                         float *run_mean, float *run_var, int B, int C, long HW, float eps, float momentum,
                         int training) {
    const int CB = C / LANES;
    if (training) {
        double *s1 = xmalloc(sizeof(double) * (size_t)B * C), *s2 = xmalloc(sizeof(double) * (size_t)B * C);
        float *shift = xalloc_floats((size_t)C);
        for (int c = 0; c < C; c++) shift[c] = in[(size_t)(c / LANES) * HW * LANES + c % LANES];
        partial_sums(in, NULL, B, CB, HW, shift, NULL, s1, s2);
        const double cnt = (double)B * HW;
        for (int c = 0; c < C; c++) {
            const double m = s1[c] / cnt;
            double v = s2[c] / cnt - m * m;
            if (v < 0) v = 0;
            mean[c] = (float)(shift[c] + m), rstd[c] = (float)(1.0 / sqrt(v + eps));
            if (run_mean && run_var) { /* PyTorch: the running variance is the unbiased one */
                run_mean[c] = (1 - momentum) * run_mean[c] + momentum * mean[c];
                run_var[c] = (float)((1 - momentum) * run_var[c] + momentum * (cnt > 1 ? v * cnt / (cnt - 1) : v));
            }
        }
        free(s1), free(s2), free(shift);
    } else {
        for (int c = 0; c < C; c++) mean[c] = run_mean[c], rstd[c] = 1.0f / sqrtf(run_var[c] + eps);
    }
    float *sc = xalloc_floats((size_t)C), *sh = xalloc_floats((size_t)C);
    for (int c = 0; c < C; c++) {
        sc[c] = rstd[c] * (w ? w[c] : 1.0f);
        sh[c] = (b ? b[c] : 0.0f) - mean[c] * sc[c];
    }
#pragma omp parallel for collapse(2) if ((long)B * C * HW > 65536)
    for (int n = 0; n < B; n++)
        for (int cb = 0; cb < CB; cb++) {
            const size_t base = ((size_t)n * CB + cb) * HW * LANES;
            const float *k = sc + cb * LANES, *d = sh + cb * LANES;
            for (long p = 0; p < HW; p++)
                for (int j = 0; j < LANES; j++) out[base + p * LANES + j] = in[base + p * LANES + j] * k[j] + d[j];
        }
    free(sc), free(sh);
}

HOT void batchnorm16_backward(float *din, float *dw, float *db, const float *dout, const float *in, const float *w,
                          const float *mean, const float *rstd, int B, int C, long HW, int training) {
    const int CB = C / LANES;
    double *s1 = xmalloc(sizeof(double) * (size_t)B * C), *s2 = xmalloc(sizeof(double) * (size_t)B * C);
    partial_sums(in, dout, B, CB, HW, mean, rstd, s1, s2); /* s1 = sum dout, s2 = sum dout * xhat */
    for (int c = 0; c < C; c++) {
        if (dw) dw[c] += (float)s2[c];
        if (db) db[c] += (float)s1[c];
    }
    if (din) {
        const double cnt = (double)B * HW;
        float *k0 = xalloc_floats((size_t)C), *k1 = xalloc_floats((size_t)C), *k2 = xalloc_floats((size_t)C);
        for (int c = 0; c < C; c++) { /* dx = k0 * dout - k1 - k2 * xhat */
            const float wc = w ? w[c] : 1.0f;
            k0[c] = rstd[c] * wc;
            k1[c] = training ? (float)(rstd[c] * wc * s1[c] / cnt) : 0.0f;
            k2[c] = training ? (float)(rstd[c] * wc * s2[c] / cnt) : 0.0f;
        }
#pragma omp parallel for collapse(2) if ((long)B * C * HW > 65536)
        for (int n = 0; n < B; n++)
            for (int cb = 0; cb < CB; cb++) {
                const size_t base = ((size_t)n * CB + cb) * HW * LANES;
                const float *a0 = k0 + cb * LANES, *a1 = k1 + cb * LANES, *a2 = k2 + cb * LANES;
                const float *m = mean + cb * LANES, *r = rstd + cb * LANES;
                for (long p = 0; p < HW; p++)
                    for (int j = 0; j < LANES; j++) {
                        const size_t k = base + p * LANES + j;
                        din[k] += a0[j] * dout[k] - a1[j] - a2[j] * ((in[k] - m[j]) * r[j]);
                    }
            }
        free(k0), free(k1), free(k2);
    }
    free(s1), free(s2);
}

HOT void avgpool16_global_forward(float *out, const float *in, int B, int C, long HW) {
    const int CB = C / LANES;
    for (int n = 0; n < B; n++)
        for (int cb = 0; cb < CB; cb++) {
            float acc[LANES] = {0};
            const float *x = in + ((size_t)n * CB + cb) * HW * LANES;
            for (long p = 0; p < HW; p++)
                for (int j = 0; j < LANES; j++) acc[j] += x[p * LANES + j];
            for (int j = 0; j < LANES; j++) out[(size_t)n * C + cb * LANES + j] = acc[j] / (float)HW;
        }
}

HOT void avgpool16_global_backward(float *din, const float *dout, int B, int C, long HW) {
    const int CB = C / LANES;
    for (int n = 0; n < B; n++)
        for (int cb = 0; cb < CB; cb++) {
            float *d = din + ((size_t)n * CB + cb) * HW * LANES;
            for (long p = 0; p < HW; p++)
                for (int j = 0; j < LANES; j++) d[p * LANES + j] += dout[(size_t)n * C + cb * LANES + j] / (float)HW;
        }
}
