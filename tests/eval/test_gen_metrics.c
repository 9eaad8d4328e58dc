/* Frechet distance against closed forms (identical sets: 0; a shifted mean: the squared shift;
 * diagonal covariances: sum (sqrt(a) - sqrt(b))^2), and CLIP score's clipping. */
#include <math.h>
#include <stdlib.h>

#include "core/rng.h"
#include "eval/gen_metrics.h"
#include "test.h"

TEST(frechet_distance_closed_forms) {
    enum { D = 3 };
    double m1[D] = {0, 1, 2}, m2[D] = {1, 1, 0};
    double s1[D * D] = {4, 0, 0, 0, 1, 0, 0, 0, 9}, s2[D * D] = {1, 0, 0, 0, 1, 0, 0, 0, 4};
    double fd;
    Err e = {0};
    CHECK(frechet_distance(m1, s1, m1, s1, D, &fd, &e) == 0);
    CHECK_NEAR(fd, 0, 1e-9);
    CHECK(frechet_distance(m1, s1, m2, s1, D, &fd, &e) == 0);
    CHECK_NEAR(fd, 1 + 0 + 4, 1e-9);
    CHECK(frechet_distance(m1, s1, m1, s2, D, &fd, &e) == 0);
    CHECK_NEAR(fd, 1 + 0 + 1, 1e-9); /* (2-1)^2 + (1-1)^2 + (3-2)^2 */
    /* a rotated pair: S2 = R S1 R^T has the same eigenvalues, distance > 0 unless aligned */
    const double c = cos(0.7), s = sin(0.7);
    double r2[D * D] = {c * c * 4 + s * s * 1, c * s * (1 - 4), 0, c * s * (1 - 4), s * s * 4 + c * c * 1, 0, 0, 0, 9};
    CHECK(frechet_distance(m1, s1, m1, r2, D, &fd, &e) == 0);
    CHECK(fd > 0.1);
    /* stats of samples: mean and covariance */
    Rng r;
    rng_seed(&r, 1);
    float x[4000 * 2];
    for (int i = 0; i < 4000; i++) x[2 * i] = 3 + 2 * rng_normal(&r), x[2 * i + 1] = -1 + 0.5f * rng_normal(&r);
    double m[2], cv[4];
    feature_stats(x, 4000, 2, m, cv);
    CHECK_NEAR(m[0], 3, 0.1);
    CHECK_NEAR(cv[0], 4, 0.3);
    CHECK_NEAR(cv[3], 0.25, 0.03);
    CHECK_NEAR(cv[1], 0, 0.1);
}

TEST(clip_score_clips_at_zero) {
    float img[4] = {1, 0, 1, 0}, txt[4] = {2, 0, -1, 0};
    CHECK_NEAR(clip_score(img, txt, 2, 2), 50, 1e-6); /* 100 and max(-100, 0) */
}
