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
    "                    [--reveal probs|labels] [--max-body BYTES] [--data-dir DIR]\n"
    "                    [--api-key-file FILE | $FORGET_API_KEY | --api-key K]\n"
    "                    [--allow-embeddings] [--no-prefix-cache] [--prefix-cache-mb 512]\n"
    "                    [--max-prompts 8192] [--max-tokens 131072] [--max-images 4096] [--max-uploads 64]\n"
    "                    [--max-values 2097152] [--slice-gflop 10] [--request-timeout 10]\n"
    "                    [--max-connections 128] [--max-per-client 32]\n"
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
    "Listens on loopback unless --bind says otherwise; runs until interrupted (Ctrl-C).\n"
    "An API key (clients send it as X-API-Key) is read from --api-key-file (its first line), else from\n"
    "the environment variable FORGET_API_KEY; --api-key K also works but shows the key in ps.\n"
    "Limits, each a clear 4xx when exceeded: a request's body (--max-body, 1 MiB), its prompts\n"
    "(sets x prompts), their token positions, image ids, uploaded images, and the values of its reply\n"
    "(sets x images x prompts); a request must arrive whole within --request-timeout seconds; at most\n"
    "--max-per-client connections per client address. The model works in slices of about\n"
    "--slice-gflop GFLOP, first come first served, so a large request delays a small one by a slice.\n",
    run};

static volatile sig_atomic_t stop_requested;
static void on_signal(int sig) {
    (void)sig;
    stop_requested = 1;
}

static int run(int argc, char **argv) {
    ServerOpts o = {.port = 8080};
    const char *dataset = NULL, *split = "train";
    const char *key_opt = NULL, *key_file = NULL;
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
            key_opt = v;
        } else if (strcmp(a, "--api-key-file") == 0) {
            key_file = v;
        } else if (strcmp(a, "--max-prompts") == 0) {
            if (cli_int("serve", a, v, 1, 1L << 20, &l)) return EXIT_USAGE;
            o.max_prompts = (int)l;
        } else if (strcmp(a, "--max-tokens") == 0) {
            if (cli_int("serve", a, v, 2, 1L << 30, &l)) return EXIT_USAGE;
            o.max_tokens = l;
        } else if (strcmp(a, "--max-images") == 0) {
            if (cli_int("serve", a, v, 1, 1L << 24, &l)) return EXIT_USAGE;
            o.max_images = (int)l;
        } else if (strcmp(a, "--max-uploads") == 0) {
            if (cli_int("serve", a, v, 1, 1L << 16, &l)) return EXIT_USAGE;
            o.max_uploads = (int)l;
        } else if (strcmp(a, "--max-values") == 0) {
            if (cli_int("serve", a, v, 1, 1L << 30, &l)) return EXIT_USAGE;
            o.max_values = l;
        } else if (strcmp(a, "--slice-gflop") == 0) {
            if (cli_int("serve", a, v, 1, 100000, &l)) return EXIT_USAGE;
            o.max_slice_gflop = (double)l;
        } else if (strcmp(a, "--request-timeout") == 0) {
            if (cli_int("serve", a, v, 1, 3600, &l)) return EXIT_USAGE;
            o.request_timeout_s = (int)l;
        } else if (strcmp(a, "--max-connections") == 0) {
            if (cli_int("serve", a, v, 1, 65536, &l)) return EXIT_USAGE;
            o.max_connections = (int)l;
        } else if (strcmp(a, "--max-per-client") == 0) {
            if (cli_int("serve", a, v, 1, 65536, &l)) return EXIT_USAGE;
            o.max_per_client = (int)l;
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
    char *spec = strchr(dataset, ':') ? xstrdup(dataset) : xasprintf("%s:%s", dataset, split), *key = NULL;
    if (cli_api_key("serve", key_opt, key_file, &key)) {
        free(spec);
        return EXIT_WORK;
    }
    o.dataset = spec;
    o.api_key = key;
    Err e = {{0}};
    BbServer *s = bb_server_start(&o, &e);
    if (!s) {
        free(spec), free(key);
        return cli_error("serve", EXIT_WORK, "%s", e.msg);
    }
    fprintf(stderr, "forget serve: %s on %s, http://%s:%d/v1/classify (reveal %s)%s\n", o.model, spec,
            o.bind ? o.bind : "127.0.0.1", bb_server_port(s), o.reveal_labels ? "labels" : "probs",
            o.api_key ? ", API key required" : "");
    signal(SIGINT, on_signal);
    signal(SIGTERM, on_signal);
    while (!stop_requested) pause();
    bb_server_stop(s);
    free(spec), free(key);
    fprintf(stderr, "forget serve: stopped\n");
    return 0;
}
