#include <cjson/cJSON.h>
/* forget bench blackbox and forget bench debias. blackbox: queries/s of the black-box API with and without the text tower's
 * prefix cache, end to end over loopback (JSON, HTTP, the server's lock and all), on two streams of
 * queries: populations of uniformly random word suffixes (nothing shared but the class prompt) and
 * the populations a dirichlet search actually sends (its sampling distribution concentrates, so
 * candidates come to share words and whole strings). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli/cli.h"
#include "cli/cli_groups.h"
#include "core/progress.h"
#include "core/rng.h"
#include "core/threads.h"
#include "eval/forget_metrics.h"
#include "forget/suffix_search.h"
#include "models/clip.h"
#include "forget/vocab.h"
#include "serve/client.h"
#include "serve/server.h"

extern const Command cmd_bench;

/* NULL-terminated: it is also the words the candidate vocabulary leaves out */
static const char *const CLASSES[11] = {"t-shirt", "trouser", "pullover", "dress", "coat", "sandal",
                                        "shirt",   "sneaker", "bag",      "ankle boot", NULL};

static BbServer *bench_server(const char *model, int no_cache, BbClient *c, Err *e) {
    ServerOpts so = {.model = model, .dataset = "fmnist:train", .no_prefix_cache = no_cache};
    BbServer *s = bb_server_start(&so, e);
    if (!s) return NULL;
    char url[64];
    snprintf(url, sizeof url, "http://127.0.0.1:%d", bb_server_port(s));
    if (bb_client_init(c, url, NULL, e)) {
        bb_server_stop(s);
        return NULL;
    }
    return s;
}

/* The ten class prompts of each of pop suffixes words [pop][L] into p [pop*10]. */
static void suffix_prompts(const Vocab *v, const int32_t *words, int pop, int L, char **p) {
    for (int q = 0; q < pop; q++) {
        char suffix[512] = "";
        size_t sl = 0;
        for (int i = 0; i < L; i++) sl += (size_t)snprintf(suffix + sl, sizeof suffix - sl, " %s", v->words[words[q * L + i]]);
        for (int k = 0; k < 10; k++) {
            char buf[640];
            snprintf(buf, sizeof buf, "a photo of a %s%s.", CLASSES[k], suffix);
            p[q * 10 + k] = xstrdup(buf);
        }
    }
}

/* Seconds of one population request; probs [pop,160,10]. */
static int timed_request(BbClient *c, char **p, int pop, const int *ids, float *probs, int32_t *labels, double *sec, Err *e) {
    int lo;
    double t0 = now_seconds();
    int rc = bb_classify_sets(c, (const char *const *)p, pop, 10, NULL, 0, 0, ids, 160, probs, labels, &lo, e);
    *sec = now_seconds() - t0;
    return rc;
}

/* Random suffixes: median seconds per request over iters requests (after one warm-up), each
 * population sent to both servers. */
static int time_random(BbClient *cache, BbClient *whole, int L, int pop, int iters, const Vocab *v, const int *ids,
                       double *sec_cache, double *sec_whole, Err *e) {
    char **p = xmalloc(sizeof(char *) * (size_t)pop * 10);
    int32_t *words = xmalloc(sizeof(int32_t) * (size_t)pop * L), *labels = xmalloc(sizeof(int32_t) * (size_t)pop * 160);
    float *probs = xalloc_floats((size_t)pop * 160 * 10);
    double *tc = xmalloc(sizeof(double) * (size_t)iters), *tw = xmalloc(sizeof(double) * (size_t)iters), a = 0, b = 0;
    Rng r;
    rng_seed(&r, 9);
    int rc = 0;
    for (int it = 0; it <= iters && rc == 0; it++) {
        for (int k = 0; k < pop * L; k++) words[k] = (int32_t)rng_below(&r, (uint32_t)v->n);
        suffix_prompts(v, words, pop, L, p);
        rc = timed_request(whole, p, pop, ids, probs, labels, &a, e);
        if (rc == 0) rc = timed_request(cache, p, pop, ids, probs, labels, &b, e);
        if (it) tw[it - 1] = a, tc[it - 1] = b; /* request 0 warms up (image features, cache) */
        for (int k = 0; k < pop * 10; k++) free(p[k]);
    }
    if (rc == 0) *sec_cache = cli_median(tc, iters), *sec_whole = cli_median(tw, iters);
    free(p), free(words), free(labels), free(probs), free(tc), free(tw);
    return rc;
}

