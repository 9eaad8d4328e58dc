#include "core/gradcheck.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "core/err.h"
#include "test.h"


static double loss_of(GradCase *g) {
    g->forward(g);
    double s = 0;
    for (long i = 0; i < g->out_n; i++) s += (double)g->out[i] * g->R[i];
    return s;
}

void gradcheck_at(GradCase *g, const char *name, double tol, const char *file, int line) {
    Rng r;
    rng_seed(&r, 99);
    rng_fill_normal(&r, g->R, g->out_n, 0, 1);
    for (int k = 0; k < g->n_in; k++) memset(g->grad[k], 0, (size_t)g->in_n[k] * sizeof(float));
    g->forward(g);
    g->backward(g);
    for (int k = 0; k < g->n_in; k++) {
        int worst_ok = 1;
        for (int t = 0; t < 48 && t < g->in_n[k]; t++) {
            long i = g->in_n[k] <= 48 ? t : (long)rng_below(&r, (uint32_t)g->in_n[k]);
            float saved = g->in[k][i];
            const float eps = 1e-2f;
            g->in[k][i] = saved + eps;
            double lp = loss_of(g);
            g->in[k][i] = saved - eps;
            double lm = loss_of(g);
            g->in[k][i] = saved;
            double num = (lp - lm) / (2 * eps), ana = g->grad[k][i];
            if (fabs(num - ana) > tol * (1 + fabs(num)) && worst_ok) {
                test_fail(file, line, "%s: input %d element %ld analytic %.6g numeric %.6g", name, k, i, ana,
                          num);
                worst_ok = 0;
            }
        }
    }
}

float *randn(Rng *r, long n, float std) {
    float *x = xalloc_floats((size_t)n);
    rng_fill_normal(r, x, n, 0, std);
    return x;
}

void free_case(GradCase *g) {
    for (int k = 0; k < g->n_in; k++) {
        free(g->in[k]);
        free(g->grad[k]);
    }
    free(g->out);
    free(g->R);
}

void setup(GradCase *g, Rng *r, int n_in, const long *sizes, long out_n) {
    g->n_in = n_in;
    for (int k = 0; k < n_in; k++) {
        g->in_n[k] = sizes[k];
        g->in[k] = randn(r, sizes[k], 1.0f);
        g->grad[k] = xalloc_floats((size_t)sizes[k]);
    }
    g->out_n = out_n;
    g->out = xalloc_floats((size_t)out_n);
    g->R = xalloc_floats((size_t)out_n);
}


void fd_check_at(const FdProbe *p, float *v, const float *g, long n, const char *what, const char *file, int line) {
    Rng r;
    rng_seed(&r, p->seed);
    for (int t = 0; t < p->samples && t < n; t++) {
        const long i = n <= p->samples ? t : (long)rng_below(&r, (uint32_t)n);
        const float saved = v[i];
        v[i] = saved + p->eps;
        const double lp = p->loss(p->ctx);
        v[i] = saved - p->eps;
        const double lm = p->loss(p->ctx);
        v[i] = saved;
        const double num = (lp - lm) / (2.0 * p->eps);
        if (fabs(num - g[i]) > p->atol + p->rtol * fabs(num)) {
            test_fail(file, line, "%s element %ld: analytic %.6g numeric %.6g", what, i, g[i], num);
            return;
        }
    }
}
