/* The black-box API: a CLIP classifier behind HTTP that takes prompts in and gives
 * outputs out, nothing else (libmicrohttpd, loopback by default), and, with a diffusion model,
 * POST /v1/generate (serve/generate.h): prompts in, PNGs out, and with a multimodal LLM POST
 * /v1/chat (serve/chat.h): a question (and an image) in, the answer out.
 *   POST /v1/classify  {"prompts": ["a photo of a t-shirt.", ...one per class],
 *                       "images": [ids into the served split]}
 *     -> {"probs": [[p per prompt] per image]}    (--reveal probs, the default)
 *     -> {"labels": [argmax prompt per image]}     (--reveal labels)
 *   POST /v1/classify  {"prompt_sets": [[K prompts], ...], "images": [...]}: a population in one
 *                      request -> {"results": [{"probs"|"labels": ...} per set]}; each set counts
 *                      as one query
 *     "images_b64": [base64 PNG/JPEG] instead of "images" scores uploaded pictures (not cached)
 *     "contexts": [[m x W numbers] per set] (only with --allow-embeddings, the "loose" mode of
 *                      BBT/BBF): m context embeddings after [SOT], before each prompt's words
 *   GET  /v1/stats     {"queries", "requests", "images_scored", "prompts_encoded", "rejected", ...};
 *                      in loose mode also the embedding width, mean token embedding and std
 *   GET  /v1/dataset   {"classes": [names], "labels": [label per id]} — the task's labelled data,
 *                      which the API's users own; nothing about the model
 * Errors are 4xx with {"error": "..."}: malformed or non-strict JSON (400, with the byte), unknown
 * ids, bodies over the size limit (413), work over the per-request limits (413: prompts, tokens,
 * images, uploaded images, values in the reply), outputs that are not finite (422: only absurd
 * contexts can cause it; a NaN is never printed), a wrong API key (401), unknown paths (404).
 * Image features are computed once per id and cached, and so are the text tower's keys and values
 * of recent prompts (text_cache.h). Requests are served concurrently (serve/http.h for the
 * connection guarantees); the model is used in slices of about max_slice_gflop under a
 * first-come first-served lock, so one large request delays a small one by about one slice,
 * not by its whole length. */
#ifndef FORGET_SERVER_H
#define FORGET_SERVER_H

#include <stdint.h>

#include "core/err.h"

typedef struct {
    const char *model, *dataset, *data_dir; /* dataset like "fmnist:train" */
    const char *bind;                        /* address to listen on; default 127.0.0.1 */
    int port;                                /* 0: any free port (see bb_server_port) */
    int reveal_labels;                       /* 1: top-1 labels only */
    const char *api_key;                     /* NULL: none required */
    const char *prompts;                     /* image-side prompts (forget domain --out) applied to every image; NULL: none */
    long max_body;                           /* bytes; default 1 MiB */
    int max_prompts, max_images;             /* per request; defaults 8192 and 4096 */
    int allow_embeddings;                    /* loose mode: accept context token embeddings */
    int no_prefix_cache;                     /* recompute whole prompts (for benchmarks) */
    long prefix_cache_mb;                    /* the prefix cache's memory; 0: 512 */
    long max_tokens;                         /* token positions in all prompts of a request; 0: 131072 */
    long max_values;                         /* sets x images x prompts in a reply; 0: 2097152 (~20 MB) */
    int max_uploads;                         /* images_b64 per request; 0: 64 */
    double max_slice_gflop;                  /* work under the lock before others get a turn; 0: 10 */
    int request_timeout_s, max_connections, max_per_client; /* serve/http.h; 0: defaults */
    /* POST /v1/generate (serve/generate.h) when diffusion is set; model may then be NULL (no
     * classifier: /v1/classify and /v1/dataset answer 404) */
    const char *diffusion, *text_encoder, *vae;
    const char *escape, *sld;               /* forget erase's files applied to every /v1/generate prompt */
    int max_gen_prompts, max_gen_images, max_gen_steps; /* 0: 16, 64, 200 */
    int precision;                           /* a Precision (core/gemm_mixed.h) for the classifier's towers */
    /* POST /v1/chat (serve/chat.h) when mllm is set; tokenizer NULL: tokenizer.model beside it */
    const char *mllm, *mllm_tokenizer;
    int max_chat_tokens;                     /* 0: 256 */
} ServerOpts;

typedef struct BbServer BbServer;

BbServer *bb_server_start(const ServerOpts *o, Err *e);
int bb_server_port(const BbServer *s);
void bb_server_stop(BbServer *s);
/* The body of a POST /v1/classify without HTTP: the reply's JSON (malloc'd) and its status. The
 * HTTP handler calls it; so does the fuzz target (fuzz/fuzz_request.c). */
char *bb_server_classify_json(BbServer *s, const char *body, size_t len, unsigned *status);

#endif
