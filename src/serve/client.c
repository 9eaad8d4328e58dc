#include "serve/client.h"

#include <cjson/cJSON.h>
#include <curl/curl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct {
    char *buf;
    size_t len;
} Buf;

static size_t collect(char *p, size_t size, size_t n, void *user) {
    Buf *b = user;
    size_t add = size * n;
    b->buf = xrealloc(b->buf, b->len + add + 1);
    memcpy(b->buf + b->len, p, add);
    b->len += add;
    b->buf[b->len] = 0;
    return add;
}

int bb_client_init(BbClient *c, const char *base_url, const char *api_key, Err *e) {
    memset(c, 0, sizeof *c);
    c->curl = curl_easy_init();
    if (!c->curl) return err_set(e, "libcurl failed to initialise");
    c->base = xstrdup(base_url);
    size_t l = strlen(c->base);
    while (l && c->base[l - 1] == '/') c->base[--l] = 0;
    c->api_key = api_key ? xstrdup(api_key) : NULL;
    return 0;
}

void bb_client_free(BbClient *c) {
    if (c->curl) curl_easy_cleanup(c->curl);
    free(c->base);
    free(c->api_key);
    memset(c, 0, sizeof *c);
}

/* One request; returns the parsed JSON reply (caller deletes) or NULL with e set. */
static cJSON *request(BbClient *c, const char *path, const char *body, Err *e) {
    CURL *h = c->curl;
    char url[1024];
    snprintf(url, sizeof url, "%s%s", c->base, path);
    Buf reply = {0};
    struct curl_slist *hdr = curl_slist_append(NULL, "Content-Type: application/json");
    if (c->api_key) {
        char k[512];
        snprintf(k, sizeof k, "X-API-Key: %s", c->api_key);
        hdr = curl_slist_append(hdr, k);
    }
    curl_easy_reset(h);
    curl_easy_setopt(h, CURLOPT_URL, url);
    curl_easy_setopt(h, CURLOPT_HTTPHEADER, hdr);
    curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, collect);
    curl_easy_setopt(h, CURLOPT_WRITEDATA, &reply);
    curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
    if (body) curl_easy_setopt(h, CURLOPT_POSTFIELDS, body);
    CURLcode rc = curl_easy_perform(h);
    curl_slist_free_all(hdr);
    long status = 0;
    curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &status);
    if (rc != CURLE_OK) {
        free(reply.buf);
        err_set(e, "%s: %s", url, curl_easy_strerror(rc));
        return NULL;
    }
    cJSON *j = reply.buf ? cJSON_Parse(reply.buf) : NULL;
    if (status != 200) {
        const cJSON *msg = j ? cJSON_GetObjectItemCaseSensitive(j, "error") : NULL;
        err_set(e, "%s: HTTP %ld: %s", url, status, cJSON_IsString(msg) ? msg->valuestring : "(no message)");
        cJSON_Delete(j);
        free(reply.buf);
        return NULL;
    }
    free(reply.buf);
    if (!j) err_set(e, "%s: the reply is not JSON", url);
    return j;
}

/* One answer object {"probs": [[K]...N]} or {"labels": [N]} into probs/labels. */
static int read_answer(const cJSON *o, int N, int K, float *probs, int32_t *labels, int *labels_only, Err *e) {
    const cJSON *p = cJSON_GetObjectItemCaseSensitive(o, "probs"), *l = cJSON_GetObjectItemCaseSensitive(o, "labels");
    if (cJSON_IsArray(p) && cJSON_GetArraySize(p) == N) {
        *labels_only = 0;
        int i = 0;
        for (const cJSON *row = p->child; row; row = row->next, i++) {
            if (!cJSON_IsArray(row) || cJSON_GetArraySize(row) != K) return err_set(e, "reply row %d has the wrong length", i);
            int k = 0;
            for (const cJSON *v = row->child; v; v = v->next, k++) probs[(size_t)i * K + k] = (float)v->valuedouble;
        }
        return 0;
    }
    if (cJSON_IsArray(l) && cJSON_GetArraySize(l) == N) {
        *labels_only = 1;
        int i = 0;
        for (const cJSON *v = l->child; v; v = v->next, i++) {
            if (!cJSON_IsNumber(v) || v->valueint < 0 || v->valueint >= K) return err_set(e, "reply label %d is not a class index", i);
            labels[i] = v->valueint;
        }
        return 0;
    }
    return err_set(e, "reply has neither probs nor labels for %d images", N);
}

