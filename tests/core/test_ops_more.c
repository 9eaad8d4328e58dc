/* Gradient checks for the ops the next models need (cross-attention, GroupNorm, BatchNorm,
 * RMSNorm, SiLU, ReLU, GEGLU, SwiGLU, up-sampling, pooling, NCHW convolution, RoPE, MSE), each
 * with a forward check against a direct formula; and the shared shuffle and argsort. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "core/err.h"
#include "core/gradcheck.h"
#include "core/ops.h"
#include "core/rng.h"
#include "core/sort.h"
#include "test.h"

/* ------------------------------------------------- attention with Tq != Tk */
typedef struct {
    AttnPacking pk;
    int C, H, causal;
    float *att;
} XAttCtx;
static void xattf(GradCase *g) {
    XAttCtx *a = g->ctx;
    const AttnIn x = {g->in[0], g->in[1], g->in[1] + a->C, a->C, 2 * a->C, 2 * a->C};
    attention_general_forward(g->out, a->C, a->att, &x, &a->pk, a->C, a->H, a->causal);
}
static void xattb(GradCase *g) {
    XAttCtx *a = g->ctx;
    const AttnIn x = {g->in[0], g->in[1], g->in[1] + a->C, a->C, 2 * a->C, 2 * a->C};
    const AttnGrad d = {g->grad[0], g->grad[1], g->grad[1] + a->C, a->C, 2 * a->C, 2 * a->C, NULL};
    attention_general_backward(&d, g->R, a->C, a->att, &x, &a->pk, a->C, a->H, a->causal);
}
static void cross_attention_case(int causal) {
    Rng r;
    rng_seed(&r, 40 + causal);
    /* two sequences: 3 queries over 5 keys, 2 queries over 2 keys */
    static const int qs[2] = {0, 3}, ql[2] = {3, 2}, ks[2] = {0, 5}, kl[2] = {5, 2};
    long off[2];
    XAttCtx a = {.C = 8, .H = 2, .causal = causal};
    long n_att = attn_packing_offsets(off, ql, kl, 2, a.H);
    CHECK_INT(n_att, 2 * 3 * 5 + 2 * 2 * 2);
    a.pk = (AttnPacking){2, qs, ql, ks, kl, off};
    a.att = xalloc_floats((size_t)n_att);
    GradCase g = {.forward = xattf, .backward = xattb, .ctx = &a};
    setup(&g, &r, 2, (long[]){5 * a.C, 7 * 2 * a.C}, 5 * a.C);
    gradcheck(&g, causal ? "cross-attention(causal)" : "cross-attention", 2e-2);
    /* direct: sequence 0, head 0, query 1 (causal: sees keys 0..3 of 5) */
    xattf(&g);
    const int hd = 4, i = 1, jn = causal ? i + 1 + 5 - 3 : 5;
    double w[5], sum = 0;
    for (int j = 0; j < jn; j++) {
        double s = 0;
        for (int d = 0; d < hd; d++) s += (double)g.in[0][i * a.C + d] * g.in[1][j * 2 * a.C + d];
        w[j] = exp(s / 2.0), sum += w[j];
    }
    for (int d = 0; d < hd; d++) {
        double o = 0;
        for (int j = 0; j < jn; j++) o += w[j] / sum * g.in[1][j * 2 * a.C + a.C + d];
        CHECK_NEAR(g.out[i * a.C + d], o, 1e-5);
    }
    /* a frozen key/value source: NULL gradients are skipped, the query gradient is unchanged */
    float *dq = xcalloc(5 * 8, sizeof(float));
    const AttnIn x = {g.in[0], g.in[1], g.in[1] + a.C, a.C, 2 * a.C, 2 * a.C};
    const AttnGrad only_q = {dq, NULL, NULL, a.C, 0, 0, NULL};
    memset(g.grad[0], 0, sizeof(float) * 5 * 8);
    xattf(&g);
    xattb(&g);
    attention_general_backward(&only_q, g.R, a.C, a.att, &x, &a.pk, a.C, a.H, causal);
    CHECK_CLOSE(dq, g.grad[0], 5 * 8, 1e-6, 1e-6);
    free(dq);
    free(a.att);
    free_case(&g);
}
TEST(ops_cross_attention_grad) { cross_attention_case(0); }

