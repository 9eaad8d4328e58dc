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
