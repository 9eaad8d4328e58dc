/* t-SNE on separated Gaussian clusters: each point's nearest neighbour in the 2-D map belongs
 * to its own cluster, clusters stay apart (every cluster's spread is well under the distance
 * between cluster centres), and a seed gives the same map. Unstructured data cannot pass the first
 * check, so the test fails for a map that ignores its input. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "core/err.h"
#include "core/rng.h"
#include "eval/tsne.h"
#include "test.h"

static double nn_purity(const float *y, const int *lab, int n) {
    int good = 0;
    for (int i = 0; i < n; i++) {
        int best = -1;
        double bd = INFINITY;
        for (int j = 0; j < n; j++) {
            if (j == i) continue;
            const double a = y[2 * i] - y[2 * j], b = y[2 * i + 1] - y[2 * j + 1], d = a * a + b * b;
            if (d < bd) bd = d, best = j;
        }
        good += lab[best] == lab[i];
    }
    return (double)good / n;
}

TEST(tsne_separates_gaussian_clusters) {
    enum { K = 3, PER = 60, N = K * PER, D = 10 };
    Rng r;
    rng_seed(&r, 12);
    float *x = xalloc_floats(N * D), *y = xalloc_floats(2 * N), *y2 = xalloc_floats(2 * N);
    int lab[N];
    for (int i = 0; i < N; i++) {
        lab[i] = i % K;
        for (int k = 0; k < D; k++) x[i * D + k] = rng_normal(&r) + (k == lab[i] ? 8.0f : 0.0f);
    }
    TsneOpts o;
    tsne_defaults(&o);
    o.iters = 500;
    const double kl = tsne_run(x, N, D, &o, y);
    CHECK(isfinite(kl) && kl > 0);
    CHECK(nn_purity(y, lab, N) > 0.97);
    double cx[K][2] = {{0}}, spread[K] = {0};
    for (int i = 0; i < N; i++) cx[lab[i]][0] += y[2 * i] / PER, cx[lab[i]][1] += y[2 * i + 1] / PER;
    for (int i = 0; i < N; i++)
        spread[lab[i]] += hypot(y[2 * i] - cx[lab[i]][0], y[2 * i + 1] - cx[lab[i]][1]) / PER;
    for (int a = 0; a < K; a++)
        for (int b = a + 1; b < K; b++) {
            const double gap = hypot(cx[a][0] - cx[b][0], cx[a][1] - cx[b][1]);
            CHECK(gap > 2 * spread[a] && gap > 2 * spread[b]);
        }
    /* structureless data: the same labels are no better than chance */
    for (int i = 0; i < N * D; i++) x[i] = rng_normal(&r);
    tsne_run(x, N, D, &o, y2);
    CHECK(nn_purity(y2, lab, N) < 0.6);
    /* a seed gives the same map */
    tsne_run(x, N, D, &o, y);
    CHECK(memcmp(y, y2, sizeof(float) * 2 * N) == 0);
    free(x), free(y), free(y2);
}