/* A loss on the attention weights as well as the output (Forget-Me-Not): out = [output, weights],
 * the weights' part of R given to the backward as datt. */
static void xattw_f(GradCase *g) {
    XAttCtx *a = g->ctx;
    const AttnIn x = {g->in[0], g->in[1], g->in[1] + a->C, a->C, 2 * a->C, 2 * a->C};
    attention_general_forward(g->out, a->C, g->out + 5 * a->C, &x, &a->pk, a->C, a->H, a->causal);
}
static void xattw_b(GradCase *g) {
    XAttCtx *a = g->ctx;
    const AttnIn x = {g->in[0], g->in[1], g->in[1] + a->C, a->C, 2 * a->C, 2 * a->C};
    const AttnGrad d = {g->grad[0], g->grad[1], g->grad[1] + a->C, a->C, 2 * a->C, 2 * a->C, g->R + 5 * a->C};
    attention_general_backward(&d, g->R, a->C, g->out + 5 * a->C, &x, &a->pk, a->C, a->H, a->causal);
}
TEST(ops_cross_attention_weight_loss_grad) {
    Rng r;
    rng_seed(&r, 44);
    static const int qs[2] = {0, 3}, ql[2] = {3, 2}, ks[2] = {0, 5}, kl[2] = {5, 2};
    long off[2];
    XAttCtx a = {.C = 8, .H = 2};
    const long n_att = attn_packing_offsets(off, ql, kl, 2, a.H);
    a.pk = (AttnPacking){2, qs, ql, ks, kl, off};
    GradCase g = {.forward = xattw_f, .backward = xattw_b, .ctx = &a};
    setup(&g, &r, 2, (long[]){5 * a.C, 7 * 2 * a.C}, 5 * a.C + n_att);
    gradcheck(&g, "cross-attention with a loss on its weights", 2e-2);
    free_case(&g);
}
TEST(ops_cross_attention_causal_offset_grad) { cross_attention_case(1); }

/* --------------------------------------------------------------- GroupNorm */
enum { GN_B = 2, GN_C = 6, GN_HW = 5, GN_G = 3 };
static float gn_mean[GN_B * GN_G], gn_rstd[GN_B * GN_G];
static void gnf(GradCase *g) {
    groupnorm_forward(g->out, gn_mean, gn_rstd, g->in[0], g->in[1], g->in[2], GN_B, GN_C, GN_HW, GN_G, 1e-5f);
}
static void gnb(GradCase *g) {
    groupnorm_backward(g->grad[0], g->grad[1], g->grad[2], g->R, g->in[0], g->in[1], gn_mean, gn_rstd, GN_B, GN_C,
                       GN_HW, GN_G);
}
TEST(ops_groupnorm_grad) {
    Rng r;
    rng_seed(&r, 42);
    GradCase g = {.forward = gnf, .backward = gnb};
    setup(&g, &r, 3, (long[]){GN_B * GN_C * GN_HW, GN_C, GN_C}, GN_B * GN_C * GN_HW);
    gradcheck(&g, "groupnorm", 2e-2);
    /* with w = 1, b = 0 each group of image 1 has mean 0, variance 1 */
    for (int c = 0; c < GN_C; c++) g.in[1][c] = 1, g.in[2][c] = 0;
    gnf(&g);
    const float *grp = g.out + (size_t)(1 * GN_C + 2) * GN_HW; /* image 1, group 1: channels 2-3 */
    double m = 0, v = 0;
    for (int k = 0; k < 2 * GN_HW; k++) m += grp[k], v += (double)grp[k] * grp[k];
    CHECK_NEAR(m / (2 * GN_HW), 0, 1e-5);
    CHECK_NEAR(v / (2 * GN_HW), 1, 1e-3);
    free_case(&g);
}

