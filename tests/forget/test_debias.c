/* The closed forms of debias.h: orth-proj removes the span of the biased prompts; the
 * calibration's P* is the minimiser of its objective (the gradient vanishes there and random
 * perturbations only raise it) and reduces to orth-cali at mu = 0; debias files round-trip; bad
 * input gives clear errors. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "core/rng.h"
#include "forget/debias.h"
#include "test.h"

/* f(P) = ||P - P0||^2 + lambda tr(P M P^T) + mu tr((P - I) Wn (P - I)^T) */
static double objective(const double *P, const double *P0, const double *M, double lam, const double *Wn, double mu, int D) {
    double f = 0;
    for (int i = 0; i < D * D; i++) f += (P[i] - P0[i]) * (P[i] - P0[i]);
    for (int i = 0; i < D; i++)
        for (int a = 0; a < D; a++)
            for (int b = 0; b < D; b++) {
                const double q = (P[i * D + a] - (i == a)) * (P[i * D + b] - (i == b));
                f += lam * P[i * D + a] * M[a * D + b] * P[i * D + b] + mu * q * Wn[a * D + b];
            }
    return f;
}

TEST(debias_calibration_is_the_minimiser) {
    enum { D = 12, NB = 3, NW = 40, NP = 5 };
    Rng r;
    rng_seed(&r, 3);
    float B[NB * D], Wr[NW * D], A[NP * D], Bp[NP * D];
    rng_fill_normal(&r, B, NB * D, 0, 1);
    rng_fill_normal(&r, Wr, NW * D, 0, 1);
    rng_fill_normal(&r, A, NP * D, 0, 1);
    rng_fill_normal(&r, Bp, NP * D, 0, 1);
    double P0[D * D], M[D * D], Wn[D * D], P[D * D], Pc[D * D];
    debias_orth_proj(B, NB, D, P0);
    /* P0 kills the biased prompts and is a projection */
    double worst = 0;
    for (int k = 0; k < NB; k++)
        for (int i = 0; i < D; i++) {
            double s = 0;
            for (int j = 0; j < D; j++) s += P0[i * D + j] * B[k * D + j];
            worst = fmax(worst, fabs(s));
        }
    CHECK_MSG(worst < 1e-5, "P0 b = %g", worst);
    double idem = 0;
    for (int i = 0; i < D; i++)
        for (int j = 0; j < D; j++) {
            double s = 0;
            for (int k = 0; k < D; k++) s += P0[i * D + k] * P0[k * D + j];
            idem = fmax(idem, fabs(s - P0[i * D + j]));
        }
    CHECK(idem < 1e-9);
    debias_pair_scatter(A, Bp, NP, D, M);
    debias_second_moment(Wr, NW, D, Wn);
    const double lam = 3.0, mu = 2.0;
    Err e = {{0}};
    CHECK(debias_calibrate_closed_form(P0, M, lam, Wn, mu, D, P, &e) == 0);
    /* gradient 2(P - P0) + 2 lambda P M + 2 mu (P - I) Wn vanishes */
    double g = 0;
    for (int i = 0; i < D; i++)
        for (int j = 0; j < D; j++) {
            double s = P[i * D + j] - P0[i * D + j];
            for (int k = 0; k < D; k++) s += lam * P[i * D + k] * M[k * D + j] + mu * (P[i * D + k] - (i == k)) * Wn[k * D + j];
            g = fmax(g, fabs(s));
        }
    CHECK_MSG(g < 1e-9, "gradient at P* %g", g);
    const double f0 = objective(P, P0, M, lam, Wn, mu, D);
    for (int t = 0; t < 20; t++) {
        double Q[D * D];
        for (int i = 0; i < D * D; i++) Q[i] = P[i] + 1e-3 * rng_normal(&r);
        CHECK(objective(Q, P0, M, lam, Wn, mu, D) > f0);
    }
    /* mu = 0 is orth-cali: P0 (I + lambda M)^-1, i.e. P (I + lambda M) = P0 */
    CHECK(debias_calibrate_closed_form(P0, M, lam, NULL, 0, D, Pc, &e) == 0);
    double oc = 0;
    for (int i = 0; i < D; i++)
        for (int j = 0; j < D; j++) {
            double s = Pc[i * D + j];
            for (int k = 0; k < D; k++) s += lam * Pc[i * D + k] * M[k * D + j];
            oc = fmax(oc, fabs(s - P0[i * D + j]));
        }
    CHECK(oc < 1e-9);
}

