#include "forget/suffix_search.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "core/err.h"
#include "core/ops.h"

int suffix_method_from_name(const char *name, SuffixMethod *m) {
    static const struct {
        const char *name;
        SuffixMethod m;
    } table[] = {{"dirichlet", SS_DIRICHLET}, {"random", SS_RANDOM}, {"greedy", SS_GREEDY}, {"ga", SS_GA}, {"bdpl", SS_BDPL}};
    for (size_t i = 0; i < sizeof table / sizeof *table; i++)
        if (strcmp(name, table[i].name) == 0) {
            *m = table[i].m;
            return 0;
        }
    return -1;
}

void suffix_search_init(SuffixSearch *s, SuffixMethod m, int L, int V, const DirichletParams *params, uint64_t seed) {
    memset(s, 0, sizeof *s);
    const DirichletParams dp = params ? *params : dirichlet_defaults();
    s->method = m, s->L = L, s->V = V, s->lambda = dp.lambda; /* one population size for every method */
    rng_seed(&s->rng, seed ^ 0xabc);
    s->pop = xmalloc(sizeof(int32_t) * (size_t)s->lambda * L);
    s->prev = xmalloc(sizeof(int32_t) * (size_t)s->lambda * L);
    s->prev_fit = xmalloc(sizeof(double) * (size_t)s->lambda);
    s->cur = xmalloc(sizeof(int32_t) * (size_t)L);
    for (int i = 0; i < L; i++) s->cur[i] = (int32_t)rng_below(&s->rng, (uint32_t)V);
    s->cur_f = INFINITY;
    if (m == SS_DIRICHLET) dirsearch_init(&s->ds, L, V, &dp, seed);
    if (m == SS_DIRICHLET && dp.pick_mode) s->mode = xcalloc((size_t)L, sizeof(int32_t));
    if (m == SS_BDPL) { /* independent categoricals, uniform at first */
        const long PV = (long)L * V;
        s->p = xalloc_floats((size_t)PV), s->g = xalloc_floats((size_t)PV);
        for (long k = 0; k < PV; k++) s->p[k] = 1.0f / V;
        adamw_init(&s->opt, PV, 0.9f, 0.999f, 1e-8f);
        s->argmax = xcalloc((size_t)L, sizeof(int32_t));
    }
}

void suffix_search_free(SuffixSearch *s) {
    if (s->method == SS_DIRICHLET) dirsearch_free(&s->ds);
    if (s->method == SS_BDPL) adamw_free(&s->opt);
    free(s->pop), free(s->prev), free(s->prev_fit), free(s->cur), free(s->p), free(s->g), free(s->argmax), free(s->mode);
    memset(s, 0, sizeof *s);
}

/* Euclidean projection of p[0..n) onto the probability simplex as BDPL does it: bisection for
 * v with sum clip(p - v, 0, 1) = 1, then p = clip(p - v, 0, 1). */
static void simplex_project(float *p, int n) {
    double lo = -1.0, hi = 1.0;
    for (int k = 0; k < n; k++) lo = fmin(lo, p[k] - 1.0), hi = fmax(hi, p[k]);
    for (int it = 0; it < 60; it++) {
        double v = 0.5 * (lo + hi), sum = 0;
        for (int k = 0; k < n; k++) sum += fmin(fmax(p[k] - v, 0.0), 1.0);
        if (sum > 1) lo = v;
        else hi = v;
    }
    double v = 0.5 * (lo + hi);
    for (int k = 0; k < n; k++) p[k] = (float)fmin(fmax(p[k] - v, 0.0), 1.0);
}

/* One BDPL update (Diao et al. 2023, as their code computes it): g = 1/(I-1) sum_k (L_k - mean L)
 * d_k with d = -1/p everywhere but +1/p at the sampled word; norm clipped to 3; AdamW (lr 1e-3,
 * weight decay 0.1 — our choices for this scale); each position projected onto the simplex. */