/* --------------------------------------------------------------- BatchNorm */
enum { BN_B = 3, BN_C = 4, BN_HW = 5 };
static float bn_mean[BN_C], bn_rstd[BN_C], bn_rm[BN_C], bn_rv[BN_C];
static int bn_training;
static void bnf(GradCase *g) {
    batchnorm_forward(g->out, bn_mean, bn_rstd, g->in[0], g->in[1], g->in[2], bn_training ? NULL : bn_rm,
                      bn_training ? NULL : bn_rv, BN_B, BN_C, BN_HW, 1e-5f, 0.1f, bn_training);
}
static void bnb(GradCase *g) {
    batchnorm_backward(g->grad[0], g->grad[1], g->grad[2], g->R, g->in[0], g->in[1], bn_mean, bn_rstd, BN_B, BN_C,
                       BN_HW, bn_training);
}
TEST(ops_batchnorm_grad_train_and_eval) {
    Rng r;
    rng_seed(&r, 43);
    GradCase g = {.forward = bnf, .backward = bnb};
    setup(&g, &r, 3, (long[]){BN_B * BN_C * BN_HW, BN_C, BN_C}, BN_B * BN_C * BN_HW);
    bn_training = 1;
    gradcheck(&g, "batchnorm(train)", 2e-2);
    for (int c = 0; c < BN_C; c++) bn_rm[c] = 0.3f * c, bn_rv[c] = 0.5f + c;
    bn_training = 0;
    gradcheck(&g, "batchnorm(eval)", 1e-2);
    /* eval: y = (x - rm) / sqrt(rv + eps) * w + b */
    bnf(&g);
    const int n = 2, c = 3, i = 4;
    const size_t k = ((size_t)n * BN_C + c) * BN_HW + i;
    CHECK_NEAR(g.out[k], (g.in[0][k] - bn_rm[c]) / sqrt(bn_rv[c] + 1e-5) * g.in[1][c] + g.in[2][c], 1e-5);
    /* training updates the running statistics as PyTorch: momentum 0.1, unbiased variance */
    float rm[BN_C] = {0}, rv[BN_C] = {1, 1, 1, 1};
    batchnorm_forward(g.out, bn_mean, bn_rstd, g.in[0], g.in[1], g.in[2], rm, rv, BN_B, BN_C, BN_HW, 1e-5f, 0.1f, 1);
    double s = 0, ss = 0;
    for (int b = 0; b < BN_B; b++)
        for (int j = 0; j < BN_HW; j++) s += g.in[0][((size_t)b * BN_C + 1) * BN_HW + j];
    const double mu = s / (BN_B * BN_HW);
    for (int b = 0; b < BN_B; b++)
        for (int j = 0; j < BN_HW; j++) {
            double d = g.in[0][((size_t)b * BN_C + 1) * BN_HW + j] - mu;
            ss += d * d;
        }
    CHECK_NEAR(rm[1], 0.1 * mu, 1e-6);
    CHECK_NEAR(rv[1], 0.9 + 0.1 * ss / (BN_B * BN_HW - 1), 1e-5);
    free_case(&g);
}

/* ----------------------------------------------------------------- RMSNorm */
static float rms_rstd[4];
static void rmsf(GradCase *g) { rmsnorm_forward(g->out, rms_rstd, g->in[0], g->in[1], 4, 7, 1e-6f); }
static void rmsb(GradCase *g) { rmsnorm_backward(g->grad[0], g->grad[1], g->R, g->in[0], g->in[1], rms_rstd, 4, 7); }
TEST(ops_rmsnorm_grad) {
    Rng r;
    rng_seed(&r, 44);
    GradCase g = {.forward = rmsf, .backward = rmsb};
    setup(&g, &r, 2, (long[]){28, 7}, 28);
    gradcheck(&g, "rmsnorm", 2e-2);
    rmsf(&g);
    double ss = 0;
    for (int c = 0; c < 7; c++) ss += (double)g.in[0][7 + c] * g.in[0][7 + c];
    CHECK_NEAR(g.out[7 + 2], g.in[0][7 + 2] / sqrt(ss / 7 + 1e-6) * g.in[1][2], 1e-5);
    free_case(&g);
}

