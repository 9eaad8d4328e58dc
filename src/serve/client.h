/* The client side of the black-box API (libcurl): it speaks only HTTP to the server, so
 * what a method learns is exactly what the API reveals. */
#ifndef FORGET_CLIENT_H
#define FORGET_CLIENT_H

#include <stdint.h>

#include "core/err.h"

typedef struct {
    char *base;    /* "http://127.0.0.1:8080" */
    char *api_key; /* or NULL */
    void *curl;    /* CURL * */
    long queries;  /* classify calls made */
} BbClient;

int bb_client_init(BbClient *c, const char *base_url, const char *api_key, Err *e);
void bb_client_free(BbClient *c);
/* One /v1/classify call for K prompts and N image ids. With probabilities revealed, probs
 * [N, K] is filled and *labels_only = 0; with labels only, labels [N] and *labels_only = 1.
 * Errors carry the HTTP status and the server's message. */
int bb_classify(BbClient *c, const char *const *prompts, int K, const int *ids, int N, float *probs, int32_t *labels,
                int *labels_only, Err *e);
/* GET /v1/dataset: class names (NULL-terminated, *n_classes) and labels (*n) of the split.
 * Both malloc'd; free with bb_dataset_free. */
int bb_dataset(BbClient *c, char ***classes, int *n_classes, int32_t **labels, int *n, Err *e);
void bb_dataset_free(char **classes, int n_classes, int32_t *labels);
/* GET /v1/stats: the server's query count and split size. */
int bb_stats(BbClient *c, long *queries, long *split_size, Err *e);

#endif
