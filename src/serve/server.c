#include "serve/server.h"

#include <arpa/inet.h>
#include <cjson/cJSON.h>
#include <microhttpd.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/ops.h"
#include "io/dataset.h"
#include "io/tokenizer.h"
#include "models/clip_encode.h"

struct BbServer {
    ServerOpts o;
    struct MHD_Daemon *d;
    ClipModel m;
    Tokenizer tok;
    Dataset ds;
    pthread_mutex_t lock;   /* the model, the cache and the counters */
    float *feat;            /* [ds.n, E] cached image features */
    uint8_t *have;          /* [ds.n] */
    long queries, images_scored, prompts_encoded, rejected;
};

typedef struct {
    char *buf;
    size_t len;
    int too_big;
} Body;

static enum MHD_Result reply(struct MHD_Connection *c, unsigned status, cJSON *json) {
    char *s = cJSON_PrintUnformatted(json);
    cJSON_Delete(json);
    struct MHD_Response *r = MHD_create_response_from_buffer(strlen(s), s, MHD_RESPMEM_MUST_FREE);
    MHD_add_response_header(r, "Content-Type", "application/json");
    enum MHD_Result ret = MHD_queue_response(c, status, r);
    MHD_destroy_response(r);
    return ret;
}

static enum MHD_Result fail(BbServer *s, struct MHD_Connection *c, unsigned status, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
static enum MHD_Result fail(BbServer *s, struct MHD_Connection *c, unsigned status, const char *fmt, ...) {
    char msg[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    pthread_mutex_lock(&s->lock);
    s->rejected++;
    pthread_mutex_unlock(&s->lock);
    cJSON *j = cJSON_CreateObject();
    cJSON_AddStringToObject(j, "error", msg);
    return reply(c, status, j);
}

/* The work of one /v1/classify request, under the lock. Fills out or returns an error message. */
static const char *classify(BbServer *s, cJSON *req, cJSON **out, unsigned *status) {
    *status = 400;
    const cJSON *prompts = cJSON_GetObjectItemCaseSensitive(req, "prompts");
    const cJSON *images = cJSON_GetObjectItemCaseSensitive(req, "images");
    if (!cJSON_IsArray(prompts) || !cJSON_IsArray(images)) return "expected {\"prompts\": [strings], \"images\": [ids]}";
    const int K = cJSON_GetArraySize(prompts), N = cJSON_GetArraySize(images);
    if (K < 1 || K > s->o.max_prompts) return "prompts: between 1 and max_prompts strings";
    if (N < 1 || N > s->o.max_images) return "images: between 1 and max_images ids";
    const char **texts = xmalloc(sizeof(char *) * (size_t)K);
    int *ids = xmalloc(sizeof(int) * (size_t)N);
    const char *err = NULL;
    for (int k = 0; k < K && !err; k++) {
        const cJSON *p = cJSON_GetArrayItem(prompts, k);
        if (!cJSON_IsString(p)) err = "prompts must be strings";
        else texts[k] = p->valuestring;
    }
    for (int i = 0; i < N && !err; i++) {
        const cJSON *v = cJSON_GetArrayItem(images, i);
        if (!cJSON_IsNumber(v) || v->valuedouble != (double)(int)v->valuedouble || v->valueint < 0 || v->valueint >= s->ds.n)
            err = "unknown image id (ids are integers in [0, split size))";
        else ids[i] = v->valueint;
    }
    if (err) {
        free(texts), free(ids);
        return err;
    }
    const int E = s->m.cfg.embed_dim, R = s->m.cfg.image_res;
    float *tf = xalloc_floats((size_t)K * E), *imf = xalloc_floats((size_t)N * E), *logits = xalloc_floats((size_t)N * K);
    Err e = {{0}};
    pthread_mutex_lock(&s->lock);
    int rc = clip_encode_texts(&s->m, &s->tok, texts, K, tf, &e);
    /* features of ids not seen before, computed together and cached */
    int *todo = xmalloc(sizeof(int) * (size_t)N), nt = 0;
    for (int i = 0; i < N; i++)
        if (!s->have[ids[i]]) {
            s->have[ids[i]] = 2; /* in this batch */
            todo[nt++] = ids[i];
        }
    for (int b = 0; b < nt && rc == 0; b += CLIP_ENCODE_BATCH) {
        int nb = nt - b < CLIP_ENCODE_BATCH ? nt - b : CLIP_ENCODE_BATCH;
        float *px = xalloc_floats((size_t)nb * 3 * R * R), *f = xalloc_floats((size_t)nb * E);
        dataset_pixels(&s->ds, todo + b, nb, R, px, NULL, 0);
        rc = clip_encode_image(&s->m, px, nb, f, NULL, &e);
        for (int i = 0; i < nb && rc == 0; i++) memcpy(s->feat + (size_t)todo[b + i] * E, f + (size_t)i * E, sizeof(float) * (size_t)E);
        free(px), free(f);
    }
    for (int i = 0; i < nt; i++) s->have[todo[i]] = rc == 0;
    free(todo);
    for (int i = 0; i < N && rc == 0; i++) memcpy(imf + (size_t)i * E, s->feat + (size_t)ids[i] * E, sizeof(float) * (size_t)E);
    if (rc == 0) {
        s->queries++;
        s->images_scored += N;
        s->prompts_encoded += K;
        clip_logits(&s->m, imf, N, tf, K, logits);
    }
    pthread_mutex_unlock(&s->lock);
    free(texts), free(ids), free(tf), free(imf);
    if (rc) {
        free(logits);
        *status = 500;
        return "the model failed on this request";
    }
    cJSON *j = cJSON_CreateObject();
    if (s->o.reveal_labels) {
        cJSON *arr = cJSON_AddArrayToObject(j, "labels");
        for (int i = 0; i < N; i++) {
            const float *l = logits + (size_t)i * K;
            int arg = 0;
            for (int k = 1; k < K; k++)
                if (l[k] > l[arg]) arg = k;
            cJSON_AddItemToArray(arr, cJSON_CreateNumber(arg));
        }
    } else {
        cJSON *arr = cJSON_AddArrayToObject(j, "probs");
        float *p = xalloc_floats((size_t)K);
        for (int i = 0; i < N; i++) {
            softmax_forward(p, logits + (size_t)i * K, 1, K);
            cJSON_AddItemToArray(arr, cJSON_CreateFloatArray(p, K));
        }
        free(p);
    }
    free(logits);
    *out = j;
    *status = 200;
    return NULL;
}

static enum MHD_Result handle(void *cls, struct MHD_Connection *c, const char *url, const char *method,
                              const char *version, const char *upload, size_t *upload_size, void **con_cls) {
    (void)version;
    BbServer *s = cls;
    if (!*con_cls) { /* first call for this request: only the headers so far */
        *con_cls = xcalloc(1, sizeof(Body));
        return MHD_YES;
    }
    Body *body = *con_cls;
    if (*upload_size) { /* a chunk of the body */
        if (body->len + *upload_size > (size_t)s->o.max_body) {
            body->too_big = 1;
        } else {
            body->buf = xrealloc(body->buf, body->len + *upload_size + 1);
            memcpy(body->buf + body->len, upload, *upload_size);
            body->len += *upload_size;
            body->buf[body->len] = 0;
        }
        *upload_size = 0;
        return MHD_YES;
    }
    if (s->o.api_key) {
        const char *k = MHD_lookup_connection_value(c, MHD_HEADER_KIND, "X-API-Key");
        if (!k || strcmp(k, s->o.api_key) != 0) return fail(s, c, 401, "missing or wrong X-API-Key");
    }
    if (strcmp(url, "/v1/stats") == 0) {
        if (strcmp(method, "GET") != 0) return fail(s, c, 405, "/v1/stats takes GET");
        cJSON *j = cJSON_CreateObject();
        pthread_mutex_lock(&s->lock);
        cJSON_AddNumberToObject(j, "queries", (double)s->queries);
        cJSON_AddNumberToObject(j, "images_scored", (double)s->images_scored);
        cJSON_AddNumberToObject(j, "prompts_encoded", (double)s->prompts_encoded);
        cJSON_AddNumberToObject(j, "rejected", (double)s->rejected);
        pthread_mutex_unlock(&s->lock);
        cJSON_AddNumberToObject(j, "split_size", s->ds.n);
        cJSON_AddStringToObject(j, "reveal", s->o.reveal_labels ? "labels" : "probs");
        return reply(c, 200, j);
    }
    if (strcmp(url, "/v1/dataset") == 0) { /* what the API's owner tells its users: class names and labels */
        if (strcmp(method, "GET") != 0) return fail(s, c, 405, "/v1/dataset takes GET");
        cJSON *j = cJSON_CreateObject();
        cJSON_AddItemToObject(j, "classes", cJSON_CreateStringArray((const char *const *)s->ds.class_names, s->ds.n_classes));
        cJSON_AddItemToObject(j, "labels", cJSON_CreateIntArray((const int *)s->ds.labels, s->ds.n));
        return reply(c, 200, j);
    }
    if (strcmp(url, "/v1/classify") != 0) return fail(s, c, 404, "no such endpoint: %s", url);
    if (strcmp(method, "POST") != 0) return fail(s, c, 405, "/v1/classify takes POST");
    if (body->too_big) return fail(s, c, 413, "request body over %ld bytes", s->o.max_body);
    cJSON *req = body->buf ? cJSON_ParseWithLength(body->buf, body->len) : NULL;
    if (!req) return fail(s, c, 400, "request body is not valid JSON");
    cJSON *out = NULL;
    unsigned status;
    const char *err = classify(s, req, &out, &status);
    cJSON_Delete(req);
    if (err) return fail(s, c, status, "%s", err);
    return reply(c, 200, out);
}

static void request_done(void *cls, struct MHD_Connection *c, void **con_cls, enum MHD_RequestTerminationCode toe) {
    (void)cls, (void)c, (void)toe;
    Body *b = *con_cls;
    if (b) free(b->buf);
    free(b);
    *con_cls = NULL;
}

static void server_free(BbServer *s) {
    clip_free(&s->m);
    tokenizer_free(&s->tok);
    dataset_free(&s->ds);
    free(s->feat);
    free(s->have);
    pthread_mutex_destroy(&s->lock);
    free(s);
}

BbServer *bb_server_start(const ServerOpts *o, Err *e) {
    BbServer *s = xcalloc(1, sizeof *s);
    s->o = *o;
    if (!s->o.max_body) s->o.max_body = 1 << 20;
    if (!s->o.max_prompts) s->o.max_prompts = 1000;
    if (!s->o.max_images) s->o.max_images = 4096;
    pthread_mutex_init(&s->lock, NULL);
    if (clip_load(&s->m, o->model, NULL, e) || tokenizer_init(&s->tok, e) ||
        dataset_load_named(&s->ds, o->dataset, o->data_dir, e)) {
        server_free(s);
        return NULL;
    }
    s->feat = xalloc_floats((size_t)s->ds.n * s->m.cfg.embed_dim);
    s->have = xcalloc((size_t)s->ds.n, 1);
    struct sockaddr_in addr;
    memset(&addr, 0, sizeof addr);
    addr.sin_family = AF_INET;
    addr.sin_port = htons((uint16_t)o->port);
    if (inet_pton(AF_INET, o->bind ? o->bind : "127.0.0.1", &addr.sin_addr) != 1) {
        err_set(e, "cannot listen on \"%s\": not an IPv4 address", o->bind);
        server_free(s);
        return NULL;
    }
    s->d = MHD_start_daemon(MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_ERROR_LOG, 0, NULL, NULL, handle, s,
                            MHD_OPTION_SOCK_ADDR, (struct sockaddr *)&addr, MHD_OPTION_THREAD_POOL_SIZE, 4,
                            MHD_OPTION_NOTIFY_COMPLETED, request_done, s, MHD_OPTION_CONNECTION_TIMEOUT, 60,
                            MHD_OPTION_END);
    if (!s->d) {
        err_set(e, "cannot listen on %s:%d (in use?)", o->bind ? o->bind : "127.0.0.1", o->port);
        server_free(s);
        return NULL;
    }
    return s;
}

int bb_server_port(const BbServer *s) {
    const union MHD_DaemonInfo *i = MHD_get_daemon_info(s->d, MHD_DAEMON_INFO_BIND_PORT);
    return i ? i->port : -1;
}

void bb_server_stop(BbServer *s) {
    if (!s) return;
    MHD_stop_daemon(s->d);
    server_free(s);
}
