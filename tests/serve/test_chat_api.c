/* POST /v1/chat on loopback with a tiny trained MLLM: the answer to an image question equals the
 * in-process model's greedy answer on the same PNG, sampling is deterministic in the seed, and the
 * load test: 8 concurrent clients, a quarter of the requests bad in the ways a caller gets one
 * wrong (broken JSON, trailing garbage, wrong types, an empty prompt, an undecodable image, too many
 * tokens, a prompt past the context), every good one 200, every bad one 4xx, the counts in
 * /v1/stats exact. Under ASan/UBSan this is also the no-crash, no-leak check. */
#include <cjson/cJSON.h>
#include <glib.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "io/image.h"
#include "io/mllm_examples.h"
#include "io/preprocess.h"
#include "models/mllm.h"
#include "serve/fixture.h"
#include "serve/server.h"
#include "test.h"

static BbServer *chat_server(char *base, size_t cap) {
    char path[512];
    tiny_mllm(path, sizeof path);
    ServerOpts o = {.mllm = path, .max_chat_tokens = 16};
    Err e = {{0}};
    BbServer *s = bb_server_start(&o, &e);
    CHECK_MSG(s != NULL, "%s", e.msg);
    if (s) snprintf(base, cap, "http://127.0.0.1:%d", bb_server_port(s));
    return s;
}

/* A 40 x 40 PNG (not the tower's side: the server resizes as CLIP does), base64. */
static char *png_b64(Image8 *im) {
    im->w = im->h = 40, im->channels = 3;
    im->px = xmalloc(40 * 40 * 3);
    for (int i = 0; i < 40 * 40 * 3; i++) im->px[i] = (uint8_t)((i * 37) % 251);
    uint8_t *png = NULL;
    size_t n = 0;
    Err e = {{0}};
    CHECK(image_encode_png(im, &png, &n, "test", &e) == 0);
    char *b64 = g_base64_encode(png, n);
    free(png);
    return b64;
}

TEST(chat_api_answers_as_the_model_in_process) {
    char base[64], url[96], path[512];
    BbServer *s = chat_server(base, sizeof base);
    if (!s) return;
    snprintf(url, sizeof url, "%s/v1/chat", base);
    Image8 im = {0};
    char *b64 = png_b64(&im);
    char *body = xasprintf("{\"prompt\":\"What is this person's job?\",\"image_b64\":\"%s\",\"max_tokens\":12}", b64);
    char *reply = NULL;
    CHECK_INT(http_post(url, body, strlen(body), &reply), 200);
    cJSON *j = reply ? cJSON_Parse(reply) : NULL;
    const cJSON *ans = cJSON_GetObjectItemCaseSensitive(j, "answer");
    CHECK(cJSON_IsString(ans));
    /* the same in process */
    Mllm m;
    Err e = {{0}};
    tiny_mllm(path, sizeof path);
    char tokp[600];
    snprintf(tokp, sizeof tokp, "%s", path);
    *strrchr(tokp, '/') = 0;
    strcat(tokp, "/tokenizer.model");
    SpTokenizer *t = sp_load(tokp, &e);
    if (t && mllm_load(&m, path, &e) == 0) {
        float *px = xalloc_floats(3 * 32 * 32), *feats = xalloc_floats((size_t)mllm_image_tokens(&m.cfg) * m.cfg.tower.v_width);
        clip_preprocess(&im, 32, px);
        CHECK(mllm_encode_images(&m, px, 1, feats, &e) == 0);
        MllmExample x;
        CHECK(mllm_example_qa(&x, t, "What is this person's job?", NULL, 1, &e) == 0);
        int32_t out[12];
        const LmSampling sm = {.max_tokens = 12, .eos = sp_eos(t)};
        const int n = mllm_generate(&m, x.ids, x.n, feats, &sm, out, &e);
        char *mine = n >= 0 ? sp_decode(t, out, n > 0 && out[n - 1] == sm.eos ? n - 1 : n, &e) : NULL;
        CHECK_MSG(mine && cJSON_IsString(ans) && strcmp(mine, ans->valuestring) == 0, "server '%s', in process '%s'",
                  cJSON_IsString(ans) ? ans->valuestring : "?", mine ? mine : e.msg);
        free(mine), free(px), free(feats);
        mllm_example_free(&x);
        mllm_free(&m);
    } else {
        CHECK_MSG(0, "%s", e.msg);
    }
    sp_free(t);
    cJSON_Delete(j);
    free(reply), free(body);
    /* sampling: the same seed, the same answer */
    char *a = NULL, *b = NULL;
    const char *req = "{\"prompt\":\"Where does Mira live?\",\"temperature\":1.0,\"top_p\":0.9,\"seed\":7,\"max_tokens\":10}";
    CHECK_INT(http_post(url, req, strlen(req), &a), 200);
    CHECK_INT(http_post(url, req, strlen(req), &b), 200);
    CHECK(a && b && strcmp(a, b) == 0);
    free(a), free(b), free(b64), free(im.px);
    bb_server_stop(s);
}

