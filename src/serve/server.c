#include "serve/server.h"

#include <arpa/inet.h>
#include <cjson/cJSON.h>
#include <glib.h>
#include <math.h>
#include <microhttpd.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/ops.h"
#include "io/dataset.h"
#include "io/image.h"
#include "io/preprocess.h"
#include "io/tokenizer.h"
#include "models/clip_encode.h"
#include "models/clip_train.h"
#include "models/text_cache.h"

struct BbServer {
    ServerOpts o;
    struct MHD_Daemon *d;
    ClipModel m;
    Tokenizer tok;
    Dataset ds;
    pthread_mutex_t lock;   /* the model, the cache and the counters */
    float *feat;            /* [ds.n, E] cached image features */
    uint8_t *have;          /* [ds.n] */
    TextPrefixCache cache;  /* K/V rows of recent prompts */
    float *emb_mean, emb_std; /* of the token table (loose mode) */
    long requests, queries, images_scored, prompts_encoded, rejected;
};

typedef struct {
    char *buf;
    size_t len;
    int too_big;
} Body;

/* Queues JSON text (malloc'd; the response frees it). */
static enum MHD_Result reply_text(struct MHD_Connection *c, unsigned status, char *text) {
    struct MHD_Response *r = MHD_create_response_from_buffer(strlen(text), text, MHD_RESPMEM_MUST_FREE);
    MHD_add_response_header(r, "Content-Type", "application/json");
    enum MHD_Result ret = MHD_queue_response(c, status, r);
    MHD_destroy_response(r);
    return ret;
}

static enum MHD_Result reply(struct MHD_Connection *c, unsigned status, cJSON *json) {
    char *s = cJSON_PrintUnformatted(json);
    cJSON_Delete(json);
    return reply_text(c, status, s);
}

static void count_rejected(BbServer *s) {
    pthread_mutex_lock(&s->lock);
    s->rejected++;
    pthread_mutex_unlock(&s->lock);
}

