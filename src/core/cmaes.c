#include "core/cmaes.h"

#include <lapacke.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "core/err.h"
#include "core/sort.h"

static double *dalloc(size_t n) { return xcalloc(n ? n : 1, sizeof(double)); }

static void eigen(CmaEs *c) {
    const int n = c->n;
    /* dsyev overwrites its input with the eigenvectors (columns, in row-major: B[i*n + k] is
     * component i of eigenvector k) */
    memcpy(c->B, c->C, sizeof(double) * (size_t)n * n);
    double *ev = dalloc((size_t)n);
    if (LAPACKE_dsyev(LAPACK_ROW_MAJOR, 'V', 'U', n, c->B, n, ev) != 0) {
        /* numerically broken covariance: restart it as the identity rather than continue blind */
        for (int i = 0; i < n; i++)
            for (int j = 0; j < n; j++) c->C[i * n + j] = c->B[i * n + j] = i == j;
        for (int i = 0; i < n; i++) ev[i] = 1.0;
    }
    for (int i = 0; i < n; i++) c->D[i] = sqrt(ev[i] > 1e-300 ? ev[i] : 1e-300);
    free(ev);
    c->eigen_gen = c->gen;
}

void cmaes_init(CmaEs *c, int n, const double *x0, double sigma0, int lambda, uint64_t seed) {
    memset(c, 0, sizeof *c);
    c->n = n;
    c->lambda = lambda > 0 ? lambda : 4 + (int)floor(3 * log((double)n));
    c->mu = c->lambda / 2;
    c->w = dalloc((size_t)c->mu);
    double sw = 0, sw2 = 0;
    for (int i = 0; i < c->mu; i++) sw += (c->w[i] = log(c->mu + 0.5) - log(i + 1.0));
    for (int i = 0; i < c->mu; i++) c->w[i] /= sw, sw2 += c->w[i] * c->w[i];
    c->mueff = 1.0 / sw2;
    c->cc = (4 + c->mueff / n) / (n + 4 + 2 * c->mueff / n);
    c->cs = (c->mueff + 2) / (n + c->mueff + 5);
    c->c1 = 2 / ((n + 1.3) * (n + 1.3) + c->mueff);
    c->cmu = fmin(1 - c->c1, 2 * (c->mueff - 2 + 1 / c->mueff) / ((n + 2) * (n + 2) + c->mueff));
    c->damps = 1 + 2 * fmax(0, sqrt((c->mueff - 1) / (n + 1)) - 1) + c->cs;
    c->chin = sqrt((double)n) * (1 - 1.0 / (4 * n) + 1.0 / (21.0 * n * n));
    c->sigma = sigma0;
    c->mean = dalloc((size_t)n), c->pc = dalloc((size_t)n), c->ps = dalloc((size_t)n);
    c->C = dalloc((size_t)n * n), c->B = dalloc((size_t)n * n), c->D = dalloc((size_t)n);
    c->z = dalloc((size_t)c->lambda * n), c->y = dalloc((size_t)c->lambda * n);
    c->best_x = dalloc((size_t)n);
    memcpy(c->mean, x0, sizeof(double) * (size_t)n);
    for (int i = 0; i < n; i++) c->C[i * n + i] = c->B[i * n + i] = c->D[i] = 1.0;
    c->best_f = INFINITY;
    rng_seed(&c->rng, seed);
}

void cmaes_free(CmaEs *c) {
    free(c->w), free(c->mean), free(c->pc), free(c->ps), free(c->C), free(c->B), free(c->D);
    free(c->z), free(c->y), free(c->best_x);
    memset(c, 0, sizeof *c);
}

void cmaes_ask(CmaEs *c, double *X) {
    const int n = c->n;
    for (int k = 0; k < c->lambda; k++) {
        double *z = c->z + (size_t)k * n, *y = c->y + (size_t)k * n;
        for (int i = 0; i < n; i++) z[i] = rng_normal(&c->rng);
        for (int i = 0; i < n; i++) { /* y = B D z */
            double s = 0;
            for (int j = 0; j < n; j++) s += c->B[i * n + j] * c->D[j] * z[j];
            y[i] = s;
        }
        for (int i = 0; i < n; i++) X[(size_t)k * n + i] = c->mean[i] + c->sigma * y[i];
    }
}


void cmaes_tell(CmaEs *c, const double *f) {
    const int n = c->n, lam = c->lambda, mu = c->mu;
    int *order = xmalloc(sizeof(int) * (size_t)lam);
    argsort_f64(f, lam, order); /* rank by fitness, ties in index order */
    c->evals += lam;
    if (f[order[0]] < c->best_f) {
        c->best_f = f[order[0]];
        for (int i = 0; i < n; i++) c->best_x[i] = c->mean[i] + c->sigma * c->y[(size_t)order[0] * n + i];
    }
    double *yw = dalloc((size_t)n), *zw = dalloc((size_t)n);
    for (int r = 0; r < mu; r++)
        for (int i = 0; i < n; i++) {
            yw[i] += c->w[r] * c->y[(size_t)order[r] * n + i];
            zw[i] += c->w[r] * c->z[(size_t)order[r] * n + i];
        }
    for (int i = 0; i < n; i++) c->mean[i] += c->sigma * yw[i];
    /* C^{-1/2} y_w = B z_w */
    const double ks = sqrt(c->cs * (2 - c->cs) * c->mueff);
    double psn = 0;
    for (int i = 0; i < n; i++) {
        double bz = 0;
        for (int j = 0; j < n; j++) bz += c->B[i * n + j] * zw[j];
        c->ps[i] = (1 - c->cs) * c->ps[i] + ks * bz;
        psn += c->ps[i] * c->ps[i];
    }
    psn = sqrt(psn);
    c->gen++;
    const int hsig = psn / sqrt(1 - pow(1 - c->cs, 2.0 * c->gen)) < (1.4 + 2.0 / (n + 1)) * c->chin;
    const double kc = sqrt(c->cc * (2 - c->cc) * c->mueff);
    for (int i = 0; i < n; i++) c->pc[i] = (1 - c->cc) * c->pc[i] + (hsig ? kc * yw[i] : 0);
    const double old = 1 - c->c1 - c->cmu + (hsig ? 0 : c->c1 * c->cc * (2 - c->cc));
    for (int i = 0; i < n; i++)
        for (int j = 0; j <= i; j++) {
            double rank_mu = 0;
            for (int r = 0; r < mu; r++)
                rank_mu += c->w[r] * c->y[(size_t)order[r] * n + i] * c->y[(size_t)order[r] * n + j];
            double v = old * c->C[i * n + j] + c->c1 * c->pc[i] * c->pc[j] + c->cmu * rank_mu;
            c->C[i * n + j] = c->C[j * n + i] = v;
        }
    c->sigma *= exp((c->cs / c->damps) * (psn / c->chin - 1));
    /* the eigendecomposition costs O(n^3): redo it every few generations, as the tutorial suggests */
    if ((c->gen - c->eigen_gen) * (c->c1 + c->cmu) * n * 10 >= 1) eigen(c);
    free(yw), free(zw), free(order);
}

double cmaes_spread(const CmaEs *c) {
    double m = 0;
    for (int i = 0; i < c->n; i++) m = fmax(m, c->sigma * sqrt(c->C[i * c->n + i]));
    return m;
}