/* ------------------------------------------------------------- activations */
static void siluf(GradCase *g) { silu_forward(g->out, g->in[0], g->out_n); }
static void silub(GradCase *g) { silu_backward(g->grad[0], g->R, g->in[0], g->out_n); }
static void reluf(GradCase *g) { relu_forward(g->out, g->in[0], g->out_n); }
static void relub(GradCase *g) { relu_backward(g->grad[0], g->R, g->in[0], g->out_n); }
static void gegf(GradCase *g) { geglu_forward(g->out, g->in[0], 3, 5); }
static void gegb(GradCase *g) { geglu_backward(g->grad[0], g->R, g->in[0], 3, 5); }
static void swif(GradCase *g) { swiglu_forward(g->out, g->in[0], g->in[1], g->out_n); }
static void swib(GradCase *g) { swiglu_backward(g->grad[0], g->grad[1], g->R, g->in[0], g->in[1], g->out_n); }
TEST(ops_silu_relu_geglu_swiglu_grads) {
    Rng r;
    rng_seed(&r, 45);
    GradCase g = {.forward = siluf, .backward = silub};
    setup(&g, &r, 1, (long[]){30}, 30);
    gradcheck(&g, "silu", 1e-2);
    siluf(&g);
    CHECK_NEAR(g.out[3], g.in[0][3] / (1 + exp(-g.in[0][3])), 1e-6);
    for (int i = 0; i < 30; i++) /* keep ReLU's kink out of the finite differences */
        if (fabsf(g.in[0][i]) < 0.05f) g.in[0][i] = g.in[0][i] < 0 ? -0.05f : 0.05f;
    g.forward = reluf, g.backward = relub;
    gradcheck(&g, "relu", 1e-3);
    free_case(&g);

    GradCase h = {.forward = gegf, .backward = gegb};
    setup(&h, &r, 1, (long[]){3 * 10}, 3 * 5);
    gradcheck(&h, "geglu", 1e-2);
    gegf(&h);
    const double gate = h.in[0][10 + 5 + 2], val = h.in[0][10 + 2]; /* row 1, column 2 */
    CHECK_NEAR(h.out[5 + 2], val * 0.5 * gate * (1 + erf(gate / sqrt(2.0))), 1e-5);
    free_case(&h);

    GradCase s = {.forward = swif, .backward = swib};
    setup(&s, &r, 2, (long[]){12, 12}, 12);
    gradcheck(&s, "swiglu", 1e-2);
    swif(&s);
    CHECK_NEAR(s.out[4], s.in[0][4] / (1 + exp(-s.in[0][4])) * s.in[1][4], 1e-6);
    free_case(&s);
}

/* ------------------------------------------------- up-sampling and pooling */
static void upf(GradCase *g) { upsample2x_forward(g->out, g->in[0], 2, 3, 2); }
static void upb(GradCase *g) { upsample2x_backward(g->grad[0], g->R, 2, 3, 2); }
static void avgf(GradCase *g) { avgpool_forward(g->out, g->in[0], 2, 5, 4, 2, 2); }
static void avgb(GradCase *g) { avgpool_backward(g->grad[0], g->R, 2, 5, 4, 2, 2); }
static int32_t mp_arg[2 * 2 * 2];
static void maxf(GradCase *g) { maxpool_forward(g->out, mp_arg, g->in[0], 2, 5, 4, 2, 2); }
static void maxb(GradCase *g) { maxpool_backward(g->grad[0], g->R, mp_arg, 2, 5, 4, 2, 2); }
TEST(ops_upsample_and_pooling_grads) {
    Rng r;
    rng_seed(&r, 46);
    GradCase g = {.forward = upf, .backward = upb};
    setup(&g, &r, 1, (long[]){2 * 3 * 2}, 2 * 6 * 4);
    gradcheck(&g, "upsample2x", 1e-3);
    upf(&g);
    CHECK_NEAR(g.out[(1 * 6 + 5) * 4 + 3], g.in[0][(1 * 3 + 2) * 2 + 1], 0); /* plane 1, (5,3) <- (2,1) */
    free_case(&g);

    CHECK_INT(pool_out(5, 2, 2), 2);
    GradCase a = {.forward = avgf, .backward = avgb};
    setup(&a, &r, 1, (long[]){2 * 5 * 4}, 2 * 2 * 2);
    gradcheck(&a, "avgpool", 1e-3);
    avgf(&a);
    const float *p1 = a.in[0] + 20; /* plane 1, window (1, 1): rows 2-3, columns 2-3 */
    CHECK_NEAR(a.out[4 + 3], (p1[2 * 4 + 2] + p1[2 * 4 + 3] + p1[3 * 4 + 2] + p1[3 * 4 + 3]) / 4.0, 1e-6);
    /* max pooling: distinct values 0.1 apart, so no perturbation changes a window's winner */
    int perm[40];
    rng_permutation(&r, perm, 40);
    for (int i = 0; i < 40; i++) a.in[0][i] = 0.1f * perm[i];
    a.forward = maxf, a.backward = maxb;
    gradcheck(&a, "maxpool", 1e-3);
    maxf(&a);
    CHECK_NEAR(a.out[4 + 3], fmaxf(fmaxf(p1[10], p1[11]), fmaxf(p1[14], p1[15])), 0);
    free_case(&a);
}

