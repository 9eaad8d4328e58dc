/* POST /v1/generate on loopback: a tiny random UNet conditioned on the tiny reference CLIP's
 * text tower. Replies are base64 PNGs of the model's side, the same for the same request; and
 * the load test: 8 concurrent clients, a quarter of the requests bad in every way a caller can
 * get one wrong (broken JSON, trailing garbage, wrong types, too many images, prompts or steps,
 * a prompt longer than the text tower reads, a bad sampler), every good one 200, every bad one
 * 4xx, and /v1/stats' counts exact. Under ASan/UBSan this is also the no-crash, no-leak check. */
#include <cjson/cJSON.h>
#include <glib.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/rng.h"
#include "io/image.h"
#include "forget/diffusion/erase.h"
#include "forget/diffusion/escape_file.h"
#include "models/unet.h"
#include "serve/fixture.h"
#include "serve/server.h"
#include "test.h"

static BbServer *gen_server(char *base, size_t cap) {
    char unet[512]; /* the server loads it while it starts */
    char clip[1024];
    tiny_unet_file(unet, sizeof unet, "gen-unet.safetensors", 3);
    ServerOpts o = {.diffusion = unet, .text_encoder = tiny_model_path(clip, sizeof clip), .max_gen_images = 8,
                    .max_gen_steps = 20, .max_gen_prompts = 4};
    Err e = {{0}};
    BbServer *s = bb_server_start(&o, &e);
    CHECK_MSG(s != NULL, "%s", e.msg);
    if (s) snprintf(base, cap, "http://127.0.0.1:%d", bb_server_port(s));
    return s;
}

TEST(generate_api_replies_pngs_deterministically) {
    char base[64], url[96];
    BbServer *s = gen_server(base, sizeof base);
    if (!s) return;
    snprintf(url, sizeof url, "%s/v1/generate", base);
    const char *req = "{\"prompts\":[\"a photo of a bag.\",\"a photo of a sneaker.\"],\"n\":2,\"seed\":7,\"steps\":3}";
    char *a = NULL, *b = NULL;
    CHECK_INT(http_post(url, req, strlen(req), &a), 200);
    CHECK_INT(http_post(url, req, strlen(req), &b), 200);
    CHECK(a && b && strcmp(a, b) == 0);
    cJSON *j = a ? cJSON_Parse(a) : NULL;
    const cJSON *imgs = cJSON_GetObjectItemCaseSensitive(j, "images");
    CHECK_INT(cJSON_GetArraySize(imgs), 4);
    const cJSON *first = cJSON_GetArrayItem(imgs, 0), *third = cJSON_GetArrayItem(imgs, 2);
    if (cJSON_IsString(first) && cJSON_IsString(third)) {
        gsize n = 0;
        guchar *png = g_base64_decode(first->valuestring, &n);
        Image8 im;
        Err e = {{0}};
        CHECK(image_decode(&im, png, n, "reply", &e) == 0);
        CHECK_INT(im.w, 8);
        CHECK_INT(im.channels, 3);
        image_free(&im);
        g_free(png);
        CHECK(strcmp(first->valuestring, third->valuestring) != 0); /* another prompt, another image */
    }
    cJSON_Delete(j);
    free(a), free(b);
    /* without a classifier, /v1/classify is 404 */
    snprintf(url, sizeof url, "%s/v1/classify", base);
    CHECK_INT(http_post(url, "{}", 2, NULL), 404);
    bb_server_stop(s);
}

typedef struct {
    const char *url;
    int first, count;
    long good_ok, bad_4xx, wrong, images;
} Loader;

enum { KINDS = 10 };

static const char *bad_body(int r, char *body, size_t cap) {
    switch ((r / 4) % KINDS) {
    case 0: snprintf(body, cap, "{\"prompts\":[\"a photo\""); break;
    case 1: snprintf(body, cap, "{\"prompts\":[\"a\"]}garbage"); break;
    case 2: snprintf(body, cap, "{\"prompts\":\"a photo of a bag.\"}"); break;
    case 3: snprintf(body, cap, "{\"prompts\":[\"a\"],\"n\":9}"); break;           /* over 8 images */
    case 4: snprintf(body, cap, "{\"prompts\":[\"a\"],\"steps\":21}"); break;      /* over 20 steps */
    case 5: snprintf(body, cap, "{\"prompts\":[\"a\",\"b\",\"c\",\"d\",\"e\"]}"); break; /* over 4 prompts */
    case 6: snprintf(body, cap, "{\"prompts\":[\"a\"],\"cfg\":\"high\"}"); break;
    case 7: snprintf(body, cap, "{\"prompts\":[\"a\"],\"sampler\":\"euler\"}"); break;
    case 8: snprintf(body, cap, "{\"prompts\":[\"a\"],\"n\":1.5}"); break;
    default: { /* a prompt past the text tower's 77 positions */
        size_t n = (size_t)snprintf(body, cap, "{\"prompts\":[\"");
        for (int k = 0; k < 90 && n + 4 < cap; k++) n += (size_t)snprintf(body + n, cap - n, "w ");
        snprintf(body + n, cap - n, "\"]}");
    }
    }
    return body;
}

