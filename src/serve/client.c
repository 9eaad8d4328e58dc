#include "serve/client.h"

#include <cjson/cJSON.h>
#include <curl/curl.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <glib.h>

#include "io/image.h"
#include "io/json_file.h"

typedef struct {
    char *buf;
    size_t len;
} Buf;

/* A reply larger than this is refused: no honest answer to a request we sent is this big. */
enum { MAX_REPLY_BYTES = 256 << 20 };

static size_t collect(char *p, size_t size, size_t n, void *user) {
    Buf *b = user;
    size_t add = size * n;
    if (b->len + add > MAX_REPLY_BYTES) return 0; /* curl then fails the transfer */
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

cJSON *bb_parse_reply(const char *buf, size_t len, long status, Err *e) {
    char msg[512];
    cJSON *j = json_parse_strict(buf, len, msg, sizeof msg);
    if (status != 200) {
        const cJSON *m = j ? cJSON_GetObjectItemCaseSensitive(j, "error") : NULL;
        err_set(e, "HTTP %ld: %.400s", status, cJSON_IsString(m) ? m->valuestring : "(no message)");
        cJSON_Delete(j);
        return NULL;
    }
    if (!j) err_set(e, "the reply is not JSON: %s", msg);
    else if (!cJSON_IsObject(j)) err_set(e, "the reply is not a JSON object"), cJSON_Delete(j), j = NULL;
    return j;
}

/* A JSON number that is an integer in [lo, hi]. */
static int json_int_in(const cJSON *v, long lo, long hi, long *out) {
    if (!cJSON_IsNumber(v) || !isfinite(v->valuedouble) || v->valuedouble != floor(v->valuedouble) || v->valuedouble < (double)lo ||
        v->valuedouble > (double)hi)
        return -1;
    *out = (long)v->valuedouble;
    return 0;
}

/* One request; returns the parsed JSON reply (caller deletes) or NULL with e set. */
static cJSON *request(BbClient *c, const char *path, const char *body, Err *e) {
    CURL *h = c->curl;
    char *url = xasprintf("%s%s", c->base, path);
    Buf reply = {0};
    struct curl_slist *hdr = curl_slist_append(NULL, "Content-Type: application/json");
    if (c->api_key) {
        char *k = xasprintf("X-API-Key: %s", c->api_key);
        hdr = curl_slist_append(hdr, k);
        free(k);
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
        if (rc == CURLE_WRITE_ERROR && reply.len > 0) err_set(e, "%s: the reply is over %d bytes", url, MAX_REPLY_BYTES);
        else err_set(e, "%s: %s", url, curl_easy_strerror(rc));
        free(reply.buf), free(url);
        return NULL;
    }
    cJSON *j = bb_parse_reply(reply.buf, reply.len, status, e);
    if (!j) err_prefix(e, "%s: ", url);
    free(reply.buf), free(url);
    return j;
}

/* One answer object {"probs": [[K]...N]} or {"labels": [N]} into probs/labels. Nothing the server
 * says is trusted: shapes, numbers, ranges and the rows' sums are all checked. */
int bb_read_answer(const cJSON *o, int N, int K, float *probs, int32_t *labels, int *labels_only, Err *e) {
    if (!cJSON_IsObject(o)) return err_set(e, "a reply's answer is not an object");
    const cJSON *p = cJSON_GetObjectItemCaseSensitive(o, "probs"), *l = cJSON_GetObjectItemCaseSensitive(o, "labels");
    if (p && l) return err_set(e, "the reply has both probs and labels");
    if (p) {
        if (!cJSON_IsArray(p) || cJSON_GetArraySize(p) != N)
            return err_set(e, "the reply's probs has %d rows for %d images", cJSON_IsArray(p) ? cJSON_GetArraySize(p) : -1, N);
        *labels_only = 0;
        int i = 0;
        for (const cJSON *row = p->child; row; row = row->next, i++) {
            if (!cJSON_IsArray(row) || cJSON_GetArraySize(row) != K)
                return err_set(e, "the reply's probs row %d has the wrong length (expected %d prompts)", i, K);
            int k = 0;
            double sum = 0;
            for (const cJSON *v = row->child; v; v = v->next, k++) {
                if (!cJSON_IsNumber(v) || !(v->valuedouble >= 0 && v->valuedouble <= 1))
                    return err_set(e, "the reply's probs[%d][%d] is not a probability in [0, 1]", i, k);
                probs[(size_t)i * K + k] = (float)v->valuedouble;
                sum += v->valuedouble;
            }
            if (fabs(sum - 1) > 1e-3) return err_set(e, "the reply's probs row %d sums to %g, not 1", i, sum);
        }
        return 0;
    }
    if (l) {
        if (!cJSON_IsArray(l) || cJSON_GetArraySize(l) != N)
            return err_set(e, "the reply's labels has %d entries for %d images", cJSON_IsArray(l) ? cJSON_GetArraySize(l) : -1, N);
        *labels_only = 1;
        int i = 0;
        for (const cJSON *v = l->child; v; v = v->next, i++) {
            long x;
            if (json_int_in(v, 0, K - 1, &x)) return err_set(e, "the reply's labels[%d] is not a prompt index in 0..%d", i, K - 1);
            labels[i] = (int32_t)x;
        }
        return 0;
    }
    return err_set(e, "the reply has neither probs nor labels for %d images", N);
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
        rc = bb_read_answer(j, N, K, probs, labels, labels_only, e);
    } else {
        const cJSON *res = cJSON_GetObjectItemCaseSensitive(j, "results");
        if (!cJSON_IsArray(res) || cJSON_GetArraySize(res) != S) rc = err_set(e, "reply has no results for %d prompt sets", S);
        int q = 0, mode = -1;
        for (const cJSON *o = rc == 0 ? res->child : NULL; o && rc == 0; o = o->next, q++) {
            rc = bb_read_answer(o, N, K, probs + (size_t)q * N * K, labels + (size_t)q * N, labels_only, e);
            if (rc == 0 && mode >= 0 && mode != *labels_only) rc = err_set(e, "the reply mixes probs and labels");
            mode = *labels_only;
        }
    }
    if (rc) err_prefix(e, "%s/v1/classify: ", c->base);
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
    long wd = 0;
    if (json_int_in(w, 1, 1 << 16, &wd) || !cJSON_IsArray(mu) || cJSON_GetArraySize(mu) != wd || !cJSON_IsNumber(sd) ||
        !isfinite(sd->valuedouble) || sd->valuedouble < 0) {
        rc = err_set(e, "%s does not accept context embeddings (start the server with --allow-embeddings for the loose "
                        "baselines bbt and bbf)", c->base);
    } else {
        *width = w->valueint;
        *std = (float)sd->valuedouble;
        *mean = xalloc_floats((size_t)*width);
        int k = 0;
        for (const cJSON *v = mu->child; v && rc == 0; v = v->next, k++) {
            if (!cJSON_IsNumber(v) || !(fabs(v->valuedouble) <= 1e30)) rc = err_set(e, "%s/v1/stats: embedding_mean[%d] is not a finite number", c->base, k);
            else (*mean)[k] = (float)v->valuedouble;
        }
        if (rc) free(*mean), *mean = NULL;
    }
    cJSON_Delete(j);
    return rc;
}