/* A dirichlet search (forgetting the first four classes, BBF's loss from the cached server's
 * probabilities) for iters populations; every population also goes to the whole-prompt server.
 * Total seconds of each over the search (the cost changes as the distribution concentrates). */
static int time_search(BbClient *cache, BbClient *whole, int L, int iters, const Vocab *v, const int *ids,
                       const int32_t *lab, double *sec_cache, double *sec_whole, int *pop_out, Err *e) {
    SuffixSearch ss;
    suffix_search_init(&ss, SS_DIRICHLET, L, v->n, NULL, 5);
    const int pop = ss.lambda;
    const uint8_t forget[10] = {1, 1, 1, 1, 0, 0, 0, 0, 0, 0};
    char **p = xmalloc(sizeof(char *) * (size_t)pop * 10);
    int32_t *labels = xmalloc(sizeof(int32_t) * (size_t)pop * 160);
    float *probs = xalloc_floats((size_t)pop * 160 * 10);
    double *fit = xmalloc(sizeof(double) * (size_t)pop), a = 0, b = 0;
    int rc = 0;
    *sec_cache = *sec_whole = 0;
    for (int it = 0; it < iters && rc == 0; it++) {
        suffix_prompts(v, suffix_search_ask(&ss), pop, L, p);
        rc = timed_request(whole, p, pop, ids, probs, labels, &a, e);
        if (rc == 0) rc = timed_request(cache, p, pop, ids, probs, labels, &b, e);
        *sec_whole += a, *sec_cache += b;
        for (int q = 0; q < pop && rc == 0; q++) fit[q] = bbf_loss(probs + (size_t)q * 160 * 10, lab, 160, 10, forget);
        if (rc == 0) suffix_search_tell(&ss, fit);
        for (int k = 0; k < pop * 10; k++) free(p[k]);
    }
    *pop_out = pop;
    suffix_search_free(&ss);
    free(p), free(labels), free(probs), free(fit);
    return rc;
}

