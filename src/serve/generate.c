#include "serve/generate.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "io/image.h"
#include "io/json_file.h"
#include "forget/diffusion/erase.h"
#include "serve/http.h"

int gen_service_init(GenService *s, const char *unet, const char *clip, const char *vae, const GenLimits *lim,
                     FairLock *lock, Err *e) {
    memset(s, 0, sizeof *s);
    if (t2i_load(&s->g, unet, clip, vae, e)) return -1;
    if (t2i_set_precision(&s->g, (Precision)lim->precision, e) || erase_apply_files(&s->g, lim->escape, lim->sld, e)) {
        t2i_free(&s->g);
        return -1;
    }
    s->lim = *lim;
    if (!s->lim.max_prompts) s->lim.max_prompts = 16;
    if (!s->lim.max_images) s->lim.max_images = 64;
    if (!s->lim.max_steps) s->lim.max_steps = 200;
    s->lock = lock;
    pthread_mutex_init(&s->stats, NULL);
    return 0;
}

void gen_service_free(GenService *s) {
    t2i_free(&s->g);
    pthread_mutex_destroy(&s->stats);
    memset(s, 0, sizeof *s);
}

static int get_int(const cJSON *req, const char *key, int dflt, int lo, int hi, int *out, char *msg, size_t msz,
                   unsigned *status) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(req, key);
    if (!v) return *out = dflt, 0;
    if (!cJSON_IsNumber(v) || v->valuedouble != floor(v->valuedouble) || v->valuedouble < lo)
        return *status = 400, snprintf(msg, msz, "\"%s\" must be an integer >= %d", key, lo), -1;
    if (v->valuedouble > hi) return *status = 413, snprintf(msg, msz, "\"%s\" %g is over the limit of %d", key, v->valuedouble, hi), -1;
    *out = (int)v->valuedouble;
    return 0;
}

/* prompts[i]: a string, or a non-empty array of {"text": string, "weight": number} (at most
 * GEN_MAX_PARTS, weights finite in -GEN_MAX_WEIGHT..GEN_MAX_WEIGHT). The texts point into p. */
static const char *read_prompt(const cJSON *p, int i, WeightedPrompt **out, int *n, char *msg, size_t msz,
                               unsigned *status) {
    if (cJSON_IsString(p)) {
        *out = xmalloc(sizeof(WeightedPrompt)), *n = 1;
        (*out)[0] = (WeightedPrompt){p->valuestring, 1.0f};
        return NULL;
    }
    const int m = cJSON_IsArray(p) ? cJSON_GetArraySize(p) : 0;
    if (m < 1) return snprintf(msg, msz, "prompts[%d] is neither a string nor a non-empty array of {\"text\", \"weight\"}", i), msg;
    if (m > GEN_MAX_PARTS) return *status = 413, snprintf(msg, msz, "prompts[%d]: %d weighted parts, over the limit of %d", i, m, GEN_MAX_PARTS), msg;
    *out = xcalloc((size_t)m, sizeof(WeightedPrompt)), *n = m;
    for (int q = 0; q < m; q++) {
        const cJSON *it = cJSON_GetArrayItem(p, q), *t = cJSON_GetObjectItemCaseSensitive(it, "text");
        const cJSON *w = cJSON_GetObjectItemCaseSensitive(it, "weight");
        if (!cJSON_IsObject(it) || !cJSON_IsString(t))
            return snprintf(msg, msz, "prompts[%d][%d] must be an object with a \"text\" string", i, q), msg;
        if (w && (!cJSON_IsNumber(w) || !isfinite(w->valuedouble) || fabs(w->valuedouble) > GEN_MAX_WEIGHT))
            return snprintf(msg, msz, "prompts[%d][%d].weight must be a number in -%d..%d", i, q, GEN_MAX_WEIGHT, GEN_MAX_WEIGHT), msg;
        (*out)[q] = (WeightedPrompt){t->valuestring, w ? (float)w->valuedouble : 1.0f};
    }
    return NULL;
}

