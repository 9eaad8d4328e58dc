#include "forget/blackbox.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

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
        enum { M_DIRICHLET, M_RANDOM, M_GREEDY, M_GA } m;
        if (strcmp(o->method, "dirichlet") == 0) m = M_DIRICHLET;
        else if (strcmp(o->method, "random") == 0) m = M_RANDOM;
        else if (strcmp(o->method, "greedy") == 0) m = M_GREEDY;
        else if (strcmp(o->method, "ga") == 0) m = M_GA;
        else m = M_RANDOM, rc = err_set(e, "--method: \"%s\" is not built yet (dirichlet, random, greedy, ga)", o->method);
        dirsearch_init(&ds, o->suffix_len, vocab.n, &dp, o->seed);
        const int L = o->suffix_len, lam = dp.lambda;
        int32_t *pop = xmalloc(sizeof(int32_t) * (size_t)lam * L), *prev = xmalloc(sizeof(int32_t) * (size_t)lam * L);
        int32_t *cur = xmalloc(sizeof(int32_t) * (size_t)L);
        double *fit = xmalloc(sizeof(double) * (size_t)lam), *pfit = xmalloc(sizeof(double) * (size_t)lam), cur_f = INFINITY;
        Rng rr;
        rng_seed(&rr, o->seed ^ 0xabc);
        for (int i = 0; i < L; i++) cur[i] = (int32_t)rng_below(&rr, (uint32_t)vocab.n);
        long iter = 0;
        while (rc == 0 && c.queries + lam + 1 <= o->budget) {
            if (m == M_DIRICHLET) {
                dirsearch_ask(&ds, pop);
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
            if ((rc = score(&t, pop + (size_t)arg * o->suffix_len, va, labels, nva, &vs, &vf, &labels_only, e)) != 0) break;
            if (vs.h > best_val) {
                best_val = vs.h;
                memcpy(best, pop + (size_t)arg * o->suffix_len, sizeof(int32_t) * (size_t)o->suffix_len);
            }
            char st[96];
            snprintf(st, sizeof st, "best validation H %.3f", best_val);
            progress_update(&prog, c.queries, 1, "queries", st);
        }
        progress_end(&prog);
        free(pop), free(prev), free(cur), free(fit), free(pfit);
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