static void *load(void *arg) {
    Loader *w = arg;
    char body[512];
    for (int r = w->first; r < w->first + w->count; r++) {
        const int bad = r % 4 == 3, n = 1 + r % 2;
        if (bad) bad_body(r, body, sizeof body);
        else snprintf(body, sizeof body, "{\"prompts\":[\"a photo of a bag.\"],\"n\":%d,\"seed\":%d,\"steps\":2}", n, r);
        char *reply = NULL;
        const long status = http_post(w->url, body, strlen(body), &reply);
        if (!bad && status == 200 && reply && strncmp(reply, "{\"images\":[\"", 12) == 0) w->good_ok++, w->images += n;
        else if (bad && status >= 400 && status < 500 && reply && strncmp(reply, "{\"error\":", 9) == 0) w->bad_4xx++;
        else w->wrong++;
        free(reply);
    }
    return NULL;
}

TEST(generate_api_load_test_8_clients_a_quarter_bad) {
    char base[64], url[96];
    BbServer *s = gen_server(base, sizeof base);
    if (!s) return;
    snprintf(url, sizeof url, "%s/v1/generate", base);
    const int total = 160, T = 8;
    Loader w[8];
    pthread_t th[8];
    for (int i = 0; i < T; i++) {
        w[i] = (Loader){url, total * i / T, total / T, 0, 0, 0, 0};
        pthread_create(&th[i], NULL, load, &w[i]);
    }
    long good = 0, bad = 0, wrong = 0, images = 0;
    for (int i = 0; i < T; i++) {
        pthread_join(th[i], NULL);
        good += w[i].good_ok, bad += w[i].bad_4xx, wrong += w[i].wrong, images += w[i].images;
    }
    CHECK_INT(wrong, 0);
    CHECK_INT(good, total * 3 / 4);
    CHECK_INT(bad, total / 4);
    char su[96];
    snprintf(su, sizeof su, "%s/v1/stats", base);
    char *stats = NULL;
    CHECK_INT(http_get(su, &stats), 200);
    cJSON *j = stats ? cJSON_Parse(stats) : NULL;
    const cJSON *req = cJSON_GetObjectItemCaseSensitive(j, "generate_requests");
    const cJSON *img = cJSON_GetObjectItemCaseSensitive(j, "images_generated");
    const cJSON *rej = cJSON_GetObjectItemCaseSensitive(j, "rejected");
    CHECK(cJSON_IsNumber(req) && cJSON_IsNumber(img) && cJSON_IsNumber(rej));
    if (cJSON_IsNumber(req)) CHECK_INT((long)req->valuedouble, good); /* exact: accepted requests only */
    if (cJSON_IsNumber(img)) CHECK_INT((long)img->valuedouble, images);
    if (cJSON_IsNumber(rej)) CHECK_INT((long)rej->valuedouble, bad);
    cJSON_Delete(j);
    free(stats);
    bb_server_stop(s);
}

/* A server started with forget erase's files applies them to every request: an escape-token
 * file and an SLD guidance file each change the reply to the same request, deterministically. */
static char *reply_with(const char *escape, const char *sld, const char *req) {
    char unet[512], clip[1024], url[96];
    tiny_unet_file(unet, sizeof unet, "gen-unet.safetensors", 3);
    ServerOpts o = {.diffusion = unet, .text_encoder = tiny_model_path(clip, sizeof clip), .max_gen_images = 8,
                    .max_gen_steps = 20, .max_gen_prompts = 4, .escape = escape, .sld = sld};
    Err e = {{0}};
    BbServer *s = bb_server_start(&o, &e);
    CHECK_MSG(s != NULL, "%s", e.msg);
    if (!s) return NULL;
    snprintf(url, sizeof url, "http://127.0.0.1:%d/v1/generate", bb_server_port(s));
    char *a = NULL;
    CHECK_INT(http_post(url, req, strlen(req), &a), 200);
    bb_server_stop(s);
    return a;
}

