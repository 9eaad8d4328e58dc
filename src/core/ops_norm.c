/* Normalisations beyond LayerNorm: GroupNorm and BatchNorm on NCHW maps, RMSNorm on rows.
 * Each forward saves its statistics for the backward; backwards accumulate, NULL = not needed. */
#include <math.h>
#include <stdlib.h>

#include "core/err.h"
#include "core/fastmath.h"
#include "core/ops.h"

/* One set of n values spread as `chunks` runs of `run` contiguous floats, `stride` apart, each run
 * with its own channel (weight index): the shared shape of a GroupNorm group and a BatchNorm channel. */
typedef struct {
    long run, stride;
    int chunks;
} Runs;

HOT static void stats(const float *x, const Runs *r, float eps, float *mean, float *rstd) {
    double s = 0, ss = 0;
    for (int c = 0; c < r->chunks; c++)
        for (long i = 0; i < r->run; i++) s += x[c * r->stride + i];
    const double n = (double)r->chunks * r->run, m = s / n;
    for (int c = 0; c < r->chunks; c++)
        for (long i = 0; i < r->run; i++) {
            const double d = x[c * r->stride + i] - m;
            ss += d * d;
        }
    *mean = (float)m;
    *rstd = (float)(1.0 / sqrt(ss / n + eps));
}

/* dx = rstd * (g - mean(g) - xhat * mean(g * xhat)) with g = dout * w over one set; wsel picks the
 * weight of chunk c (GroupNorm: its channel; BatchNorm: the one channel). */
HOT static void set_backward(float *dx, float *dw, float *db, const float *dout, const float *x, const float *w,
                         const int *wsel, float mean, float rstd, const Runs *r) {
    double sg = 0, sgx = 0;
    const double n = (double)r->chunks * r->run;
    for (int c = 0; c < r->chunks; c++) {
        const float wc = w ? w[wsel[c]] : 1.0f;
        double dwc = 0, dbc = 0;
        for (long i = 0; i < r->run; i++) {
            const long k = c * r->stride + i;
            const float xh = (x[k] - mean) * rstd, g = dout[k] * wc;
            sg += g, sgx += (double)g * xh;
            dwc += (double)dout[k] * xh, dbc += dout[k];
        }
        if (dw) dw[wsel[c]] += (float)dwc;
        if (db) db[wsel[c]] += (float)dbc;
    }
    if (!dx) return;
    const double mg = sg / n, mgx = sgx / n;
    for (int c = 0; c < r->chunks; c++) {
        const float wc = w ? w[wsel[c]] : 1.0f;
        for (long i = 0; i < r->run; i++) {
            const long k = c * r->stride + i;
            const float xh = (x[k] - mean) * rstd;
            dx[k] += (float)(rstd * (dout[k] * wc - mg - xh * mgx));
        }
    }
}

/* ------------------------------------------------------------- GroupNorm */

HOT void groupnorm_forward(float *out, float *mean, float *rstd, const float *in, const float *w, const float *b, int B,
                       int C, long HW, int G, float eps) {
    const int cg = C / G;
#pragma omp parallel for collapse(2) if ((long)B * C * HW > 65536)
    for (int n = 0; n < B; n++)
        for (int g = 0; g < G; g++) {
            const size_t base = ((size_t)n * C + (size_t)g * cg) * HW;
            const Runs r = {HW, HW, cg};
            float m, rs;
            stats(in + base, &r, eps, &m, &rs);
            mean[n * G + g] = m, rstd[n * G + g] = rs;
            for (int c = 0; c < cg; c++) {
                const int ch = g * cg + c;
                const float wc = w ? w[ch] : 1.0f, bc = b ? b[ch] : 0.0f;
                for (long i = 0; i < HW; i++) {
                    const size_t k = base + (size_t)c * HW + i;
                    out[k] = (in[k] - m) * rs * wc + bc;
                }
            }
        }
}

HOT void groupnorm_backward(float *din, float *dw, float *db, const float *dout, const float *in, const float *w,
                        const float *mean, const float *rstd, int B, int C, long HW, int G) {
    const int cg = C / G;
    int *wsel = xmalloc(sizeof(int) * (size_t)cg);
    for (int n = 0; n < B; n++)
        for (int g = 0; g < G; g++) {
            const size_t base = ((size_t)n * C + (size_t)g * cg) * HW;
            const Runs r = {HW, HW, cg};
            for (int c = 0; c < cg; c++) wsel[c] = g * cg + c;
            set_backward(din ? din + base : NULL, dw, db, dout + base, in + base, w, wsel, mean[n * G + g],
                         rstd[n * G + g], &r);
        }
    free(wsel);
}