typedef struct {
    const char *url, *b64;
    int first, count;
    int good_ok, bad_4xx, wrong;
} Loader;

static void bad_body(int r, const char *b64, char *body, size_t cap) {
    switch ((r / 4) % 9) {
    case 0: snprintf(body, cap, "{\"prompt\": \"Who is this?\""); break;                     /* broken */
    case 1: snprintf(body, cap, "{\"prompt\":\"Who is this?\"} trailing"); break;            /* garbage */
    case 2: snprintf(body, cap, "{\"prompt\":42}"); break;                                    /* type */
    case 3: snprintf(body, cap, "{\"prompt\":\"\"}"); break;                                  /* empty */
    case 4: snprintf(body, cap, "{\"prompt\":\"Who?\",\"image_b64\":\"bm90IGEgcG5n\"}"); break; /* not an image */
    case 5: snprintf(body, cap, "{\"prompt\":\"Who?\",\"max_tokens\":100}"); break;           /* over the limit */
    case 6: snprintf(body, cap, "{\"prompt\":\"Who?\",\"temperature\":-1}"); break;            /* range */
    case 7: { /* a prompt past the context */
        size_t at = (size_t)snprintf(body, cap, "{\"prompt\":\"");
        while (at + 16 < cap) at += (size_t)snprintf(body + at, cap - at, "word ");
        snprintf(body + at, cap - at, "\"}");
        break;
    }
    default: snprintf(body, cap, "[\"%.8s\"]", b64); break; /* not an object */
    }
}

static void *load(void *arg) {
    Loader *w = arg;
    char body[2048];
    for (int r = w->first; r < w->first + w->count; r++) {
        const int bad = r % 4 == 3;
        if (bad) bad_body(r, w->b64, body, sizeof body);
        else if (r % 2) snprintf(body, sizeof body, "{\"prompt\":\"Who is this?\",\"max_tokens\":4,\"image_b64\":\"%s\"}", w->b64);
        else snprintf(body, sizeof body, "{\"prompt\":\"What pet does Mira have?\",\"max_tokens\":4,\"seed\":%d}", r);
        char *reply = NULL;
        const long status = http_post(w->url, body, strlen(body), &reply);
        if (!bad && status == 200 && reply && strncmp(reply, "{\"answer\":", 10) == 0) w->good_ok++;
        else if (bad && status >= 400 && status < 500 && reply && strncmp(reply, "{\"error\":", 9) == 0) w->bad_4xx++;
        else w->wrong++;
        free(reply);
    }
    return NULL;
}

TEST(chat_api_load_test_8_clients_a_quarter_bad) {
    char base[64], url[96];
    BbServer *s = chat_server(base, sizeof base);
    if (!s) return;
    snprintf(url, sizeof url, "%s/v1/chat", base);
    Image8 im = {0};
    char *b64 = png_b64(&im);
    CHECK(strlen(b64) < 1500);
    const int total = 144, T = 8;
    Loader w[8];
    pthread_t th[8];
    for (int i = 0; i < T; i++) {
        w[i] = (Loader){url, b64, total * i / T, total / T, 0, 0, 0};
        pthread_create(&th[i], NULL, load, &w[i]);
    }
    long good = 0, bad = 0, wrong = 0;
    for (int i = 0; i < T; i++) {
        pthread_join(th[i], NULL);
        good += w[i].good_ok, bad += w[i].bad_4xx, wrong += w[i].wrong;
    }
    CHECK_INT(wrong, 0);
    CHECK_INT(good, total * 3 / 4);
    CHECK_INT(bad, total / 4);
    char su[96];
    snprintf(su, sizeof su, "%s/v1/stats", base);
    char *stats = NULL;
    CHECK_INT(http_get(su, &stats), 200);
    cJSON *j = stats ? cJSON_Parse(stats) : NULL;
    const cJSON *req = cJSON_GetObjectItemCaseSensitive(j, "chat_requests");
    const cJSON *rej = cJSON_GetObjectItemCaseSensitive(j, "rejected");
    CHECK(cJSON_IsNumber(req) && cJSON_IsNumber(rej));
    if (cJSON_IsNumber(req)) CHECK_INT((long)req->valuedouble, good); /* exact: accepted requests only */
    if (cJSON_IsNumber(rej)) CHECK_INT((long)rej->valuedouble, bad);
    cJSON_Delete(j);
    free(stats), free(b64), free(im.px);
    bb_server_stop(s);
}
