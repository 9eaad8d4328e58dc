/* Spatial ops on images: 2-D convolution (im2col + one GEMM; two output layouts), nearest 2x
 * up-sampling, average and max pooling. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "core/err.h"
#include "core/gemm.h"
#include "core/gemm_mixed.h"
#include "core/ops.h"

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
    const int OH = conv2d_out_h(s), OW = conv2d_out_w(s), K = s->Cin * s->k * s->k, kk = s->k * s->k;
    /* each (image, channel) plane is written by one thread: no two threads touch a pixel */
#pragma omp parallel for collapse(2) if ((long)s->B * OH * OW * K > 65536)
    for (int b = 0; b < s->B; b++)
        for (int c = 0; c < s->Cin; c++) {
            float *plane = din + ((size_t)b * s->Cin + c) * s->H * s->W;
            for (int oy = 0; oy < OH; oy++)
                for (int ox = 0; ox < OW; ox++) {
                    const float *row = cols + ((size_t)(b * OH + oy) * OW + ox) * K + (size_t)c * kk;
                    for (int ky = 0; ky < s->k; ky++) {
                        const int iy = oy * s->stride - s->pad + ky;
                        if (iy < 0 || iy >= s->H) continue;
                        for (int kx = 0; kx < s->k; kx++) {
                            const int ix = ox * s->stride - s->pad + kx;
                            if (ix >= 0 && ix < s->W) plane[(size_t)iy * s->W + ix] += row[ky * s->k + kx];
                        }
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


/* NCHW in and out through a column matrix of the other orientation, cols [K, N]: row r =
 * (cin, ky, kx) as in the weight, column n*P + p = image n's output position p (N = B*P). Rows are
 * written and read in runs of OW contiguous values (one output row), which the compiler
 * vectorises; per image out_b [Cout, P] = W [Cout, K] @ cols[:, b*P ..]. Small maps (P < BATCH_P:
 * a UNet's 8x8 levels, a ResNet's last stage) run as ONE product over all images, W @ cols ->
 * [Cout, B*P], moved to [B, Cout, P] after: a GEMM of 64 columns a call wastes most of the
 * machine, one of B*64 does not. */
enum { BATCH_P = 256 };

static void im2col_kn(float *cols, const float *in, const ConvShape *s) {
    const int OH = conv2d_out_h(s), OW = conv2d_out_w(s), k = s->k, P = OH * OW;
    const long N = (long)s->B * P;
#pragma omp parallel for collapse(2) if ((long)s->B * P * s->Cin * k * k > 65536)
    for (int b = 0; b < s->B; b++)
        for (int c = 0; c < s->Cin; c++) {
            const float *plane = in + ((size_t)b * s->Cin + c) * s->H * s->W;
            for (int ky = 0; ky < k; ky++)
                for (int kx = 0; kx < k; kx++) {
                    float *row = cols + (size_t)((c * k + ky) * k + kx) * N + (size_t)b * P;
                    /* output columns whose input column is inside: ox in [lo, hi) */
                    int lo = 0, hi = OW;
                    while (lo < OW && lo * s->stride - s->pad + kx < 0) lo++;
                    while (hi > lo && (hi - 1) * s->stride - s->pad + kx >= s->W) hi--;
                    for (int oy = 0; oy < OH; oy++) {
                        float *dst = row + (size_t)oy * OW;
                        const int iy = oy * s->stride - s->pad + ky;
                        if (iy < 0 || iy >= s->H) {
                            memset(dst, 0, sizeof(float) * (size_t)OW);
                            continue;
                        }
                        const float *src = plane + (size_t)iy * s->W - s->pad + kx;
                        for (int ox = 0; ox < lo; ox++) dst[ox] = 0.0f;
                        if (s->stride == 1)
                            memcpy(dst + lo, src + lo, sizeof(float) * (size_t)(hi - lo));
                        else
                            for (int ox = lo; ox < hi; ox++) dst[ox] = src[(size_t)ox * s->stride];
                        for (int ox = hi; ox < OW; ox++) dst[ox] = 0.0f;
                    }
                }
        }
}

static void col2im_kn_add(float *din, const float *cols, const ConvShape *s) {
    const int OH = conv2d_out_h(s), OW = conv2d_out_w(s), k = s->k, P = OH * OW;
    const long N = (long)s->B * P;
    /* each (image, channel) plane is written by one thread: no two threads touch a pixel */
#pragma omp parallel for collapse(2) if ((long)s->B * P * s->Cin * k * k > 65536)
    for (int b = 0; b < s->B; b++)
        for (int c = 0; c < s->Cin; c++) {
            float *plane = din + ((size_t)b * s->Cin + c) * s->H * s->W;
            for (int ky = 0; ky < k; ky++)
                for (int kx = 0; kx < k; kx++) {
                    const float *row = cols + (size_t)((c * k + ky) * k + kx) * N + (size_t)b * P;
                    int lo = 0, hi = OW;
                    while (lo < OW && lo * s->stride - s->pad + kx < 0) lo++;
                    while (hi > lo && (hi - 1) * s->stride - s->pad + kx >= s->W) hi--;
                    for (int oy = 0; oy < OH; oy++) {
                        const int iy = oy * s->stride - s->pad + ky;
                        if (iy < 0 || iy >= s->H) continue;
                        const float *src = row + (size_t)oy * OW;
                        float *dst = plane + (size_t)iy * s->W - s->pad + kx;
                        if (s->stride == 1)
                            for (int ox = lo; ox < hi; ox++) dst[ox] += src[ox];
                        else
                            for (int ox = lo; ox < hi; ox++) dst[(size_t)ox * s->stride] += src[ox];
                    }
                }
        }
}

/* [B, C, P] <-> [C, B*P] */
static void bcp_to_cbp(float *dst, const float *src, int B, int C, int P) {
#pragma omp parallel for collapse(2) if ((long)B * C * P > 65536)
    for (int n = 0; n < B; n++)
        for (int c = 0; c < C; c++)
            memcpy(dst + ((size_t)c * B + n) * P, src + ((size_t)n * C + c) * P, sizeof(float) * (size_t)P);
}

static void cbp_to_bcp(float *dst, const float *src, int B, int C, int P, const float *bias) {
#pragma omp parallel for collapse(2) if ((long)B * C * P > 65536)
    for (int n = 0; n < B; n++)
        for (int c = 0; c < C; c++) {
            float *o = dst + ((size_t)n * C + c) * P;
            const float *i = src + ((size_t)c * B + n) * P, bb = bias ? bias[c] : 0.0f;
            for (int p = 0; p < P; p++) o[p] = i[p] + bb;
        }
}

void conv2d_nchw_forward(float *out, float *cols, const float *in, const float *W, const float *b, const ConvShape *s) {
    conv2d_nchw_forward_gemm(NULL, out, cols, in, W, b, s);
}

void conv2d_nchw_forward_gemm(struct Gemm *g, float *out, float *cols, const float *in, const float *W, const float *b,
                              const ConvShape *s) {
    im2col_kn(cols, in, s);
    const int P = conv2d_out_h(s) * conv2d_out_w(s), K = s->Cin * s->k * s->k, N = s->B * P;
    if (P < BATCH_P && s->B > 1) {
        float *tmp = xalloc_floats((size_t)s->Cout * N);
        gemm_weight_left(g, tmp, W, cols, N, s->Cout, N, K);
        cbp_to_bcp(out, tmp, s->B, s->Cout, P, b);
        free(tmp);
        return;
    }
    for (int n = 0; n < s->B; n++) {
        float *o = out + (size_t)n * s->Cout * P;
        gemm_weight_left(g, o, W, cols + (size_t)n * P, N, s->Cout, P, K);
        if (b)
            for (int c = 0; c < s->Cout; c++)
                for (int p = 0; p < P; p++) o[(size_t)c * P + p] += b[c];
    }
}

void conv2d_nchw_backward(float *din, float *dW, float *db, const float *dout, const float *cols, const float *W,
                          const ConvShape *s) {
    const int P = conv2d_out_h(s) * conv2d_out_w(s), K = s->Cin * s->k * s->k, N = s->B * P;
    float *dcols = din ? xalloc_floats((size_t)K * N) : NULL;
    if (db)
        for (int n = 0; n < s->B; n++)
            for (int c = 0; c < s->Cout; c++) {
                const float *d = dout + ((size_t)n * s->Cout + c) * P;
                float acc = 0.0f;
                for (int p = 0; p < P; p++) acc += d[p];
                db[c] += acc;
            }
    if (P < BATCH_P && s->B > 1) { /* one product each over all images, as the forward */
        float *D = xalloc_floats((size_t)s->Cout * N);
        bcp_to_cbp(D, dout, s->B, s->Cout, P);
        if (dW) sgemm(false, true, s->Cout, K, N, 1.0f, D, N, cols, N, 1.0f, dW, K);
        if (dcols) sgemm(true, false, K, N, s->Cout, 1.0f, W, K, D, N, 0.0f, dcols, N);
        free(D);
    } else {
        for (int n = 0; n < s->B; n++) {
            const float *d = dout + (size_t)n * s->Cout * P;
            if (dW) sgemm(false, true, s->Cout, K, P, 1.0f, d, P, cols + (size_t)n * P, N, 1.0f, dW, K);
            if (dcols) sgemm(true, false, K, P, s->Cout, 1.0f, W, K, d, P, 0.0f, dcols + (size_t)n * P, N);
        }
    }
    if (dcols) {
        col2im_kn_add(din, dcols, s);
        free(dcols);
    }
}

/* ------------------------------------------------------------ up-sampling */

void upsample2x_forward(float *out, const float *in, long planes, int H, int W) {
#pragma omp parallel for if (planes * H * W > 65536)
    for (long p = 0; p < planes; p++)
        for (int y = 0; y < 2 * H; y++) {
            const float *src = in + ((size_t)p * H + y / 2) * W;
            float *dst = out + ((size_t)p * 2 * H + y) * 2 * W;
            for (int x = 0; x < 2 * W; x++) dst[x] = src[x / 2];
        }
}

void upsample2x_backward(float *din, const float *dout, long planes, int H, int W) {
#pragma omp parallel for if (planes * H * W > 65536)
    for (long p = 0; p < planes; p++)
        for (int y = 0; y < 2 * H; y++) {
            float *dst = din + ((size_t)p * H + y / 2) * W;
            const float *src = dout + ((size_t)p * 2 * H + y) * 2 * W;
            for (int x = 0; x < 2 * W; x++) dst[x / 2] += src[x];
        }
}

/* ---------------------------------------------------------------- pooling */

int pool_out(int n, int k, int stride) { return (n - k) / stride + 1; }

void avgpool_forward(float *out, const float *in, long planes, int H, int W, int k, int stride) {
    const int OH = pool_out(H, k, stride), OW = pool_out(W, k, stride);
    const float inv = 1.0f / (float)(k * k);
    for (long p = 0; p < planes; p++)
        for (int oy = 0; oy < OH; oy++)
            for (int ox = 0; ox < OW; ox++) {
                float acc = 0.0f;
                for (int ky = 0; ky < k; ky++)
                    for (int kx = 0; kx < k; kx++) acc += in[((size_t)p * H + oy * stride + ky) * W + ox * stride + kx];
                out[((size_t)p * OH + oy) * OW + ox] = acc * inv;
            }
}

void avgpool_backward(float *din, const float *dout, long planes, int H, int W, int k, int stride) {
    const int OH = pool_out(H, k, stride), OW = pool_out(W, k, stride);
    const float inv = 1.0f / (float)(k * k);
    for (long p = 0; p < planes; p++)
        for (int oy = 0; oy < OH; oy++)
            for (int ox = 0; ox < OW; ox++) {
                const float g = dout[((size_t)p * OH + oy) * OW + ox] * inv;
                for (int ky = 0; ky < k; ky++)
                    for (int kx = 0; kx < k; kx++) din[((size_t)p * H + oy * stride + ky) * W + ox * stride + kx] += g;
            }
}

void maxpool_forward(float *out, int32_t *argmax, const float *in, long planes, int H, int W, int k, int stride) {
    const int OH = pool_out(H, k, stride), OW = pool_out(W, k, stride);
    for (long p = 0; p < planes; p++)
        for (int oy = 0; oy < OH; oy++)
            for (int ox = 0; ox < OW; ox++) {
                int best = (oy * stride) * W + ox * stride;
                for (int ky = 0; ky < k; ky++)
                    for (int kx = 0; kx < k; kx++) {
                        const int at = (oy * stride + ky) * W + ox * stride + kx;
                        if (in[(size_t)p * H * W + at] > in[(size_t)p * H * W + best]) best = at;
                    }
                const size_t o = ((size_t)p * OH + oy) * OW + ox;
                out[o] = in[(size_t)p * H * W + best];
                argmax[o] = best;
            }
}

void maxpool_backward(float *din, const float *dout, const int32_t *argmax, long planes, int H, int W, int k,
                      int stride) {
    const int OH = pool_out(H, k, stride), OW = pool_out(W, k, stride);
    for (long p = 0; p < planes; p++)
        for (int o = 0; o < OH * OW; o++)
            din[(size_t)p * H * W + argmax[(size_t)p * OH * OW + o]] += dout[(size_t)p * OH * OW + o];
}
