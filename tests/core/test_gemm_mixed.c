/* The bf16 and int8 GEMM seam against references computed here from the same rounded operands:
 * bf16 products must equal fp32 products of bf16-rounded inputs (fp32 accumulation), int8
 * products the exact integer products rescaled. So a wrong layout, a wrong scale or a lost bias
 * shows as an error far above the accumulation-order rounding these tolerances allow. */
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "core/gemm.h"
#include "core/gemm_mixed.h"
#include "core/ops.h"
#include "core/rng.h"
#include "test.h"

static float *randn_buf(Rng *r, long n, float s) {
    float *x = malloc(sizeof(float) * (size_t)n);
    for (long i = 0; i < n; i++) x[i] = s * rng_normal(r);
    return x;
}

static float *bf16_round(const float *x, long n) {
    float *y = malloc(sizeof(float) * (size_t)n);
    for (long i = 0; i < n; i++) y[i] = gemm_bf16_to_f32(gemm_f32_to_bf16(x[i]));
    return y;
}

TEST(test_bf16_rounding) {
    CHECK_INT(gemm_f32_to_bf16(1.0f), 0x3f80);
    CHECK_INT(gemm_f32_to_bf16(-2.0f), 0xc000);
    CHECK_INT(gemm_f32_to_bf16(1.0f + 0x1p-8f), 0x3f80);          /* a tie rounds to even (down) */
    CHECK_INT(gemm_f32_to_bf16(1.0f + 3 * 0x1p-8f), 0x3f82);      /* a tie rounds to even (up) */
    CHECK_INT(gemm_f32_to_bf16(1.0f + 0x1p-8f + 0x1p-20f), 0x3f81); /* above the tie rounds up */
    CHECK_INT(gemm_f32_to_bf16(INFINITY), 0x7f80);
    CHECK(isnan(gemm_bf16_to_f32(gemm_f32_to_bf16(NAN))));
    CHECK_NEAR(gemm_bf16_to_f32(gemm_f32_to_bf16(3.14159f)), 3.140625, 0);
}

TEST(test_precision_parse) {
    Precision p;
    Err e;
    CHECK_INT(precision_parse("bf16", &p, &e), 0);
    CHECK_INT(p, PREC_BF16);
    CHECK_INT(precision_parse("int8", &p, &e), 0);
    CHECK_INT(p, PREC_INT8);
    CHECK_INT(precision_parse("fp16", &p, &e), -1);
    CHECK(strstr(e.msg, "fp32, bf16 or int8") != NULL);
}

static Gemm *context(Precision want) {
    Err e;
    Gemm *g = gemm_new(want, &e);
    CHECK(g != NULL);
    if (g && gemm_precision(g) != want) {
        test_skip("this CPU lacks the instructions (the fallback is tested by the CLI test)");
        gemm_free(g);
        return NULL;
    }
    return g;
}

/* Shapes: tiny, odd, and one large enough for the blocked kernels. */
static const int shapes[][3] = {{1, 3, 5}, {7, 33, 17}, {50, 64, 96}, {130, 257, 200}};

TEST(test_gemm_bf16_linear_matches_rounded_reference) {
    Gemm *g = context(PREC_BF16);
    if (!g) return;
    Rng r;
    rng_seed(&r, 11);
    for (size_t s = 0; s < sizeof shapes / sizeof *shapes; s++) {
        const int N = shapes[s][0], IC = shapes[s][1], OC = shapes[s][2];
        float *x = randn_buf(&r, (long)N * IC, 1.0f), *W = randn_buf(&r, (long)OC * IC, 0.1f);
        float *b = randn_buf(&r, OC, 1.0f), *xr = bf16_round(x, (long)N * IC), *Wr = bf16_round(W, (long)OC * IC);
        float *out = calloc((size_t)N * OC, sizeof(float)), *ref = calloc((size_t)N * OC, sizeof(float));
        for (int i = 0; i < N; i++) memcpy(ref + (size_t)i * OC, b, sizeof(float) * OC);
        sgemm_reference(false, true, N, OC, IC, 1.0f, xr, IC, Wr, IC, 1.0f, ref, OC);
        gemm_linear(g, out, x, W, b, N, IC, OC);
        CHECK_CLOSE(out, ref, (long)N * OC, 1e-4, 1e-4);
        gemm_linear(g, out, x, W, NULL, N, IC, OC); /* the same weights again, now without the bias */
        for (long i = 0; i < (long)N * OC; i++) ref[i] -= b[i % OC];
        CHECK_CLOSE(out, ref, (long)N * OC, 1e-4, 1e-4);
        free(x), free(W), free(b), free(xr), free(Wr), free(out), free(ref);
    }
    CHECK(strstr(gemm_impl(g), "bf16") != NULL);
    gemm_free(g);
}