/* ---------------------------------------------------------- NCHW convolution */
static const ConvShape ncs = {.B = 2, .Cin = 3, .H = 6, .W = 5, .Cout = 4, .k = 3, .stride = 1, .pad = 1};
static float *ncols;
static void ncf(GradCase *g) { conv2d_nchw_forward(g->out, ncols, g->in[0], g->in[1], g->in[2], &ncs); }
static void ncb(GradCase *g) {
    conv2d_nchw_forward(g->out, ncols, g->in[0], g->in[1], g->in[2], &ncs);
    conv2d_nchw_backward(g->grad[0], g->grad[1], g->grad[2], g->R, ncols, g->in[1], &ncs);
}
TEST(ops_conv2d_nchw_grad) {
    Rng r;
    rng_seed(&r, 47);
    const int P = 6 * 5;
    ncols = xalloc_floats((size_t)conv2d_cols_size(&ncs));
    GradCase g = {.forward = ncf, .backward = ncb};
    setup(&g, &r, 3, (long[]){2 * 3 * P, 4 * 3 * 9, 4}, 2 * 4 * P);
    gradcheck(&g, "conv2d_nchw", 1e-2);
    /* the same numbers as the channels-last convolution, transposed */
    float *cl = xalloc_floats(2 * P * 4);
    conv2d_forward(cl, ncols, g.in[0], g.in[1], g.in[2], &ncs);
    ncf(&g);
    double worst = 0;
    for (int b = 0; b < 2; b++)
        for (int c = 0; c < 4; c++)
            for (int p = 0; p < P; p++)
                worst = fmax(worst, fabs(g.out[((size_t)b * 4 + c) * P + p] - cl[((size_t)b * P + p) * 4 + c]));
    CHECK_MSG(worst < 1e-5, "NCHW vs channels-last: %.3g", worst);
    free(cl);
    free(ncols);
    free_case(&g);
}

/* -------------------------------------------------------------------- RoPE */
static const int32_t rope_pos[3] = {0, 5, 17};
static void ropef(GradCase *g) { rope_forward(g->out, g->in[0], rope_pos, 3, 2, 6, 10000.0f); }
static void ropeb(GradCase *g) { rope_backward(g->grad[0], g->R, rope_pos, 3, 2, 6, 10000.0f); }
TEST(ops_rope_grad_and_relative_positions) {
    Rng r;
    rng_seed(&r, 48);
    GradCase g = {.forward = ropef, .backward = ropeb};
    setup(&g, &r, 1, (long[]){3 * 2 * 6}, 3 * 2 * 6);
    gradcheck(&g, "rope", 1e-3);
    ropef(&g);
    for (int k = 0; k < 12; k++) CHECK_NEAR(g.out[k], g.in[0][k], 1e-7); /* position 0: identity */
    /* a rotation keeps norms, and <rope(q, m), rope(k, n)> depends on m - n only */
    float q[6], k[6], a1[6], b1[6], a2[6], b2[6];
    for (int i = 0; i < 6; i++) q[i] = rng_normal(&r), k[i] = rng_normal(&r);
    const int32_t p1[1] = {7}, p2[1] = {3}, p3[1] = {12}, p4[1] = {8};
    rope_forward(a1, q, p1, 1, 1, 6, 10000.0f), rope_forward(b1, k, p2, 1, 1, 6, 10000.0f);
    rope_forward(a2, q, p3, 1, 1, 6, 10000.0f), rope_forward(b2, k, p4, 1, 1, 6, 10000.0f);
    double d1 = 0, d2 = 0;
    for (int i = 0; i < 6; i++) d1 += (double)a1[i] * b1[i], d2 += (double)a2[i] * b2[i];
    CHECK_NEAR(d1, d2, 1e-4);
    free_case(&g);
}