static enum MHD_Result fail(BbServer *s, struct MHD_Connection *c, unsigned status, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
static enum MHD_Result fail(BbServer *s, struct MHD_Connection *c, unsigned status, const char *fmt, ...) {
    char msg[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    count_rejected(s);
    cJSON *j = cJSON_CreateObject();
    cJSON_AddStringToObject(j, "error", msg);
    return reply(c, status, j);
}

/* One parsed /v1/classify request. */
typedef struct {
    int S, K, N;          /* prompt sets, prompts per set, images */
    const char **texts;   /* [S * K], pointing into the JSON */
    int32_t *tok;         /* [S * K, context] token ids (with the context slots), made outside the lock */
    float *ctx;           /* [S, m, W] context embeddings (loose mode) or NULL */
    int m;
    int *ids;             /* [N] split ids, or NULL when images come as PNG/JPEG */
    float *pixels;        /* [N, 3, R, R] decoded and preprocessed images */
    int batched;          /* reply with one result per set */
} Request;

static void request_free(Request *r) {
    free(r->texts), free(r->tok), free(r->ctx), free(r->ids), free(r->pixels);
    memset(r, 0, sizeof *r);
}

/* Strict base64 (RFC 4648 alphabet, padded): GLib decodes, we refuse anything it would skip. */
static int valid_base64(const char *s) {
    size_t n = strlen(s), pad = 0;
    if (n == 0 || n % 4) return 0;
    for (size_t i = 0; i < n; i++) {
        const char ch = s[i];
        if (ch == '=') {
            if (i < n - 2) return 0;
            pad++;
        } else if (pad || !((ch >= 'A' && ch <= 'Z') || (ch >= 'a' && ch <= 'z') || (ch >= '0' && ch <= '9') ||
                             ch == '+' || ch == '/')) {
            return 0;
        }
    }
    return 1;
}

/* cJSON arrays are linked lists: every loop below walks them once rather than indexing. */
static int parse_strings(const cJSON *arr, const char **dst, int K) {
    if (!cJSON_IsArray(arr) || cJSON_GetArraySize(arr) != K) return -1;
    int k = 0;
    for (const cJSON *p = arr->child; p; p = p->next, k++) {
        if (!cJSON_IsString(p)) return -1;
        dst[k] = p->valuestring;
    }
    return 0;
}

/* Token ids of every prompt, m context slots after [SOT] when contexts come with the request. */
static int tokenize_prompts(const BbServer *s, Request *r, Err *e) {
    const int ctx = s->m.cfg.context, n = r->S * r->K;
    r->tok = xmalloc(sizeof(int32_t) * (size_t)n * ctx);
    for (int i = 0; i < n; i++) {
        int32_t *row = r->tok + (size_t)i * ctx;
        const int len = tokenizer_tokenize(&s->tok, r->texts[i], ctx, row, e);
        if (len < 0) return err_prefix(e, "prompt %d: ", i);
        if (r->ctx && clip_context_slots(row, len, r->m, ctx) < 0)
            return err_set(e, "prompt %d: %d tokens and %d context embeddings exceed the context of %d", i, len, r->m, ctx);
    }
    return 0;
}

/* Reads and checks a request; returns NULL or the error, with *status the HTTP code. */
static const char *parse_request(BbServer *s, cJSON *req, Request *r, unsigned *status, char *msg, size_t msz) {
    memset(r, 0, sizeof *r);
    *status = 400;
    const cJSON *prompts = cJSON_GetObjectItemCaseSensitive(req, "prompts");
    const cJSON *sets = cJSON_GetObjectItemCaseSensitive(req, "prompt_sets");
    const cJSON *ctxs = cJSON_GetObjectItemCaseSensitive(req, "contexts");
    const cJSON *images = cJSON_GetObjectItemCaseSensitive(req, "images");
    const cJSON *b64 = cJSON_GetObjectItemCaseSensitive(req, "images_b64");
    if (!!prompts == !!sets || !cJSON_IsArray(prompts ? prompts : sets))
        return "expected \"prompts\": [strings] or \"prompt_sets\": [[strings], ...] (one of them)";
    if (!!images == !!b64 || !cJSON_IsArray(images ? images : b64))
        return "expected \"images\": [ids] or \"images_b64\": [base64 PNG/JPEG] (one of them)";
    if (ctxs && !s->o.allow_embeddings) {
        *status = 403;
        return "context embeddings are refused: this server was not started with --allow-embeddings";
    }
    if (ctxs && (!cJSON_IsArray(ctxs) || cJSON_GetArraySize(ctxs) < 1)) return "contexts: a non-empty array";
    const int W = s->m.cfg.t_width;
    r->batched = sets != NULL || (ctxs && cJSON_GetArraySize(ctxs) > 1);
    r->S = sets ? cJSON_GetArraySize(sets) : ctxs ? cJSON_GetArraySize(ctxs) : 1;
    r->K = cJSON_GetArraySize(sets ? cJSON_GetArrayItem(sets, 0) : prompts);
    if (sets && ctxs && cJSON_GetArraySize(ctxs) != r->S) return "contexts: one per prompt set";
    if (r->S < 1 || r->K < 1 || (long)r->S * r->K > s->o.max_prompts) {
        snprintf(msg, msz, "between 1 and %d prompts in all (sets x prompts per set)", s->o.max_prompts);
        return msg;
    }
    r->texts = xmalloc(sizeof(char *) * (size_t)r->S * r->K);
    const cJSON *set = sets ? sets->child : prompts;
    for (int q = 0; q < r->S; q++, set = sets ? set->next : prompts)
        if (parse_strings(set, r->texts + (size_t)q * r->K, r->K))
            return "prompts must be strings, every set with the same number";
    if (ctxs) {
        const int len = cJSON_GetArraySize(cJSON_GetArrayItem(ctxs, 0));
        r->m = len / W;
        if (len % W || r->m < 1 || r->m > 32) {
            snprintf(msg, msz, "contexts: each a flat array of m x %d numbers (the token-embedding width), 1 <= m <= 32", W);
            return msg;
        }
        r->ctx = xalloc_floats((size_t)r->S * len);
        const cJSON *c = ctxs->child;
        for (int q = 0; q < r->S; q++, c = c->next) {
            if (!cJSON_IsArray(c) || cJSON_GetArraySize(c) != len) return "contexts: every context the same length";
            int k = 0;
            for (const cJSON *v = c->child; v; v = v->next, k++) {
                if (!cJSON_IsNumber(v) || !isfinite(v->valuedouble)) return "contexts: finite numbers only";
                r->ctx[(size_t)q * len + k] = (float)v->valuedouble;
            }
        }
    }
    Err te = {{0}};
    if (tokenize_prompts(s, r, &te)) {
        snprintf(msg, msz, "%.500s", te.msg);
        return msg;
    }
    r->N = cJSON_GetArraySize(images ? images : b64);
    if (r->N < 1 || r->N > s->o.max_images) {
        snprintf(msg, msz, "between 1 and %d images", s->o.max_images);
        return msg;
    }
    if (images) {
        r->ids = xmalloc(sizeof(int) * (size_t)r->N);
        const cJSON *v = images->child;
        for (int i = 0; i < r->N; i++, v = v->next) {
            if (!cJSON_IsNumber(v) || v->valuedouble != floor(v->valuedouble) || v->valuedouble < 0 ||
                v->valuedouble >= s->ds.n) {
                snprintf(msg, msz, "images[%d]: unknown image id (ids are integers in [0, %d))", i, s->ds.n);
                return msg;
            }
            r->ids[i] = v->valueint;
        }
        return NULL;
    }
    const int R = s->m.cfg.image_res;
    r->pixels = xalloc_floats((size_t)r->N * 3 * R * R);
    const cJSON *v = b64->child;
    for (int i = 0; i < r->N; i++, v = v->next) {
        if (!cJSON_IsString(v) || !valid_base64(v->valuestring)) {
            snprintf(msg, msz, "images_b64[%d]: not a padded base64 string", i);
            return msg;
        }
        gsize n = 0;
        guchar *bytes = g_base64_decode(v->valuestring, &n);
        Image8 im;
        Err e = {{0}};
        char name[32];
        snprintf(name, sizeof name, "images_b64[%d]", i);
        int rc = image_decode_max(&im, bytes, n, name, 4096L * 4096, &e);
        g_free(bytes);
        if (rc) {
            snprintf(msg, msz, "%.500s", e.msg);
            return msg;
        }
        clip_preprocess(&im, R, r->pixels + (size_t)i * 3 * R * R);
        image_free(&im);
    }
    return NULL;
}

/* Text features [S*K, E] for the request's tokenised prompts (and contexts). Under the lock. */
static int encode_prompts(BbServer *s, const Request *r, float *tf, Err *e) {
    const int ctx = s->m.cfg.context, E = s->m.cfg.embed_dim, W = s->m.cfg.t_width, n = r->S * r->K;
    enum { CHUNK = 256 };
    float *cx = r->ctx ? xalloc_floats((size_t)CHUNK * r->m * W) : NULL;
    int rc = 0;
    for (int b0 = 0; b0 < n && rc == 0; b0 += CHUNK) {
        const int nb = n - b0 < CHUNK ? n - b0 : CHUNK;
        const int32_t *ids = r->tok + (size_t)b0 * ctx;
        if (r->ctx) { /* each prompt's set's context, in its slots */
            for (int i = 0; i < nb; i++)
                memcpy(cx + (size_t)i * r->m * W, r->ctx + (size_t)((b0 + i) / r->K) * r->m * W, sizeof(float) * (size_t)r->m * W);
            TowerActs a;
            if ((rc = text_acts_init(&a, &s->m, ids, nb, 0, e)) != 0) break;
            a.ctx = cx, a.n_ctx = r->m;
            text_forward(&s->m, &a, tf + (size_t)b0 * E, NULL);
            tower_acts_free(&a);
        } else if (s->o.no_prefix_cache) {
            rc = clip_encode_text(&s->m, ids, nb, tf + (size_t)b0 * E, NULL, e);
        } else {
            rc = clip_encode_text_cached(&s->m, &s->cache, ids, nb, tf + (size_t)b0 * E, e);
        }
    }
    free(cx);
    return rc;
}

/* Image features [N, E]: split ids through the cache, uploaded images directly. Under the lock. */
static int encode_images(BbServer *s, const Request *r, float *imf, Err *e) {
    const int E = s->m.cfg.embed_dim, R = s->m.cfg.image_res, N = r->N;
    int rc = 0;
    if (r->pixels) {
        for (int b = 0; b < N && rc == 0; b += CLIP_ENCODE_BATCH) {
            int nb = N - b < CLIP_ENCODE_BATCH ? N - b : CLIP_ENCODE_BATCH;
            rc = clip_encode_image(&s->m, r->pixels + (size_t)b * 3 * R * R, nb, imf + (size_t)b * E, NULL, e);
        }
        return rc;
    }
    int *todo = xmalloc(sizeof(int) * (size_t)N), nt = 0;
    for (int i = 0; i < N; i++)
        if (!s->have[r->ids[i]]) {
            s->have[r->ids[i]] = 2; /* in this batch */
            todo[nt++] = r->ids[i];
        }
    for (int b = 0; b < nt && rc == 0; b += CLIP_ENCODE_BATCH) {
        int nb = nt - b < CLIP_ENCODE_BATCH ? nt - b : CLIP_ENCODE_BATCH;
        float *px = xalloc_floats((size_t)nb * 3 * R * R), *f = xalloc_floats((size_t)nb * E);
        dataset_pixels(&s->ds, todo + b, nb, R, px, NULL, 0);
        rc = clip_encode_image(&s->m, px, nb, f, NULL, e);
        for (int i = 0; i < nb && rc == 0; i++) memcpy(s->feat + (size_t)todo[b + i] * E, f + (size_t)i * E, sizeof(float) * (size_t)E);
        free(px), free(f);
    }
    for (int i = 0; i < nt; i++) s->have[todo[i]] = rc == 0;
    free(todo);
    for (int i = 0; i < N && rc == 0; i++) memcpy(imf + (size_t)i * E, s->feat + (size_t)r->ids[i] * E, sizeof(float) * (size_t)E);
    return rc;
}

/* One set's answer: probabilities or top-1 labels of logits [N, K]. */
static void add_answer(const BbServer *s, cJSON *obj, const float *logits, int N, int K) {
    if (s->o.reveal_labels) {
        cJSON *arr = cJSON_AddArrayToObject(obj, "labels");
        for (int i = 0; i < N; i++) {
            const float *l = logits + (size_t)i * K;
            int arg = 0;
            for (int k = 1; k < K; k++)
                if (l[k] > l[arg]) arg = k;
            cJSON_AddItemToArray(arr, cJSON_CreateNumber(arg));
        }
        return;
    }
    /* rows printed with float precision (9 significant digits round-trip a float): cJSON's own
     * printing of doubles takes 17 digits and dominated large replies */
    cJSON *arr = cJSON_AddArrayToObject(obj, "probs");
    float *p = xalloc_floats((size_t)K);
    char *row = xmalloc((size_t)K * 24 + 3);
    for (int i = 0; i < N; i++) {
        softmax_forward(p, logits + (size_t)i * K, 1, K);
        size_t n = 0;
        row[n++] = '[';
        for (int k = 0; k < K; k++) n += (size_t)sprintf(row + n, "%s%.9g", k ? "," : "", (double)p[k]);
        row[n++] = ']', row[n] = 0;
        cJSON_AddItemToArray(arr, cJSON_CreateRaw(row));
    }
    free(row), free(p);
}

/* The work of one /v1/classify request. Fills out or returns an error message. */
static const char *classify(BbServer *s, cJSON *req, cJSON **out, unsigned *status, char *msg, size_t msz) {
    Request r;
    const char *err = parse_request(s, req, &r, status, msg, msz);
    if (err) {
        request_free(&r);
        return err;
    }
    const int E = s->m.cfg.embed_dim, S = r.S, K = r.K, N = r.N;
    float *tf = xalloc_floats((size_t)S * K * E), *imf = xalloc_floats((size_t)N * E);
    float *logits = xalloc_floats((size_t)S * N * K);
    Err e = {{0}};
    pthread_mutex_lock(&s->lock);
    int rc = encode_prompts(s, &r, tf, &e);
    if (rc == 0) rc = encode_images(s, &r, imf, &e);
    if (rc == 0) {
        s->queries += S;
        s->requests++;
        s->images_scored += (long)S * N;
        s->prompts_encoded += (long)S * K;
        for (int q = 0; q < S; q++) clip_logits(&s->m, imf, N, tf + (size_t)q * K * E, K, logits + (size_t)q * N * K);
    }
    pthread_mutex_unlock(&s->lock);
    request_free(&r);
    free(tf), free(imf);
    if (rc) {
        free(logits);
        *status = 400; /* what fails here is the request's text (too long with its context, ...) */
        snprintf(msg, msz, "%.500s", e.msg);
        return msg;
    }
    cJSON *j = cJSON_CreateObject();
    if (r.batched || S > 1) {
        cJSON *res = cJSON_AddArrayToObject(j, "results");
        for (int q = 0; q < S; q++) {
            cJSON *o = cJSON_CreateObject();
            add_answer(s, o, logits + (size_t)q * N * K, N, K);
            cJSON_AddItemToArray(res, o);
        }
    } else {
        add_answer(s, j, logits, N, K);
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
        /* a declared oversize body is refused before it is sent (answering Expect: 100-continue) */
        const char *cl = MHD_lookup_connection_value(c, MHD_HEADER_KIND, MHD_HTTP_HEADER_CONTENT_LENGTH);
        if (cl && strtoll(cl, NULL, 10) > s->o.max_body) return fail(s, c, 413, "request body over %ld bytes", s->o.max_body);
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
        cJSON_AddNumberToObject(j, "requests", (double)s->requests);
        cJSON_AddNumberToObject(j, "text_rows_reused", (double)s->cache.rows_reused);
        cJSON_AddNumberToObject(j, "text_rows_computed", (double)s->cache.rows_computed);
        cJSON_AddNumberToObject(j, "prompts_repeated", (double)s->cache.rows_deduplicated);
        cJSON_AddNumberToObject(j, "images_scored", (double)s->images_scored);
        cJSON_AddNumberToObject(j, "prompts_encoded", (double)s->prompts_encoded);
        cJSON_AddNumberToObject(j, "rejected", (double)s->rejected);
        pthread_mutex_unlock(&s->lock);
        cJSON_AddNumberToObject(j, "split_size", s->ds.n);
        cJSON_AddStringToObject(j, "reveal", s->o.reveal_labels ? "labels" : "probs");
        cJSON_AddBoolToObject(j, "allow_embeddings", s->o.allow_embeddings);
        if (s->o.allow_embeddings) { /* what BBT/BBF need of the embedding space: width, mean, spread */
            cJSON_AddNumberToObject(j, "embedding_width", s->m.cfg.t_width);
            cJSON_AddItemToObject(j, "embedding_mean", cJSON_CreateFloatArray(s->emb_mean, s->m.cfg.t_width));
            cJSON_AddNumberToObject(j, "embedding_std", s->emb_std);
        }
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
    unsigned status;
    char *text = bb_server_classify_json(s, body->buf, body->len, &status);
    return reply_text(c, status, text);
}

char *bb_server_classify_json(BbServer *s, const char *body, size_t len, unsigned *status) {
    cJSON *req = body ? cJSON_ParseWithLength(body, len) : NULL, *out = NULL;
    char msg[512];
    const char *err = req ? classify(s, req, &out, status, msg, sizeof msg) : "request body is not valid JSON";
    if (!req) *status = 400;
    cJSON_Delete(req);
    if (err) {
        count_rejected(s);
        out = cJSON_CreateObject();
        cJSON_AddStringToObject(out, "error", err);
    }
    char *text = cJSON_PrintUnformatted(out);
    cJSON_Delete(out);
    return text;
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
    free(s->emb_mean);
    text_cache_free(&s->cache);
    pthread_mutex_destroy(&s->lock);
    free(s);
}

BbServer *bb_server_start(const ServerOpts *o, Err *e) {
    BbServer *s = xcalloc(1, sizeof *s);
    s->o = *o;
    if (!s->o.max_body) s->o.max_body = 1 << 20;
    if (!s->o.max_prompts) s->o.max_prompts = 8192;
    if (!s->o.max_images) s->o.max_images = 4096;
    pthread_mutex_init(&s->lock, NULL);
    if (clip_load(&s->m, o->model, NULL, e) || tokenizer_init(&s->tok, e) ||
        dataset_load_named(&s->ds, o->dataset, o->data_dir, e)) {
        server_free(s);
        return NULL;
    }
    s->feat = xalloc_floats((size_t)s->ds.n * s->m.cfg.embed_dim);
    s->have = xcalloc((size_t)s->ds.n, 1);
    text_cache_init(&s->cache, &s->m, (o->prefix_cache_mb > 0 ? o->prefix_cache_mb : 512) << 20);
    if (o->allow_embeddings) { /* BBT's p0 and sigma: mean token embedding, std of all entries */
        const int W = s->m.cfg.t_width, V = s->m.cfg.vocab;
        double *sum = xcalloc((size_t)W, sizeof(double)), sq = 0, all = 0;
        float *row = xalloc_floats((size_t)W);
        for (int v = 0; v < V; v++) {
            clip_token_row(&s->m, v, row);
            for (int k = 0; k < W; k++) sum[k] += row[k], all += row[k], sq += (double)row[k] * row[k];
        }
        s->emb_mean = xalloc_floats((size_t)W);
        for (int k = 0; k < W; k++) s->emb_mean[k] = (float)(sum[k] / V);
        const double n = (double)V * W, mu = all / n;
        s->emb_std = (float)sqrt(fmax(sq / n - mu * mu, 0.0));
        free(sum), free(row);
    }
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
