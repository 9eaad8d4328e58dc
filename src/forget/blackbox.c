#include "forget/blackbox.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/ops.h"
#include "core/optim.h"
#include "core/progress.h"
#include "core/rng.h"
#include "core/threads.h"
#include "eval/forget_metrics.h"
#include "forget/dirichlet_search.h"
#include "forget/vocab.h"
#include "serve/client.h"

void blackbox_defaults(BlackboxOpts *o) {
    memset(o, 0, sizeof *o);
    o->method = "dirichlet";
    o->tpl = "a photo of a {}";
    o->suffix_len = 4;
    o->shots = 16;
    o->vocab_max = 500;
    o->budget = 2000;
}

typedef struct {
    BbClient *c;
    char **classes;
    int C;
    const uint8_t *forget;
    const char *tpl;
    const Vocab *vocab;
    int L;
} Task;

/* The K class prompts for a suffix (NULL: none). */
static char **prompts_for(const Task *t, const int32_t *words) {
    char **p = xmalloc(sizeof(char *) * (size_t)t->C);
    for (int k = 0; k < t->C; k++) {
        char buf[1024], suffix[512] = "";
        size_t sl = 0;
        for (int i = 0; words && i < t->L; i++) sl += (size_t)snprintf(suffix + sl, sizeof suffix - sl, " %s", t->vocab->words[words[i]]);
        const char *at = strstr(t->tpl, "{}");
        if (at) snprintf(buf, sizeof buf, "%.*s%s%s%s.", (int)(at - t->tpl), t->tpl, t->classes[k], at + 2, suffix);
        else snprintf(buf, sizeof buf, "%s %s%s.", t->tpl, t->classes[k], suffix);
        p[k] = xstrdup(buf);
    }
    return p;
}

static void free_prompts(char **p, int n) {
    for (int i = 0; i < n; i++) free(p[i]);
    free(p);
}

/* Scores a suffix on ids: fills the forgetting score and returns the fitness (lower is better). */
static int score(const Task *t, const int32_t *words, const int *ids, const int32_t *labels, int N, ForgetScore *fs,
                 double *fitness, int *labels_only, Err *e) {
    char **p = prompts_for(t, words);
    float *probs = xmalloc(sizeof(float) * (size_t)N * t->C), *logits = xmalloc(sizeof(float) * (size_t)N * t->C);
    int32_t *pred = xmalloc(sizeof(int32_t) * (size_t)N), *lab = xmalloc(sizeof(int32_t) * (size_t)N);
    int rc = 0;
    for (int b = 0; b < N && rc == 0; b += 1000) { /* the server takes up to 4096 ids a request */
        int nb = N - b < 1000 ? N - b : 1000;
        rc = bb_classify(t->c, (const char *const *)p, t->C, ids + b, nb, probs + (size_t)b * t->C, pred + b, labels_only, e);
    }
    if (rc == 0) {
        for (int i = 0; i < N; i++) {
            lab[i] = labels[ids[i]];
            for (int k = 0; k < t->C; k++) /* labels only: a one-hot row gives the same argmax */
                logits[(size_t)i * t->C + k] = *labels_only ? (k == pred[i]) : probs[(size_t)i * t->C + k];
        }
        forget_score(logits, lab, N, t->C, t->forget, fs);
        *fitness = *labels_only ? 1.0 - fs->h : bbf_loss(probs, lab, N, t->C, t->forget);
    }
    free_prompts(p, t->C);
    free(probs), free(logits), free(pred), free(lab);
    return rc;
}

/* Euclidean projection of p[0..n) onto the probability simplex as BDPL does it: bisection for
 * v with sum clip(p - v, 0, 1) = 1, then p = clip(p - v, 0, 1). */
static void simplex_project(float *p, int n) {
    double lo = -1.0, hi = 1.0;
    for (int k = 0; k < n; k++) lo = fmin(lo, p[k] - 1.0), hi = fmax(hi, p[k]);
    for (int it = 0; it < 60; it++) {
        double v = 0.5 * (lo + hi), s = 0;
        for (int k = 0; k < n; k++) s += fmin(fmax(p[k] - v, 0.0), 1.0);
        if (s > 1) lo = v;
        else hi = v;
    }
    double v = 0.5 * (lo + hi);
    for (int k = 0; k < n; k++) p[k] = (float)fmin(fmax(p[k] - v, 0.0), 1.0);
}

