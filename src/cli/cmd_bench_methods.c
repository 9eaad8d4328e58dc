/* forget bench blackbox and forget bench debias. blackbox: queries/s of the black-box API with and without the text tower's
 * prefix cache, end to end over loopback (JSON, HTTP, the server's lock and all), on the query a
 * search sends: a population of word-suffix candidates for the ten Fashion-MNIST class prompts. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli/cli.h"
#include "core/progress.h"
#include "core/rng.h"
#include "core/threads.h"
#include "models/clip.h"
#include "forget/vocab.h"
#include "serve/client.h"
#include "serve/server.h"

extern const Command cmd_bench;

static const char *CLASSES[10] = {"t-shirt", "trouser", "pullover", "dress", "coat",
                                  "sandal",  "shirt",   "sneaker",  "bag",   "ankle boot"};

/* Median seconds per request over iters requests of pop candidates (after one warm-up request). */

static int time_server(const char *model, int no_cache, int L, int pop, int iters, const Vocab *v, double *sec_per_req,
                       Err *e) {
    ServerOpts so = {.model = model, .dataset = "fmnist:train", .no_prefix_cache = no_cache};
    BbServer *s = bb_server_start(&so, e);
    if (!s) return -1;
    char url[64];
    snprintf(url, sizeof url, "http://127.0.0.1:%d", bb_server_port(s));
    BbClient c;
    int rc = bb_client_init(&c, url, NULL, e);
    int ids[160];
    for (int i = 0; i < 160; i++) ids[i] = i * 37;
    char **p = xmalloc(sizeof(char *) * (size_t)pop * 10);
    float *probs = xalloc_floats((size_t)pop * 160 * 10);
    int32_t *labels = xmalloc(sizeof(int32_t) * (size_t)pop * 160);
    double *t = xmalloc(sizeof(double) * (size_t)iters);
    Rng r;
    rng_seed(&r, 9);
    for (int it = 0; it <= iters && rc == 0; it++) {
        for (int q = 0; q < pop; q++) {
            char suffix[512] = "";
            size_t sl = 0;
            for (int i = 0; i < L; i++) sl += (size_t)snprintf(suffix + sl, sizeof suffix - sl, " %s", v->words[rng_below(&r, (uint32_t)v->n)]);
            for (int k = 0; k < 10; k++) {
                char buf[640];
                snprintf(buf, sizeof buf, "a photo of a %s%s.", CLASSES[k], suffix);
                p[q * 10 + k] = xstrdup(buf);
            }
        }
        int lo;
        double t0 = now_seconds();
        rc = bb_classify_sets(&c, (const char *const *)p, pop, 10, NULL, 0, 0, ids, 160, probs, labels, &lo, e);
        if (it) t[it - 1] = now_seconds() - t0; /* request 0 warms up (image features, cache) */
        for (int k = 0; k < pop * 10; k++) free(p[k]);
    }
    if (rc == 0) *sec_per_req = cli_median(t, iters);
    free(p), free(probs), free(labels), free(t);
    bb_client_free(&c);
    bb_server_stop(s);
    return rc;
}

