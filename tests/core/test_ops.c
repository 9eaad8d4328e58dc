/* Finite-difference gradient checks for every op in core/ops.h, plus forward
 * checks against direct formulas. Loss = sum(out * R) for a fixed random R, so
 * dL/dout = R and each backward is checked element by element. */
#include <stdlib.h>
#include <string.h>

#include "core/err.h"
#include "core/gemm.h"
#include "core/ops.h"
#include "core/rng.h"
#include "test.h"

#include "core/gradcheck.h"

/* ----------------------------------------------------------------- linear */
enum { LN_N = 5, LN_IC = 7, LN_OC = 6 };
static void lin_f(GradCase *g) { linear_forward(g->out, g->in[0], g->in[1], g->in[2], LN_N, LN_IC, LN_OC); }
static void lin_b(GradCase *g) {
    linear_backward(g->grad[0], g->grad[1], g->grad[2], g->R, g->in[0], g->in[1], LN_N, LN_IC, LN_OC);
}
TEST(ops_linear_grad) {
    Rng r;
    rng_seed(&r, 1);
    GradCase g = {.forward = lin_f, .backward = lin_b};
    setup(&g, &r, 3, (long[]){LN_N * LN_IC, LN_OC * LN_IC, LN_OC}, LN_N * LN_OC);
    gradcheck(&g, "linear", 1e-2);
    /* forward against the reference triple loop */
    float *ref = xalloc_floats(LN_N * LN_OC);
    for (int i = 0; i < LN_N; i++)
        for (int o = 0; o < LN_OC; o++) {
            double s = g.in[2][o];
            for (int c = 0; c < LN_IC; c++) s += (double)g.in[0][i * LN_IC + c] * g.in[1][o * LN_IC + c];
            ref[i * LN_OC + o] = (float)s;
        }
    lin_f(&g);
    CHECK_CLOSE(g.out, ref, LN_N * LN_OC, 1e-5, 1e-5);
    free(ref);
    free_case(&g);
}

TEST(ops_linear_no_bias_grad) {
    Rng r;
    rng_seed(&r, 2);
    GradCase g = {.forward = lin_f, .backward = lin_b};
    setup(&g, &r, 2, (long[]){LN_N * LN_IC, LN_OC * LN_IC}, LN_N * LN_OC);
    g.in[2] = NULL;
    g.grad[2] = NULL;
    gradcheck(&g, "linear(no bias)", 1e-2);
    free_case(&g);
}

TEST(gemm_matches_reference_all_transposes) {
    Rng r;
    rng_seed(&r, 3);
    const int M = 37, N = 29, K = 53;
    float *A = randn(&r, M * K, 1), *B = randn(&r, K * N, 1), *C1 = randn(&r, M * N, 1);
    float *C2 = xalloc_floats(M * N);
    for (int ta = 0; ta < 2; ta++)
        for (int tb = 0; tb < 2; tb++) {
            memcpy(C2, C1, sizeof(float) * M * N);
            float *C3 = xalloc_floats(M * N);
            memcpy(C3, C1, sizeof(float) * M * N);
            sgemm(ta, tb, M, N, K, 0.7f, A, ta ? M : K, B, tb ? K : N, 0.3f, C2, N);
            sgemm_reference(ta, tb, M, N, K, 0.7f, A, ta ? M : K, B, tb ? K : N, 0.3f, C3, N);
            CHECK_CLOSE(C2, C3, M * N, 1e-4, 1e-4);
            free(C3);
        }
    free(A);
    free(B);
    free(C1);
    free(C2);
}

/* -------------------------------------------------------------- layernorm */
enum { LNN = 4, LNC = 9 };
static float ln_mean[LNN], ln_rstd[LNN];
static void lnf(GradCase *g) { layernorm_forward(g->out, ln_mean, ln_rstd, g->in[0], g->in[1], g->in[2], LNN, LNC, 1e-5f); }
static void lnb(GradCase *g) {
    layernorm_backward(g->grad[0], g->grad[1], g->grad[2], g->R, g->in[0], g->in[1], ln_mean, ln_rstd, LNN, LNC);
}
TEST(ops_layernorm_grad) {
    Rng r;
    rng_seed(&r, 4);
    GradCase g = {.forward = lnf, .backward = lnb};
    setup(&g, &r, 3, (long[]){LNN * LNC, LNC, LNC}, LNN * LNC);
    gradcheck(&g, "layernorm", 2e-2);
    /* each normalised row has mean b-weighted zero: check with w=1, b=0 */
    for (int c = 0; c < LNC; c++) g.in[1][c] = 1, g.in[2][c] = 0;
    lnf(&g);
    double m = 0, v = 0;
    for (int c = 0; c < LNC; c++) m += g.out[c];
    for (int c = 0; c < LNC; c++) v += g.out[c] * g.out[c];
    CHECK_NEAR(m / LNC, 0, 1e-5);
    CHECK_NEAR(v / LNC, 1, 1e-3);
    free_case(&g);
}