TEST(debias_files_round_trip_and_errors_are_clear) {
    enum { D = 8 };
    Debias d = {0};
    d.method = DB_ORTH_CALI, d.D = D, d.calibrated = 1, d.lambda = 10, d.mu = 0.5;
    d.P = malloc(sizeof(double) * D * D);
    for (int i = 0; i < D * D; i++) d.P[i] = (double)(i % 7) / 7.0;
    char path[600];
    snprintf(path, sizeof path, "%s/debias.safetensors", scratch_dir());
    Err e = {{0}};
    CHECK_MSG(debias_save(&d, path, &e) == 0, "%s", e.msg);
    Debias b;
    CHECK_MSG(debias_load(&b, path, &e) == 0, "%s", e.msg);
    CHECK(b.method == DB_ORTH_CALI && b.D == D && b.calibrated && b.lambda == 10 && b.mu == 0.5);
    double worst = 0;
    for (int i = 0; i < D * D; i++) worst = fmax(worst, fabs(b.P[i] - d.P[i]));
    CHECK(worst < 1e-7);
    debias_free(&b), debias_free(&d);
    /* a model file is not a debias file */
    char model[1024];
    snprintf(model, sizeof model, "%s/tiny/model.safetensors", ref_dir());
    CHECK(debias_load(&b, model, &e) != 0 && strstr(e.msg, "not a forget debias file"));
    /* a model without a text tower */
    ClipConfig c = {.embed_dim = 8, .has_vision = 1, .image_res = 8, .patch = 4, .v_width = 8, .v_layers = 1, .v_heads = 2};
    ClipModel m;
    clip_init_random(&m, &c, 1);
    DebiasData dd = {0};
    DebiasParams p;
    debias_params_default(&p);
    CHECK(debias_build(&b, DB_ORTH_PROJ, &m, NULL, &dd, &p, &e) != 0 && strstr(e.msg, "text tower"));
    clip_free(&m);
}

#include "core/ops.h"
#include "models/clip_encode.h"

/* A small random model and synthetic data for every method. */
static ClipConfig small_cfg(void) {
    return (ClipConfig){.embed_dim = 16, .has_vision = 1, .image_res = 8, .patch = 4, .v_width = 16, .v_layers = 1, .v_heads = 2,
                        .has_text = 1, .context = 77, .vocab = 49408, .t_width = 16, .t_layers = 2, .t_heads = 2};
}