/* One BDPL update (Diao et al. 2023, as their code computes it): g = 1/(I-1) sum_k (L_k - mean L)
 * d_k with d = -1/p everywhere but +1/p at the sampled word; norm clipped to 3; AdamW (lr 1e-3,
 * weight decay 0.1 — our choices for this scale); each position projected onto the simplex. */
static void bdpl_step(float *p, float *g, AdamW *opt, const int32_t *pop, const double *loss, int I, int L, int V,
                      int32_t *argmax) {
    double mean = 0;
    for (int k = 0; k < I; k++) mean += loss[k];
    mean /= I;
    const long PV = (long)L * V;
    for (long j = 0; j < PV; j++) g[j] = 0;
    for (int k = 0; k < I; k++) {
        const double a = (loss[k] - mean) / (I - 1);
        for (int i = 0; i < L; i++) {
            float *gi = g + (size_t)i * V;
            const float *pi = p + (size_t)i * V;
            const int s = pop[(size_t)k * L + i];
            for (int v = 0; v < V; v++) gi[v] += (float)(a * (v == s ? 1.0 : -1.0) / fmax(pi[v], 1e-6));
        }
    }
    double nrm = 0;
    for (long j = 0; j < PV; j++) nrm += (double)g[j] * g[j];
    nrm = sqrt(nrm);
    if (nrm > 3.0) scale_inplace(g, (float)(3.0 / nrm), PV);
    adamw_begin_step(opt);
    adamw_update(opt, p, g, 0, PV, 1e-3, 0.1);
    for (int i = 0; i < L; i++) {
        float *pi = p + (size_t)i * V;
        simplex_project(pi, V);
        int best = 0;
        for (int v = 1; v < V; v++)
            if (pi[v] > pi[best]) best = v;
        argmax[i] = best;
    }
}

/* "t-shirt,3" -> mask; names or indices. */
static int parse_forget(const char *spec, char **classes, int C, uint8_t *mask, Err *e) {
    memset(mask, 0, (size_t)C);
    char *s = xstrdup(spec), *save = NULL;
    int n = 0, rc = 0;
    for (char *tok = strtok_r(s, ",", &save); tok && rc == 0; tok = strtok_r(NULL, ",", &save)) {
        while (*tok == ' ') tok++;
        char *end;
        long v = strtol(tok, &end, 10);
        int idx = -1;
        if (*tok && !*end && v >= 0 && v < C) idx = (int)v;
        for (int k = 0; k < C && idx < 0; k++)
            if (strcmp(classes[k], tok) == 0) idx = k;
        if (idx < 0) rc = err_set(e, "--forget: \"%s\" is neither a class name nor an index below %d", tok, C);
        else n += !mask[idx], mask[idx] = 1;
    }
    free(s);
    if (rc == 0 && (n == 0 || n == C)) rc = err_set(e, "--forget must name at least one class and leave at least one");
    return rc;
}