int bb_stats(BbClient *c, long *queries, long *split_size, Err *e) {
    cJSON *j = request(c, "/v1/stats", NULL, e);
    if (!j) return -1;
    const cJSON *q = cJSON_GetObjectItemCaseSensitive(j, "queries"), *n = cJSON_GetObjectItemCaseSensitive(j, "split_size");
    long qv = 0, nv = 0;
    int rc = json_int_in(q, 0, 1L << 52, &qv) || json_int_in(n, 0, 1L << 31, &nv)
                 ? err_set(e, "%s/v1/stats: queries and split_size must be non-negative integers", c->base)
                 : 0;
    if (!rc) *queries = qv, *split_size = nv;
    cJSON_Delete(j);
    return rc;
}

int bb_dataset(BbClient *c, char ***classes, int *n_classes, int32_t **labels, int *n, Err *e) {
    cJSON *j = request(c, "/v1/dataset", NULL, e);
    if (!j) return -1;
    int rc = bb_read_dataset(j, classes, n_classes, labels, n, e);
    if (rc) err_prefix(e, "%s/v1/dataset: ", c->base);
    cJSON_Delete(j);
    return rc;
}

int bb_read_dataset(const cJSON *j, char ***classes, int *n_classes, int32_t **labels, int *n, Err *e) {
    *classes = NULL, *labels = NULL, *n_classes = *n = 0;
    const cJSON *cl = cJSON_GetObjectItemCaseSensitive(j, "classes"), *lb = cJSON_GetObjectItemCaseSensitive(j, "labels");
    if (!cJSON_IsArray(cl) || !cJSON_IsArray(lb)) return err_set(e, "the reply has no classes and labels arrays");
    const int C = cJSON_GetArraySize(cl), N = cJSON_GetArraySize(lb);
    if (C < 2) return err_set(e, "%d classes: a task needs at least two", C);
    char **names = xcalloc((size_t)C + 1, sizeof(char *));
    int32_t *lab = xmalloc(sizeof(int32_t) * (size_t)(N ? N : 1));
    int k = 0, rc = 0;
    for (const cJSON *x = cl->child; x && rc == 0; x = x->next, k++) {
        if (!cJSON_IsString(x) || !x->valuestring[0]) rc = err_set(e, "classes[%d] is not a non-empty string", k);
        else names[k] = xstrdup(x->valuestring);
    }
    k = 0;
    for (const cJSON *x = lb->child; x && rc == 0; x = x->next, k++) {
        long v;
        if (json_int_in(x, 0, C - 1, &v)) rc = err_set(e, "labels[%d] is not a class index in 0..%d", k, C - 1);
        else lab[k] = (int32_t)v;
    }
    if (rc) {
        bb_dataset_free(names, C, lab);
        return -1;
    }
    *classes = names, *labels = lab, *n_classes = C, *n = N;
    return 0;
}