TEST(debias_adapter_gradients_check) {
    ClipConfig c = small_cfg();
    ClipModel m;
    clip_init_random(&m, &c, 9);
    Tokenizer t;
    Err e = {{0}};
    CHECK(tokenizer_init(&t, &e) == 0);
    Rng r;
    rng_seed(&r, 4);
    /* prompt-array: 2 queries + 2 kept subjects, 3 context slots, 12 references of 2 values */
    enum { NQ = 2, N = 4, M = 3, NR = 12, E = 16, W = 16 };
    const char *subj[N] = {"a farmer", "a cook", "a dog", "a tree"};
    int32_t ids[N * 77];
    for (int i = 0; i < N; i++) {
        char buf[64];
        snprintf(buf, sizeof buf, "an emoji of %s.", subj[i]);
        int len = tokenizer_tokenize(&t, buf, 77, ids + i * 77, &e);
        CHECK(clip_context_slots(ids + i * 77, len, M, 77) > 0);
    }
    float X[NR * E], orig[N * E], ctx[M * W], g[M * W];
    int32_t y[NR];
    double pa[2] = {0.5, 0.5};
    rng_fill_normal(&r, X, NR * E, 0, 1);
    l2norm_forward(X, NULL, X, NR, E);
    rng_fill_normal(&r, orig, N * E, 0, 1);
    l2norm_forward(orig, NULL, orig, N, E);
    rng_fill_normal(&r, ctx, M * W, 0, 0.5f);
    for (int i = 0; i < NR; i++) y[i] = i % 2;
    PaProblem pp = {&m, ids, N, NQ, M, X, y, NR, 2, pa, orig, 0.7};
    prompt_array_loss_grad(&pp, ctx, g);
    double worst = 0;
    for (int k = 0; k < M * W; k += 5) {
        const float keep = ctx[k], h = 1e-2f;
        ctx[k] = keep + h;
        const double lp = prompt_array_loss_grad(&pp, ctx, NULL);
        ctx[k] = keep - h;
        const double lm = prompt_array_loss_grad(&pp, ctx, NULL);
        ctx[k] = keep;
        const double num = (lp - lm) / (2 * h);
        worst = fmax(worst, fabs(num - g[k]) / (1e-4 + fabs(num) + fabs(g[k])));
    }
    CHECK_MSG(worst < 3e-2, "prompt-array: worst relative gradient error %g", worst);
    /* dear: a random adapter, classifier and class texts */
    enum { H = 6, A = 2, K = 3, NI = 10 };
    Debias d = {0};
    d.D = E, d.hidden = H;
    float w1[H * E], b1[H], w2[E * H], b2[E], G[A * E], gb[A], T[K * E], f[NI * E], p0[NI * K];
    rng_fill_normal(&r, w1, H * E, 0, 0.5f), rng_fill_normal(&r, b1, H, 0, 0.5f);
    rng_fill_normal(&r, w2, E * H, 0, 0.5f), rng_fill_normal(&r, b2, E, 0, 0.5f);
    rng_fill_normal(&r, G, A * E, 0, 1), rng_fill_normal(&r, gb, A, 0, 1), rng_fill_normal(&r, T, K * E, 0, 1);
    rng_fill_normal(&r, f, NI * E, 0, 1), rng_fill_normal(&r, p0, NI * K, 0, 1);
    l2norm_forward(T, NULL, T, K, E);
    l2norm_forward(f, NULL, f, NI, E);
    softmax_forward(p0, p0, NI, K);
    d.w1 = w1, d.b1 = b1, d.w2 = w2, d.b2 = b2;
    int32_t attr[NI];
    for (int i = 0; i < NI; i++) attr[i] = i % 3 == 2 ? -1 : i % 2;
    DearProblem q = {f, NI, attr, A, 7, G, gb, T, K, 10.0f, p0, 0.8};
    enum { NP = H * E + H + E * H + E };
    float grads[NP], tmp[NP];
    dear_loss_grad(&d, &q, grads);
    float *par[4] = {w1, b1, w2, b2};
    const int len[4] = {H * E, H, E * H, E};
    worst = 0;
    for (int b = 0, off = 0; b < 4; off += len[b], b++)
        for (int k = 0; k < len[b]; k += 3) {
            const float keep = par[b][k], h = 1e-2f;
            par[b][k] = keep + h;
            const double lp = dear_loss_grad(&d, &q, tmp);
            par[b][k] = keep - h;
            const double lm = dear_loss_grad(&d, &q, tmp);
            par[b][k] = keep;
            const double num = (lp - lm) / (2 * h);
            worst = fmax(worst, fabs(num - grads[off + k]) / (1e-4 + fabs(num) + fabs(grads[off + k])));
        }
    CHECK_MSG(worst < 3e-2, "dear: worst relative gradient error %g", worst);
    tokenizer_free(&t);
    clip_free(&m);
}

