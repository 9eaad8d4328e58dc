#include "forget/blackbox.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/progress.h"
#include "core/rng.h"
#include "core/threads.h"
#include "eval/forget_metrics.h"
#include "forget/context_search.h"
#include "forget/coop.h"
#include "forget/suffix_search.h"
#include "forget/vocab.h"
#include "io/dataset.h"
#include "models/clip_encode.h"
#include "serve/client.h"

void blackbox_defaults(BlackboxOpts *o) {
    memset(o, 0, sizeof *o);
    o->method = "dirichlet";
    o->tpl = "a photo of a {}";
    o->suffix_len = 4;
    o->shots = 16;
    o->vocab_max = 500;
    o->budget = 2000;
    o->n_ctx = 4, o->bbt_d = 10, o->bbf_ds = 20, o->bbf_du = 5; /* BBF's CIFAR-10 settings */
    o->coop_steps = 300;
    o->curve_points = 8;
    o->dirichlet = dirichlet_defaults();
}

int blackbox_family(const char *method) {
    SuffixMethod sm;
    ContextMethod cm;
    if (suffix_method_from_name(method, &sm) == 0) return 0;
    if (context_method_from_name(method, &cm) == 0) return 1;
    if (strcmp(method, "coop") == 0) return 2;
    return -1;
}

/* One API and what the search knows of it. */
typedef struct {
    BbClient *c;
    char **classes;
    int C;
    const int32_t *labels; /* of the split behind c */
    const uint8_t *forget;
    const char *tpl;
    const Vocab *vocab;
    int L, m, W, family;
    int labels_only;
} Task;

/* The C prompts of one candidate: the template with a word suffix (strict; words NULL: none) or
 * BBF's "{class}." to follow context embeddings (loose, white box). */
static void candidate_prompts(const Task *t, const int32_t *words, int with_context, char **p) {
    for (int k = 0; k < t->C; k++) {
        char buf[1024], suffix[512] = "";
        size_t sl = 0;
        for (int i = 0; words && i < t->L; i++) sl += (size_t)snprintf(suffix + sl, sizeof suffix - sl, " %s", t->vocab->words[words[i]]);
        const char *at = strstr(t->tpl, "{}");
        if (with_context) snprintf(buf, sizeof buf, "%s.", t->classes[k]);
        else if (at) snprintf(buf, sizeof buf, "%.*s%s%s%s.", (int)(at - t->tpl), t->tpl, t->classes[k], at + 2, suffix);
        else snprintf(buf, sizeof buf, "%s %s%s.", t->tpl, t->classes[k], suffix);
        p[k] = xstrdup(buf);
    }
}

/* Scores S candidates (words [S][L] or ctx [S][m][W]; both NULL: the zero-shot prompts) on ids:
 * fitness (lower is better) and, when fs is set, the forgetting score of each. Populations go as
 * few requests as the server's limits allow. */