void bb_dataset_free(char **classes, int n_classes, int32_t *labels) {
    for (int i = 0; i < n_classes; i++) free(classes[i]);
    free(classes);
    free(labels);
}

int bb_generate(BbClient *c, const BbWeighted *parts, int m, int n, uint64_t seed, int steps, float cfg, uint8_t *rgb,
                int side, Err *e) {
    cJSON *req = cJSON_CreateObject(), *pr = cJSON_AddArrayToObject(req, "prompts"), *one = cJSON_CreateArray();
    for (int i = 0; i < m; i++) {
        cJSON *it = cJSON_CreateObject();
        cJSON_AddStringToObject(it, "text", parts[i].text);
        cJSON_AddNumberToObject(it, "weight", parts[i].weight);
        cJSON_AddItemToArray(one, it);
    }
    cJSON_AddItemToArray(pr, one);
    cJSON_AddNumberToObject(req, "n", n);
    cJSON_AddNumberToObject(req, "seed", (double)seed);
    cJSON_AddNumberToObject(req, "steps", steps);
    cJSON_AddNumberToObject(req, "cfg", cfg);
    char *body = cJSON_PrintUnformatted(req);
    cJSON_Delete(req);
    cJSON *j = request(c, "/v1/generate", body, e);
    free(body);
    if (!j) return -1;
    c->images += n; /* the server generated them, whatever follows */
    const cJSON *imgs = cJSON_GetObjectItemCaseSensitive(j, "images");
    int rc = cJSON_IsArray(imgs) && cJSON_GetArraySize(imgs) == n
                 ? 0
                 : err_set(e, "%s/v1/generate: expected \"images\" with %d entries", c->base, n);
    for (int i = 0; i < n && !rc; i++) {
        const cJSON *b = cJSON_GetArrayItem(imgs, i);
        gsize len = 0;
        guchar *png = cJSON_IsString(b) ? g_base64_decode(b->valuestring, &len) : NULL;
        Image8 im = {0};
        if (!png || !len) rc = err_set(e, "%s/v1/generate: images[%d] is not base64", c->base, i);
        else if (image_decode_png(&im, png, len, "generated image", e)) rc = -1;
        else if (im.w != side || im.h != side || im.channels != 3)
            rc = err_set(e, "%s/v1/generate: images[%d] is %dx%dx%d, expected %dx%dx3", c->base, i, im.w, im.h, im.channels,
                         side, side);
        else memcpy(rgb + (size_t)i * side * side * 3, im.px, (size_t)side * side * 3);
        free(im.px);
        g_free(png);
    }
    cJSON_Delete(j);
    return rc;
}

int bb_gen_stats(BbClient *c, long *images, int *side, Err *e) {
    cJSON *j = request(c, "/v1/stats", NULL, e);
    if (!j) return -1;
    const cJSON *q = cJSON_GetObjectItemCaseSensitive(j, "images_generated");
    const cJSON *lim = cJSON_GetObjectItemCaseSensitive(j, "generate_limits");
    const cJSON *s = cJSON_GetObjectItemCaseSensitive(lim, "image_side");
    long qv = 0, sv = 0;
    int rc = json_int_in(q, 0, 1L << 52, &qv) || json_int_in(s, 1, 4096, &sv)
                 ? err_set(e, "%s/v1/stats: no generation counters (is it serving a diffusion model?)", c->base)
                 : 0;
    if (!rc) *images = qv, *side = (int)sv;
    cJSON_Delete(j);
    return rc;
}
