#include "forget/dirichlet_search.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/err.h"
#include "core/sort.h"

/* alpha 0.01: V * alpha must stay near the elite size (8 here) or the prior drowns the elite
 * counts and theta never concentrates (alpha 0.1 with a 200-word vocabulary stalls).
 * elitist 1: chosen on validation H with tuning seeds 101-106 on Fashion-MNIST (docs/blackbox.md). */
DirichletParams dirichlet_defaults(void) { return (DirichletParams){3, 30, 0.25, 0.01, 1.0, 0.3, 1, 0}; }

int dirichlet_params_parse(const char *spec, DirichletParams *p, char *msg, size_t msg_len) {
    DirichletParams q = *p;
    char *s = xstrdup(spec), *save = NULL;
    int rc = 0;
    for (char *it = strtok_r(s, ",", &save); it && rc == 0; it = strtok_r(NULL, ",", &save)) {
        char *eq = strchr(it, '='), *end = NULL;
        if (!eq) {
            snprintf(msg, msg_len, "\"%s\" is not key=value", it);
            rc = -1;
            break;
        }
        *eq = 0;
        const char *key = it, *val = eq + 1;
        double v = strtod(val, &end);
        const int num = *val && end && !*end;
        if (strcmp(key, "pick") == 0 && (strcmp(val, "best") == 0 || strcmp(val, "mode") == 0)) q.pick_mode = val[0] == 'm';
        else if (strcmp(key, "K") == 0 && num && v >= 1 && v <= 64 && v == (int)v) q.K = (int)v;
        else if (strcmp(key, "rho") == 0 && num && v > 0 && v <= 1) q.rho = v;
        else if (strcmp(key, "alpha") == 0 && num && v > 0) q.alpha = v;
        else if (strcmp(key, "beta") == 0 && num && v > 0) q.beta = v;
        else if (strcmp(key, "eta") == 0 && num && v > 0 && v <= 1) q.eta = v;
        else if (strcmp(key, "elitist") == 0 && num && (v == 0 || v == 1)) q.elitist = (int)v;
        else {
            snprintf(msg, msg_len,
                     "bad item \"%s=%s\" (expected K=1..64, rho in (0,1], alpha>0, beta>0, eta in (0,1], elitist=0|1, pick=best|mode)",
                     key, val);
            rc = -1;
        }
    }
    free(s);
    if (rc == 0) *p = q;
    return rc;
}

/* The shortest of %.15g and %.17g that reads back as v ("0.3", not "0.29999999999999999"). */
static void shortest(double v, char *out, size_t len) {
    snprintf(out, len, "%.15g", v);
    if (strtod(out, NULL) != v) snprintf(out, len, "%.17g", v);
}

void dirichlet_params_format(const DirichletParams *p, char *buf, size_t len) {
    char r[32], a[32], b[32], e[32];
    shortest(p->rho, r, sizeof r), shortest(p->alpha, a, sizeof a), shortest(p->beta, b, sizeof b), shortest(p->eta, e, sizeof e);
    snprintf(buf, len, "K=%d,rho=%s,alpha=%s,beta=%s,eta=%s,elitist=%d,pick=%s", p->K, r, a, b, e, p->elitist,
             p->pick_mode ? "mode" : "best");
}

static double *theta_row(const DirichletSearch *s, int c, int i) { return s->theta + ((size_t)c * s->L + i) * s->V; }

void dirsearch_init(DirichletSearch *s, int L, int V, const DirichletParams *p, uint64_t seed) {
    memset(s, 0, sizeof *s);
    s->L = L, s->V = V, s->K = p->K, s->lambda = p->lambda;
    s->n_elite = (int)ceil(p->rho * p->lambda);
    if (s->n_elite < 1) s->n_elite = 1;
    s->alpha = p->alpha, s->beta = p->beta, s->eta = p->eta, s->elitist = p->elitist;
    s->theta = xcalloc((size_t)s->K * L * V, sizeof(double));
    s->pi = xcalloc((size_t)s->K, sizeof(double));
    s->pop = xcalloc((size_t)s->lambda * L, sizeof(int32_t));
    s->best = xcalloc((size_t)L, sizeof(int32_t));
    s->best_f = INFINITY;
    rng_seed(&s->rng, seed);
    /* components start near uniform but not identical, so they can specialise */
    for (int c = 0; c < s->K; c++) {
        s->pi[c] = 1.0 / s->K;
        for (int i = 0; i < L; i++) {
            double *t = theta_row(s, c, i), sum = 0;
            for (int v = 0; v < V; v++) sum += (t[v] = 1.0 + 0.5 * rng_uniform(&s->rng));
            for (int v = 0; v < V; v++) t[v] /= sum;
        }
    }
}

