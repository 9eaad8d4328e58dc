/* The blocked layout (nChw16c): BatchNorm's backward by finite differences in training and eval
 * mode, its agreement with the NCHW op through the conversions (forward, backward, running
 * statistics), pooling, and oneDNN's convolutions against the im2col path. */
#include <stdlib.h>
#include <string.h>

#include "core/conv_dnnl.h"
#include "core/gradcheck.h"
#include "core/ops.h"
#include "test.h"

enum { BB = 3, BC = 32, BHW = 5 };
typedef struct {
    float mean[BC], rstd[BC], rm[BC], rv[BC];
    int training;
} Bn16;

static void bn16f(GradCase *g) {
    Bn16 *k = g->ctx;
    batchnorm16_forward(g->out, k->mean, k->rstd, g->in[0], g->in[1], g->in[2], k->training ? NULL : k->rm,
                        k->training ? NULL : k->rv, BB, BC, BHW, 1e-5f, 0.1f, k->training);
}
static void bn16b(GradCase *g) {
    Bn16 *k = g->ctx;
    batchnorm16_backward(g->grad[0], g->grad[1], g->grad[2], g->R, g->in[0], g->in[1], k->mean, k->rstd, BB, BC, BHW,
                         k->training);
}

TEST(ops_blocked_batchnorm_grad_train_and_eval) {
    Rng r;
    rng_seed(&r, 44);
    Bn16 k = {.training = 1};
    for (int c = 0; c < BC; c++) k.rm[c] = 0.1f * c, k.rv[c] = 0.5f + 0.05f * c;
    GradCase g = {.forward = bn16f, .backward = bn16b, .ctx = &k};
    setup(&g, &r, 3, (long[]){BB * BC * BHW, BC, BC}, BB * BC * BHW);
    gradcheck(&g, "batchnorm16(train)", 2e-2);
    k.training = 0;
    gradcheck(&g, "batchnorm16(eval)", 1e-2);
    free_case(&g);
}

TEST(ops_blocked_matches_nchw) {
    Rng r;
    rng_seed(&r, 45);
    const long n = (long)BB * BC * BHW;
    float *x = randn(&r, n, 2.0f), *w = randn(&r, BC, 1.0f), *b = randn(&r, BC, 1.0f), *dy = randn(&r, n, 1.0f);
    float *xb = xalloc_floats((size_t)n), *yb = xalloc_floats((size_t)n), *y = xalloc_floats((size_t)n);
    float *back = xalloc_floats((size_t)n), *dyb = xalloc_floats((size_t)n);
    nchw_to_blocked16(xb, x, BB, BC, BHW);
    blocked16_to_nchw(back, xb, BB, BC, BHW);
    CHECK_CLOSE(back, x, n, 0, 0);
    float m1[BC], r1[BC], m2[BC], r2[BC], rm1[BC] = {0}, rv1[BC], rm2[BC] = {0}, rv2[BC];
    for (int c = 0; c < BC; c++) rv1[c] = rv2[c] = 1;
    batchnorm_forward(y, m1, r1, x, w, b, rm1, rv1, BB, BC, BHW, 1e-5f, 0.1f, 1);
    batchnorm16_forward(yb, m2, r2, xb, w, b, rm2, rv2, BB, BC, BHW, 1e-5f, 0.1f, 1);
    blocked16_to_nchw(back, yb, BB, BC, BHW);
    CHECK_CLOSE(back, y, n, 1e-5, 1e-5);
    CHECK_CLOSE(rm2, rm1, BC, 1e-6, 1e-5);
    CHECK_CLOSE(rv2, rv1, BC, 1e-6, 1e-5);
    float *dx = xcalloc((size_t)n, sizeof(float)), *dxb = xcalloc((size_t)n, sizeof(float));
    float dw1[BC] = {0}, db1[BC] = {0}, dw2[BC] = {0}, db2[BC] = {0};
    nchw_to_blocked16(dyb, dy, BB, BC, BHW);
    batchnorm_backward(dx, dw1, db1, dy, x, w, m1, r1, BB, BC, BHW, 1);
    batchnorm16_backward(dxb, dw2, db2, dyb, xb, w, m2, r2, BB, BC, BHW, 1);
    blocked16_to_nchw(back, dxb, BB, BC, BHW);
    CHECK_CLOSE(back, dx, n, 1e-5, 1e-4);
    CHECK_CLOSE(dw2, dw1, BC, 1e-5, 1e-4);
    CHECK_CLOSE(db2, db1, BC, 1e-5, 1e-4);
    /* global average pooling: the mean of each channel's map, its gradient spread evenly */
    float pooled[BB * BC], pooled2[BB * BC];
    for (int i = 0; i < BB * BC; i++) {
        double s = 0;
        for (int p = 0; p < BHW; p++) s += x[(size_t)i * BHW + p];
        pooled[i] = (float)(s / BHW);
    }
    avgpool16_global_forward(pooled2, xb, BB, BC, BHW);
    CHECK_CLOSE(pooled2, pooled, BB * BC, 1e-6, 1e-5);
    float *dp = xcalloc((size_t)n, sizeof(float));
    avgpool16_global_backward(dp, pooled, BB, BC, BHW);
    blocked16_to_nchw(back, dp, BB, BC, BHW);
    CHECK_NEAR(back[7], pooled[7 / BHW] / BHW, 1e-7);
    free(x), free(w), free(b), free(dy), free(xb), free(yb), free(y), free(back), free(dyb), free(dx), free(dxb), free(dp);
}