static void bdpl_step(SuffixSearch *s, const double *loss) {
    const int I = s->lambda, L = s->L, V = s->V;
    double mean = 0;
    for (int k = 0; k < I; k++) mean += loss[k];
    mean /= I;
    const long PV = (long)L * V;
    memset(s->g, 0, sizeof(float) * (size_t)PV);
    for (int k = 0; k < I; k++) {
        const double a = (loss[k] - mean) / (I - 1);
        for (int i = 0; i < L; i++) {
            float *gi = s->g + (size_t)i * V;
            const float *pi = s->p + (size_t)i * V;
            const int w = s->pop[(size_t)k * L + i];
            for (int v = 0; v < V; v++) gi[v] += (float)(a * (v == w ? 1.0 : -1.0) / fmax(pi[v], 1e-6));
        }
    }
    double nrm = 0;
    for (long j = 0; j < PV; j++) nrm += (double)s->g[j] * s->g[j];
    nrm = sqrt(nrm);
    if (nrm > 3.0) scale_inplace(s->g, (float)(3.0 / nrm), PV);
    adamw_begin_step(&s->opt);
    adamw_update(&s->opt, s->p, s->g, 0, PV, 1e-3, 0.1);
    for (int i = 0; i < L; i++) {
        float *pi = s->p + (size_t)i * V;
        simplex_project(pi, V);
        int best = 0;
        for (int v = 1; v < V; v++)
            if (pi[v] > pi[best]) best = v;
        s->argmax[i] = best;
    }
}

const int32_t *suffix_search_ask(SuffixSearch *s) {
    const int L = s->L, lam = s->lambda, V = s->V;
    Rng *r = &s->rng;
    if (s->method == SS_DIRICHLET) {
        dirsearch_ask(&s->ds, s->pop);
    } else if (s->method == SS_BDPL) {
        for (int k = 0; k < lam; k++)
            for (int i = 0; i < L; i++) {
                const float *pi = s->p + (size_t)i * V;
                float u = rng_uniform(r), acc = 0;
                int v = 0;
                for (; v < V - 1; v++)
                    if ((acc += pi[v]) > u) break;
                s->pop[(size_t)k * L + i] = v;
            }
    } else if (s->method == SS_RANDOM || (s->method == SS_GA && s->iter == 0)) {
        for (int k = 0; k < lam * L; k++) s->pop[k] = (int32_t)rng_below(r, (uint32_t)V);
    } else if (s->method == SS_GREEDY) {
        const int pos = (int)(s->iter % L);
        for (int k = 0; k < lam; k++) {
            memcpy(s->pop + (size_t)k * L, s->cur, sizeof(int32_t) * (size_t)L);
            s->pop[(size_t)k * L + pos] = (int32_t)rng_below(r, (uint32_t)V);
        }
    } else { /* GA */
        int elite = 0;
        for (int k = 1; k < lam; k++)
            if (s->prev_fit[k] < s->prev_fit[elite]) elite = k;
        memcpy(s->pop, s->prev + (size_t)elite * L, sizeof(int32_t) * (size_t)L);
        for (int k = 1; k < lam; k++) {
            int par[2];
            for (int q = 0; q < 2; q++) {
                par[q] = (int)rng_below(r, (uint32_t)lam);
                for (int t = 0; t < 2; t++) {
                    int cnd = (int)rng_below(r, (uint32_t)lam);
                    if (s->prev_fit[cnd] < s->prev_fit[par[q]]) par[q] = cnd;
                }
            }
            for (int i = 0; i < L; i++) {
                int32_t w = s->prev[(size_t)par[rng_below(r, 2)] * L + i];
                if (rng_uniform(r) < 1.0f / L) w = (int32_t)rng_below(r, (uint32_t)V);
                s->pop[(size_t)k * L + i] = w;
            }
        }
    }
    return s->pop;
}

void suffix_search_tell(SuffixSearch *s, const double *fit) {
    const int L = s->L, lam = s->lambda;
    int arg = 0;
    for (int k = 1; k < lam; k++)
        if (fit[k] < fit[arg]) arg = k;
    s->arg = arg;
    if (s->method == SS_DIRICHLET) dirsearch_tell(&s->ds, fit);
    if (s->mode) dirsearch_mode(&s->ds, s->mode);
    if (s->method == SS_BDPL) bdpl_step(s, fit);
    if (fit[arg] < s->cur_f) {
        s->cur_f = fit[arg];
        memcpy(s->cur, s->pop + (size_t)arg * L, sizeof(int32_t) * (size_t)L);
    }
    memcpy(s->prev, s->pop, sizeof(int32_t) * (size_t)lam * L);
    memcpy(s->prev_fit, fit, sizeof(double) * (size_t)lam);
    s->iter++;
}

const int32_t *suffix_search_pick(const SuffixSearch *s) {
    if (s->mode) return s->mode;
    return s->method == SS_BDPL ? s->argmax : s->pop + (size_t)s->arg * s->L;
}
