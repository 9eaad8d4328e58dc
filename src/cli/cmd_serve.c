#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli/cli.h"
#include "serve/server.h"

static int run(int argc, char **argv);

const Command cmd_serve = {
    "serve", "serve a CLIP classifier as a black-box API",
    "usage: forget serve --model FILE --dataset NAME [--split train] [--port 8080] [--bind 127.0.0.1]\n"
    "                    [--reveal probs|labels] [--api-key K] [--max-body BYTES] [--data-dir DIR]\n"
    "                    [--allow-embeddings] [--no-prefix-cache] [--prefix-cache-mb 512]\n"
    "\n"
    "Answers POST /v1/classify {\"prompts\": [one text per class], \"images\": [ids into the split]}\n"
    "with {\"probs\": [[...]]} (or {\"labels\": [...]} with --reveal labels); {\"prompt_sets\": [[...],\n"
    "...]} scores a population in one request (one query per set) and {\"images_b64\": [...]} scores\n"
    "uploaded PNG/JPEG images. GET /v1/stats gives the query count, GET /v1/dataset the split's class\n"
    "names and labels. Only outputs leave the server: no weights, gradients or embeddings.\n"
    "--allow-embeddings (off by default) is the loose mode of the BBT/BBF baselines: requests may carry\n"
    "\"contexts\" (token embeddings placed after [SOT]) and /v1/stats reveals the embedding width, mean\n"
    "and std. --no-prefix-cache recomputes every prompt whole (for benchmarks);\n"
    "--prefix-cache-mb bounds the memory of the text tower's prefix cache (at most 1024 prompts are kept).\n"
    "Listens on loopback unless --bind says otherwise; runs until interrupted (Ctrl-C).\n",
    run};

static volatile sig_atomic_t stop_requested;
static void on_signal(int sig) {
    (void)sig;
    stop_requested = 1;
}

static int run(int argc, char **argv) {
    ServerOpts o = {.port = 8080};
    const char *dataset = NULL, *split = "train";
    char spec[256];
    int done = 0, bad = 0;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v;
        long l;
        if (cli_common(&cmd_serve, argc, argv, &i, &done, &bad)) {
            if (done) return 0;
            if (bad) return EXIT_USAGE;
        } else if (strcmp(a, "--allow-embeddings") == 0) {
            o.allow_embeddings = 1;
        } else if (strcmp(a, "--no-prefix-cache") == 0) {
            o.no_prefix_cache = 1;
        } else if (!(v = cli_value("serve", argc, argv, &i))) {
            return EXIT_USAGE;
        } else if (strcmp(a, "--model") == 0) {
            o.model = v;
        } else if (strcmp(a, "--dataset") == 0) {
            dataset = v;
        } else if (strcmp(a, "--split") == 0) {
            split = v;
        } else if (strcmp(a, "--bind") == 0) {
            o.bind = v;
        } else if (strcmp(a, "--data-dir") == 0) {
            o.data_dir = v;
        } else if (strcmp(a, "--api-key") == 0) {
            o.api_key = v;
        } else if (strcmp(a, "--port") == 0) {
            if (cli_int("serve", a, v, 0, 65535, &l)) return EXIT_USAGE;
            o.port = (int)l;
        } else if (strcmp(a, "--prefix-cache-mb") == 0) {
            if (cli_int("serve", a, v, 1, 1L << 20, &l)) return EXIT_USAGE;
            o.prefix_cache_mb = l;
        } else if (strcmp(a, "--max-body") == 0) {
            if (cli_int("serve", a, v, 64, 1L << 30, &l)) return EXIT_USAGE;
            o.max_body = l;
        } else if (strcmp(a, "--reveal") == 0) {
            if (strcmp(v, "labels") == 0) o.reveal_labels = 1;
            else if (strcmp(v, "probs") != 0)
                return cli_error("serve", EXIT_USAGE, "--reveal must be probs or labels, got \"%s\"", v);
        } else {
            return cli_error("serve", EXIT_USAGE, "unknown option %s (forget help serve)", a);
        }
    }
    if (!o.model || !dataset) return cli_error("serve", EXIT_USAGE, "--model and --dataset are required");
    snprintf(spec, sizeof spec, "%s%s%s", dataset, strchr(dataset, ':') ? "" : ":", strchr(dataset, ':') ? "" : split);
    o.dataset = spec;
    Err e = {{0}};
    BbServer *s = bb_server_start(&o, &e);
    if (!s) return cli_error("serve", EXIT_WORK, "%s", e.msg);
    fprintf(stderr, "forget serve: %s on %s, http://%s:%d/v1/classify (reveal %s)%s\n", o.model, spec,
            o.bind ? o.bind : "127.0.0.1", bb_server_port(s), o.reveal_labels ? "labels" : "probs",
            o.api_key ? ", API key required" : "");
    signal(SIGINT, on_signal);
    signal(SIGTERM, on_signal);
    while (!stop_requested) pause();
    bb_server_stop(s);
    fprintf(stderr, "forget serve: stopped\n");
    return 0;
}
