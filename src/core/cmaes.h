/* CMA-ES with full covariance, following Hansen's tutorial ("The CMA Evolution Strategy:
 * A Tutorial", 2016): weighted recombination of the best mu of lambda samples, cumulative
 * step-size adaptation, rank-one and rank-mu covariance updates. Ask/tell interface, so the
 * caller owns the evaluation (through an API, over MPI, ...). Minimises. The covariance is
 * eigendecomposed with LAPACK (dsyev) every few generations. */
#ifndef FORGET_CMAES_H
#define FORGET_CMAES_H

#include <stdint.h>

#include "core/rng.h"

typedef struct {
    int n, lambda, mu;
    double *w;                    /* recombination weights [mu], sum 1 */
    double mueff, cc, cs, c1, cmu, damps, chin;
    double sigma;
    double *mean, *pc, *ps;       /* [n] */
    double *C, *B, *D;            /* C, B [n*n] row-major, D [n] = sqrt(eigenvalues) */
    double *z, *y;                /* last ask: z ~ N(0, I), y = B D z, [lambda*n] */
    long gen, evals, eigen_gen;
    double best_f, *best_x;
    Rng rng;
} CmaEs;

/* lambda <= 0: 4 + floor(3 ln n). */
void cmaes_init(CmaEs *c, int n, const double *x0, double sigma0, int lambda, uint64_t seed);
void cmaes_free(CmaEs *c);
/* Writes lambda candidates into X [lambda * n]. */
void cmaes_ask(CmaEs *c, double *X);
/* Takes the fitness of the candidates of the last ask (lower is better). */
void cmaes_tell(CmaEs *c, const double *f);
/* max over axes of sigma * sqrt(C_ii): the current search spread. */
double cmaes_spread(const CmaEs *c);

#endif