/* -------------------------------------------------------------- embedding */
static const int32_t emb_ids[5] = {3, 0, 3, 2, 4};
static void embf(GradCase *g) { embedding_forward(g->out, emb_ids, g->in[0], 5, 6); }
static void embb(GradCase *g) { embedding_backward(g->grad[0], g->R, emb_ids, 5, 6); }
TEST(ops_embedding_grad) {
    Rng r;
    rng_seed(&r, 5);
    GradCase g = {.forward = embf, .backward = embb};
    setup(&g, &r, 1, (long[]){5 * 6}, 5 * 6);
    gradcheck(&g, "embedding", 1e-2);
    free_case(&g);
}

/* -------------------------------------------------------------- attention */
typedef struct {
    Packing pk;
    int C, H, causal;
    float *att;
} AttCtx;
static void attf(GradCase *g) {
    AttCtx *a = g->ctx;
    attention_forward(g->out, a->att, g->in[0], &a->pk, a->C, a->H, a->causal);
}
static void attb(GradCase *g) {
    AttCtx *a = g->ctx;
    attention_backward(g->grad[0], g->R, a->att, g->in[0], &a->pk, a->C, a->H, a->causal);
}
static void attention_case(int causal) {
    Rng r;
    rng_seed(&r, 6 + causal);
    static const int start[3] = {0, 4, 5}, len[3] = {4, 1, 3};
    long off[3];
    AttCtx a = {.C = 8, .H = 2, .causal = causal};
    long att_n = packing_att_offsets(off, len, 3, a.H);
    a.pk = (Packing){3, start, len, off};
    a.att = xalloc_floats((size_t)att_n);
    GradCase g = {.forward = attf, .backward = attb, .ctx = &a};
    setup(&g, &r, 1, (long[]){8 * 3 * a.C}, 8 * a.C);
    gradcheck(&g, causal ? "attention(causal)" : "attention", 2e-2);

    /* forward against a direct computation for sequence 0, head 1, row 2 */
    attf(&g);
    const int hd = 4, h = 1, i = 2, C3 = 3 * a.C;
    double w[4], sum = 0;
    int jn = causal ? i + 1 : 4;
    for (int j = 0; j < jn; j++) {
        double s = 0;
        for (int d = 0; d < hd; d++) s += (double)g.in[0][i * C3 + h * hd + d] * g.in[0][j * C3 + a.C + h * hd + d];
        w[j] = exp(s / 2.0);
        sum += w[j];
    }
    for (int d = 0; d < hd; d++) {
        double o = 0;
        for (int j = 0; j < jn; j++) o += w[j] / sum * g.in[0][j * C3 + 2 * a.C + h * hd + d];
        CHECK_NEAR(g.out[i * a.C + h * hd + d], o, 1e-5);
    }
    /* a sequence never attends across its boundary: the length-1 sequence returns its own V */
    for (int d = 0; d < a.C; d++) CHECK_NEAR(g.out[4 * a.C + d], g.in[0][4 * C3 + 2 * a.C + d], 1e-6);
    free(a.att);
    free_case(&g);
}
TEST(ops_attention_grad) { attention_case(0); }
TEST(ops_attention_causal_grad) { attention_case(1); }

/* ------------------------------------------------------------ activations */
static void qgf(GradCase *g) { quickgelu_forward(g->out, g->in[0], g->out_n); }
static void qgb(GradCase *g) { quickgelu_backward(g->grad[0], g->R, g->in[0], g->out_n); }
static void gef(GradCase *g) { gelu_forward(g->out, g->in[0], g->out_n); }
static void geb(GradCase *g) { gelu_backward(g->grad[0], g->R, g->in[0], g->out_n); }
TEST(ops_gelu_grads) {
    Rng r;
    rng_seed(&r, 8);
    GradCase g = {.forward = qgf, .backward = qgb};
    setup(&g, &r, 1, (long[]){40}, 40);
    gradcheck(&g, "quickgelu", 1e-2);
    qgf(&g);
    CHECK_NEAR(g.out[0], g.in[0][0] / (1 + exp(-1.702 * g.in[0][0])), 1e-6);
    GradCase h = g;
    h.forward = gef;
    h.backward = geb;
    gradcheck(&h, "gelu", 1e-2);
    gef(&h);
    CHECK_NEAR(h.out[0], 0.5 * h.in[0][0] * (1 + erf(h.in[0][0] / sqrt(2.0))), 1e-6);
    free_case(&g);
}

/* ------------------------------------------------------- softmax and losses */
static void smf(GradCase *g) { softmax_forward(g->out, g->in[0], 3, 5); }
static void smb(GradCase *g) {
    softmax_forward(g->out, g->in[0], 3, 5);
    softmax_backward(g->grad[0], g->R, g->out, 3, 5);
}
TEST(ops_softmax_grad) {
    Rng r;
    rng_seed(&r, 9);
    GradCase g = {.forward = smf, .backward = smb};
    setup(&g, &r, 1, (long[]){15}, 15);
    gradcheck(&g, "softmax", 1e-2);
    smf(&g);
    double s = 0;
    for (int k = 0; k < 5; k++) s += g.out[k];
    CHECK_NEAR(s, 1, 1e-6);
    free_case(&g);
}

