/* CMA-ES on the tutorial's test functions: sphere, ill-conditioned ellipsoid (1e6) and
 * Rosenbrock in 10 dimensions, to 1e-10 / 1e-10 / 1e-8 within evaluation budgets. */
#include <stdlib.h>

#include "core/cmaes.h"
#include "test.h"

static double sphere(const double *x, int n) {
    double s = 0;
    for (int i = 0; i < n; i++) s += x[i] * x[i];
    return s;
}

static double ellipsoid(const double *x, int n) {
    double s = 0;
    for (int i = 0; i < n; i++) s += pow(1e6, (double)i / (n - 1)) * x[i] * x[i];
    return s;
}

static double rosenbrock(const double *x, int n) {
    double s = 0;
    for (int i = 0; i + 1 < n; i++) s += 100 * pow(x[i] * x[i] - x[i + 1], 2) + pow(x[i] - 1, 2);
    return s;
}

/* Runs until f <= target or the budget is spent; returns evaluations used (or -1). */
static long minimise(double (*fn)(const double *, int), int n, double x0v, double sigma, double target, long budget,
                     uint64_t seed, double *best) {
    double *x0 = malloc(sizeof(double) * n);
    for (int i = 0; i < n; i++) x0[i] = x0v;
    CmaEs c;
    cmaes_init(&c, n, x0, sigma, 0, seed);
    double *X = malloc(sizeof(double) * c.lambda * n), *f = malloc(sizeof(double) * c.lambda);
    long used = -1;
    while (c.evals < budget) {
        cmaes_ask(&c, X);
        for (int k = 0; k < c.lambda; k++) f[k] = fn(X + (size_t)k * n, n);
        cmaes_tell(&c, f);
        if (c.best_f <= target) {
            used = c.evals;
            break;
        }
    }
    *best = c.best_f;
    free(X), free(f), free(x0);
    cmaes_free(&c);
    return used;
}

TEST(cmaes_sphere_ellipsoid_rosenbrock) {
    double best;
    long e1 = minimise(sphere, 10, 1.0, 0.5, 1e-10, 5000, 1, &best);
    CHECK_MSG(e1 > 0, "sphere: best %.3g after the budget", best);
    long e2 = minimise(ellipsoid, 10, 1.0, 0.5, 1e-10, 30000, 2, &best);
    CHECK_MSG(e2 > 0, "ellipsoid: best %.3g after the budget", best);
    long e3 = minimise(rosenbrock, 10, 0.0, 0.5, 1e-8, 30000, 3, &best);
    CHECK_MSG(e3 > 0, "rosenbrock: best %.3g after the budget", best);
    printf("      (evaluations: sphere %ld, ellipsoid %ld, rosenbrock %ld)\n", e1, e2, e3);
    /* a random search spends its budget without coming near: the evolution is doing the work */
    CHECK(e1 < 3000);
}

TEST(cmaes_same_seed_same_path) {
    double a, b;
    long ea = minimise(rosenbrock, 6, 0.0, 0.5, 1e-6, 20000, 7, &a);
    long eb = minimise(rosenbrock, 6, 0.0, 0.5, 1e-6, 20000, 7, &b);
    CHECK(ea == eb && a == b);
}
