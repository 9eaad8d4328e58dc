#include "forget/context_search.h"

#include <stdlib.h>
#include <string.h>

#include "core/err.h"
#include "core/rng.h"

int context_method_from_name(const char *name, ContextMethod *m) {
    if (strcmp(name, "bbt") == 0) *m = CS_BBT;
    else if (strcmp(name, "bbf") == 0) *m = CS_BBF;
    else return -1;
    return 0;
}

void context_search_init(ContextSearch *s, ContextMethod m, int n_ctx, int W, const float *p0, float sigma, int d, int ds,
                         int du, uint64_t seed) {
    memset(s, 0, sizeof *s);
    s->method = m, s->m = n_ctx, s->W = W, s->lambda = 20, s->d = d, s->ds = ds, s->du = du;
    const int cols = m == CS_BBT ? d : ds + du;
    s->A = xalloc_floats((size_t)W * cols);
    Rng r;
    rng_seed(&r, seed ^ 0xa11a);
    for (long k = 0; k < (long)W * cols; k++) s->A[k] = sigma * rng_normal(&r);
    s->p0 = xalloc_floats((size_t)W);
    memcpy(s->p0, p0, sizeof(float) * (size_t)W);
    s->n_es = m == CS_BBT ? 1 : n_ctx + 1;
    s->es = xcalloc((size_t)s->n_es, sizeof(CmaEs));
    s->X = xcalloc((size_t)s->n_es, sizeof(double *));
    for (int q = 0; q < s->n_es; q++) {
        const int n = m == CS_BBT ? d * n_ctx : q == 0 ? ds : du;
        double *x0 = xcalloc((size_t)n, sizeof(double));
        cmaes_init(&s->es[q], n, x0, 1.0, s->lambda, seed * 131 + (uint64_t)q);
        free(x0);
        s->X[q] = xmalloc(sizeof(double) * (size_t)s->lambda * n);
    }
    s->pop = xalloc_floats((size_t)s->lambda * n_ctx * W);
}

void context_search_free(ContextSearch *s) {
    for (int q = 0; q < s->n_es; q++) {
        cmaes_free(&s->es[q]);
        free(s->X[q]);
    }
    free(s->es), free(s->X), free(s->A), free(s->p0), free(s->pop);
    memset(s, 0, sizeof *s);
}

/* p = A z + p0 for one token; z has cols entries. */
static void project(const ContextSearch *s, const double *z, int cols, float *p) {
    for (int j = 0; j < s->W; j++) {
        double acc = s->p0[j];
        for (int k = 0; k < cols; k++) acc += (double)s->A[(size_t)j * cols + k] * z[k];
        p[j] = (float)acc;
    }
}

const float *context_search_ask(ContextSearch *s) {
    for (int q = 0; q < s->n_es; q++) cmaes_ask(&s->es[q], s->X[q]);
    const int m = s->m, W = s->W;
    double *z = xmalloc(sizeof(double) * (size_t)(s->d + s->ds + s->du + 1));
    for (int k = 0; k < s->lambda; k++)
        for (int i = 0; i < m; i++) {
            float *p = s->pop + ((size_t)k * m + i) * W;
            if (s->method == CS_BBT) {
                project(s, s->X[0] + (size_t)k * s->d * m + (size_t)i * s->d, s->d, p);
            } else { /* [z_s ; z_u,i] */
                memcpy(z, s->X[0] + (size_t)k * s->ds, sizeof(double) * (size_t)s->ds);
                memcpy(z + s->ds, s->X[1 + i] + (size_t)k * s->du, sizeof(double) * (size_t)s->du);
                project(s, z, s->ds + s->du, p);
            }
        }
    free(z);
    return s->pop;
}

void context_search_tell(ContextSearch *s, const double *fit) {
    int arg = 0;
    for (int k = 1; k < s->lambda; k++)
        if (fit[k] < fit[arg]) arg = k;
    s->arg = arg;
    for (int q = 0; q < s->n_es; q++) cmaes_tell(&s->es[q], fit);
}

const float *context_search_pick(const ContextSearch *s) {
    return s->pop + (size_t)s->arg * s->m * s->W;
}