static const int32_t ce_t[3] = {4, 0, 2};
static float ce_probs[15];
static void cef(GradCase *g) { g->out[0] = cross_entropy_forward(ce_probs, g->in[0], ce_t, 3, 5); }
static void ceb(GradCase *g) {
    cross_entropy_forward(ce_probs, g->in[0], ce_t, 3, 5);
    cross_entropy_backward(g->grad[0], ce_probs, ce_t, 3, 5, g->R[0]);
}
TEST(ops_cross_entropy_grad) {
    Rng r;
    rng_seed(&r, 10);
    GradCase g = {.forward = cef, .backward = ceb};
    setup(&g, &r, 1, (long[]){15}, 1);
    gradcheck(&g, "cross_entropy", 1e-2);
    /* uniform logits: loss = ln K */
    float z[15] = {0};
    CHECK_NEAR(cross_entropy_forward(ce_probs, z, ce_t, 3, 5), log(5.0), 1e-6);
    /* huge margins stay finite */
    float big[5] = {1000, -1000, 0, 0, 0};
    int32_t t1 = 1;
    float p5[5];
    float l = cross_entropy_forward(p5, big, &t1, 1, 5);
    CHECK_NEAR(l, 2000, 1e-2);
    free_case(&g);
}

static float l2n[4];
static void l2f(GradCase *g) { l2norm_forward(g->out, l2n, g->in[0], 4, 6); }
static void l2b(GradCase *g) {
    l2norm_forward(g->out, l2n, g->in[0], 4, 6);
    l2norm_backward(g->grad[0], g->R, g->out, l2n, 4, 6);
}
TEST(ops_l2norm_grad) {
    Rng r;
    rng_seed(&r, 11);
    GradCase g = {.forward = l2f, .backward = l2b};
    setup(&g, &r, 1, (long[]){24}, 24);
    gradcheck(&g, "l2norm", 1e-2);
    free_case(&g);
}

/* ----------------------------------------------------------------- conv2d */
static const ConvShape cs = {.B = 2, .Cin = 3, .H = 7, .W = 6, .Cout = 4, .k = 3, .stride = 2, .pad = 1};
static float *conv_cols;
static void cvf(GradCase *g) { conv2d_forward(g->out, conv_cols, g->in[0], g->in[1], g->in[2], &cs); }
static void cvb(GradCase *g) {
    conv2d_forward(g->out, conv_cols, g->in[0], g->in[1], g->in[2], &cs);
    conv2d_backward(g->grad[0], g->grad[1], g->grad[2], g->R, conv_cols, g->in[1], &cs);
}
TEST(ops_conv2d_grad) {
    Rng r;
    rng_seed(&r, 12);
    int OH = conv2d_out_h(&cs), OW = conv2d_out_w(&cs);
    CHECK_INT(OH, 4);
    CHECK_INT(OW, 3);
    conv_cols = xalloc_floats((size_t)conv2d_cols_size(&cs));
    GradCase g = {.forward = cvf, .backward = cvb};
    setup(&g, &r, 3, (long[]){2 * 3 * 7 * 6, 4 * 3 * 9, 4}, 2 * OH * OW * 4);
    gradcheck(&g, "conv2d", 1e-2);
    /* direct convolution at one output position: b=1, oy=1, ox=2, cout=3 */
    cvf(&g);
    double s = g.in[2][3];
    for (int c = 0; c < 3; c++)
        for (int ky = 0; ky < 3; ky++)
            for (int kx = 0; kx < 3; kx++) {
                int iy = 1 * 2 - 1 + ky, ix = 2 * 2 - 1 + kx;
                if (iy < 0 || iy >= 7 || ix < 0 || ix >= 6) continue;
                s += (double)g.in[0][((1 * 3 + c) * 7 + iy) * 6 + ix] * g.in[1][((3 * 3 + c) * 3 + ky) * 3 + kx];
            }
    CHECK_NEAR(g.out[((1 * OH + 1) * OW + 2) * 4 + 3], s, 1e-5);
    free(conv_cols);
    free_case(&g);
}

static void addf(GradCase *g) { add_forward(g->out, g->in[0], g->in[1], 10); }
static void addb(GradCase *g) {
    add_inplace(g->grad[0], g->R, 10);
    add_inplace(g->grad[1], g->R, 10);
}
TEST(ops_add_grad) {
    Rng r;
    rng_seed(&r, 13);
    GradCase g = {.forward = addf, .backward = addb};
    setup(&g, &r, 2, (long[]){10, 10}, 10);
    gradcheck(&g, "add", 1e-3);
    free_case(&g);
}

#include "core/fastmath.h"

TEST(fast_expf_matches_libm) {
    double worst = 0;
    for (float x = -87.0f; x <= 88.0f; x += 0.0137f) {
        double want = exp((double)x), got = fast_expf(x);
        worst = fmax(worst, fabs(got - want) / want);
    }
    CHECK_MSG(worst < 3e-7, "worst relative error %.3g", worst);
    CHECK(fast_expf(-1000.0f) < 1e-37f && fast_expf(-1000.0f) >= 0.0f);
    CHECK(isfinite(fast_expf(1000.0f)));
}