void dirsearch_free(DirichletSearch *s) {
    free(s->theta), free(s->pi), free(s->pop), free(s->best);
    memset(s, 0, sizeof *s);
}

static int draw(Rng *r, const double *p, int n) {
    double u = rng_uniform(r), acc = 0;
    for (int k = 0; k < n; k++)
        if ((acc += p[k]) > u) return k;
    return n - 1;
}

void dirsearch_ask(DirichletSearch *s, int32_t *words) {
    for (int k = 0; k < s->lambda; k++) {
        int c = draw(&s->rng, s->pi, s->K);
        for (int i = 0; i < s->L; i++) s->pop[(size_t)k * s->L + i] = draw(&s->rng, theta_row(s, c, i), s->V);
    }
    memcpy(words, s->pop, sizeof(int32_t) * (size_t)s->lambda * s->L);
}

void dirsearch_tell(DirichletSearch *s, const double *f) {
    const int L = s->L, V = s->V, K = s->K, lam = s->lambda;
    int *order = xmalloc(sizeof(int) * (size_t)lam);
    argsort_f64(f, lam, order); /* rank by fitness, ties in index order */
    s->evals += lam;
    /* elitist: a best string from an earlier population takes the last elite place, so a lucky
     * find is not forgotten when the next population misses it */
    const int carry = s->elitist && s->best_f < f[order[0]];
    if (f[order[0]] < s->best_f) {
        s->best_f = f[order[0]];
        memcpy(s->best, s->pop + (size_t)order[0] * L, sizeof(int32_t) * (size_t)L);
    }
    /* hard E-step: each elite goes to the component most likely to have drawn it */
    double *n = xcalloc((size_t)K * L * V, sizeof(double)), *m = xcalloc((size_t)K, sizeof(double));
    for (int e = 0; e < s->n_elite; e++) {
        const int32_t *w = carry && e == s->n_elite - 1 ? s->best : s->pop + (size_t)order[e] * L;
        int best_c = 0;
        double best_lp = -INFINITY;
        for (int c = 0; c < K; c++) {
            double lp = log(s->pi[c]);
            for (int i = 0; i < L; i++) lp += log(theta_row(s, c, i)[w[i]]);
            if (lp > best_lp) best_lp = lp, best_c = c;
        }
        m[best_c] += 1;
        for (int i = 0; i < L; i++) n[((size_t)best_c * L + i) * V + w[i]] += 1;
    }
    /* Dirichlet-smoothed estimates blended in by EMA (theta, and pi likewise) */
    for (int c = 0; c < K; c++) {
        for (int i = 0; i < L; i++) {
            double *t = theta_row(s, c, i), *cnt = n + ((size_t)c * L + i) * V, tot = 0;
            for (int v = 0; v < V; v++) tot += cnt[v];
            for (int v = 0; v < V; v++) t[v] = (1 - s->eta) * t[v] + s->eta * (cnt[v] + s->alpha) / (tot + V * s->alpha);
        }
        s->pi[c] = (1 - s->eta) * s->pi[c] + s->eta * (m[c] + s->beta) / (s->n_elite + K * s->beta);
    }
    free(n), free(m), free(order);
}

void dirsearch_mode(const DirichletSearch *s, int32_t *words) {
    int c = 0;
    for (int k = 1; k < s->K; k++)
        if (s->pi[k] > s->pi[c]) c = k;
    for (int i = 0; i < s->L; i++) {
        const double *t = theta_row(s, c, i);
        int arg = 0;
        for (int v = 1; v < s->V; v++)
            if (t[v] > t[arg]) arg = v;
        words[i] = arg;
    }
}
