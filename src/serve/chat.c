#include "serve/chat.h"

#include <glib.h>
#include <libgen.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "io/image.h"
#include "io/json_file.h"
#include "io/mllm_examples.h"
#include "io/preprocess.h"
#include "serve/http.h"

enum { CHAT_MAX_SIDE = 4096 };

int chat_service_init(ChatService *s, const char *mllm, const char *tokenizer, int max_tokens, FairLock *lock, Err *e) {
    memset(s, 0, sizeof *s);
    if (mllm_load(&s->m, mllm, e)) return -1;
    char *dup = xstrdup(mllm), *tok = tokenizer ? xstrdup(tokenizer) : xasprintf("%s/tokenizer.model", dirname(dup));
    free(dup);
    s->tok = sp_load(tok, e);
    int rc = s->tok ? 0 : -1;
    if (rc == 0 && sp_vocab_size(s->tok) != s->m.cfg.lm.vocab)
        rc = err_set(e, "%s has %d pieces, the model's vocabulary %d: not its tokenizer", tok, sp_vocab_size(s->tok),
                     s->m.cfg.lm.vocab);
    free(tok);
    if (rc) {
        sp_free(s->tok);
        mllm_free(&s->m);
        return -1;
    }
    s->max_tokens = max_tokens > 0 ? max_tokens : 256;
    s->lock = lock;
    pthread_mutex_init(&s->stats, NULL);
    return 0;
}

void chat_service_free(ChatService *s) {
    sp_free(s->tok);
    mllm_free(&s->m);
    pthread_mutex_destroy(&s->stats);
    memset(s, 0, sizeof *s);
}

static int number(const cJSON *req, const char *key, double lo, double hi, int integer, double *v, char *msg, size_t msz,
                  unsigned *status) {
    const cJSON *j = cJSON_GetObjectItemCaseSensitive(req, key);
    if (!j) return 0;
    if (!cJSON_IsNumber(j) || !isfinite(j->valuedouble) || j->valuedouble < lo || (integer && j->valuedouble != floor(j->valuedouble)))
        return *status = 400, snprintf(msg, msz, "\"%s\" must be %s >= %g", key, integer ? "an integer" : "a number", lo), -1;
    if (j->valuedouble > hi)
        return *status = 413, snprintf(msg, msz, "\"%s\" %g is over the limit of %g", key, j->valuedouble, hi), -1;
    *v = j->valuedouble;
    return 0;
}

/* The uploaded image as patch tokens (outside the lock: decoding and the frozen tower are per
 * request work, the tower's weights are only read). */
static const char *image_feats(ChatService *s, const char *b64, float **feats, char *msg, size_t msz) {
    gsize n = 0;
    guchar *bytes = g_base64_decode(b64, &n);
    Image8 im = {0};
    Err e = {{0}};
    if (!bytes || n == 0 || image_decode_max(&im, bytes, n, "image_b64", (long)CHAT_MAX_SIDE * CHAT_MAX_SIDE, &e)) {
        g_free(bytes);
        return snprintf(msg, msz, "\"image_b64\": %s", e.msg[0] ? e.msg : "not base64 of a PNG or JPEG"), msg;
    }
    g_free(bytes);
    const int R = s->m.cfg.tower.image_res;
    float *px = xalloc_floats((size_t)3 * R * R);
    clip_preprocess(&im, R, px);
    image_free(&im);
    *feats = xalloc_floats((size_t)mllm_image_tokens(&s->m.cfg) * s->m.cfg.tower.v_width);
    const int rc = mllm_encode_images(&s->m, px, 1, *feats, &e);
    free(px);
    return rc ? (snprintf(msg, msz, "%s", e.msg), msg) : NULL;
}