int bb_classify_sets(BbClient *c, const char *const *prompts, int S, int K, const float *ctx, int m, int W,
                     const int *ids, int N, float *probs, int32_t *labels, int *labels_only, Err *e) {
    cJSON *req = cJSON_CreateObject();
    if (S == 1) {
        cJSON_AddItemToObject(req, "prompts", cJSON_CreateStringArray(prompts, K));
    } else {
        cJSON *sets = cJSON_AddArrayToObject(req, "prompt_sets");
        for (int q = 0; q < S; q++) cJSON_AddItemToArray(sets, cJSON_CreateStringArray(prompts + (size_t)q * K, K));
    }
    if (ctx) {
        cJSON *cx = cJSON_AddArrayToObject(req, "contexts");
        for (int q = 0; q < S; q++) cJSON_AddItemToArray(cx, cJSON_CreateFloatArray(ctx + (size_t)q * m * W, m * W));
    }
    cJSON_AddItemToObject(req, "images", cJSON_CreateIntArray(ids, N));
    char *body = cJSON_PrintUnformatted(req);
    cJSON_Delete(req);
    cJSON *j = request(c, "/v1/classify", body, e);
    free(body);
    if (!j) return -1;
    c->queries += S;
    int rc = 0;
    if (S == 1) {
        rc = read_answer(j, N, K, probs, labels, labels_only, e);
    } else {
        const cJSON *res = cJSON_GetObjectItemCaseSensitive(j, "results");
        if (!cJSON_IsArray(res) || cJSON_GetArraySize(res) != S) rc = err_set(e, "reply has no results for %d prompt sets", S);
        int q = 0;
        for (const cJSON *o = res ? res->child : NULL; o && rc == 0; o = o->next, q++)
            rc = read_answer(o, N, K, probs + (size_t)q * N * K, labels + (size_t)q * N, labels_only, e);
    }
    cJSON_Delete(j);
    return rc;
}

int bb_classify(BbClient *c, const char *const *prompts, int K, const int *ids, int N, float *probs, int32_t *labels,
                int *labels_only, Err *e) {
    return bb_classify_sets(c, prompts, 1, K, NULL, 0, 0, ids, N, probs, labels, labels_only, e);
}

int bb_embedding_space(BbClient *c, int *width, float **mean, float *std, Err *e) {
    cJSON *j = request(c, "/v1/stats", NULL, e);
    if (!j) return -1;
    const cJSON *w = cJSON_GetObjectItemCaseSensitive(j, "embedding_width");
    const cJSON *mu = cJSON_GetObjectItemCaseSensitive(j, "embedding_mean");
    const cJSON *sd = cJSON_GetObjectItemCaseSensitive(j, "embedding_std");
    int rc = 0;
    if (!cJSON_IsNumber(w) || !cJSON_IsArray(mu) || cJSON_GetArraySize(mu) != w->valueint || !cJSON_IsNumber(sd)) {
        rc = err_set(e, "%s does not accept context embeddings (start the server with --allow-embeddings for the loose "
                        "baselines bbt and bbf)", c->base);
    } else {
        *width = w->valueint;
        *std = (float)sd->valuedouble;
        *mean = xalloc_floats((size_t)*width);
        int k = 0;
        for (const cJSON *v = mu->child; v; v = v->next, k++) (*mean)[k] = (float)v->valuedouble;
    }
    cJSON_Delete(j);
    return rc;
}

int bb_stats(BbClient *c, long *queries, long *split_size, Err *e) {
    cJSON *j = request(c, "/v1/stats", NULL, e);
    if (!j) return -1;
    const cJSON *q = cJSON_GetObjectItemCaseSensitive(j, "queries"), *n = cJSON_GetObjectItemCaseSensitive(j, "split_size");
    int rc = cJSON_IsNumber(q) && cJSON_IsNumber(n) ? 0 : err_set(e, "stats reply without queries/split_size");
    if (!rc) *queries = (long)q->valuedouble, *split_size = (long)n->valuedouble;
    cJSON_Delete(j);
    return rc;
}

int bb_dataset(BbClient *c, char ***classes, int *n_classes, int32_t **labels, int *n, Err *e) {
    cJSON *j = request(c, "/v1/dataset", NULL, e);
    if (!j) return -1;
    const cJSON *cl = cJSON_GetObjectItemCaseSensitive(j, "classes"), *lb = cJSON_GetObjectItemCaseSensitive(j, "labels");
    if (!cJSON_IsArray(cl) || !cJSON_IsArray(lb)) {
        cJSON_Delete(j);
        return err_set(e, "dataset reply without classes/labels");
    }
    *n_classes = cJSON_GetArraySize(cl);
    *n = cJSON_GetArraySize(lb);
    *classes = xcalloc((size_t)*n_classes + 1, sizeof(char *));
    *labels = xmalloc(sizeof(int32_t) * (size_t)(*n ? *n : 1));
    int k = 0;
    for (const cJSON *x = cl->child; x; x = x->next) (*classes)[k++] = xstrdup(cJSON_IsString(x) ? x->valuestring : "?");
    k = 0;
    for (const cJSON *x = lb->child; x; x = x->next) (*labels)[k++] = x->valueint;
    cJSON_Delete(j);
    return 0;
}

void bb_dataset_free(char **classes, int n_classes, int32_t *labels) {
    for (int i = 0; i < n_classes; i++) free(classes[i]);
    free(classes);
    free(labels);
}