static int score_sets(Task *t, const int32_t *words, const float *ctx, int S, const int *ids, int N, double *fit,
                      ForgetScore *fs, Err *e) {
    const int C = t->C, with_ctx = ctx != NULL;
    char **p = xmalloc(sizeof(char *) * (size_t)S * C);
    for (int q = 0; q < S; q++) candidate_prompts(t, words ? words + (size_t)q * t->L : NULL, with_ctx, p + (size_t)q * C);
    float *probs = xalloc_floats((size_t)S * N * C);
    int32_t *pred = xmalloc(sizeof(int32_t) * (size_t)S * N);
    /* at most 1000 images and ~300k returned numbers per request */
    const int nb = N < 1000 ? N : 1000;
    int sq = (int)(300000L / ((long)nb * C));
    sq = sq < 1 ? 1 : sq > S ? S : sq;
    if ((long)sq * C > 8000) sq = 8000 / C > 0 ? 8000 / C : 1;
    float *tp = xalloc_floats((size_t)sq * nb * C);
    int32_t *tl = xmalloc(sizeof(int32_t) * (size_t)sq * nb);
    int rc = 0;
    for (int q0 = 0; q0 < S && rc == 0; q0 += sq) {
        const int ns = S - q0 < sq ? S - q0 : sq;
        for (int b0 = 0; b0 < N && rc == 0; b0 += nb) {
            const int ni = N - b0 < nb ? N - b0 : nb;
            rc = bb_classify_sets(t->c, (const char *const *)p + (size_t)q0 * C, ns, C,
                                  ctx ? ctx + (size_t)q0 * t->m * t->W : NULL, t->m, t->W, ids + b0, ni, tp, tl,
                                  &t->labels_only, e);
            for (int q = 0; q < ns && rc == 0; q++) {
                memcpy(probs + ((size_t)(q0 + q) * N + b0) * C, tp + (size_t)q * ni * C, sizeof(float) * (size_t)ni * C);
                memcpy(pred + (size_t)(q0 + q) * N + b0, tl + (size_t)q * ni, sizeof(int32_t) * (size_t)ni);
            }
        }
    }
    if (rc == 0) {
        int32_t *lab = xmalloc(sizeof(int32_t) * (size_t)N);
        float *logits = xalloc_floats((size_t)N * C);
        for (int i = 0; i < N; i++) lab[i] = t->labels[ids[i]];
        for (int q = 0; q < S; q++) {
            const float *pq = probs + (size_t)q * N * C;
            for (int i = 0; i < N; i++) /* labels only: a one-hot row has the same argmax */
                for (int k = 0; k < C; k++)
                    logits[(size_t)i * C + k] = t->labels_only ? (k == pred[(size_t)q * N + i]) : pq[(size_t)i * C + k];
            ForgetScore f;
            forget_score(logits, lab, N, C, t->forget, &f);
            if (fs) fs[q] = f;
            fit[q] = t->labels_only ? 1.0 - f.h : bbf_loss(pq, lab, N, C, t->forget);
        }
        free(lab), free(logits);
    }
    for (int i = 0; i < S * C; i++) free(p[i]);
    free(p), free(probs), free(pred), free(tp), free(tl);
    return rc;
}