char *chat_service_handle(ChatService *s, const char *body, size_t len, unsigned *status) {
    char msg[1280];
    cJSON *req = json_parse_strict(body, len, msg, sizeof msg);
    if (!req) return *status = 400, http_error_json(msg);
    *status = 400;
    const cJSON *pr = cJSON_GetObjectItemCaseSensitive(req, "prompt"), *im = cJSON_GetObjectItemCaseSensitive(req, "image_b64");
    double max_tokens = 64, temperature = 0, top_p = 1, seed = 0;
    const char *err = NULL;
    if (!cJSON_IsObject(req)) err = "the request must be a JSON object";
    else if (!cJSON_IsString(pr) || !pr->valuestring[0]) err = "\"prompt\" must be a non-empty string";
    else if (im && !cJSON_IsString(im)) err = "\"image_b64\" must be a base64 string";
    if (!err && (number(req, "max_tokens", 1, s->max_tokens, 1, &max_tokens, msg, sizeof msg, status) ||
                 number(req, "temperature", 0, 100, 0, &temperature, msg, sizeof msg, status) ||
                 number(req, "top_p", 0, 1, 0, &top_p, msg, sizeof msg, status) ||
                 number(req, "seed", 0, 4294967295.0, 1, &seed, msg, sizeof msg, status)))
        err = msg;
    if (!err && cJSON_GetObjectItemCaseSensitive(req, "top_p") && !(top_p > 0))
        err = "\"top_p\" must be in (0, 1]";
    MllmExample x = {0};
    Err e = {{0}};
    if (!err && mllm_example_qa(&x, s->tok, pr->valuestring, NULL, im != NULL, &e))
        snprintf(msg, sizeof msg, "\"prompt\": %s", e.msg), err = msg;
    const int rows = err ? 0 : x.n + (im ? mllm_image_tokens(&s->m.cfg) - 1 : 0);
    if (!err && rows + (int)max_tokens > s->m.cfg.lm.context)
        *status = 413, snprintf(msg, sizeof msg, "the prompt takes %d positions and max_tokens %d more: over the model's "
                                                 "context of %d", rows, (int)max_tokens, s->m.cfg.lm.context), err = msg;
    float *feats = NULL;
    if (!err && im) err = image_feats(s, im->valuestring, &feats, msg, sizeof msg);
    char *text = NULL;
    if (!err) {
        const LmSampling sm = {.max_tokens = (int)max_tokens, .temperature = (float)temperature, .top_p = (float)top_p,
                               .seed = (uint64_t)seed, .eos = sp_eos(s->tok)};
        int32_t *out = xmalloc(sizeof(int32_t) * (size_t)max_tokens);
        fair_lock(s->lock);
        const int n = mllm_generate(&s->m, x.ids, x.n, feats, &sm, out, &e);
        fair_unlock(s->lock);
        char *answer = n >= 0 ? sp_decode(s->tok, out, n > 0 && out[n - 1] == sm.eos ? n - 1 : n, &e) : NULL;
        if (!answer) {
            *status = 500, snprintf(msg, sizeof msg, "%s", e.msg), err = msg;
        } else {
            cJSON *j = cJSON_CreateObject();
            cJSON_AddStringToObject(j, "answer", answer);
            cJSON_AddNumberToObject(j, "tokens", n);
            cJSON_AddNumberToObject(j, "prompt_tokens", rows);
            text = cJSON_PrintUnformatted(j);
            cJSON_Delete(j);
            *status = 200;
            pthread_mutex_lock(&s->stats);
            s->requests++, s->tokens += n;
            pthread_mutex_unlock(&s->stats);
        }
        free(answer), free(out);
    }
    free(feats);
    mllm_example_free(&x);
    cJSON_Delete(req);
    return err ? http_error_json(err) : text;
}

void chat_service_stats(ChatService *s, cJSON *j) {
    pthread_mutex_lock(&s->stats);
    cJSON_AddNumberToObject(j, "chat_requests", (double)s->requests);
    cJSON_AddNumberToObject(j, "chat_tokens", (double)s->tokens);
    pthread_mutex_unlock(&s->stats);
    cJSON_AddNumberToObject(j, "chat_max_tokens", s->max_tokens);
    cJSON_AddNumberToObject(j, "chat_context", s->m.cfg.lm.context);
}
