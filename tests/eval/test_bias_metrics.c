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