/* A population over the ranks: each scores its share; the fitness (and any failure) is shared. */
static int score_population(Task *t, const Dist *d, const int32_t *words, const float *ctx, int S, const int *ids,
                            int N, double *fit, Err *e) {
    const int rank = d ? d->rank : 0, size = d ? d->size : 1;
    const int k0 = (int)((long)S * rank / size), k1 = (int)((long)S * (rank + 1) / size);
    double *all = xcalloc((size_t)S + 1, sizeof(double));
    int rc = k1 > k0 ? score_sets(t, words ? words + (size_t)k0 * t->L : NULL, ctx ? ctx + (size_t)k0 * t->m * t->W : NULL,
                                  k1 - k0, ids, N, all + k0, NULL, e)
                     : 0;
    all[S] = rc != 0;
    dist_allreduce_sum_double(d, all, S + 1);
    if (rc == 0 && all[S] > 0) rc = err_set(e, "another MPI rank failed to score its share of the population");
    memcpy(fit, all, sizeof(double) * (size_t)S);
    free(all);
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

/* k-shot train and validation ids per class, from a seeded shuffle. */
static void kshot(const int32_t *labels, int N, int C, int shots, uint64_t seed, int *tr, int *ntr, int *va, int *nva) {
    int *perm = xmalloc(sizeof(int) * (size_t)N), *taken = xcalloc((size_t)C, sizeof(int));
    Rng rg;
    rng_seed(&rg, seed ^ 0x5107);
    rng_permutation(&rg, perm, N);
    *ntr = *nva = 0;
    for (int i = 0; i < N; i++) {
        int y = labels[perm[i]];
        if (y < 0 || y >= C || taken[y] >= 2 * shots) continue;
        if (taken[y]++ < shots) tr[(*ntr)++] = perm[i];
        else va[(*nva)++] = perm[i];
    }
    free(perm), free(taken);
}

/* The evaluation split (whole) behind its own client. */
typedef struct {
    BbClient c;
    Task t;
    char **classes;
    int32_t *labels;
    int C, N;
    int *all;
} EvalSplit;

static int eval_open(EvalSplit *ev, const BlackboxOpts *o, const Task *train, Err *e) {
    memset(ev, 0, sizeof *ev);
    if (bb_client_init(&ev->c, o->eval_api ? o->eval_api : o->api, o->api_key, e)) return -1;
    if (bb_dataset(&ev->c, &ev->classes, &ev->C, &ev->labels, &ev->N, e)) return -1;
    if (ev->C != train->C) return err_set(e, "the evaluation API has %d classes, the training one %d", ev->C, train->C);
    ev->all = xmalloc(sizeof(int) * (size_t)ev->N);
    for (int i = 0; i < ev->N; i++) ev->all[i] = i;
    ev->t = *train;
    ev->t.c = &ev->c;
    ev->t.labels = ev->labels;
    return 0;
}

static void eval_close(EvalSplit *ev) {
    if (ev->classes) bb_dataset_free(ev->classes, ev->C, ev->labels);
    free(ev->all);
    bb_client_free(&ev->c);
}

static int eval_candidate(EvalSplit *ev, const int32_t *words, const float *ctx, ForgetScore *fs, Err *e) {
    double f;
    return score_sets(&ev->t, words, ctx, 1, ev->all, ev->N, &f, fs, e);
}

/* The white box: weights and images in process (what the API hides), BBF's loss by gradient. */
static int run_coop(const BlackboxOpts *o, const Task *t, const int *tr, int ntr, const int *va, int nva, float *best_ctx,
                    double *val_h, Err *e) {
    ClipModel m;
    Tokenizer tok;
    Dataset d;
    if (clip_load(&m, o->model, NULL, e)) return -1;
    if (o->precision != PREC_FP32 && clip_set_precision(&m, (Precision)o->precision, e)) {
        clip_free(&m);
        return -1;
    }
    if (tokenizer_init(&tok, e) || dataset_load_named(&d, o->dataset, o->data_dir, e)) {
        clip_free(&m);
        return -1;
    }
    int rc = 0;
    if (d.n_classes != t->C) rc = err_set(e, "coop: %s has %d classes, the API %d", o->dataset, d.n_classes, t->C);
    const int E = m.cfg.embed_dim, R = m.cfg.image_res;
    float *ftr = xalloc_floats((size_t)ntr * E), *fva = xalloc_floats((size_t)nva * E);
    int32_t *ytr = xmalloc(sizeof(int32_t) * (size_t)ntr), *yva = xmalloc(sizeof(int32_t) * (size_t)nva);
    for (int pass = 0; pass < 2 && rc == 0; pass++) {
        const int *ids = pass ? va : tr, n = pass ? nva : ntr;
        float *f = pass ? fva : ftr;
        int32_t *y = pass ? yva : ytr;
        for (int i = 0; i < n; i++) y[i] = t->labels[ids[i]];
        for (int b = 0; b < n && rc == 0; b += CLIP_ENCODE_BATCH) {
            const int nb = n - b < CLIP_ENCODE_BATCH ? n - b : CLIP_ENCODE_BATCH;
            float *px = xalloc_floats((size_t)nb * 3 * R * R);
            dataset_pixels(&d, ids + b, nb, R, &PIXELS_CLIP, px, NULL, 0);
            rc = clip_encode_image(&m, px, nb, f + (size_t)b * E, NULL, e);
            free(px);
        }
    }
    if (rc == 0) {
        char **p = xmalloc(sizeof(char *) * (size_t)t->C);
        candidate_prompts(t, NULL, 1, p);
        CoopOpts co;
        coop_defaults(&co);
        co.n_ctx = o->n_ctx, co.steps = o->coop_steps, co.seed = o->seed, co.quiet = o->quiet;
        rc = coop_run(&m, &tok, (const char *const *)p, t->C, t->forget, ftr, ytr, ntr, fva, yva, nva, &co, best_ctx, val_h, e);
        for (int k = 0; k < t->C; k++) free(p[k]);
        free(p);
    }
    free(ftr), free(fva), free(ytr), free(yva);
    dataset_free(&d), tokenizer_free(&tok), clip_free(&m);
    return rc;
}

int blackbox_run(const BlackboxOpts *o, BlackboxResult *r, Err *e) {
    memset(r, 0, sizeof *r);
    const double t0 = now_seconds();
    const Dist *d = o->dist;
    const int root = !d || d->rank == 0, family = blackbox_family(o->method);
    r->family = family;
    if (strcmp(o->method, "dirichlet") == 0) dirichlet_params_format(&o->dirichlet, r->settings, sizeof r->settings);
    if (family < 0)
        return err_set(e, "--method: \"%s\" is not a method (strict: dirichlet, random, greedy, ga, bdpl; loose: bbt, bbf; "
                          "white box: coop)", o->method);
    if (family == 2 && (!o->model || !o->dataset))
        return err_set(e, "--method coop is the white-box bound: it needs --model FILE and --dataset NAME (the split the API serves)");
    BbClient c;
    if (bb_client_init(&c, o->api, o->api_key, e)) return -1;
    char **classes = NULL;
    int32_t *labels = NULL;
    int C = 0, N = 0;
    if (bb_dataset(&c, &classes, &C, &labels, &N, e)) {
        bb_client_free(&c);
        return -1;
    }
    uint8_t *mask = xcalloc((size_t)C, 1);
    Vocab vocab = {0};
    int rc = parse_forget(o->forget, classes, C, mask, e);
    if (rc == 0 && family == 0) rc = vocab_load(&vocab, o->wordlist, (const char *const *)classes, o->vocab_max, o->seed, e);
    int *tr = xmalloc(sizeof(int) * (size_t)C * o->shots), *va = xmalloc(sizeof(int) * (size_t)C * o->shots), ntr = 0, nva = 0;
    kshot(labels, N, C, o->shots, o->seed, tr, &ntr, va, &nva);
    Task t = {&c, classes, C, labels, mask, o->tpl, &vocab, o->suffix_len, o->n_ctx, 0, family, 0};
    float *p0 = NULL, sigma = 0;
    if (rc == 0 && family == 1) { /* loose: the server's embedding space */
        rc = bb_embedding_space(&c, &t.W, &p0, &sigma, e);
    }
    EvalSplit ev = {0};
    if (rc == 0 && root) rc = eval_open(&ev, o, &t, e);
    if (rc == 0 && family != 0 && root && !ev.t.W) { /* the evaluation server must take contexts too */
        float *mu = NULL, sd;
        rc = bb_embedding_space(&ev.c, &ev.t.W, &mu, &sd, e);
        if (rc) err_prefix(e, "the evaluation API: ");
        free(mu);
        t.W = t.W ? t.W : ev.t.W;
    }
    int32_t *best_w = xcalloc((size_t)o->suffix_len, sizeof(int32_t));
    float *best_ctx = NULL;
    double best_val = -1;
    long spent = 0;
    if (rc == 0 && family == 2) {
        best_ctx = xalloc_floats((size_t)o->n_ctx * t.W);
        if (root) rc = run_coop(o, &t, tr, ntr, va, nva, best_ctx, &best_val, e);
    } else if (rc == 0) {
        SuffixSearch ss = {0};
        ContextSearch cs = {0};
        int lam;
        if (family == 0) {
            SuffixMethod sm;
            suffix_method_from_name(o->method, &sm);
            suffix_search_init(&ss, sm, o->suffix_len, vocab.n, &o->dirichlet, o->seed);
            lam = ss.lambda;
        } else {
            ContextMethod cm;
            context_method_from_name(o->method, &cm);
            context_search_init(&cs, cm, o->n_ctx, t.W, p0, sigma, o->bbt_d, o->bbf_ds, o->bbf_du, o->seed);
            lam = cs.lambda;
            best_ctx = xalloc_floats((size_t)o->n_ctx * t.W);
        }
        double *fit = xmalloc(sizeof(double) * (size_t)lam);
        Progress prog;
        progress_start(&prog, o->method, o->budget, o->quiet || !root);
        int next_point = 1;
        while (rc == 0 && spent + lam + 1 <= o->budget) {
            const int32_t *pw = family == 0 ? suffix_search_ask(&ss) : NULL;
            const float *pc = family == 1 ? context_search_ask(&cs) : NULL;
            if ((rc = score_population(&t, d, pw, pc, lam, tr, ntr, fit, e)) != 0) break;
            spent += lam;
            if (family == 0) suffix_search_tell(&ss, fit);
            else context_search_tell(&cs, fit);
            /* the method's current answer on the validation shots (rank 0 asks; all learn the H) */
            const int32_t *cw = family == 0 ? suffix_search_pick(&ss) : NULL;
            const float *cc = family == 1 ? context_search_pick(&cs) : NULL;
            double vh[2] = {0, 0}, vf;
            ForgetScore vs;
            if (root) {
                rc = score_sets(&t, cw, cc, 1, va, nva, &vf, &vs, e);
                vh[0] = rc == 0 ? vs.h : 0, vh[1] = rc != 0;
            }
            dist_allreduce_sum_double(d, vh, 2);
            if (rc == 0 && vh[1] > 0) rc = err_set(e, "the validation query failed on rank 0");
            if (rc) break;
            spent += 1;
            if (vh[0] > best_val) {
                best_val = vh[0];
                if (cw) memcpy(best_w, cw, sizeof(int32_t) * (size_t)o->suffix_len);
                if (cc) memcpy(best_ctx, cc, sizeof(float) * (size_t)o->n_ctx * t.W);
            }
            /* H against queries: the best-so-far candidate on the whole evaluation split */
            if (root && o->curve_points > 0 && r->n_curve < BLACKBOX_MAX_CURVE &&
                spent >= o->budget * next_point / o->curve_points - (lam + 1)) {
                ForgetScore cf;
                if ((rc = eval_candidate(&ev, family == 0 ? best_w : NULL, family == 1 ? best_ctx : NULL, &cf, e)) != 0) break;
                r->curve_queries[r->n_curve] = spent, r->curve_h[r->n_curve++] = cf.h;
                while (next_point <= o->curve_points && spent >= o->budget * next_point / o->curve_points - (lam + 1))
                    next_point++;
            }
            char st[96];
            snprintf(st, sizeof st, "best validation H %.3f", best_val);
            progress_update(&prog, spent, 1, "queries", st);
        }
        progress_end(&prog);
        free(fit);
        if (family == 0) suffix_search_free(&ss);
        else context_search_free(&cs);
    }
    long q_all = c.queries;
    { /* queries summed over ranks */
        double qd = (double)c.queries;
        dist_allreduce_sum_double(d, &qd, 1);
        q_all = (long)qd;
    }
    r->queries = q_all;
    r->labels_only = t.labels_only;
    r->val_h = best_val;
    if (rc == 0 && root) {
        ForgetScore fs, fb;
        rc = eval_candidate(&ev, family == 0 ? best_w : NULL, family == 0 ? NULL : best_ctx, &fs, e);
        if (rc == 0) rc = eval_candidate(&ev, NULL, NULL, &fb, e);
        if (rc == 0) {
            r->err_forget = fs.err_forget, r->acc_keep = fs.acc_keep, r->h = fs.h;
            r->base_err = fb.err_forget, r->base_acc = fb.acc_keep, r->base_h = fb.h;
            r->labels_only = ev.t.labels_only || t.labels_only;
            if (family == 0) {
                size_t k = 0;
                for (int i = 0; i < o->suffix_len; i++)
                    k += (size_t)snprintf(r->suffix + k, sizeof r->suffix - k, "%s%s", i ? " " : "", vocab.words[best_w[i]]);
            } else {
                snprintf(r->suffix, sizeof r->suffix, "(%d context embeddings)", o->n_ctx);
            }
        }
        r->eval_queries = ev.c.queries;
    }
    if (root) eval_close(&ev);
    r->seconds = now_seconds() - t0;
    free(best_w), free(best_ctx), free(p0), free(tr), free(va), free(mask);
    vocab_free(&vocab);
    bb_dataset_free(classes, C, labels);
    bb_client_free(&c);
    return rc;
}
