#include "serve/server.h"

#include <cjson/cJSON.h>
#include <float.h>
#include <glib.h>
#include <malloc.h>
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/ops.h"
#include "core/threads.h"
#include "io/dataset.h"
#include "io/image.h"
#include "io/json_file.h"
#include "io/preprocess.h"
#include "io/tokenizer.h"
#include "models/clip_encode.h"
#include "forget/domain_file.h"
#include "models/text_cache.h"
#include "serve/chat.h"
#include "serve/generate.h"
#include "serve/http.h"

struct BbServer {
    ServerOpts o;
    HttpServer *http;
    ClipModel m;
    Tokenizer tok;
    Dataset ds;
    FairLock model_lock;    /* the model's scratch use, the image-feature cache and the prefix cache */
    pthread_mutex_t stats;  /* the counters */
    float *feat;            /* [ds.n, E] cached image features */
    uint8_t *have;          /* [ds.n] */
    TextPrefixCache cache;  /* K/V rows of recent prompts */
    DomainAdapter prompts;  /* --prompts: what every image encoding runs with */
    float *emb_mean, emb_std; /* of the token table (loose mode) */
    long requests, queries, images_scored, prompts_encoded;
    int has_clip;           /* a classifier is served */
    GenService *gen;        /* /v1/generate, or NULL */
    ChatService *chat;      /* /v1/chat, or NULL */
};

/* One parsed /v1/classify request. */
typedef struct {
    int S, K, N;          /* prompt sets, prompts per set, images */
    const char **texts;   /* [S * K], pointing into the JSON */
    int32_t *tok;         /* [S * K, context] token ids (with the context slots), made outside the lock */
    int *tok_len;         /* [S * K] positions up to EOT */
    float *ctx;           /* [S, m, W] context embeddings (loose mode) or NULL */
    int m;
    int *ids;             /* [N] split ids, or NULL when images come as PNG/JPEG */
    float *pixels;        /* [N, 3, R, R] decoded and preprocessed images */
    int batched;          /* reply with one result per set */
} Request;