TEST(generate_api_applies_escape_and_sld_files) {
    char clip[1024], esc[600], sld[600];
    tiny_model_path(clip, sizeof clip);
    snprintf(esc, sizeof esc, "%s/api.escape.safetensors", scratch_dir());
    snprintf(sld, sizeof sld, "%s/api.sld.json", scratch_dir());
    ClipModel m;
    Err e = {{0}};
    const ClipLoadOpts lo = {.act_override = -1};
    CHECK(clip_load(&m, clip, &lo, &e) == 0);
    Tokenizer t = {0};
    CHECK(tokenizer_init(&t, &e) == 0);
    Rng r;
    rng_seed(&r, 8);
    float z[2 * 64];
    CHECK(m.cfg.t_width <= 64);
    rng_fill_normal(&r, z, 2 * m.cfg.t_width, 0, 1);
    CHECK_MSG(escape_save(esc, z, 2, &m, &t, "bag", NULL, 0, &e) == 0, "%s", e.msg);
    CHECK_MSG(sld_save(sld, "bag", 1, &e) == 0, "%s", e.msg);
    tokenizer_free(&t);
    clip_free(&m);
    /* 12 steps: past the strong table's 7 warm-up steps */
    const char *req = "{\"prompts\":[\"a photo of a bag.\"],\"n\":2,\"seed\":3,\"steps\":12,\"cfg\":5}";
    char *plain = reply_with(NULL, NULL, req), *a = reply_with(esc, NULL, req), *b = reply_with(esc, NULL, req);
    char *c = reply_with(NULL, sld, req);
    CHECK(plain && a && b && c);
    if (plain && a && b && c) {
        CHECK(strcmp(a, b) == 0);
        CHECK(strcmp(a, plain) != 0);
        CHECK(strcmp(c, plain) != 0);
    }
    free(plain), free(a), free(b), free(c);
}

/* Weighted prompts: one part of weight 1, and two halves of the same text, are the plain prompt's
 * images exactly (the sum is linear in the weights); another weight changes them; malformed parts
 * are 400 and too many parts 413; every image the server made is counted. */
TEST(generate_api_weighted_prompts) {
    char base[64], url[96];
    BbServer *s = gen_server(base, sizeof base);
    if (!s) return;
    snprintf(url, sizeof url, "%s/v1/generate", base);
    const char *reqs[] = {
        "{\"prompts\":[\"a photo of a bag.\"],\"n\":2,\"seed\":5,\"steps\":3}",
        "{\"prompts\":[[{\"text\":\"a photo of a bag.\",\"weight\":1}]],\"n\":2,\"seed\":5,\"steps\":3}",
        "{\"prompts\":[[{\"text\":\"a photo of a bag.\",\"weight\":0.5},{\"text\":\"a photo of a bag.\",\"weight\":0.5}]],"
        "\"n\":2,\"seed\":5,\"steps\":3}",
        "{\"prompts\":[[{\"text\":\"a photo of a bag.\",\"weight\":0.5},{\"text\":\"a photo of a coat.\",\"weight\":0.5}]],"
        "\"n\":2,\"seed\":5,\"steps\":3}",
    };
    char *rep[4] = {0};
    for (int i = 0; i < 4; i++) CHECK_INT(http_post(url, reqs[i], strlen(reqs[i]), &rep[i]), 200);
    CHECK(rep[0] && rep[1] && strcmp(rep[0], rep[1]) == 0);
    CHECK(rep[0] && rep[2] && strcmp(rep[0], rep[2]) == 0);
    CHECK(rep[0] && rep[3] && strcmp(rep[0], rep[3]) != 0);
    for (int i = 0; i < 4; i++) free(rep[i]);
    const char *bad[] = {
        "{\"prompts\":[[]]}", "{\"prompts\":[[{\"weight\":1}]]}", "{\"prompts\":[[{\"text\":\"a\",\"weight\":\"x\"}]]}",
        "{\"prompts\":[[{\"text\":\"a\",\"weight\":1000}]]}", "{\"prompts\":[[\"a\"]]}",
    };
    for (int i = 0; i < 5; i++) {
        char *r = NULL;
        CHECK_MSG(http_post(url, bad[i], strlen(bad[i]), &r) == 400, "%s -> %s", bad[i], r ? r : "");
        free(r);
    }
    char many[4096] = "{\"prompts\":[[";
    for (int i = 0; i < 33; i++) strcat(many, i ? ",{\"text\":\"a\"}" : "{\"text\":\"a\"}");
    strcat(many, "]]}");
    char *r = NULL;
    CHECK_INT(http_post(url, many, strlen(many), &r), 413);
    free(r);
    snprintf(url, sizeof url, "%s/v1/stats", base);
    CHECK_INT(http_get(url, &r), 200);
    cJSON *j = r ? cJSON_Parse(r) : NULL;
    CHECK(cJSON_GetObjectItemCaseSensitive(j, "images_generated") &&
          cJSON_GetObjectItemCaseSensitive(j, "images_generated")->valuedouble == 8);
    cJSON_Delete(j), free(r);
    bb_server_stop(s);
}
