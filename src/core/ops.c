#include "core/ops.h"

#include <math.h>
#include <omp.h>
#include <stdlib.h>
#include <string.h>

#include "core/err.h"
#include "core/fastmath.h"
#include "core/gemm.h"

/* Hot elementwise loops get AVX-512 / AVX2 / baseline clones picked at load time:
 * the default build has no -march, so one binary runs anywhere at full speed. */
#if defined(__x86_64__) && !defined(__SANITIZE_ADDRESS__) && !defined(__clang__)
#define HOT __attribute__((target_clones("avx512f", "avx2", "default")))
#else
#define HOT
#endif

/* ---------------------------------------------------------------- linear */

void linear_forward(float *out, const float *in, const float *W, const float *b, int N, int IC, int OC) {
    if (b) {
#pragma omp parallel for if ((long)N * OC > 65536)
        for (int i = 0; i < N; i++) memcpy(out + (size_t)i * OC, b, (size_t)OC * sizeof(float));
    }
    sgemm(false, true, N, OC, IC, 1.0f, in, IC, W, IC, b ? 1.0f : 0.0f, out, OC);
}

void linear_backward(float *din, float *dW, float *db, const float *dout, const float *in, const float *W,
                     int N, int IC, int OC) {
    if (din) sgemm(false, false, N, IC, OC, 1.0f, dout, OC, W, IC, 1.0f, din, IC);
    if (dW) sgemm(true, false, OC, IC, N, 1.0f, dout, OC, in, IC, 1.0f, dW, IC);
    if (db) {
#pragma omp parallel for if ((long)N * OC > 65536)
        for (int o0 = 0; o0 < OC; o0 += 16) { /* blocks of columns: each thread owns its db entries */
            int o1 = o0 + 16 < OC ? o0 + 16 : OC;
            for (int i = 0; i < N; i++)
                for (int o = o0; o < o1; o++) db[o] += dout[(size_t)i * OC + o];
        }
    }
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

void layernorm_backward(float *din, float *dw, float *db, const float *dout, const float *in, const float *w,
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

/* ------------------------------------------------------------- attention */

long packing_att_offsets(long *att_off, const int *len, int nseq, int H) {
    long off = 0;
    for (int s = 0; s < nseq; s++) {
        att_off[s] = off;
        off += (long)H * len[s] * len[s];
    }
    return off;
}

/* Per (sequence, head): S = Q K^T / sqrt(hd) and O = P V as two small GEMMs
 * reading Q, K, V in place (row stride 3C) and writing O in place (stride C).
 * Inside the parallel loop each GEMM runs on its own thread. */
void attention_forward(float *out, float *att, const float *qkv, const Packing *pk, int C, int H, int causal) {
    const int hd = C / H, C3 = 3 * C;
    const float scale = 1.0f / sqrtf((float)hd);
#pragma omp parallel for collapse(2) schedule(dynamic)
    for (int s = 0; s < pk->nseq; s++)
        for (int h = 0; h < H; h++) {
            const int L = pk->len[s];
            const float *base = qkv + (size_t)pk->start[s] * C3;
            float *P = att + pk->att_off[s] + (long)h * L * L;
            sgemm(false, true, L, L, hd, scale, base + h * hd, C3, base + C + h * hd, C3, 0.0f, P, L);
            for (int i = 0; i < L; i++) {
                float *p = P + (size_t)i * L;
                const int jn = causal ? i + 1 : L;
                float mx = -INFINITY;
                for (int j = 0; j < jn; j++) mx = p[j] > mx ? p[j] : mx;
                float sum = 0.0f;
#pragma omp simd reduction(+ : sum)
                for (int j = 0; j < jn; j++) sum += (p[j] = fast_expf(p[j] - mx));
                const float inv = 1.0f / sum;
                for (int j = 0; j < jn; j++) p[j] *= inv;
                for (int j = jn; j < L; j++) p[j] = 0.0f;
            }
            sgemm(false, false, L, hd, L, 1.0f, P, L, base + 2 * C + h * hd, C3, 0.0f,
                  out + (size_t)pk->start[s] * C + h * hd, C);
        }
}

/* Per (sequence, head), with P the saved attention weights and dO the output gradient:
 *   dV = P^T dO,  dP = dO V^T,  dS = P * (dP - rowsum(P * dP)),  dQ = dS K / sqrt(hd),  dK = dS^T Q / sqrt(hd)
 * as small GEMMs accumulating into dqkv in place (row stride 3C). */
void attention_backward(float *dqkv, const float *dout, const float *att, const float *qkv, const Packing *pk,
                        int C, int H, int causal) {
    const int hd = C / H, C3 = 3 * C;
    const float scale = 1.0f / sqrtf((float)hd);
    int maxL = 0;
    for (int s = 0; s < pk->nseq; s++)
        if (pk->len[s] > maxL) maxL = pk->len[s];
#pragma omp parallel
    {
        float *dP = xalloc_floats((size_t)maxL * maxL);
#pragma omp for collapse(2) schedule(dynamic)
        for (int s = 0; s < pk->nseq; s++)
            for (int h = 0; h < H; h++) {
                const int L = pk->len[s];
                const float *base = qkv + (size_t)pk->start[s] * C3;
                float *dbase = dqkv + (size_t)pk->start[s] * C3;
                const float *dO = dout + (size_t)pk->start[s] * C + h * hd;
                const float *P = att + pk->att_off[s] + (long)h * L * L;
                sgemm(true, false, L, hd, L, 1.0f, P, L, dO, C, 1.0f, dbase + 2 * C + h * hd, C3);
                sgemm(false, true, L, L, hd, 1.0f, dO, C, base + 2 * C + h * hd, C3, 0.0f, dP, L);
                for (int i = 0; i < L; i++) {
                    const float *p = P + (size_t)i * L;
                    float *d = dP + (size_t)i * L;
                    const int jn = causal ? i + 1 : L;
                    float pdp = 0.0f;
                    for (int j = 0; j < jn; j++) pdp += p[j] * d[j];
                    for (int j = 0; j < jn; j++) d[j] = p[j] * (d[j] - pdp);
                    for (int j = jn; j < L; j++) d[j] = 0.0f;
                }
                sgemm(false, false, L, hd, L, scale, dP, L, base + C + h * hd, C3, 1.0f, dbase + h * hd, C3);
                sgemm(true, false, L, hd, L, scale, dP, L, base + h * hd, C3, 1.0f, dbase + C + h * hd, C3);
            }
        free(dP);
    }
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

void softmax_forward(float *out, const float *in, int N, int K) {
    for (int i = 0; i < N; i++) {
        const float *x = in + (size_t)i * K;
        float *y = out + (size_t)i * K;
        float mx = -INFINITY, sum = 0.0f;
        for (int k = 0; k < K; k++) mx = fmaxf(mx, x[k]);
        for (int k = 0; k < K; k++) sum += (y[k] = expf(x[k] - mx));
        for (int k = 0; k < K; k++) y[k] /= sum;
    }
}

void softmax_backward(float *din, const float *dout, const float *out, int N, int K) {
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

/* ------------------------------------------------------------------ conv2d */

int conv2d_out_h(const ConvShape *s) { return (s->H + 2 * s->pad - s->k) / s->stride + 1; }
int conv2d_out_w(const ConvShape *s) { return (s->W + 2 * s->pad - s->k) / s->stride + 1; }

long conv2d_cols_size(const ConvShape *s) {
    return (long)s->B * conv2d_out_h(s) * conv2d_out_w(s) * s->Cin * s->k * s->k;
}

/* cols row = one output position; columns ordered (cin, ky, kx) like the weight. */
static void im2col(float *cols, const float *in, const ConvShape *s) {
    const int OH = conv2d_out_h(s), OW = conv2d_out_w(s), K = s->Cin * s->k * s->k;
#pragma omp parallel for collapse(2) if ((long)s->B * OH * OW * K > 65536)
    for (int b = 0; b < s->B; b++)
        for (int oy = 0; oy < OH; oy++)
            for (int ox = 0; ox < OW; ox++) {
                float *row = cols + ((size_t)(b * OH + oy) * OW + ox) * K;
                for (int c = 0; c < s->Cin; c++)
                    for (int ky = 0; ky < s->k; ky++) {
                        int iy = oy * s->stride - s->pad + ky;
                        for (int kx = 0; kx < s->k; kx++) {
                            int ix = ox * s->stride - s->pad + kx;
                            int inside = iy >= 0 && iy < s->H && ix >= 0 && ix < s->W;
                            *row++ = inside ? in[(((size_t)b * s->Cin + c) * s->H + iy) * s->W + ix] : 0.0f;
                        }
                    }
            }
}

static void col2im_add(float *din, const float *cols, const ConvShape *s) {
    const int OH = conv2d_out_h(s), OW = conv2d_out_w(s), K = s->Cin * s->k * s->k;
    for (int b = 0; b < s->B; b++)
        for (int oy = 0; oy < OH; oy++)
            for (int ox = 0; ox < OW; ox++) {
                const float *row = cols + ((size_t)(b * OH + oy) * OW + ox) * K;
                for (int c = 0; c < s->Cin; c++)
                    for (int ky = 0; ky < s->k; ky++) {
                        int iy = oy * s->stride - s->pad + ky;
                        for (int kx = 0; kx < s->k; kx++, row++) {
                            int ix = ox * s->stride - s->pad + kx;
                            if (iy >= 0 && iy < s->H && ix >= 0 && ix < s->W)
                                din[(((size_t)b * s->Cin + c) * s->H + iy) * s->W + ix] += *row;
                        }
                    }
            }
}

void conv2d_forward(float *out, float *cols, const float *in, const float *W, const float *b, const ConvShape *s) {
    im2col(cols, in, s);
    int rows = s->B * conv2d_out_h(s) * conv2d_out_w(s);
    linear_forward(out, cols, W, b, rows, s->Cin * s->k * s->k, s->Cout);
}

void conv2d_backward(float *din, float *dW, float *db, const float *dout, const float *cols, const float *W,
                     const ConvShape *s) {
    int rows = s->B * conv2d_out_h(s) * conv2d_out_w(s), K = s->Cin * s->k * s->k;
    linear_backward(NULL, dW, db, dout, cols, W, rows, K, s->Cout);
    if (din) {
        float *dcols = xcalloc((size_t)rows * K, sizeof(float));
        linear_backward(dcols, NULL, NULL, dout, cols, W, rows, K, s->Cout);
        col2im_add(din, dcols, s);
        free(dcols);
    }
}

/* -------------------------------------------------------------- elementwise */

void add_forward(float *out, const float *a, const float *b, long n) {
#pragma omp parallel for simd if (n > 65536)
    for (long i = 0; i < n; i++) out[i] = a[i] + b[i];
}

void add_inplace(float *acc, const float *x, long n) {
#pragma omp parallel for simd if (n > 65536)
    for (long i = 0; i < n; i++) acc[i] += x[i];
}

void scale_inplace(float *x, float s, long n) {
    for (long i = 0; i < n; i++) x[i] *= s;
}