int bench_blackbox(int argc, char **argv) {
    const char *config = "vit-b-32", *model = NULL;
    long L = 4, pop = 30, iters = 10;
    int json = 0, done = 0, bad = 0;
    for (int i = 2; i < argc; i++) {
        const char *a = argv[i], *v;
        if (cli_common(&cmd_bench, argc, argv, &i, &done, &bad)) {
            if (done) return 0;
            if (bad) return EXIT_USAGE;
        } else if (strcmp(a, "--json") == 0) {
            json = 1;
        } else if (!(v = cli_value("bench", argc, argv, &i))) {
            return EXIT_USAGE;
        } else if (strcmp(a, "--config") == 0) {
            config = v;
        } else if (strcmp(a, "--model") == 0) {
            model = v;
        } else if (strcmp(a, "--suffix-len") == 0) {
            if (cli_int("bench", a, v, 1, 32, &L)) return EXIT_USAGE;
        } else if (strcmp(a, "--pop") == 0) {
            if (cli_int("bench", a, v, 1, 500, &pop)) return EXIT_USAGE;
        } else if (strcmp(a, "--iters") == 0) {
            if (cli_int("bench", a, v, 1, 1000, &iters)) return EXIT_USAGE;
        } else {
            return cli_error("bench", EXIT_USAGE, "unknown argument %s (forget help bench)", a);
        }
    }
    Err e = {{0}};
    char tmp[512] = "";
    if (!model) { /* a random model of the named shape, written once for the server to load */
        ClipConfig cfg;
        if (clip_config_named(&cfg, config) != 0) return cli_error("bench", EXIT_USAGE, "unknown --config \"%s\"", config);
        ClipModel m;
        clip_init_random(&m, &cfg, 42);
        const char *dir = getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp";
        snprintf(tmp, sizeof tmp, "%s/forget-bench-%d.safetensors", dir, (int)getpid());
        if (!json) fprintf(stderr, "writing a random %s to %s...\n", config, tmp);
        int rc = clip_save(&m, tmp, LAYOUT_OPENAI, ST_F32, &e);
        clip_free(&m);
        if (rc) return cli_error("bench", EXIT_WORK, "%s", e.msg);
        model = tmp;
    }
    Vocab v;
    if (vocab_load(&v, NULL, CLASSES, 500, 1, &e)) {
        if (tmp[0]) unlink(tmp);
        return cli_error("bench", EXIT_WORK, "%s", e.msg);
    }
    double with = 0, without = 0;
    int rc = time_server(model, 1, (int)L, (int)pop, (int)iters, &v, &without, &e);
    if (rc == 0) rc = time_server(model, 0, (int)L, (int)pop, (int)iters, &v, &with, &e);
    vocab_free(&v);
    if (tmp[0]) unlink(tmp);
    if (rc) return cli_error("bench", EXIT_WORK, "%s", e.msg);
    const double qs_with = pop / with, qs_without = pop / without;
    if (json)
        printf("{\"model\":\"%s\",\"suffix_len\":%ld,\"population\":%ld,\"threads\":%d,\"queries_per_s_cache\":%.2f,"
               "\"queries_per_s_no_cache\":%.2f,\"speedup\":%.3f}\n",
               tmp[0] ? config : model, L, pop, threads_get(), qs_with, qs_without, qs_with / qs_without);
    else
        printf("forget bench blackbox: %s, L = %ld, %ld candidates x 10 class prompts x 160 images per request, %d threads\n"
               "  whole prompts:  %.1f queries/s\n  prefix cache:   %.1f queries/s  (%.2fx)\n",
               tmp[0] ? config : model, L, pop, threads_get(), qs_without, qs_with, qs_with / qs_without);
    return 0;
}

/* forget bench debias: the closed-form calibration at the size (D = 512, a 20,000-word
 * vocabulary): the vocabulary's second moment (sgemm) plus the D x D Cholesky solve. */
#include "core/rng.h"
#include "forget/debias.h"

int bench_debias(int argc, char **argv) {
    long D = 512, n = 20000, iters = 5;
    int json = 0, done = 0, bad = 0;
    for (int i = 2; i < argc; i++) {
        const char *a = argv[i], *v;
        if (cli_common(&cmd_bench, argc, argv, &i, &done, &bad)) {
            if (done) return 0;
            if (bad) return EXIT_USAGE;
        } else if (strcmp(a, "--json") == 0) {
            json = 1;
        } else if (!(v = cli_value("bench", argc, argv, &i))) {
            return EXIT_USAGE;
        } else if (strcmp(a, "--dim") == 0) {
            if (cli_int("bench", a, v, 2, 4096, &D)) return EXIT_USAGE;
        } else if (strcmp(a, "--vocab") == 0) {
            if (cli_int("bench", a, v, 1, 1000000, &n)) return EXIT_USAGE;
        } else if (strcmp(a, "--iters") == 0) {
            if (cli_int("bench", a, v, 1, 100, &iters)) return EXIT_USAGE;
        } else {
            return cli_error("bench", EXIT_USAGE, "unknown argument %s (forget help bench)", a);
        }
    }
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
    if (json)
        printf("{\"dim\":%ld,\"vocab\":%ld,\"threads\":%d,\"calibrate_s\":%.4f,\"second_moment_s\":%.4f,\"solve_s\":%.4f}\n", D, n,
               threads_get(), med, medm, med - medm);
    else
        printf("forget bench debias: D = %ld, %ld-word vocabulary, %d threads: calibration %.3f s (second moment %.3f s, "
               "Cholesky solve %.3f s), median of %ld\n",
               D, n, threads_get(), med, medm, med - medm, iters);
    free(W), free(B), free(A), free(Bp), free(P0), free(M), free(Wn), free(P), free(t), free(tm);
    return 0;
}