/* ---------------------------------------------- timestep embedding and MSE */
TEST(ops_timestep_embedding_matches_formula) {
    float t[2] = {0, 981}, out[2 * 8];
    timestep_embedding(out, t, 2, 8, 10000.0f);
    for (int i = 0; i < 4; i++) {
        CHECK_NEAR(out[i], 1, 0); /* t = 0: cos 1, sin 0 */
        CHECK_NEAR(out[4 + i], 0, 0);
        const double f = exp(-log(10000.0) * i / 4);
        CHECK_NEAR(out[8 + i], cos(981 * f), 1e-5);
        CHECK_NEAR(out[8 + 4 + i], sin(981 * f), 1e-5);
    }
}

static float *mse_target;
static void msef(GradCase *g) { g->out[0] = mse_forward(g->in[0], mse_target, 9); }
static void mseb(GradCase *g) { mse_backward(g->grad[0], g->in[0], mse_target, 9, g->R[0]); }
TEST(ops_mse_grad) {
    Rng r;
    rng_seed(&r, 49);
    GradCase g = {.forward = msef, .backward = mseb};
    setup(&g, &r, 1, (long[]){9}, 1);
    mse_target = randn(&r, 9, 1);
    gradcheck(&g, "mse", 1e-2);
    double s = 0;
    for (int i = 0; i < 9; i++) s += pow(g.in[0][i] - mse_target[i], 2);
    CHECK_NEAR(mse_forward(g.in[0], mse_target, 9), s / 9, 1e-6);
    free(mse_target);
    free_case(&g);
}

/* ------------------------------------------------------- shuffle and sort */
TEST(rng_shuffle_is_the_seeded_fisher_yates) {
    Rng a, b;
    rng_seed(&a, 7), rng_seed(&b, 7);
    int perm[50], ref[50];
    rng_permutation(&a, perm, 50);
    for (int i = 0; i < 50; i++) ref[i] = i;
    for (int i = 49; i > 0; i--) { /* the order every earlier release drew */
        int j = (int)rng_below(&b, (uint32_t)(i + 1)), t = ref[i];
        ref[i] = ref[j], ref[j] = t;
    }
    for (int i = 0; i < 50; i++) CHECK_INT(perm[i], ref[i]);
    /* elements wider than the copy buffer move whole */
    double big[3][12];
    for (int i = 0; i < 3; i++)
        for (int k = 0; k < 12; k++) big[i][k] = i * 100 + k;
    rng_shuffle(&a, big, 3, sizeof big[0]);
    int seen = 0;
    for (int i = 0; i < 3; i++) {
        const int id = (int)(big[i][0] / 100);
        for (int k = 0; k < 12; k++) CHECK_NEAR(big[i][k], id * 100 + k, 0);
        seen |= 1 << id;
    }
    CHECK_INT(seen, 7);
}

TEST(argsort_is_stable_and_sorted) {
    Rng r;
    rng_seed(&r, 50);
    enum { N = 1001 };
    double v[N];
    for (int i = 0; i < N; i++) v[i] = (double)rng_below(&r, 50); /* many ties */
    int order[N];
    argsort_f64(v, N, order);
    int seen[N] = {0};
    for (int k = 0; k < N; k++) seen[order[k]]++;
    for (int i = 0; i < N; i++) CHECK_INT(seen[i], 1);
    for (int k = 1; k < N; k++) {
        CHECK(v[order[k - 1]] <= v[order[k]]);
        if (v[order[k - 1]] == v[order[k]]) CHECK(order[k - 1] < order[k]);
    }
    float f[4] = {3, -1, 3, 0};
    int o4[4];
    argsort_f32(f, 4, o4);
    CHECK_INT(o4[0], 1);
    CHECK_INT(o4[1], 3);
    CHECK_INT(o4[2], 0);
    CHECK_INT(o4[3], 2);
    argsort_f64(v, 0, order); /* empty: nothing to do */
}