TEST(test_gemm_int8_linear_matches_integer_reference) {
    Gemm *g = context(PREC_INT8);
    if (!g) return;
    Rng r;
    rng_seed(&r, 12);
    for (size_t s = 0; s < sizeof shapes / sizeof *shapes; s++) {
        const int N = shapes[s][0], IC = shapes[s][1], OC = shapes[s][2];
        float *x = randn_buf(&r, (long)N * IC, 2.0f), *W = randn_buf(&r, (long)OC * IC, 0.1f);
        float *b = randn_buf(&r, OC, 1.0f), *out = malloc(sizeof(float) * (size_t)N * OC);
        double err = 0, scale = 0, qerr = 0;
        gemm_linear(g, out, x, W, b, N, IC, OC);
        for (int i = 0; i < N; i++) {
            float mx = 0;
            for (int k = 0; k < IC; k++) mx = fmaxf(mx, fabsf(x[(size_t)i * IC + k]));
            const float sa = mx / 127.0f;
            for (int o = 0; o < OC; o++) {
                float mw = 0;
                for (int k = 0; k < IC; k++) mw = fmaxf(mw, fabsf(W[(size_t)o * IC + k]));
                const float sw = mw / 127.0f;
                long acc = 0;
                double exact = b[o];
                for (int k = 0; k < IC; k++) {
                    const long qa = lrintf(x[(size_t)i * IC + k] / sa), qw = lrintf(W[(size_t)o * IC + k] / sw);
                    acc += qa * qw;
                    exact += (double)x[(size_t)i * IC + k] * W[(size_t)o * IC + k];
                }
                const double ref = (double)acc * sa * sw + b[o], got = out[(size_t)i * OC + o];
                err = fmax(err, fabs(got - ref));
                qerr = fmax(qerr, fabs(got - exact));
                scale = fmax(scale, fabs(exact));
            }
        }
        CHECK_MSG(err <= 1e-4 * (1 + scale), "shape %d: int8 product off the integer reference by %g", (int)s, err);
        /* and the quantisation itself is what int8 promises: a few per cent of the output range */
        CHECK_MSG(qerr <= 0.05 * scale, "shape %d: int8 error %g against fp32 (output range %g)", (int)s, qerr, scale);
        free(x), free(W), free(b), free(out);
    }
    /* a native integer kernel ran: oneDNN names it after the ISA (AMX: "..._amx_int8"; VNNI-only CPUs:
     * "brg:avx512_core_vnni"), never its reference loop */
    const char *impl = gemm_impl(g);
    CHECK_MSG((strstr(impl, "int8") || strstr(impl, "vnni") || strstr(impl, "amx")) && !strstr(impl, "ref"), "%s", impl);
    gemm_free(g);
}