/* ------------------------------------------------------------- BatchNorm */

HOT void batchnorm_forward(float *out, float *mean, float *rstd, const float *in, const float *w, const float *b,
                       float *run_mean, float *run_var, int B, int C, long HW, float eps, float momentum,
                       int training) {
#pragma omp parallel for if ((long)B * C * HW > 65536)
    for (int c = 0; c < C; c++) {
        float m, rs;
        if (training) {
            const Runs r = {HW, (long)C * HW, B};
            stats(in + (size_t)c * HW, &r, eps, &m, &rs);
            if (run_mean && run_var) { /* PyTorch: the running variance is the unbiased one */
                const double n = (double)B * HW, var = 1.0 / ((double)rs * rs) - eps;
                run_mean[c] = (1 - momentum) * run_mean[c] + momentum * m;
                run_var[c] = (float)((1 - momentum) * run_var[c] + momentum * (n > 1 ? var * n / (n - 1) : var));
            }
        } else {
            m = run_mean[c], rs = 1.0f / sqrtf(run_var[c] + eps);
        }
        mean[c] = m, rstd[c] = rs;
        const float wc = w ? w[c] : 1.0f, bc = b ? b[c] : 0.0f;
        for (int n = 0; n < B; n++)
            for (long i = 0; i < HW; i++) {
                const size_t k = ((size_t)n * C + c) * HW + i;
                out[k] = (in[k] - m) * rs * wc + bc;
            }
    }
}

HOT void batchnorm_backward(float *din, float *dw, float *db, const float *dout, const float *in, const float *w,
                        const float *mean, const float *rstd, int B, int C, long HW, int training) {
    for (int c = 0; c < C; c++) {
        const Runs r = {HW, (long)C * HW, B};
        const size_t base = (size_t)c * HW;
        int *wsel = xmalloc(sizeof(int) * (size_t)B);
        for (int n = 0; n < B; n++) wsel[n] = c;
        if (training) {
            set_backward(din ? din + base : NULL, dw, db, dout + base, in + base, w, wsel, mean[c], rstd[c], &r);
        } else { /* fixed statistics: an affine map per channel */
            set_backward(NULL, dw, db, dout + base, in + base, w, wsel, mean[c], rstd[c], &r);
            if (din) {
                const float s = rstd[c] * (w ? w[c] : 1.0f);
                for (int n = 0; n < B; n++)
                    for (long i = 0; i < HW; i++) din[base + (size_t)n * C * HW + i] += s * dout[base + (size_t)n * C * HW + i];
            }
        }
        free(wsel);
    }
}

/* --------------------------------------------------------------- RMSNorm */

HOT void rmsnorm_forward(float *out, float *rstd, const float *in, const float *w, int N, int C, float eps) {
#pragma omp parallel for if ((long)N * C > 65536)
    for (int i = 0; i < N; i++) {
        const float *x = in + (size_t)i * C;
        double ss = 0;
        for (int c = 0; c < C; c++) ss += (double)x[c] * x[c];
        const float rs = (float)(1.0 / sqrt(ss / C + eps));
        rstd[i] = rs;
        for (int c = 0; c < C; c++) out[(size_t)i * C + c] = x[c] * rs * (w ? w[c] : 1.0f);
    }
}

HOT void rmsnorm_backward(float *din, float *dw, const float *dout, const float *in, const float *w, const float *rstd,
                      int N, int C) {
    for (int i = 0; i < N; i++) {
        const float *x = in + (size_t)i * C, *d = dout + (size_t)i * C;
        const float rs = rstd[i];
        double dot = 0;
        for (int c = 0; c < C; c++) dot += (double)d[c] * (w ? w[c] : 1.0f) * x[c];
        if (dw)
            for (int c = 0; c < C; c++) dw[c] += d[c] * x[c] * rs;
        if (din) {
            const float k = (float)(dot * rs * rs * rs / C);
            for (int c = 0; c < C; c++) din[(size_t)i * C + c] += d[c] * (w ? w[c] : 1.0f) * rs - x[c] * k;
        }
    }
}