static void request_free(Request *r) {
    free(r->texts), free(r->tok), free(r->tok_len), free(r->ctx), free(r->ids), free(r->pixels);
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
static int tokenize_prompts(const BbServer *s, Request *r, long *positions, Err *e) {
    const int ctx = s->m.cfg.context, n = r->S * r->K;
    r->tok = xmalloc(sizeof(int32_t) * (size_t)n * ctx);
    r->tok_len = xmalloc(sizeof(int) * (size_t)n);
    *positions = 0;
    for (int i = 0; i < n; i++) {
        int32_t *row = r->tok + (size_t)i * ctx;
        int len = tokenizer_tokenize(&s->tok, r->texts[i], ctx, row, e);
        if (len < 0) return err_prefix(e, "prompt %d: ", i);
        if (r->ctx && (len = clip_context_slots(row, len, r->m, ctx)) < 0)
            return err_set(e, "prompt %d: its tokens and %d context embeddings exceed the context of %d", i, r->m, ctx);
        r->tok_len[i] = len;
        *positions += len;
    }
    return 0;
}

/* Reads and checks a request (no model work, no lock); returns NULL or the error, with *status
 * the HTTP code. Every bound on the work of one request is checked here, before any is done. */
static const char *parse_request(BbServer *s, cJSON *req, Request *r, unsigned *status, char *msg, size_t msz) {
    memset(r, 0, sizeof *r);
    *status = 400;
    if (!cJSON_IsObject(req)) return "expected a JSON object";
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
    r->N = cJSON_GetArraySize(images ? images : b64);
    if (sets && ctxs && cJSON_GetArraySize(ctxs) != r->S) return "contexts: one per prompt set";
    if (r->S < 1 || r->K < 1) return "at least one prompt set of at least one prompt";
    if (r->N < 1) return "at least one image";
    if ((long)r->S * r->K > s->o.max_prompts) {
        *status = 413;
        snprintf(msg, msz, "%ld prompts (sets x prompts per set): this server takes at most %d a request", (long)r->S * r->K,
                 s->o.max_prompts);
        return msg;
    }
    if (r->N > s->o.max_images || (b64 && r->N > s->o.max_uploads)) {
        *status = 413;
        snprintf(msg, msz, "%d images: this server takes at most %d ids or %d uploaded images a request", r->N,
                 s->o.max_images, s->o.max_uploads);
        return msg;
    }
    if ((double)r->S * r->K * r->N > (double)s->o.max_values) {
        *status = 413;
        snprintf(msg, msz, "the reply would hold %.0f values (sets x images x prompts): at most %ld a request; split it",
                 (double)r->S * r->K * r->N, s->o.max_values);
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
                if (!cJSON_IsNumber(v) || !(fabs(v->valuedouble) <= FLT_MAX)) {
                    snprintf(msg, msz, "contexts[%d][%d]: not a finite single-precision number", q, k);
                    return msg;
                }
                r->ctx[(size_t)q * len + k] = (float)v->valuedouble;
            }
        }
    }
    Err te = {{0}};
    long positions = 0;
    if (tokenize_prompts(s, r, &positions, &te)) {
        snprintf(msg, msz, "%.500s", te.msg);
        return msg;
    }
    if (positions > s->o.max_tokens) {
        *status = 413;
        snprintf(msg, msz, "the prompts hold %ld token positions: this server encodes at most %ld a request", positions,
                 s->o.max_tokens);
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

/* A request's turns at the model: the lock is held for about max_slice_gflop of work, then given
 * to whoever waits longest (FairLock) and taken again at the back of the queue. One turn can hold
 * a small request's text and image work together, so it waits for the lock once, not per phase. */
typedef struct {
    int held;
    double used; /* FLOPs done in this turn */
} Turn;

/* Holds the lock for work of about `next` FLOPs: yields first when this turn is spent (a turn always
 * does some work). Returns the FLOPs still free in the turn, at least `next`. */
static double turn_take(BbServer *s, Turn *t, double next) {
    const double budget = s->o.max_slice_gflop * 1e9;
    if (t->held && t->used > 0 && t->used + next > budget) fair_unlock(&s->model_lock), t->held = 0;
    if (!t->held) fair_lock(&s->model_lock), t->held = 1, t->used = 0;
    return budget - t->used > next ? budget - t->used : next;
}

static void turn_end(BbServer *s, Turn *t) {
    if (t->held) fair_unlock(&s->model_lock);
    t->held = 0;
}

/* Text features [S*K, E] for the request's prompts, in turns. */
static int encode_prompts(BbServer *s, Turn *t, const Request *r, float *tf, Err *e) {
    const int ctx = s->m.cfg.context, E = s->m.cfg.embed_dim, W = s->m.cfg.t_width, n = r->S * r->K;
    enum { MAX_SLICE_PROMPTS = 256 };
    float *cx = r->ctx ? xalloc_floats((size_t)MAX_SLICE_PROMPTS * r->m * W) : NULL;
    int rc = 0;
    for (int b0 = 0; b0 < n && rc == 0;) {
        const double room = turn_take(s, t, clip_text_flops(&s->m.cfg, r->tok_len[b0]));
        int nb = 0;
        double work = 0;
        for (; b0 + nb < n && nb < MAX_SLICE_PROMPTS; nb++) {
            const double w = clip_text_flops(&s->m.cfg, r->tok_len[b0 + nb]);
            if (nb > 0 && work + w > room) break; /* a slice holds at least one prompt */
            work += w;
        }
        t->used += work;
        const int32_t *ids = r->tok + (size_t)b0 * ctx;
        if (r->ctx) { /* each prompt's set's context, in its slots */
            for (int i = 0; i < nb; i++)
                memcpy(cx + (size_t)i * r->m * W, r->ctx + (size_t)((b0 + i) / r->K) * r->m * W, sizeof(float) * (size_t)r->m * W);
            rc = clip_encode_text_context(&s->m, ids, nb, cx, r->m, tf + (size_t)b0 * E, e);
        } else if (s->o.no_prefix_cache) {
            rc = clip_encode_text(&s->m, ids, nb, tf + (size_t)b0 * E, NULL, e);
        } else {
            rc = clip_encode_text_cached(&s->m, &s->cache, ids, nb, tf + (size_t)b0 * E, e);
        }
        b0 += nb;
    }
    free(cx);
    return rc;
}

/* Image features [N, E]: split ids through the cache, uploaded images directly; in turns. */
static int encode_images(BbServer *s, Turn *t, const Request *r, float *imf, Err *e) {
    const int E = s->m.cfg.embed_dim, R = s->m.cfg.image_res, N = r->N;
    const double per = clip_image_flops(&s->m.cfg) > 0 ? clip_image_flops(&s->m.cfg) : 1;
    int rc = 0;
    if (r->pixels) {
        for (int b = 0; b < N && rc == 0;) {
            int nb = (int)(turn_take(s, t, per) / per);
            if (nb > CLIP_ENCODE_BATCH) nb = CLIP_ENCODE_BATCH;
            if (nb > N - b) nb = N - b;
            if (nb < 1) nb = 1;
            t->used += nb * per;
            rc = clip_encode_image(&s->m, r->pixels + (size_t)b * 3 * R * R, nb, imf + (size_t)b * E, NULL, e);
            b += nb;
        }
        return rc;
    }
    int *todo = xmalloc(sizeof(int) * CLIP_ENCODE_BATCH);
    float *px = xalloc_floats((size_t)CLIP_ENCODE_BATCH * 3 * R * R), *f = xalloc_floats((size_t)CLIP_ENCODE_BATCH * E);
    const double budget = s->o.max_slice_gflop * 1e9;
    int need_room = 0; /* the last window stopped at an uncached id its turn had no room for */
    for (int i0 = 0; i0 < N && rc == 0;) {
        /* cached ids cost nothing: the turn is given up only when an uncached one does not fit.
         * The window's features are computed, cached and copied out within the turn (so no one
         * ever sees a feature being computed). */
        turn_take(s, t, need_room ? per : 0);
        int room = (int)((budget - t->used) / per);
        if (room < 1 && t->used == 0) room = 1; /* a fresh turn always does some work */
        if (room > CLIP_ENCODE_BATCH) room = CLIP_ENCODE_BATCH;
        int nt = 0, i = i0;
        need_room = 0;
        for (; i < N; i++)
            if (!s->have[r->ids[i]]) {
                if (nt == room) {
                    need_room = 1;
                    break;
                }
                s->have[r->ids[i]] = 2; /* an id twice in the window is computed once */
                todo[nt++] = r->ids[i];
            }
        if (nt > 0) {
            t->used += nt * per;
            dataset_pixels(&s->ds, todo, nt, R, &PIXELS_CLIP, px, NULL, 0);
            rc = clip_encode_image(&s->m, px, nt, f, NULL, e);
            for (int k = 0; k < nt; k++) {
                if (rc == 0) memcpy(s->feat + (size_t)todo[k] * E, f + (size_t)k * E, sizeof(float) * (size_t)E);
                s->have[todo[k]] = rc == 0;
            }
        }
        for (int k = i0; k < i && rc == 0; k++) memcpy(imf + (size_t)k * E, s->feat + (size_t)r->ids[k] * E, sizeof(float) * (size_t)E);
        i0 = i;
    }
    free(todo), free(px), free(f);
    return rc;
}

/* One set's answer: probabilities or top-1 labels of logits [N, K]. All finite (checked). */
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

/* Requests this large hand their memory back to the system when done (glibc keeps freed memory
 * in its arenas otherwise, and the server's footprint would stay at its largest request's). */
enum { TRIM_ABOVE_BYTES = 64 << 20 };

/* The work of one /v1/classify request. Fills out (and *bytes, the size of its buffers) or returns
 * an error message. */
static const char *classify(BbServer *s, cJSON *req, cJSON **out, size_t *bytes, unsigned *status, char *msg, size_t msz) {
    Request r;
    const char *err = parse_request(s, req, &r, status, msg, msz);
    if (err) {
        request_free(&r);
        return err;
    }
    const int E = s->m.cfg.embed_dim, S = r.S, K = r.K, N = r.N, batched = r.batched;
    *bytes = sizeof(float) * ((size_t)S * K * E + (size_t)N * E + (size_t)S * N * K) +
                         (r.pixels ? sizeof(float) * (size_t)N * 3 * s->m.cfg.image_res * s->m.cfg.image_res : 0);
    float *tf = xalloc_floats((size_t)S * K * E), *imf = xalloc_floats((size_t)N * E);
    float *logits = xalloc_floats((size_t)S * N * K);
    Err e = {{0}};
    Turn turn = {0};
    int rc = encode_prompts(s, &turn, &r, tf, &e);
    if (rc == 0) rc = encode_images(s, &turn, &r, imf, &e);
    turn_end(s, &turn);
    request_free(&r);
    if (rc == 0) /* the logit scale is read-only: no lock needed */
        for (int q = 0; q < S; q++) clip_logits(&s->m, imf, N, tf + (size_t)q * K * E, K, logits + (size_t)q * N * K);
    free(tf), free(imf);
    if (rc) {
        free(logits);
        *status = 400; /* what fails here is the request's text (too long with its context, ...) */
        snprintf(msg, msz, "%.500s", e.msg);
        return msg;
    }
    for (size_t i = 0; i < (size_t)S * N * K; i++)
        if (!isfinite(logits[i])) {
            free(logits);
            *status = 422;
            snprintf(msg, msz, "the model's outputs for this request are not finite (set %zu, image %zu): its inputs are "
                               "out of any range the model can represent", i / ((size_t)N * K), i / K % N);
            return msg;
        }
    pthread_mutex_lock(&s->stats);
    s->queries += S;
    s->requests++;
    s->images_scored += (long)S * N;
    s->prompts_encoded += (long)S * K;
    pthread_mutex_unlock(&s->stats);
    cJSON *j = cJSON_CreateObject();
    if (batched || S > 1) {
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

char *bb_server_classify_json(BbServer *s, const char *body, size_t len, unsigned *status) {
    char msg[512];
    cJSON *req = json_parse_strict(body, len, msg, sizeof msg), *out = NULL;
    size_t bytes = 0;
    const char *err = req ? classify(s, req, &out, &bytes, status, msg, sizeof msg) : msg;
    if (!req) *status = 400;
    cJSON_Delete(req);
    if (err) return http_error_json(err);
    char *text = cJSON_PrintUnformatted(out);
    cJSON_Delete(out); /* the reply's tree is the request's largest allocation: trim after it is gone */
    if (bytes > TRIM_ABOVE_BYTES || strlen(text) > TRIM_ABOVE_BYTES / 4) malloc_trim(0);
    return text;
}

static char *handle_classify(void *ctx, const char *body, size_t len, unsigned *status) {
    BbServer *s = ctx;
    if (!s->has_clip) return *status = 404, http_error_json("no classifier is served here (forget serve --model)");
    return bb_server_classify_json(ctx, body, len, status);
}

static char *handle_generate(void *ctx, const char *body, size_t len, unsigned *status) {
    BbServer *s = ctx;
    if (!s->gen) return *status = 404, http_error_json("no diffusion model is served here (forget serve --diffusion)");
    return gen_service_handle(s->gen, body, len, status);
}

static char *handle_chat(void *ctx, const char *body, size_t len, unsigned *status) {
    BbServer *s = ctx;
    if (!s->chat) return *status = 404, http_error_json("no multimodal LLM is served here (forget serve --mllm)");
    return chat_service_handle(s->chat, body, len, status);
}

static char *handle_stats(void *ctx, const char *body, size_t len, unsigned *status) {
    (void)body, (void)len;
    BbServer *s = ctx;
    cJSON *j = cJSON_CreateObject();
    fair_lock(&s->model_lock); /* the cache's counters */
    const long reused = s->cache.rows_reused, computed = s->cache.rows_computed, dedup = s->cache.rows_deduplicated;
    fair_unlock(&s->model_lock);
    pthread_mutex_lock(&s->stats);
    cJSON_AddNumberToObject(j, "queries", (double)s->queries);
    cJSON_AddNumberToObject(j, "requests", (double)s->requests);
    cJSON_AddNumberToObject(j, "images_scored", (double)s->images_scored);
    cJSON_AddNumberToObject(j, "prompts_encoded", (double)s->prompts_encoded);
    pthread_mutex_unlock(&s->stats);
    if (s->gen) gen_service_stats(s->gen, j);
    if (s->chat) chat_service_stats(s->chat, j);
    cJSON_AddNumberToObject(j, "text_rows_reused", (double)reused);
    cJSON_AddNumberToObject(j, "text_rows_computed", (double)computed);
    cJSON_AddNumberToObject(j, "prompts_repeated", (double)dedup);
    cJSON_AddNumberToObject(j, "rejected", (double)http_rejected(s->http));
    cJSON_AddNumberToObject(j, "connections_timed_out", (double)http_timeouts(s->http));
    cJSON_AddNumberToObject(j, "split_size", s->ds.n);
    cJSON_AddStringToObject(j, "reveal", s->o.reveal_labels ? "labels" : "probs");
    cJSON_AddBoolToObject(j, "allow_embeddings", s->o.allow_embeddings);
    if (s->o.allow_embeddings) { /* what BBT/BBF need of the embedding space: width, mean, spread */
        cJSON_AddNumberToObject(j, "embedding_width", s->m.cfg.t_width);
        cJSON_AddItemToObject(j, "embedding_mean", cJSON_CreateFloatArray(s->emb_mean, s->m.cfg.t_width));
        cJSON_AddNumberToObject(j, "embedding_std", s->emb_std);
    }
    cJSON *lim = cJSON_AddObjectToObject(j, "limits"); /* what a client may send, so it can split its work */
    cJSON_AddNumberToObject(lim, "max_body", (double)s->o.max_body);
    cJSON_AddNumberToObject(lim, "max_prompts", s->o.max_prompts);
    cJSON_AddNumberToObject(lim, "max_tokens", (double)s->o.max_tokens);
    cJSON_AddNumberToObject(lim, "max_images", s->o.max_images);
    cJSON_AddNumberToObject(lim, "max_uploads", s->o.max_uploads);
    cJSON_AddNumberToObject(lim, "max_values", (double)s->o.max_values);
    Err e = {{0}};
    char *text = json_print_checked(j, &e);
    cJSON_Delete(j);
    *status = text ? 200 : 500;
    return text ? text : http_error_json(e.msg);
}

static char *handle_dataset(void *ctx, const char *body, size_t len, unsigned *status) {
    (void)body, (void)len;
    BbServer *s = ctx; /* what the API's owner tells its users: class names and labels */
    if (!s->has_clip) return *status = 404, http_error_json("no classifier (and no data set) is served here");
    cJSON *j = cJSON_CreateObject();
    cJSON_AddItemToObject(j, "classes", cJSON_CreateStringArray((const char *const *)s->ds.class_names, s->ds.n_classes));
    cJSON_AddItemToObject(j, "labels", cJSON_CreateIntArray((const int *)s->ds.labels, s->ds.n));
    char *text = cJSON_PrintUnformatted(j);
    cJSON_Delete(j);
    *status = 200;
    return text;
}

static const HttpRoute ROUTES[] = {
    {"POST", "/v1/classify", handle_classify},
    {"POST", "/v1/generate", handle_generate},
    {"POST", "/v1/chat", handle_chat},
    {"GET", "/v1/stats", handle_stats},
    {"GET", "/v1/dataset", handle_dataset},
};

static void server_free(BbServer *s) {
    if (s->gen) gen_service_free(s->gen);
    free(s->gen);
    if (s->chat) chat_service_free(s->chat);
    free(s->chat);
    clip_free(&s->m);
    domain_adapter_free(&s->prompts);
    tokenizer_free(&s->tok);
    dataset_free(&s->ds);
    free(s->feat);
    free(s->have);
    free(s->emb_mean);
    text_cache_free(&s->cache);
    fair_lock_destroy(&s->model_lock);
    pthread_mutex_destroy(&s->stats);
    free(s);
}

BbServer *bb_server_start(const ServerOpts *o, Err *e) {
    BbServer *s = xcalloc(1, sizeof *s);
    s->o = *o;
    if (!s->o.max_body) s->o.max_body = 1 << 20;
    if (!s->o.max_prompts) s->o.max_prompts = 8192;
    if (!s->o.max_images) s->o.max_images = 4096;
    if (!s->o.max_tokens) s->o.max_tokens = 131072;
    if (!s->o.max_values) s->o.max_values = 2097152;
    if (!s->o.max_uploads) s->o.max_uploads = 64;
    if (!(s->o.max_slice_gflop > 0)) s->o.max_slice_gflop = 10;
    fair_lock_init(&s->model_lock);
    pthread_mutex_init(&s->stats, NULL);
    if (!o->model && !o->diffusion && !o->mllm) {
        err_set(e, "nothing to serve: give a CLIP (--model), a diffusion model (--diffusion) or an MLLM (--mllm)");
        server_free(s);
        return NULL;
    }
    if (o->diffusion) {
        const GenLimits lim = {o->max_gen_prompts, o->max_gen_images, o->max_gen_steps, o->precision, o->escape, o->sld};
        s->gen = xcalloc(1, sizeof *s->gen);
        const int bad = !o->text_encoder ? err_set(e, "--diffusion needs --text-encoder CLIP")
                                         : gen_service_init(s->gen, o->diffusion, o->text_encoder, o->vae, &lim,
                                                            &s->model_lock, e);
        if (bad) {
            free(s->gen), s->gen = NULL;
            server_free(s);
            return NULL;
        }
    }
    if (o->mllm) {
        s->chat = xcalloc(1, sizeof *s->chat);
        if (chat_service_init(s->chat, o->mllm, o->mllm_tokenizer, o->max_chat_tokens, &s->model_lock, e)) {
            free(s->chat), s->chat = NULL;
            server_free(s);
            return NULL;
        }
    }
    if (o->model) {
        s->has_clip = 1;
        if (clip_load(&s->m, o->model, NULL, e) || clip_set_precision(&s->m, (Precision)o->precision, e) ||
            tokenizer_init(&s->tok, e) ||
            dataset_load_named(&s->ds, o->dataset, o->data_dir, e)) {
            server_free(s);
            return NULL;
        }
        if (o->prompts && domain_adapter_load(&s->prompts, o->prompts, &s->m, e) == 0 &&
            domain_adapter_has_classifier(&s->prompts))
            err_set(e, "%s holds a %s classifier, which replaces the client's prompts: the API serves image-side prompts "
                       "only (adu, baseline, ablations, clipfit); apply it with forget classify or forget eval zeroshot",
                    o->prompts, s->prompts.method);
        if (e->msg[0]) {
            server_free(s);
            return NULL;
        }
        if (!s->m.cfg.has_text || !s->m.cfg.has_vision) {
            err_set(e, "%s: the API needs both towers, this model has %s only", o->model, s->m.cfg.has_text ? "text" : "vision");
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
    }
    HttpOpts ho = {.bind = o->bind, .port = o->port, .api_key = o->api_key, .max_body = s->o.max_body,
                   .request_timeout_s = o->request_timeout_s, .max_connections = o->max_connections,
                   .max_per_client = o->max_per_client};
    if (!(s->http = http_start(&ho, ROUTES, (int)(sizeof ROUTES / sizeof *ROUTES), s, e))) {
        server_free(s);
        return NULL;
    }
    return s;
}

int bb_server_port(const BbServer *s) { return http_port(s->http); }

void bb_server_stop(BbServer *s) {
    if (!s) return;
    http_stop(s->http);
    server_free(s);
}