TEST(test_gemm_bf16_backward_matches_rounded_reference) {
    Gemm *g = context(PREC_BF16);
    if (!g) return;
    Rng r;
    rng_seed(&r, 13);
    const int N = 37, IC = 48, OC = 29;
    float *x = randn_buf(&r, (long)N * IC, 1.0f), *W = randn_buf(&r, (long)OC * IC, 0.2f);
    float *dout = randn_buf(&r, (long)N * OC, 1.0f);
    float *xr = bf16_round(x, (long)N * IC), *Wr = bf16_round(W, (long)OC * IC), *dr = bf16_round(dout, (long)N * OC);
    float *din = randn_buf(&r, (long)N * IC, 1.0f), *dW = randn_buf(&r, (long)OC * IC, 1.0f);
    float *db = randn_buf(&r, OC, 1.0f);
    float *din_ref = malloc(sizeof(float) * N * IC), *dW_ref = malloc(sizeof(float) * OC * IC), *db_ref = malloc(sizeof(float) * OC);
    memcpy(din_ref, din, sizeof(float) * N * IC), memcpy(dW_ref, dW, sizeof(float) * OC * IC), memcpy(db_ref, db, sizeof(float) * OC);
    /* accumulation into what the gradients already hold is part of the contract */
    sgemm_reference(false, false, N, IC, OC, 1.0f, dr, OC, Wr, IC, 1.0f, din_ref, IC);
    sgemm_reference(true, false, OC, IC, N, 1.0f, dr, OC, xr, IC, 1.0f, dW_ref, IC);
    for (int i = 0; i < N; i++)
        for (int o = 0; o < OC; o++) db_ref[o] += dout[(size_t)i * OC + o];
    gemm_linear_backward(g, din, dW, db, dout, x, W, N, IC, OC);
    CHECK_CLOSE(din, din_ref, (long)N * IC, 1e-4, 1e-4);
    CHECK_CLOSE(dW, dW_ref, (long)OC * IC, 1e-4, 1e-4);
    CHECK_CLOSE(db, db_ref, OC, 1e-4, 1e-4);
    free(x), free(W), free(dout), free(xr), free(Wr), free(dr), free(din), free(dW), free(db);
    free(din_ref), free(dW_ref), free(db_ref);
    gemm_free(g);
}

/* The convolutions' product: weights on the left, strided im2col columns on the right. */
TEST(test_gemm_weight_left_matches_references) {
    Rng r;
    rng_seed(&r, 15);
    const int M = 24, K = 45, N = 70, ldb = 90; /* columns read from a wider buffer */
    float *A = randn_buf(&r, (long)M * K, 0.2f), *B = randn_buf(&r, (long)K * ldb, 1.0f);
    float *out = malloc(sizeof(float) * M * N), *ref = malloc(sizeof(float) * M * N);
    for (int p = 0; p < 3; p++) {
        const Precision want = p == 0 ? PREC_FP32 : p == 1 ? PREC_BF16 : PREC_INT8;
        Gemm *g = gemm_new(want, &(Err){0});
        if (gemm_precision(g) != want) {
            gemm_free(g);
            continue;
        }
        gemm_weight_left(g, out, A, B, ldb, M, N, K);
        for (int m = 0; m < M; m++) {
            float mw = 0;
            for (int k = 0; k < K; k++) mw = fmaxf(mw, fabsf(A[(size_t)m * K + k]));
            for (int n = 0; n < N; n++) {
                float mc = 0;
                for (int k = 0; k < K; k++) mc = fmaxf(mc, fabsf(B[(size_t)k * ldb + n]));
                double acc = 0;
                for (int k = 0; k < K; k++) {
                    const float a = A[(size_t)m * K + k], b = B[(size_t)k * ldb + n];
                    if (want == PREC_BF16)
                        acc += (double)gemm_bf16_to_f32(gemm_f32_to_bf16(a)) * gemm_bf16_to_f32(gemm_f32_to_bf16(b));
                    else if (want == PREC_INT8)
                        acc += (double)lrintf(a / (mw / 127.0f)) * lrintf(b / (mc / 127.0f));
                    else
                        acc += (double)a * b;
                }
                ref[(size_t)m * N + n] = (float)(want == PREC_INT8 ? acc * (mw / 127.0f) * (mc / 127.0f) : acc);
            }
        }
        CHECK_MSG(check_close(__FILE__, __LINE__, precision_name(want), out, ref, (long)M * N, 1e-4, 1e-4), "%s",
                  precision_name(want));
        gemm_free(g);
    }
    gemm_weight_left(NULL, out, A, B, ldb, M, N, K); /* no context: sgemm */
    for (int m = 0; m < M; m++)
        for (int n = 0; n < N; n++) {
            double acc = 0;
            for (int k = 0; k < K; k++) acc += (double)A[(size_t)m * K + k] * B[(size_t)k * ldb + n];
            ref[(size_t)m * N + n] = (float)acc;
        }
    CHECK_CLOSE(out, ref, (long)M * N, 1e-4, 1e-4);
    free(A), free(B), free(out), free(ref);
}