int bench_blackbox(int argc, char **argv) {
    const char *config = "vit-b-32", *model = NULL;
    int L = 4, pop = 30, iters = 10, search_iters = 60;
    int json = 0;
    const Opt opts[] = {
        O_STR("--config", "NAME", &config, 0, "shape of the random model served when no --model"),
        O_STR("--model", "FILE", &model, 0, "a model to serve instead"),
        opt_bind(OPT_BB_SUFFIX_LEN, &L),
        O_INT("--pop", "N", &pop, 1, 500, "random suffixes per request"),
        O_INT("--iters", "N", &iters, 1, 1000, "timed requests"),
        O_INT("--search-iters", "N", &search_iters, 0, 10000, "populations of the timed dirichlet search"),
        opt_bind(OPT_JSON, &json),
        O_END,
    };
    const int st = cli_parse(&cmd_bench, argc, argv, 2, opts, NULL);
    if (st >= 0) return st;
    Err e = {{0}};
    char *tmp = NULL;
    if (!model) { /* a random model of the named shape, written once for the server to load */
        ClipConfig cfg;
        if (clip_config_named(&cfg, config) != 0) return cli_error("bench", EXIT_USAGE, "unknown --config \"%s\"", config);
        ClipModel m;
        clip_init_random(&m, &cfg, 42);
        const char *dir = getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp";
        tmp = xasprintf("%s/forget-bench-%d.safetensors", dir, (int)getpid());
        if (!json) fprintf(stderr, "writing a random %s to %s...\n", config, tmp);
        int rc = clip_save(&m, tmp, LAYOUT_OPENAI, ST_F32, &e);
        clip_free(&m);
        if (rc) {
            free(tmp);
            return cli_error("bench", EXIT_WORK, "%s", e.msg);
        }
        model = tmp;
    }
    Vocab v;
    if (vocab_load(&v, NULL, CLASSES, 500, 1, &e)) {
        if (tmp) unlink(tmp), free(tmp);
        return cli_error("bench", EXIT_WORK, "%s", e.msg);
    }
    BbClient cc = {0}, cw = {0};
    BbServer *sc = bench_server(model, 0, &cc, &e), *sw = sc ? bench_server(model, 1, &cw, &e) : NULL;
    int rc = sc && sw ? 0 : -1, spop = 0, nl = 0, nc = 0;
    int ids[160];
    for (int i = 0; i < 160; i++) ids[i] = i * 37;
    int32_t *all = NULL, lab[160];
    char **cls = NULL;
    if (rc == 0) rc = bb_dataset(&cc, &cls, &nc, &all, &nl, &e);
    for (int i = 0; i < 160 && rc == 0; i++) lab[i] = all[ids[i]];
    double rc_s = 0, rw_s = 0, sc_s = 0, sw_s = 0;
    if (rc == 0) rc = time_random(&cc, &cw, (int)L, (int)pop, (int)iters, &v, ids, &rc_s, &rw_s, &e);
    if (rc == 0 && search_iters > 0) {
        if (!json) fprintf(stderr, "a dirichlet search of %d populations, each sent to both servers...\n", search_iters);
        rc = time_search(&cc, &cw, (int)L, (int)search_iters, &v, ids, lab, &sc_s, &sw_s, &spop, &e);
    }
    if (cls) bb_dataset_free(cls, nc, all);
    if (sc) bb_client_free(&cc), bb_server_stop(sc);
    if (sw) bb_client_free(&cw), bb_server_stop(sw);
    vocab_free(&v);
    const int random_model = tmp != NULL;
    if (tmp) unlink(tmp), free(tmp);
    if (rc) return cli_error("bench", EXIT_WORK, "%s", e.msg);
    const double qc = pop / rc_s, qw = pop / rw_s;
    const double sq = (double)spop * search_iters, sqc = search_iters ? sq / sc_s : 0, sqw = search_iters ? sq / sw_s : 0;
    if (json) {
        cJSON *j = cJSON_CreateObject();
        cJSON_AddStringToObject(j, "model", random_model ? config : model);
        cJSON_AddNumberToObject(j, "suffix_len", (double)L);
        cJSON_AddNumberToObject(j, "population", (double)pop);
        cJSON_AddNumberToObject(j, "threads", threads_get());
        cJSON_AddNumberToObject(j, "queries_per_s_cache", qc);
        cJSON_AddNumberToObject(j, "queries_per_s_no_cache", qw);
        cJSON_AddNumberToObject(j, "speedup", qc / qw);
        cJSON_AddNumberToObject(j, "search_queries", sq);
        cJSON_AddNumberToObject(j, "search_queries_per_s_cache", sqc);
        cJSON_AddNumberToObject(j, "search_queries_per_s_no_cache", sqw);
        cJSON_AddNumberToObject(j, "search_speedup", search_iters ? sqc / sqw : 0);
        rc = cli_json_line("bench", j);
        cJSON_Delete(j);
    } else {
        printf("forget bench blackbox: %s, L = %d, 10 class prompts x 160 images per candidate, %d threads\n"
               "  random suffixes (%d per request, median of %d):\n"
               "    whole prompts:  %.1f queries/s\n    prefix cache:   %.1f queries/s  (%.2fx)\n",
               random_model ? config : model, L, threads_get(), pop, iters, qw, qc, qc / qw);
        if (search_iters)
            printf("  a dirichlet search's stream (%d per request, %d requests, all timed):\n"
                   "    whole prompts:  %.1f queries/s\n    prefix cache:   %.1f queries/s  (%.2fx)\n",
                   spop, search_iters, sqw, sqc, sqc / sqw);
    }
    return rc;
}