/* oneDNN's direct convolution on the blocked layout against im2col + sgemm on NCHW: forward,
 * the input gradient and the weight gradient (added to what the caller holds), strided and not,
 * and a stem reading an NCHW image. */
static void conv_case(ConvShape s, int plain_src) {
    Rng r;
    rng_seed(&r, 46 + s.stride + plain_src);
    const int OH = conv2d_out_h(&s), OW = conv2d_out_w(&s);
    const long ni = (long)s.B * s.Cin * s.H * s.W, no = (long)s.B * s.Cout * OH * OW, nw = (long)s.Cout * s.Cin * s.k * s.k;
    float *x = randn(&r, ni, 1.0f), *W = randn(&r, nw, 0.2f), *dy = randn(&r, no, 1.0f);
    float *cols = xalloc_floats((size_t)conv2d_cols_size(&s)), *y = xalloc_floats((size_t)no);
    float *dx = xcalloc((size_t)ni, sizeof(float)), *dW = xcalloc((size_t)nw, sizeof(float));
    conv2d_nchw_forward(y, cols, x, W, NULL, &s);
    conv2d_nchw_backward(dx, dW, NULL, dy, cols, W, &s);
    ConvDnnl c;
    Err e = {0};
    CHECK_MSG(conv_dnnl_init(&c, &s, plain_src, &e) == 0, "%s", e.msg);
    float *xb = xalloc_floats((size_t)ni), *yb = xalloc_floats((size_t)no), *dyb = xalloc_floats((size_t)no);
    float *dxb = xcalloc((size_t)ni, sizeof(float)), *dW2 = xalloc_floats((size_t)nw), *back = xalloc_floats((size_t)(ni > no ? ni : no));
    for (long i = 0; i < nw; i++) dW2[i] = 1.0f; /* accumulates onto what is there */
    if (plain_src) memcpy(xb, x, sizeof(float) * (size_t)ni);
    else nchw_to_blocked16(xb, x, s.B, s.Cin, (long)s.H * s.W);
    nchw_to_blocked16(dyb, dy, s.B, s.Cout, (long)OH * OW);
    conv_dnnl_forward(&c, yb, xb, W);
    blocked16_to_nchw(back, yb, s.B, s.Cout, (long)OH * OW);
    CHECK_CLOSE(back, y, no, 1e-4, 1e-4);
    conv_dnnl_backward(&c, dxb, dW2, dyb, xb, W);
    for (long i = 0; i < nw; i++) dW2[i] -= 1.0f;
    CHECK_CLOSE(dW2, dW, nw, 1e-3, 1e-4);
    if (plain_src) memcpy(back, dxb, sizeof(float) * (size_t)ni);
    else blocked16_to_nchw(back, dxb, s.B, s.Cin, (long)s.H * s.W);
    CHECK_CLOSE(back, dx, ni, 1e-4, 1e-4);
    conv_dnnl_free(&c);
    free(x), free(W), free(dy), free(cols), free(y), free(dx), free(dW), free(xb), free(yb), free(dyb), free(dxb),
        free(dW2), free(back);
}

TEST(conv_dnnl_matches_im2col) {
    conv_case((ConvShape){2, 16, 7, 7, 32, 3, 2, 1}, 0);
    conv_case((ConvShape){2, 32, 6, 6, 32, 3, 1, 1}, 0);
    conv_case((ConvShape){2, 16, 7, 7, 32, 1, 2, 0}, 0);
    conv_case((ConvShape){2, 3, 8, 8, 16, 3, 1, 1}, 1);
    Err e = {0};
    ConvDnnl c;
    CHECK(!conv_dnnl_fits(&(ConvShape){2, 8, 7, 7, 16, 3, 1, 1}, 0));
    CHECK(conv_dnnl_init(&c, &(ConvShape){2, 8, 7, 7, 12, 3, 1, 1}, 0, &e) != 0);
}