/* The inference MLP: bf16 keeps its hidden layer in bf16, which rounds exactly as converting the
 * fp32 hidden layer before the second product does; the others are the two fused products. */
TEST(test_gemm_mlp_matches_two_products) {
    Rng r;
    rng_seed(&r, 16);
    const int T = 37, W = 48, Hd = 96;
    float *h = randn_buf(&r, (long)T * W, 1), *w1 = randn_buf(&r, (long)Hd * W, 0.2f), *b1 = randn_buf(&r, Hd, 0.5f);
    float *w2 = randn_buf(&r, (long)W * Hd, 0.1f), *b2 = randn_buf(&r, W, 0.5f), *x0 = randn_buf(&r, (long)T * W, 1);
    float *x = malloc(sizeof(float) * T * W), *ref = malloc(sizeof(float) * T * W), *hid = malloc(sizeof(float) * T * Hd);
    static const Precision precs[] = {PREC_FP32, PREC_BF16, PREC_INT8};
    for (int p = 0; p < 3; p++)
        for (int act = GEMM_EPI_QUICKGELU; act <= GEMM_EPI_GELU; act++) {
            Gemm *g = gemm_new(precs[p], &(Err){0});
            memcpy(x, x0, sizeof(float) * T * W), memcpy(ref, x0, sizeof(float) * T * W);
            gemm_mlp(g, x, h, w1, b1, w2, b2, T, W, Hd, (GemmEpi)act, hid);
            gemm_linear_epi(g, hid, h, w1, b1, T, W, Hd, (GemmEpi)act);
            gemm_linear_epi(g, ref, hid, w2, b2, T, Hd, W, GEMM_EPI_ADD);
            CHECK_MSG(check_close(__FILE__, __LINE__, precision_name(precs[p]), x, ref, (long)T * W, 1e-4, 1e-4),
                      "%s act %d", precision_name(precs[p]), act);
            gemm_free(g);
        }
    free(h), free(w1), free(b1), free(w2), free(b2), free(x0), free(x), free(ref), free(hid);
}

/* Converted weights are cached by address: an update in place is seen after gemm_weights_changed. */
TEST(test_gemm_weight_copies_follow_updates) {
    Gemm *g = context(PREC_BF16);
    if (!g) return;
    const int N = 4, IC = 8, OC = 3;
    float x[32], W[24], out[12];
    for (int i = 0; i < 32; i++) x[i] = 1.0f;
    for (int i = 0; i < 24; i++) W[i] = 0.5f;
    gemm_linear(g, out, x, W, NULL, N, IC, OC);
    CHECK_NEAR(out[0], 4.0, 1e-6);
    for (int i = 0; i < 24; i++) W[i] = 0.25f;
    gemm_weights_changed(g);
    gemm_linear(g, out, x, W, NULL, N, IC, OC);
    CHECK_NEAR(out[0], 2.0, 1e-6);
    gemm_free(g);
}

/* More shapes than the primitive cache holds: evicted primitives are rebuilt, results stay right. */
TEST(test_gemm_primitive_cache_eviction) {
    Gemm *g = context(PREC_BF16);
    if (!g) return;
    float x[100 * 4], W[4 * 4], out[100 * 4];
    for (int i = 0; i < 400; i++) x[i] = (float)(i % 7) - 3.0f;
    for (int i = 0; i < 16; i++) W[i] = i == (i / 4) * 5 ? 1.0f : 0.0f; /* identity */
    for (int round = 0; round < 2; round++)
        for (int N = 1; N <= 100; N++) {
            gemm_linear(g, out, x, W, NULL, N, 4, 4);
            CHECK_CLOSE(out, x, (long)N * 4, 0, 0);
        }
    gemm_free(g);
}