TEST(debias_every_method_builds_and_applies) {
    ClipConfig c = small_cfg();
    ClipModel m;
    clip_init_random(&m, &c, 2);
    Tokenizer t;
    Err e = {{0}};
    CHECK(tokenizer_init(&t, &e) == 0);
    enum { NREF = 40, E = 16 };
    Rng r;
    rng_seed(&r, 8);
    float ref[NREF * E];
    int32_t attr[NREF];
    rng_fill_normal(&r, ref, NREF * E, 0, 1);
    for (int i = 0; i < NREF; i++) { /* the attribute lives in dimension 3 */
        attr[i] = i % 2;
        ref[i * E + 3] += attr[i] ? 3.0f : -3.0f;
    }
    const char *bias[2] = {"an emoji of a man.", "an emoji of a woman."};
    const char *pa[2] = {"an emoji of a man cook.", "an emoji of a man farmer."};
    const char *pb[2] = {"an emoji of a woman cook.", "an emoji of a woman farmer."};
    const char *vocab[6] = {"apple", "river", "stone", "house", "cloud", "table"};
    const char *aug[2] = {"an emoji of {} who is a man.", "an emoji of {} who is a woman."};
    const char *trq[2] = {"a cook", "a farmer"};
    const char *keep[3] = {"dog", "tree", "car"};
    DebiasData dd = {"an emoji of {}.", bias, 2, pa, pb, 2, vocab, 6, aug, 2, ref, attr, NREF, 2, trq, 2, keep, 3};
    DebiasParams p;
    debias_params_default(&p);
    p.dims = 2, p.steps = 5;
    for (int k = 0; k < DB_N_METHODS; k++) {
        Debias d;
        CHECK_MSG(debias_build(&d, (DebiasMethod)k, &m, &t, &dd, &p, &e) == 0, "%s: %s", DEBIAS_METHODS[k].name, e.msg);
        float out[2 * E], img[2 * E];
        CHECK_MSG(debias_encode_texts(&d, &m, &t, dd.tpl, trq, 2, out, &e) == 0, "%s: %s", DEBIAS_METHODS[k].name, e.msg);
        memcpy(img, ref, sizeof img);
        debias_images(&d, img, 2);
        int finite = 1;
        for (int i = 0; i < 2 * E; i++) finite &= isfinite(out[i]) && isfinite(img[i]);
        CHECK_MSG(finite, "%s gives non-finite features", DEBIAS_METHODS[k].name);
        if (k == DB_ORTH_PROJ) { /* the biased prompts themselves lose all their length */
            float bf[2 * E];
            CHECK(debias_encode_texts(&d, &m, &t, "{}", bias, 2, bf, &e) == 0);
            double nrm = 0;
            for (int i = 0; i < 2 * E; i++) nrm += (double)bf[i] * bf[i];
            CHECK_MSG(nrm < 1e-8, "orth-proj leaves %g of the biased prompts", nrm);
        }
        if (k == DB_CLIP_CLIP || k == DB_SFID) CHECK_MSG(d.mask[3], "%s misses the attribute dimension", DEBIAS_METHODS[k].name);
        if (k <= DB_BEND) {
            CHECK_MSG(debias_calibrate(&d, &m, &t, &dd, 10, 3, &e) == 0, "%s: %s", DEBIAS_METHODS[k].name, e.msg);
            CHECK(debias_encode_texts(&d, &m, &t, dd.tpl, trq, 2, out, &e) == 0);
        } else {
            CHECK(debias_calibrate(&d, &m, &t, &dd, 10, 3, &e) != 0 && strstr(e.msg, "projection methods"));
        }
        /* a save/load round trip gives the same features */
        char path[600];
        snprintf(path, sizeof path, "%s/m%d.debias.safetensors", scratch_dir(), k);
        CHECK_MSG(debias_save(&d, path, &e) == 0, "%s", e.msg);
        Debias l;
        CHECK_MSG(debias_load(&l, path, &e) == 0, "%s: %s", DEBIAS_METHODS[k].name, e.msg);
        float again[2 * E];
        if (l.method == DB_PROMPT_ARRAY) l.W = m.cfg.t_width;
        CHECK(debias_encode_texts(&l, &m, &t, dd.tpl, trq, 2, again, &e) == 0);
        CHECK_CLOSE(again, out, 2 * E, 1e-5, 1e-4);
        debias_free(&l);
        debias_free(&d);
    }
    /* what is missing is named */
    Debias d;
    DebiasData none = {0};
    CHECK(debias_build(&d, DB_ORTH_PROJ, &m, &t, &none, &p, &e) != 0 && strstr(e.msg, "biased prompts"));
    CHECK(debias_build(&d, DB_CLIP_CLIP, &m, &t, &none, &p, &e) != 0 && strstr(e.msg, "reference images"));
    tokenizer_free(&t);
    clip_free(&m);
}
