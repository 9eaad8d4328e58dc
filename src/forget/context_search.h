/* The loose black-box baselines: CMA-ES over m context token embeddings, for servers started
 * with --allow-embeddings (they must accept embeddings, which the strict setting forbids).
 * Both map latents to embeddings with a fixed random projection A (entries N(0, sigma), sigma the
 * std of the token table) around p0, the mean token embedding (vlm-blackbox.md A.3):
 *   bbt  BBT (Sun et al. 2022): one CMA-ES over [z_1..z_m], z_i in R^d, p_i = A z_i + p0
 *   bbf  BBF's latent context sharing (Kuwana et al. 2024): z_i = [z_s; z_u,i], one CMA-ES for the
 *        shared z_s (d_s dims) and one per token for z_u,i (d_u dims), candidate k of every ES
 *        joined into one prompt and the same fitness told to all.
 * CMA-ES: lambda 20, mean 0, sigma0 1, as BBF runs it. */
#ifndef FORGET_CONTEXT_SEARCH_H
#define FORGET_CONTEXT_SEARCH_H

#include <stdint.h>

#include "core/cmaes.h"

typedef enum { CS_BBT, CS_BBF } ContextMethod;

typedef struct {
    ContextMethod method;
    int m, W, lambda, d, ds, du;
    float *A;     /* [W, d] (bbt) or [W, ds + du] (bbf) */
    float *p0;    /* [W] */
    CmaEs *es;    /* 1 (bbt) or m + 1 (bbf: shared first) */
    int n_es;
    double **X;   /* per ES: the last ask [lambda * n] */
    float *pop;   /* [lambda][m][W] */
    int arg;
} ContextSearch;

int context_method_from_name(const char *name, ContextMethod *m);
/* d: BBT's latent size per token; ds, du: BBF's shared and unique sizes (CIFAR-10 settings of
 * the paper: 10, 20 and 5). */
void context_search_init(ContextSearch *s, ContextMethod m, int n_ctx, int W, const float *p0, float sigma, int d, int ds,
                         int du, uint64_t seed);
void context_search_free(ContextSearch *s);
/* [lambda][m][W] context embeddings. */
const float *context_search_ask(ContextSearch *s);
void context_search_tell(ContextSearch *s, const double *fit);
/* The best context of the last told population, [m][W]. */
const float *context_search_pick(const ContextSearch *s);

#endif
