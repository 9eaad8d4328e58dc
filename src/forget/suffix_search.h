/* The strict proposers: each iteration asks for a population of word suffixes (indices into
 * the candidate vocabulary) and is told their fitness (lower is better). Only fitness values
 * flow back, so every method here works through an API that reveals outputs alone.
 *   dirichlet  the programme's strict method, OUR RECONSTRUCTION (dirichlet_search.h)
 *   random     fresh uniform suffixes every iteration
 *   greedy     coordinate search: lambda new words at one position, cycling positions
 *   ga         genetic algorithm: elitism, tournaments of 3, uniform crossover, 1/L mutation
 *   bdpl       policy gradient over per-position categoricals (Diao et al. 2023), argmax inference */
#ifndef FORGET_SUFFIX_SEARCH_H
#define FORGET_SUFFIX_SEARCH_H

#include <stdint.h>

#include "core/optim.h"
#include "core/rng.h"
#include "forget/dirichlet_search.h"

typedef enum { SS_DIRICHLET, SS_RANDOM, SS_GREEDY, SS_GA, SS_BDPL } SuffixMethod;

typedef struct {
    SuffixMethod method;
    int L, V, lambda;
    long iter;
    Rng rng;
    int32_t *pop, *prev;   /* [lambda][L]: this ask and the last told one */
    double *prev_fit;      /* [lambda] */
    int32_t *cur;          /* [L]: best so far (greedy's base) */
    double cur_f;
    int arg;               /* best of the last told population */
    int32_t *mode;         /* dirichlet with pick=mode: [L], the mixture's mode after the last tell */
    DirichletSearch ds;
    float *p, *g;          /* BDPL: [L][V] categoricals and their gradient */
    AdamW opt;
    int32_t *argmax;       /* BDPL: [L] */
} SuffixSearch;

/* name: dirichlet, random, greedy, ga or bdpl; -1 for another name. */
int suffix_method_from_name(const char *name, SuffixMethod *m);
/* dp: dirichlet's settings (NULL: dirichlet_defaults()); its lambda is every method's population. */
void suffix_search_init(SuffixSearch *s, SuffixMethod m, int L, int V, const DirichletParams *dp, uint64_t seed);
void suffix_search_free(SuffixSearch *s);
/* The next population, [lambda][L]; valid until the next ask. */
const int32_t *suffix_search_ask(SuffixSearch *s);
void suffix_search_tell(SuffixSearch *s, const double *fit);
/* The suffix the method would answer now (validated by the caller): the best of the last
 * population, BDPL's argmax, dirichlet's mode with pick=mode. */
const int32_t *suffix_search_pick(const SuffixSearch *s);

#endif
