/* MaxSkew@K, KL@K, NDKL and group accuracy on hand-computed cases. */
#include <math.h>

#include "eval/bias_metrics.h"
#include "test.h"

TEST(bias_metrics_by_hand) {
    const double prior[2] = {0.5, 0.5};
    const int all_a[4] = {0, 0, 0, 0}, mixed[4] = {0, 1, 0, 1}, skew[4] = {0, 0, 0, 1};
    /* all of one value: skew log 2, KL log 2 */
    CHECK_NEAR(max_skew_at_k(all_a, 4, prior, 2), log(2.0), 1e-12);
    CHECK_NEAR(kl_at_k(all_a, 4, prior, 2), log(2.0), 1e-12);
    /* balanced: no skew, no divergence */
    CHECK_NEAR(max_skew_at_k(mixed, 4, prior, 2), 0, 1e-12);
    CHECK_NEAR(kl_at_k(mixed, 4, prior, 2), 0, 1e-12);
    /* 3:1 -> skew log 1.5; KL 0.75 log 1.5 + 0.25 log 0.5 */
    CHECK_NEAR(max_skew_at_k(skew, 4, prior, 2), log(1.5), 1e-12);
    CHECK_NEAR(kl_at_k(skew, 4, prior, 2), 0.75 * log(1.5) + 0.25 * log(0.5), 1e-12);
    /* NDKL of [0,1,0,1]: KL at k=1 log 2, k=2 0, k=3 KL(2/3,1/3), k=4 0 */
    double k3 = 2.0 / 3 * log(4.0 / 3) + 1.0 / 3 * log(2.0 / 3);
    double z = 1 + 1 / log2(3.0) + 0.5 + 1 / log2(5.0);
    CHECK_NEAR(ndkl(mixed, 4, prior, 2), (log(2.0) + k3 / 2) / z, 1e-12);
    /* unlabelled items are ignored */
    const int some[3] = {-1, 0, 1};
    CHECK_NEAR(kl_at_k(some, 3, prior, 2), 0, 1e-12);
    /* top-K */
    const float sc[5] = {0.1f, 0.9f, 0.5f, 0.9f, -1};
    int top[3];
    top_k_indices(sc, 5, 3, top);
    CHECK(top[0] == 1 && top[1] == 3 && top[2] == 2);
    /* groups: g0 2/2 right, g1 1/3 right */
    const int32_t pred[5] = {0, 1, 1, 0, 0}, lab[5] = {0, 1, 0, 1, 0}, grp[5] = {0, 0, 1, 1, 1};
    double worst, acc[2];
    CHECK_NEAR(group_accuracy(pred, lab, grp, 5, 2, &worst, acc), 0.6, 1e-12);
    CHECK_NEAR(worst, 1.0 / 3, 1e-12);
    CHECK_NEAR(acc[0], 1.0, 1e-12);
}

/* The bootstrap of the kept share: a method equal to its base keeps 100% in every resample, one
 * that undoes nothing keeps 0%, and a half-way one sits between, with an interval that holds its
 * point value. Query units with unmeasured (NaN) entries and group units redrawn within groups. */
TEST(retention_bootstrap_bounds) {
    enum { Q = 40 };
    double orig[Q * 2], base[Q * 2], half[Q * 2];
    for (int q = 0; q < Q; q++)
        for (int a = 0; a < 2; a++) {
            const int i = q * 2 + a;
            orig[i] = 1.0 + 0.5 * ((q * 7 + a) % 5);
            base[i] = 0.2 * orig[i];
            half[i] = 0.5 * (orig[i] + base[i]);
        }
    orig[3] = base[3] = half[3] = NAN; /* query 1, attribute 1 not measured */
    RetentionCI ci;
    retention_bootstrap(RB_QUERIES, orig, base, base, Q, NULL, 0, 500, 0.95, 1, &ci);
    CHECK(ci.n_valid == 500 && fabs(ci.lo - 1) < 1e-12 && fabs(ci.hi - 1) < 1e-12 && ci.p_keep == 1);
    retention_bootstrap(RB_QUERIES, orig, base, orig, Q, NULL, 0, 500, 0.95, 1, &ci);
    CHECK(fabs(ci.hi) < 1e-12 && ci.p_keep == 0);
    retention_bootstrap(RB_QUERIES, orig, base, half, Q, NULL, 0, 500, 0.95, 1, &ci);
    CHECK_MSG(ci.lo <= 0.5 + 1e-9 && ci.hi >= 0.5 - 1e-9 && ci.hi < 0.95 && ci.p_keep == 0, "%g %g %g", ci.lo, ci.hi, ci.p_keep);
    /* groups: 3 groups of 50 images; the original is worst on group 2 (10% right), the base lifts
     * it to 60%, the method to 54%: keep = (1 - 0.46/0.9) / (1 - 0.4/0.9) = 0.88 on the full set */
    enum { N = 150 };
    double go[N], gb[N], gm[N];
    int32_t grp[N];
    for (int i = 0; i < N; i++) {
        const int g = i % 3, k = i / 3;
        grp[i] = g;
        go[i] = g == 2 ? k < 5 : 1;
        gb[i] = g == 2 ? k < 30 : 1;
        gm[i] = g == 2 ? k < 27 : 1;
    }
    const double keep = (1 - 0.46 / 0.9) / (1 - 0.4 / 0.9);
    retention_bootstrap(RB_GROUPS, go, gb, gm, N, grp, 3, 1000, 0.95, 2, &ci);
    CHECK_MSG(ci.n_valid > 900 && ci.lo <= keep && ci.hi >= keep && ci.lo < ci.hi, "keep %g in [%g, %g], %d", keep, ci.lo, ci.hi, ci.n_valid);
}
