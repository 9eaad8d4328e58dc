/* The client side of the black-box API (libcurl): it speaks only HTTP to the server, so
 * what a method learns is exactly what the API reveals. */
#ifndef FORGET_CLIENT_H
#define FORGET_CLIENT_H

#include <stddef.h>
#include <stdint.h>

#include "core/err.h"

typedef struct {
    char *base;    /* "http://127.0.0.1:8080" */
    char *api_key; /* or NULL */
    void *curl;    /* CURL * */
    long queries;  /* classify calls made */
    long images;   /* images /v1/generate made for this client */
} BbClient;

int bb_client_init(BbClient *c, const char *base_url, const char *api_key, Err *e);
void bb_client_free(BbClient *c);
/* One /v1/classify call for K prompts and N image ids. With probabilities revealed, probs
 * [N, K] is filled and *labels_only = 0; with labels only, labels [N] and *labels_only = 1.
 * Errors carry the HTTP status and the server's message. */
int bb_classify(BbClient *c, const char *const *prompts, int K, const int *ids, int N, float *probs, int32_t *labels,
                int *labels_only, Err *e);
/* A population in one request: S prompt sets of K prompts (prompts [S*K]), optionally with m
 * context embeddings of width W per set (ctx [S, m, W], loose servers only). probs [S, N, K] or
 * labels [S, N]. Counts S queries, as the server does. */
int bb_classify_sets(BbClient *c, const char *const *prompts, int S, int K, const float *ctx, int m, int W,
                     const int *ids, int N, float *probs, int32_t *labels, int *labels_only, Err *e);
/* Loose servers: token-embedding width, mean token embedding (malloc'd) and the std of all entries. */
int bb_embedding_space(BbClient *c, int *width, float **mean, float *std, Err *e);
/* GET /v1/dataset: class names (NULL-terminated, *n_classes) and labels (*n) of the split.
 * Both malloc'd; free with bb_dataset_free. */
int bb_dataset(BbClient *c, char ***classes, int *n_classes, int32_t **labels, int *n, Err *e);
void bb_dataset_free(char **classes, int n_classes, int32_t *labels);
/* One weighted prompt of m parts (a plain prompt: one part of weight 1) through POST /v1/generate:
 * n images of (seed, i) into rgb [n, side, side, 3] (every reply checked: count, PNG, size). */
typedef struct {
    const char *text;
    float weight;
} BbWeighted;
int bb_generate(BbClient *c, const BbWeighted *parts, int m, int n, uint64_t seed, int steps, float cfg, uint8_t *rgb,
                int side, Err *e);
/* GET /v1/stats of a generating server: images generated so far and their side. */
int bb_gen_stats(BbClient *c, long *images, int *side, Err *e);
/* GET /v1/stats: the server's query count and split size. */
int bb_stats(BbClient *c, long *queries, long *split_size, Err *e);
/* The pieces of reading a reply, apart for the fuzz target (fuzz/fuzz_reply.c): a reply body with
 * its HTTP status (strict JSON, an object, the server's error message when not 200); one answer
 * of N images x K prompts; a /v1/dataset reply (every label a class index). */
typedef struct cJSON cJSON;
cJSON *bb_parse_reply(const char *buf, size_t len, long status, Err *e);
int bb_read_answer(const cJSON *o, int N, int K, float *probs, int32_t *labels, int *labels_only, Err *e);
int bb_read_dataset(const cJSON *j, char ***classes, int *n_classes, int32_t **labels, int *n, Err *e);

#endif