int blackbox_run(const BlackboxOpts *o, BlackboxResult *r, Err *e) {
    memset(r, 0, sizeof *r);
    double t0 = now_seconds();
    BbClient c, ce;
    if (bb_client_init(&c, o->api, o->api_key, e)) return -1;
    char **classes = NULL;
    int32_t *labels = NULL;
    int C = 0, N = 0, rc;
    if ((rc = bb_dataset(&c, &classes, &C, &labels, &N, e)) != 0) {
        bb_client_free(&c);
        return -1;
    }
    uint8_t *mask = xcalloc((size_t)C, 1);
    Vocab vocab = {0};
    rc = parse_forget(o->forget, classes, C, mask, e);
    if (rc == 0) rc = vocab_load(&vocab, o->wordlist, (const char *const *)classes, o->vocab_max, o->seed, e);
    /* k-shot train and validation ids per class, from a seeded shuffle */
    int *tr = xmalloc(sizeof(int) * (size_t)C * o->shots), *va = xmalloc(sizeof(int) * (size_t)C * o->shots);
    int ntr = 0, nva = 0;
    if (rc == 0) {
        int *perm = xmalloc(sizeof(int) * (size_t)N), *taken = xcalloc((size_t)C, sizeof(int));
        Rng rg;
        rng_seed(&rg, o->seed ^ 0x5107);
        for (int i = 0; i < N; i++) perm[i] = i;
        for (int i = N - 1; i > 0; i--) {
            int j = (int)rng_below(&rg, (uint32_t)(i + 1)), x = perm[i];
            perm[i] = perm[j];
            perm[j] = x;
        }
        for (int i = 0; i < N; i++) {
            int y = labels[perm[i]];
            if (y < 0 || y >= C || taken[y] >= 2 * o->shots) continue;
            if (taken[y]++ < o->shots) tr[ntr++] = perm[i];
            else va[nva++] = perm[i];
        }
        free(perm), free(taken);
    }
    Task t = {&c, classes, C, mask, o->tpl, &vocab, o->suffix_len};
    int32_t *best = xcalloc((size_t)o->suffix_len, sizeof(int32_t));
    double best_val = -1;
    int labels_only = 0;
    Progress prog;
    progress_start(&prog, "blackbox", o->budget, o->quiet);
    if (rc == 0) {
        DirichletParams dp = dirichlet_defaults();
        DirichletSearch ds;
        enum { M_DIRICHLET, M_RANDOM, M_GREEDY, M_GA, M_BDPL } m;
        if (strcmp(o->method, "dirichlet") == 0) m = M_DIRICHLET;
        else if (strcmp(o->method, "random") == 0) m = M_RANDOM;
        else if (strcmp(o->method, "greedy") == 0) m = M_GREEDY;
        else if (strcmp(o->method, "ga") == 0) m = M_GA;
        else if (strcmp(o->method, "bdpl") == 0) m = M_BDPL;
        else m = M_RANDOM, rc = err_set(e, "--method: \"%s\" is not built yet (dirichlet, random, greedy, ga, bdpl)", o->method);
        dirsearch_init(&ds, o->suffix_len, vocab.n, &dp, o->seed);
        const int L = o->suffix_len, lam = dp.lambda;
        int32_t *pop = xmalloc(sizeof(int32_t) * (size_t)lam * L), *prev = xmalloc(sizeof(int32_t) * (size_t)lam * L);
        int32_t *cur = xmalloc(sizeof(int32_t) * (size_t)L);
        double *fit = xmalloc(sizeof(double) * (size_t)lam), *pfit = xmalloc(sizeof(double) * (size_t)lam), cur_f = INFINITY;
        Rng rr;
        rng_seed(&rr, o->seed ^ 0xabc);
        for (int i = 0; i < L; i++) cur[i] = (int32_t)rng_below(&rr, (uint32_t)vocab.n);
        long iter = 0;
        /* BDPL: independent categorical p_i per position, uniform at first, moved by AdamW on a
         * mean-baselined score-function gradient and projected back onto the simplex */
        const long PV = (long)L * vocab.n;
        float *bp = xmalloc(sizeof(float) * (size_t)PV), *bg = xmalloc(sizeof(float) * (size_t)PV);
        for (long k = 0; k < PV; k++) bp[k] = 1.0f / vocab.n;
        AdamW bopt;
        adamw_init(&bopt, PV, 0.9f, 0.999f, 1e-8f);
        int32_t *argmax = xmalloc(sizeof(int32_t) * (size_t)L);
        while (rc == 0 && c.queries + lam + 1 <= o->budget) {
            if (m == M_DIRICHLET) {
                dirsearch_ask(&ds, pop);
            } else if (m == M_BDPL) {
                for (int k = 0; k < lam; k++)
                    for (int i = 0; i < L; i++) {
                        const float *pi = bp + (size_t)i * vocab.n;
                        float u = rng_uniform(&rr), acc = 0;
                        int v = 0;
                        for (; v < vocab.n - 1; v++)
                            if ((acc += pi[v]) > u) break;
                        pop[(size_t)k * L + i] = v;
                    }
            } else if (m == M_RANDOM || (m == M_GA && iter == 0)) {
                for (int k = 0; k < lam * L; k++) pop[k] = (int32_t)rng_below(&rr, (uint32_t)vocab.n);
            } else if (m == M_GREEDY) { /* coordinate search: lam new words at one position, cycling */
                const int pos = (int)(iter % L);
                for (int k = 0; k < lam; k++) {
                    memcpy(pop + (size_t)k * L, cur, sizeof(int32_t) * (size_t)L);
                    pop[(size_t)k * L + pos] = (int32_t)rng_below(&rr, (uint32_t)vocab.n);
                }
            } else { /* GA: elitism, tournaments of 3, uniform crossover, mutation 1/L per word */
                int elite = 0;
                for (int k = 1; k < lam; k++)
                    if (pfit[k] < pfit[elite]) elite = k;
                memcpy(pop, prev + (size_t)elite * L, sizeof(int32_t) * (size_t)L);
                for (int k = 1; k < lam; k++) {
                    int par[2];
                    for (int q = 0; q < 2; q++) {
                        par[q] = (int)rng_below(&rr, (uint32_t)lam);
                        for (int t3 = 0; t3 < 2; t3++) {
                            int cnd = (int)rng_below(&rr, (uint32_t)lam);
                            if (pfit[cnd] < pfit[par[q]]) par[q] = cnd;
                        }
                    }
                    for (int i = 0; i < L; i++) {
                        int32_t w = prev[(size_t)par[rng_below(&rr, 2)] * L + i];
                        if (rng_uniform(&rr) < 1.0f / L) w = (int32_t)rng_below(&rr, (uint32_t)vocab.n);
                        pop[(size_t)k * L + i] = w;
                    }
                }
            }
            int arg = 0;
            for (int k = 0; k < dp.lambda && rc == 0; k++) {
                ForgetScore fs;
                rc = score(&t, pop + (size_t)k * o->suffix_len, tr, labels, ntr, &fs, &fit[k], &labels_only, e);
                if (rc == 0 && fit[k] < fit[arg]) arg = k;
            }
            if (rc) break;
            if (m == M_DIRICHLET) dirsearch_tell(&ds, fit);
            if (m == M_BDPL) bdpl_step(bp, bg, &bopt, pop, fit, lam, L, vocab.n, argmax);
            if (fit[arg] < cur_f) {
                cur_f = fit[arg];
                memcpy(cur, pop + (size_t)arg * L, sizeof(int32_t) * (size_t)L);
            }
            memcpy(prev, pop, sizeof(int32_t) * (size_t)lam * L);
            memcpy(pfit, fit, sizeof(double) * (size_t)lam);
            iter++;
            /* the iteration's best on the validation shots; keep the best by validation H */
            ForgetScore vs;
            double vf;
            const int32_t *cand = m == M_BDPL ? argmax : pop + (size_t)arg * o->suffix_len; /* BDPL infers by argmax */
            if ((rc = score(&t, cand, va, labels, nva, &vs, &vf, &labels_only, e)) != 0) break;
            if (vs.h > best_val) {
                best_val = vs.h;
                memcpy(best, cand, sizeof(int32_t) * (size_t)o->suffix_len);
            }
            char st[96];
            snprintf(st, sizeof st, "best validation H %.3f", best_val);
            progress_update(&prog, c.queries, 1, "queries", st);
        }
        progress_end(&prog);
        free(pop), free(prev), free(cur), free(fit), free(pfit), free(bp), free(bg), free(argmax);
        adamw_free(&bopt);
        dirsearch_free(&ds);
    }
    r->queries = c.queries;
    r->labels_only = labels_only;
    /* the chosen suffix and the zero-shot prompts on the whole evaluation split */
    if (rc == 0) rc = bb_client_init(&ce, o->eval_api ? o->eval_api : o->api, o->api_key, e);
    if (rc == 0) {
        char **ec = NULL;
        int32_t *el = NULL;
        int eC = 0, eN = 0;
        rc = bb_dataset(&ce, &ec, &eC, &el, &eN, e);
        if (rc == 0 && eC != C) rc = err_set(e, "the evaluation API has %d classes, the training one %d", eC, C);
        if (rc == 0) {
            int *all = xmalloc(sizeof(int) * (size_t)eN);
            for (int i = 0; i < eN; i++) all[i] = i;
            Task te = t;
            te.c = &ce;
            ForgetScore fs, fb;
            double f;
            rc = score(&te, best, all, el, eN, &fs, &f, &labels_only, e);
            if (rc == 0) rc = score(&te, NULL, all, el, eN, &fb, &f, &labels_only, e);
            if (rc == 0) {
                r->err_forget = fs.err_forget, r->acc_keep = fs.acc_keep, r->h = fs.h;
                r->base_err = fb.err_forget, r->base_acc = fb.acc_keep, r->base_h = fb.h;
                size_t k = 0;
                for (int i = 0; i < o->suffix_len; i++)
                    k += (size_t)snprintf(r->suffix + k, sizeof r->suffix - k, "%s%s", i ? " " : "", vocab.words[best[i]]);
            }
            free(all);
        }
        if (ec) bb_dataset_free(ec, eC, el);
        r->eval_queries = ce.queries;
        bb_client_free(&ce);
    }
    r->seconds = now_seconds() - t0;
    free(best), free(tr), free(va), free(mask);
    vocab_free(&vocab);
    bb_dataset_free(classes, C, labels);
    bb_client_free(&c);
    return rc;
}