char *gen_service_handle(GenService *s, const char *body, size_t len, unsigned *status) {
    char msg[1280]; /* room for an Err message and a prefix */
    cJSON *req = json_parse_strict(body, len, msg, sizeof msg);
    if (!req) return *status = 400, http_error_json(msg);
    const cJSON *pr = cJSON_GetObjectItemCaseSensitive(req, "prompts"), *cf = cJSON_GetObjectItemCaseSensitive(req, "cfg");
    const cJSON *sm = cJSON_GetObjectItemCaseSensitive(req, "sampler"), *sd = cJSON_GetObjectItemCaseSensitive(req, "seed");
    int n = 1, steps = 50, K = 0;
    float cfg = 7.5f;
    SamplerKind sk = SAMPLER_DDIM;
    WeightedPrompt **parts = NULL; /* each prompt's parts; a plain string is one part of weight 1 */
    int *n_parts = NULL;
    *status = 400;
    const char *err = NULL;
    if (!cJSON_IsObject(req)) err = "the request must be a JSON object";
    else if (!cJSON_IsArray(pr) || (K = cJSON_GetArraySize(pr)) < 1) err = "\"prompts\" must be a non-empty array of strings or weighted prompts";
    else if (K > s->lim.max_prompts) *status = 413, snprintf(msg, sizeof msg, "%d prompts: over the limit of %d", K, s->lim.max_prompts), err = msg;
    if (!err) {
        parts = xcalloc((size_t)K, sizeof(WeightedPrompt *)), n_parts = xcalloc((size_t)K, sizeof(int));
        for (int i = 0; i < K && !err; i++) err = read_prompt(cJSON_GetArrayItem(pr, i), i, &parts[i], &n_parts[i], msg, sizeof msg, status);
    }
    if (!err && (get_int(req, "n", 1, 1, s->lim.max_images, &n, msg, sizeof msg, status) ||
                 get_int(req, "steps", 50, 1, s->lim.max_steps, &steps, msg, sizeof msg, status)))
        err = msg;
    if (!err && (long)K * n > s->lim.max_images)
        *status = 413, snprintf(msg, sizeof msg, "%d prompts x %d images: over the limit of %d images", K, n, s->lim.max_images), err = msg;
    if (!err && cf && (!cJSON_IsNumber(cf) || !(cf->valuedouble >= 0 && cf->valuedouble <= 100)))
        err = "\"cfg\" must be a number in 0..100";
    if (!err && cf) cfg = (float)cf->valuedouble;
    if (!err && sm && (!cJSON_IsString(sm) || diffusion_sampler_parse(sm->valuestring, &sk)))
        err = "\"sampler\" must be \"ddim\" or \"ddpm\"";
    if (!err && sd && (!cJSON_IsNumber(sd) || sd->valuedouble < 0 || sd->valuedouble > 4294967295.0 ||
                       sd->valuedouble != floor(sd->valuedouble)))
        err = "\"seed\" must be an integer in 0..4294967295";
    for (int i = 0; i < K && !err; i++) /* a prompt longer than the context would be cut silently: refuse it */
        for (int q = 0; q < n_parts[i] && !err; q++) {
            int32_t *ids = NULL;
            int nt = 0;
            Err te = {{0}};
            if (tokenizer_encode(&s->g.tok, parts[i][q].text, &ids, &nt, &te))
                snprintf(msg, sizeof msg, "prompts[%d]: %s", i, te.msg), err = msg;
            else if (nt + 2 + s->g.n_escape > s->g.ctx_len)
                *status = 413, snprintf(msg, sizeof msg, "prompts[%d]: %d tokens, over the %d the text encoder reads", i, nt,
                                        s->g.ctx_len - 2 - s->g.n_escape), err = msg;
            free(ids);
        }
    cJSON *out = NULL;
    if (!err) {
        const int S = s->g.image_side;
        uint8_t *rgb = xmalloc((size_t)n * S * S * 3);
        float *cond = xalloc_floats((size_t)s->g.ctx_len * s->g.unet.cfg.ctx_dim);
        out = cJSON_CreateObject();
        cJSON *arr = cJSON_AddArrayToObject(out, "images");
        Err e = {{0}};
        const SampleSpec sp = {.steps = steps, .cfg = cfg, .sampler = sk, .seed = sd ? (uint64_t)sd->valuedouble : 0,
                               .batch = 16};
        for (int i = 0; i < K && !err; i++) {
            fair_lock(s->lock);
            int rc = t2i_encode_weighted(&s->g, parts[i], n_parts[i], cond, &e);
            if (!rc) rc = t2i_generate_cond(&s->g, cond, 1, n, &sp, rgb, &e);
            fair_unlock(s->lock);
            if (rc) *status = 500, snprintf(msg, sizeof msg, "%s", e.msg), err = msg;
            for (int j = 0; j < n && !err; j++) {
                const Image8 im = {S, S, 3, rgb + (size_t)j * S * S * 3};
                char *b64 = image_png_base64(&im, "generated image", &e);
                if (!b64) {
                    *status = 500, snprintf(msg, sizeof msg, "%s", e.msg), err = msg;
                    break;
                }
                cJSON_AddItemToArray(arr, cJSON_CreateString(b64));
                free(b64);
            }
        }
        free(rgb), free(cond);
    }
    for (int i = 0; parts && i < K; i++) free(parts[i]);
    free(parts), free(n_parts);
    cJSON_Delete(req);
    if (err) {
        cJSON_Delete(out);
        return http_error_json(err);
    }
    pthread_mutex_lock(&s->stats);
    s->requests++, s->images += (long)K * n, s->unet_steps += (long)K * n * steps;
    pthread_mutex_unlock(&s->stats);
    char *text = cJSON_PrintUnformatted(out);
    cJSON_Delete(out);
    *status = 200;
    return text;
}

void gen_service_stats(GenService *s, cJSON *j) {
    pthread_mutex_lock(&s->stats);
    cJSON_AddNumberToObject(j, "generate_requests", (double)s->requests);
    cJSON_AddNumberToObject(j, "images_generated", (double)s->images);
    cJSON_AddNumberToObject(j, "sample_steps", (double)s->unet_steps);
    pthread_mutex_unlock(&s->stats);
    cJSON *lim = cJSON_AddObjectToObject(j, "generate_limits");
    cJSON_AddNumberToObject(lim, "max_prompts", s->lim.max_prompts);
    cJSON_AddNumberToObject(lim, "max_images", s->lim.max_images);
    cJSON_AddNumberToObject(lim, "max_steps", s->lim.max_steps);
    cJSON_AddNumberToObject(lim, "image_side", s->g.image_side);
}
