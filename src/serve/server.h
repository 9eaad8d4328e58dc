/* The black-box API: a CLIP classifier behind HTTP that takes prompts in and gives
 * outputs out, nothing else (libmicrohttpd, loopback by default).
 *   POST /v1/classify  {"prompts": ["a photo of a t-shirt.", ...one per class],
 *                       "images": [ids into the served split]}
 *     -> {"probs": [[p per prompt] per image]}    (--reveal probs, the default)
 *     -> {"labels": [argmax prompt per image]}     (--reveal labels)
 *   GET  /v1/stats     {"queries", "images_scored", "prompts_encoded", "rejected"}
 *   GET  /v1/dataset   {"classes": [names], "labels": [label per id]} — the task's labelled data,
 *                      which the API's users own; nothing about the model
 * Errors are 4xx with {"error": "..."}: malformed JSON, unknown ids, too many prompts or
 * images, bodies over the size limit, a wrong API key (header X-API-Key), unknown paths.
 * Image features are computed once per id and cached; requests are served concurrently and
 * the model is used under a lock. */
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
    long max_body;                           /* bytes; default 1 MiB */
    int max_prompts, max_images;             /* per request; defaults 1000 and 4096 */
} ServerOpts;

typedef struct BbServer BbServer;

BbServer *bb_server_start(const ServerOpts *o, Err *e);
int bb_server_port(const BbServer *s);
void bb_server_stop(BbServer *s);

#endif
