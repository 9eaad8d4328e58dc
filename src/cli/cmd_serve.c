#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli/cli.h"
#include "cli/cli_groups.h"
#include "serve/server.h"

static int run(int argc, char **argv);

const Command cmd_serve = {
    "serve", "serve a CLIP classifier and/or a text-to-image model as a black-box API",
    "usage: forget serve --model FILE --dataset NAME [--split train] [--port 8080] [--bind 127.0.0.1]\n"
    "       forget serve --diffusion UNET --text-encoder CLIP [--vae FILE] [--escape FILE] [--sld FILE]\n"
    "                    [--max-gen-images 64]\n"
    "                    [--max-gen-prompts 16] [--max-gen-steps 200] [--model FILE --dataset NAME] ...\n"
    "       forget serve --mllm MLLM [--tokenizer FILE] [--max-chat-tokens 256] ...\n"
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
    "--slice-gflop GFLOP, first come first served, so a large request delays a small one by a slice.\n"
    "\n"
    "With --diffusion: POST /v1/generate {\"prompts\": [...], \"n\": N, \"seed\": S, \"steps\": K, \"cfg\": W,\n"
    "\"sampler\": \"ddim\"|\"ddpm\"} -> {\"images\": [base64 PNG, n per prompt]}, counted in /v1/stats, under the\n"
    "same API key, body limit and connection guarantees; prompts, images and steps per request are limited\n"
    "(413 past a limit). Without --model only /v1/generate and /v1/stats answer.\n"
    "\n"
    "With --mllm: POST /v1/chat {\"prompt\": \"...\", \"image_b64\": base64 PNG/JPEG, \"max_tokens\": N,\n"
    "\"temperature\": T, \"top_p\": P, \"seed\": S} -> {\"answer\", \"tokens\", \"prompt_tokens\"} (all but prompt\n"
    "optional), under the same key, limits and guarantees; max_tokens is at most --max-chat-tokens and the prompt\n"
    "with its answer must fit the model's context (413 otherwise).\n",
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
    static const char *const REVEAL[] = {"probs", "labels", NULL};
    int slice_gflop = 0;
    const Opt opts[] = {
        O_STR("--model", "FILE", &o.model, 0, "the CLIP model served (required unless --diffusion)"),
        O_STR("--diffusion", "UNET", &o.diffusion, 0, "a text-to-image UNet served at /v1/generate"),
        O_STR("--mllm", "FILE", &o.mllm, 0, "a LLaVA-shaped multimodal LLM served at /v1/chat"),
        O_STR("--tokenizer", "FILE", &o.mllm_tokenizer, 0, "its SentencePiece model (default: tokenizer.model beside it)"),
        O_INT("--max-chat-tokens", "N", &o.max_chat_tokens, 1, 65536, "longest /v1/chat answer a request may ask for"),
        O_STR("--text-encoder", "CLIP", &o.text_encoder, 0, "the CLIP whose text tower conditions it"),
        O_STR("--vae", "FILE", &o.vae, 0, "its autoencoder (default: the one its file names)"),
        O_STR("--escape", "FILE", &o.escape, 0, "escape tokens (forget erase --method escape) on every generate prompt"),
        O_STR("--sld", "FILE", &o.sld, 0, "safe latent diffusion guidance (forget erase --method sld) on every request"),
        O_INT("--max-gen-prompts", "N", &o.max_gen_prompts, 1, 4096, "prompts per /v1/generate request"),
        O_INT("--max-gen-images", "N", &o.max_gen_images, 1, 65536, "images per request"),
        O_INT("--max-gen-steps", "N", &o.max_gen_steps, 1, 100000, "sampling steps per request"),
        opt_bind(OPT_PRECISION, &o.precision),
        O_STR("--prompts", "FILE", &o.prompts, 0, "image-side prompts from forget domain --out, applied to every image"),
        O_STR("--dataset", "NAME[:split]", &dataset, 0, "the images the API classifies by id (with --model)"),
        O_STR("--split", "S", &split, 0, "the split when --dataset names none"),
        opt_bind(OPT_DATA_DIR, &o.data_dir),
        O_INT("--port", "P", &o.port, 0, 65535, "TCP port (0: any free one)"),
        O_STR("--bind", "ADDR", &o.bind, 0, "address to listen on (default 127.0.0.1)"),
        O_CHOICE("--reveal", &o.reveal_labels, REVEAL, "what the API returns: probs or labels (top-1 only)"),
        O_FLAG("--allow-embeddings", &o.allow_embeddings, "accept context embeddings (loose black box)"),
        O_FLAG("--no-prefix-cache", &o.no_prefix_cache, "encode every prompt whole"),
        O_LONG("--prefix-cache-mb", "MB", &o.prefix_cache_mb, 1, 1L << 20, "the text tower's prefix cache"),
        opt_bind(OPT_API_KEY_FILE, &key_file),
        opt_bind(OPT_API_KEY, &key_opt),
        O_INT("--max-prompts", "N", &o.max_prompts, 1, 1 << 20, "prompts per request"),
        O_LONG("--max-tokens", "N", &o.max_tokens, 2, 1L << 30, "token positions per request"),
        O_INT("--max-images", "N", &o.max_images, 1, 1 << 24, "image ids per request"),
        O_INT("--max-uploads", "N", &o.max_uploads, 1, 1 << 16, "uploaded images per request"),
        O_LONG("--max-values", "N", &o.max_values, 1, 1L << 30, "numbers in a reply"),
        O_INT("--slice-gflop", "G", &slice_gflop, 1, 100000, "work of one turn at the model"),
        O_LONG("--max-body", "BYTES", &o.max_body, 64, 1L << 30, "request body size"),
        O_INT("--request-timeout", "S", &o.request_timeout_s, 1, 3600, "seconds a request may take to arrive"),
        O_INT("--max-connections", "N", &o.max_connections, 1, 65536, "open connections in all"),
        O_INT("--max-per-client", "N", &o.max_per_client, 1, 65536, "open connections per client address"),
        O_END,
    };
    const int st = cli_parse(&cmd_serve, argc, argv, 1, opts, NULL);
    if (st >= 0) return st;
    if (slice_gflop) o.max_slice_gflop = slice_gflop;
    if (!o.model && !o.diffusion && !o.mllm)
        return cli_error("serve", EXIT_USAGE, "give --model FILE --dataset NAME, --diffusion UNET, --mllm FILE, or several");
    if (o.model && !dataset) return cli_error("serve", EXIT_USAGE, "--model needs --dataset NAME");
    if (o.diffusion && !o.text_encoder) return cli_error("serve", EXIT_USAGE, "--diffusion needs --text-encoder CLIP");
    char *spec = !dataset ? NULL : strchr(dataset, ':') ? xstrdup(dataset) : xasprintf("%s:%s", dataset, split), *key = NULL;
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
    if (o.model)
        fprintf(stderr, "forget serve: %s on %s, http://%s:%d/v1/classify (reveal %s)%s\n", o.model, spec,
                o.bind ? o.bind : "127.0.0.1", bb_server_port(s), o.reveal_labels ? "labels" : "probs",
                o.api_key ? ", API key required" : "");
    if (o.diffusion)
        fprintf(stderr, "forget serve: %s with %s, http://%s:%d/v1/generate%s\n", o.diffusion, o.text_encoder,
                o.bind ? o.bind : "127.0.0.1", bb_server_port(s), o.api_key ? ", API key required" : "");
    if (o.mllm)
        fprintf(stderr, "forget serve: %s, http://%s:%d/v1/chat%s\n", o.mllm, o.bind ? o.bind : "127.0.0.1",
                bb_server_port(s), o.api_key ? ", API key required" : "");
    signal(SIGINT, on_signal);
    signal(SIGTERM, on_signal);
    while (!stop_requested) pause();
    bb_server_stop(s);
    free(spec), free(key);
    fprintf(stderr, "forget serve: stopped\n");
    return 0;
}
