/* The black-box API on loopback for tests: the tiny reference model serving Fashion-MNIST's
 * test split with the given options (model and dataset filled in). NULL, with the failure
 * recorded, when it cannot start; url receives "http://127.0.0.1:PORT". */
#ifndef FORGET_TEST_SERVE_FIXTURE_H
#define FORGET_TEST_SERVE_FIXTURE_H

#include <stddef.h>
#include <stdint.h>

#include "io/dataset.h"
#include "io/tokenizer.h"
#include "models/clip.h"
#include "models/mllm.h"
#include "serve/server.h"

BbServer *tiny_server(ServerOpts o, char *url, size_t cap);
/* The tiny reference model's path into buf (what tiny_server serves). */
const char *tiny_model_path(char *buf, size_t cap);
/* What tiny_server serves by default, in process, to compare answers with: the tiny model, the
 * tokenizer and Fashion-MNIST's test split. Nonzero with e set on failure. */
int tiny_in_process(ClipModel *m, Tokenizer *t, Dataset *d, Err *e);

/* A tiny UNet file (scratch_dir()/name) whose context width is the tiny CLIP's text width, every
 * weight N(0, 0.2) from seed, 8 px samples under the SD schedule: path into path. */
void tiny_unet_file(char *path, size_t cap, const char *name, uint64_t seed);

/* A tiny MLLM trained for a few steps on a small world (lm-tiny, a random 2-layer emoji-s tower), made
 * once per test run in scratch_dir()/tiny-mllm (its tokenizer.model beside it): its path into path. */
const char *tiny_mllm(char *path, size_t cap);
/* A very small MLLM config for gradient checks: an 8 px tower of width 16 (patch 4, 4 image rows),
 * lm-tiny at width 16 with 32 tokens, image token 5. */
MllmConfig tiny_mllm_config(void);

/* A reply body collected by libcurl (CURLOPT_WRITEFUNCTION reply_collect, WRITEDATA &ReplyBuf). */
typedef struct {
    char *buf;
    size_t len;
} ReplyBuf;
size_t reply_collect(char *p, size_t a, size_t b, void *user);
/* POST len bytes of body to url: the status (0 when no reply), the body in *reply (malloc'd) when set. */
long http_post(const char *url, const char *body, size_t len, char **reply);
/* GET url: the status (0 when no reply), the body in *reply (malloc'd) when set. */
long http_get(const char *url, char **reply);

#endif
