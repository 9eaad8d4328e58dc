/* The strict black-box suffix search of the research programme, as we reconstruct it
 * (shared/methods/vlm-blackbox.md B.4; RECONSTRUCTION, not a published algorithm):
 * a mixture of K per-position multinomials over a word vocabulary,
 *   q(w) = sum_c pi_c prod_i Cat(w_i; theta_{c,i}),
 * sampled lambda times per iteration; the best rho fraction (the elite) is assigned to the
 * component with the highest responsibility; Dirichlet-smoothed estimates from the elite
 * counts, theta_hat = (n + alpha) / (sum n + V alpha) and pi_hat = (m + beta) / (|E| + K beta),
 * are blended in with an exponential moving average of rate eta; the best string found so far
 * keeps a place in the elite (elitist). Ask/tell: the caller owns
 * the (API) evaluations. Minimises. */
#ifndef FORGET_DIRICHLET_SEARCH_H
#define FORGET_DIRICHLET_SEARCH_H

#include <stddef.h>
#include <stdint.h>

#include "core/rng.h"

typedef struct {
    int L, V, K, lambda, n_elite;
    double alpha, beta, eta;
    int elitist;
    double *theta; /* [K][L][V] */
    double *pi;    /* [K] */
    int32_t *pop;  /* [lambda][L]: the last ask */
    long evals;
    double best_f;
    int32_t *best; /* [L] */
    Rng rng;
} DirichletSearch;

typedef struct {
    int K, lambda;
    double rho, alpha, beta, eta;
    int elitist;   /* 1: the best string found so far joins every elite (its fitness is known, no query) */
    int pick_mode; /* 1: the answer to validate is the mixture's mode, 0: the best of the last population */
} DirichletParams;

/* K 3, lambda 30, rho 0.25, alpha 0.01, beta 1, eta 0.3, elitist 1, pick best (B.4 suggests alpha in
 * 0.01-1; see the .c). */
DirichletParams dirichlet_defaults(void);
/* "K=3,rho=0.25,alpha=0.01,beta=1,eta=0.3,elitist=1,pick=mode": any subset, over p's values; -1 and a
 * message naming the bad item otherwise. lambda is the population of every method and is not set here. */
int dirichlet_params_parse(const char *spec, DirichletParams *p, char *msg, size_t msg_len);
/* The settings as dirichlet_params_parse reads them (lambda aside), for results files. */
void dirichlet_params_format(const DirichletParams *p, char *buf, size_t len);
void dirsearch_init(DirichletSearch *s, int L, int V, const DirichletParams *p, uint64_t seed);
void dirsearch_free(DirichletSearch *s);
/* Writes lambda candidate word strings (indices into the vocabulary) into words [lambda * L]. */
void dirsearch_ask(DirichletSearch *s, int32_t *words);
/* Fitness of the last ask's candidates, lower is better. */
void dirsearch_tell(DirichletSearch *s, const double *f);
/* The most probable string: per position, the argmax word of the heaviest component. */
void dirsearch_mode(const DirichletSearch *s, int32_t *words);

#endif