/* forget bench debias: the closed-form calibration at the size (D = 512, a 20,000-word
 * vocabulary): the vocabulary's second moment (sgemm) plus the D x D Cholesky solve. */
#include "core/rng.h"
#include "forget/debias.h"

int bench_debias(int argc, char **argv) {
    int D = 512, n = 20000, iters = 5;
    int json = 0;
    const Opt opts[] = {
        O_INT("--dim", "D", &D, 2, 4096, "feature dimension"),
        O_INT("--vocab", "N", &n, 1, 1000000, "words of the general vocabulary"),
        O_INT("--iters", "N", &iters, 1, 100, "timed runs"),
        opt_bind(OPT_JSON, &json),
        O_END,
    };
    const int st = cli_parse(&cmd_bench, argc, argv, 2, opts, NULL);
    if (st >= 0) return st;
    Rng r;
    rng_seed(&r, 7);
    const int nb = 8, np = 50;
    float *W = xalloc_floats((size_t)n * D), *B = xalloc_floats((size_t)nb * D);
    float *A = xalloc_floats((size_t)np * D), *Bp = xalloc_floats((size_t)np * D);
    rng_fill_normal(&r, W, n * D, 0, 1);
    rng_fill_normal(&r, B, nb * D, 0, 1);
    rng_fill_normal(&r, A, np * D, 0, 1);
    rng_fill_normal(&r, Bp, np * D, 0, 1);
    double *P0 = xmalloc(sizeof(double) * (size_t)D * D), *M = xmalloc(sizeof(double) * (size_t)D * D);
    double *Wn = xmalloc(sizeof(double) * (size_t)D * D), *P = xmalloc(sizeof(double) * (size_t)D * D);
    debias_orth_proj(B, nb, (int)D, P0);
    debias_pair_scatter(A, Bp, np, (int)D, M);
    double *t = xmalloc(sizeof(double) * (size_t)iters), *tm = xmalloc(sizeof(double) * (size_t)iters);
    Err e = {{0}};
    int rc = 0;
    for (long it = 0; it <= iters && rc == 0; it++) { /* iteration 0 warms up */
        double t0 = now_seconds();
        debias_second_moment(W, (int)n, (int)D, Wn);
        double t1 = now_seconds();
        rc = debias_calibrate_closed_form(P0, M, 100.0, Wn, 10.0, (int)D, P, &e);
        double t2 = now_seconds();
        if (it) t[it - 1] = t2 - t0, tm[it - 1] = t1 - t0;
    }
    if (rc) return cli_error("bench", EXIT_WORK, "%s", e.msg);
    const double med = cli_median(t, (int)iters), medm = cli_median(tm, (int)iters);
    if (json) {
        cJSON *j = cJSON_CreateObject();
        cJSON_AddNumberToObject(j, "dim", (double)D);
        cJSON_AddNumberToObject(j, "vocab", (double)n);
        cJSON_AddNumberToObject(j, "threads", threads_get());
        cJSON_AddNumberToObject(j, "calibrate_s", med);
        cJSON_AddNumberToObject(j, "second_moment_s", medm);
        cJSON_AddNumberToObject(j, "solve_s", med - medm);
        rc = cli_json_line("bench", j);
        cJSON_Delete(j);
    } else
        printf("forget bench debias: D = %d, %d-word vocabulary, %d threads: calibration %.3f s (second moment %.3f s, "
               "Cholesky solve %.3f s), median of %d\n",
               D, n, threads_get(), med, medm, med - medm, iters);
    free(W), free(B), free(A), free(Bp), free(P0), free(M), free(Wn), free(P), free(t), free(tm);
    return rc;
}