/* Every precision's epilogues against the unfused product followed by the elementwise op. */
TEST(test_gemm_epilogues_match_unfused) {
    Rng r;
    rng_seed(&r, 14);
    const int N = 23, IC = 40, OC = 36;
    float *x = randn_buf(&r, (long)N * IC, 1), *W = randn_buf(&r, (long)OC * IC, 0.3f), *b = randn_buf(&r, OC, 1);
    float *base = randn_buf(&r, (long)N * OC, 1);
    float *got = malloc(sizeof(float) * N * OC), *want = malloc(sizeof(float) * N * OC);
    static const Precision precs[] = {PREC_FP32, PREC_BF16, PREC_INT8};
    static const GemmEpi epis[] = {GEMM_EPI_NONE, GEMM_EPI_QUICKGELU, GEMM_EPI_GELU, GEMM_EPI_ADD};
    for (int p = 0; p < 3; p++) {
        Gemm *g = gemm_new(precs[p], &(Err){0});
        for (int k = 0; k < 4; k++) {
            memcpy(got, base, sizeof(float) * N * OC);
            gemm_linear_epi(g, got, x, W, b, N, IC, OC, epis[k]);
            float *y = malloc(sizeof(float) * N * OC);
            gemm_linear(g, y, x, W, b, N, IC, OC); /* the same precision's plain product */
            for (long i = 0; i < (long)N * OC; i++) {
                const float v = y[i];
                want[i] = epis[k] == GEMM_EPI_QUICKGELU ? v / (1 + expf(-1.702f * v))
                        : epis[k] == GEMM_EPI_GELU      ? 0.5f * v * (1 + erff(v / sqrtf(2.0f)))
                        : epis[k] == GEMM_EPI_ADD       ? base[i] + v
                                                        : v;
            }
            CHECK_MSG(check_close(__FILE__, __LINE__, precision_name(precs[p]), got, want, (long)N * OC, 1e-5, 1e-5),
                      "epilogue %d", k);
            free(y);
        }
        /* and the unfused fallback (no context) computes the same in fp32 */
        if (precs[p] == PREC_FP32)
            for (int k = 0; k < 4; k++) {
                float *ref = malloc(sizeof(float) * N * OC);
                memcpy(got, base, sizeof(float) * N * OC), memcpy(ref, base, sizeof(float) * N * OC);
                gemm_linear_epi(NULL, got, x, W, b, N, IC, OC, epis[k]);
                gemm_linear_epi(g, ref, x, W, b, N, IC, OC, epis[k]);
                CHECK_CLOSE(got, ref, (long)N * OC, 1e-5, 1e-5);
                free(ref);
            }
        gemm_free(g);
    }
    free(x), free(W), free(b), free(base), free(got), free(want);
}

TEST(test_gemm_fp32_context_is_linear_forward) {
    Gemm *g = gemm_new(PREC_FP32, &(Err){0});
    Rng r;
    rng_seed(&r, 14);
    float *x = randn_buf(&r, 6 * 10, 1), *W = randn_buf(&r, 5 * 10, 1), *b = randn_buf(&r, 5, 1);
    float a[30], c[30];
    gemm_linear(g, a, x, W, b, 6, 10, 5); /* oneDNN's f32 matmul: the same sums in another order */
    linear_forward(c, x, W, b, 6, 10, 5);
    CHECK_CLOSE(a, c, 30, 1e-5, 1e-5);
    gemm_linear(NULL, a, x, W, b, 6, 10, 5);
    CHECK(memcmp(a, c, sizeof a) == 0);
    free(x), free(W), free(b);
    gemm_free(g);
}
