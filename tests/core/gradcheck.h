/* The finite-difference harness every gradient test uses: loss = sum(out * R) for a fixed random
 * R, so dL/dout = R and each backward is checked coordinate by coordinate against central
 * differences. */
#ifndef FORGET_TEST_GRADCHECK_H
#define FORGET_TEST_GRADCHECK_H

#include "core/rng.h"

typedef struct GradCase GradCase;
struct GradCase {
    void (*forward)(GradCase *g);  /* fills g->out from the inputs */
    void (*backward)(GradCase *g); /* accumulates grads from g->R */
    float *in[4], *grad[4];
    long in_n[4];
    int n_in;
    float *out, *R;
    long out_n;
    void *ctx;
};

/* Checks up to 48 coordinates of each input (eps 1e-2, float32 central differences). */
void gradcheck_at(GradCase *g, const char *name, double tol, const char *file, int line);
#define gradcheck(g, name, tol) gradcheck_at((g), (name), (tol), __FILE__, __LINE__)
float *randn(Rng *r, long n, float std);

/* For modules with a scalar loss of their own: central differences of loss(ctx) in up to `samples`
 * coordinates of v (all when fewer) against the analytic gradient g; fails (once per call, at
 * the caller's line) where |numeric - analytic| > atol + rtol |numeric|. */
typedef struct {
    double (*loss)(void *ctx);
    void *ctx;
    int samples;
    float eps;
    double atol, rtol;
    uint64_t seed;
} FdProbe;
void fd_check_at(const FdProbe *p, float *v, const float *g, long n, const char *what, const char *file, int line);
#define fd_check_coords(p, v, g, n, what) fd_check_at((p), (v), (g), (n), (what), __FILE__, __LINE__)
/* Allocates n_in random N(0,1) inputs of the given sizes, their gradients and out/R. */
void setup(GradCase *g, Rng *r, int n_in, const long *sizes, long out_n);
void free_case(GradCase *g);

#endif
