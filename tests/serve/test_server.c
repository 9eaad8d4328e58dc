/* The black-box API end to end on loopback: answers equal in-process CLIP, both reveal
 * modes, every rejection class, an API key, and concurrent clients. Bounded: a few dozen
 * requests to 127.0.0.1 only. */
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "core/ops.h"
#include "io/dataset.h"
#include "models/clip_encode.h"
#include "serve/client.h"
#include "serve/server.h"
#include "serve/fixture.h"
#include "test.h"

static const char *PROMPTS[3] = {"a photo of a t-shirt.", "a photo of a bag.", "a photo of a sneaker."};

static BbServer *start(int labels, const char *key) {
    return tiny_server((ServerOpts){.reveal_labels = labels, .api_key = key, .max_body = 4096}, NULL, 0);
}

static void base_url(const BbServer *s, char *buf, size_t cap) {
    snprintf(buf, cap, "http://127.0.0.1:%d", bb_server_port(s));
}

TEST(server_answers_equal_in_process_clip) {
    BbServer *s = start(0, NULL);
    if (!s) return;
    char url[64];
    base_url(s, url, sizeof url);
    BbClient c;
    Err e = {{0}};
    CHECK(bb_client_init(&c, url, NULL, &e) == 0);
    const int ids[2] = {0, 17};
    float probs[6];
    int32_t labels[2];
    int lo = -1;
    CHECK_MSG(bb_classify(&c, PROMPTS, 3, ids, 2, probs, labels, &lo, &e) == 0, "%s", e.msg);
    CHECK_INT(lo, 0);
    /* the same computation in process */
    ClipModel m;
    Tokenizer t;
    Dataset d;
    CHECK_MSG(tiny_in_process(&m, &t, &d, &e) == 0, "%s", e.msg);
    float tf[3 * 32], imf[2 * 32], px[2 * 3 * 32 * 32], logits[6], want[6];
    CHECK(clip_encode_texts(&m, &t, PROMPTS, 3, tf, &e) == 0);
    dataset_pixels(&d, ids, 2, 32, &PIXELS_CLIP, px, NULL, 0);
    CHECK(clip_encode_image(&m, px, 2, imf, NULL, &e) == 0);
    clip_logits(&m, imf, 2, tf, 3, logits);
    softmax_forward(want, logits, 2, 3);
    CHECK_CLOSE(probs, want, 6, 1e-6, 1e-5);
    long q, n;
    CHECK(bb_stats(&c, &q, &n, &e) == 0 && q == 1 && n == 10000);
    dataset_free(&d), tokenizer_free(&t), clip_free(&m);
    bb_client_free(&c);
    bb_server_stop(s);
}

/* Raw requests for the rejection classes: returns the HTTP status. */
#include <curl/curl.h>
static size_t sink(char *p, size_t a, size_t b, void *u) {
    (void)p, (void)u;
    return a * b;
}
/* Status and (when out is set) the reply body, malloc'd. */
static long raw_reply(const char *url, const char *body, char **out) {
    CURL *h = curl_easy_init();
    ReplyBuf r = {0};
    curl_easy_setopt(h, CURLOPT_URL, url);
    curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, reply_collect);
    curl_easy_setopt(h, CURLOPT_WRITEDATA, &r);
    curl_easy_setopt(h, CURLOPT_POSTFIELDS, body);
    long status = 0;
    if (curl_easy_perform(h) == CURLE_OK) curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &status);
    curl_easy_cleanup(h);
    *out = r.buf;
    return status;
}
static long raw(const char *url, const char *method, const char *body, const char *key) {
    CURL *h = curl_easy_init();
    struct curl_slist *hdr = NULL;
    if (key) hdr = curl_slist_append(hdr, key);
    curl_easy_setopt(h, CURLOPT_URL, url);
    curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, sink);
    if (hdr) curl_easy_setopt(h, CURLOPT_HTTPHEADER, hdr);
    if (body) curl_easy_setopt(h, CURLOPT_POSTFIELDS, body);
    if (method) curl_easy_setopt(h, CURLOPT_CUSTOMREQUEST, method);
    long status = 0;
    if (curl_easy_perform(h) == CURLE_OK) curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &status);
    curl_slist_free_all(hdr);
    curl_easy_cleanup(h);
    return status;
}

TEST(server_rejects_bad_requests_with_4xx) {
    BbServer *s = start(1, "sesame");
    if (!s) return;
    char base[64], u[128];
    base_url(s, base, sizeof base);
    snprintf(u, sizeof u, "%s/v1/classify", base);
    const char *key = "X-API-Key: sesame";
    CHECK_INT(raw(u, NULL, "{\"prompts\":[\"a\"],\"images\":[0]}", NULL), 401);
    CHECK_INT(raw(u, NULL, "{\"prompts\":[\"a\"],\"images\":[0]}", "X-API-Key: wrong"), 401);
    CHECK_INT(raw(u, NULL, "{\"prompts\":[\"a\",\"b\"],\"images\":[0,1]}", key), 200);
    CHECK_INT(raw(u, NULL, "{not json", key), 400);
    CHECK_INT(raw(u, NULL, "{\"prompts\":[\"a\"],\"images\":[10000]}", key), 400);
    CHECK_INT(raw(u, NULL, "{\"prompts\":[\"a\"],\"images\":[1.5]}", key), 400);
    CHECK_INT(raw(u, NULL, "{\"prompts\":[],\"images\":[1]}", key), 400);
    CHECK_INT(raw(u, NULL, "{\"prompts\":[3],\"images\":[1]}", key), 400);
    char big[6000];
    memset(big, ' ', sizeof big - 1);
    big[sizeof big - 1] = 0;
    big[0] = '{';
    CHECK_INT(raw(u, NULL, big, key), 413);
    CHECK_INT(raw(u, "GET", NULL, key), 405);
    snprintf(u, sizeof u, "%s/v1/nothing", base);
    CHECK_INT(raw(u, NULL, "{}", key), 404);
    /* labels mode through the client */
    BbClient c;
    Err e = {{0}};
    CHECK(bb_client_init(&c, base, "sesame", &e) == 0);
    const int ids[3] = {1, 2, 3};
    int32_t labels[3] = {-1, -1, -1};
    float probs[9];
    int lo = -1;
    CHECK_MSG(bb_classify(&c, PROMPTS, 3, ids, 3, probs, labels, &lo, &e) == 0, "%s", e.msg);
    CHECK(lo == 1 && labels[0] >= 0 && labels[0] < 3);
    long q, n;
    CHECK(bb_stats(&c, &q, &n, &e) == 0 && q == 2); /* the two accepted classify calls */
    bb_client_free(&c);
    bb_server_stop(s);
}

typedef struct {
    const char *url;
    int ok;
} Worker;

static void *hammer(void *arg) {
    Worker *w = arg;
    BbClient c;
    Err e;
    if (bb_client_init(&c, w->url, NULL, &e) != 0) return NULL;
    for (int r = 0; r < 5; r++) {
        int ids[4] = {r, r + 100, r + 200, r + 300}, lo;
        float probs[12];
        int32_t labels[4];
        if (bb_classify(&c, PROMPTS, 3, ids, 4, probs, labels, &lo, &e) == 0) w->ok++;
    }
    bb_client_free(&c);
    return NULL;
}

TEST(server_serves_concurrent_clients) {
    BbServer *s = start(0, NULL);
    if (!s) return;
    char url[64];
    base_url(s, url, sizeof url);
    pthread_t th[4];
    Worker w[4];
    for (int i = 0; i < 4; i++) {
        w[i] = (Worker){url, 0};
        pthread_create(&th[i], NULL, hammer, &w[i]);
    }
    int ok = 0;
    for (int i = 0; i < 4; i++) {
        pthread_join(th[i], NULL);
        ok += w[i].ok;
    }
    CHECK_INT(ok, 20);
    BbClient c;
    Err e;
    long q, n;
    CHECK(bb_client_init(&c, url, NULL, &e) == 0 && bb_stats(&c, &q, &n, &e) == 0 && q == 20);
    bb_client_free(&c);
    bb_server_stop(s);
}

static BbServer *start_opts(ServerOpts o) { return tiny_server(o, NULL, 0); }

#include <glib.h>

#include "io/image.h"
#include "models/clip_train.h"

TEST(server_population_requests_contexts_and_uploaded_images) {
    BbServer *s = start_opts((ServerOpts){0}), *nc = start_opts((ServerOpts){.no_prefix_cache = 1});
    BbServer *loose = start_opts((ServerOpts){.allow_embeddings = 1});
    if (!s || !nc || !loose) return;
    char url[64], url_nc[64], url_loose[64];
    base_url(s, url, sizeof url);
    base_url(nc, url_nc, sizeof url_nc);
    base_url(loose, url_loose, sizeof url_loose);
    BbClient c, cn, cl;
    Err e = {{0}};
    CHECK(bb_client_init(&c, url, NULL, &e) == 0 && bb_client_init(&cn, url_nc, NULL, &e) == 0 &&
          bb_client_init(&cl, url_loose, NULL, &e) == 0);
    /* three prompt sets in one request = three single requests, with and without the prefix cache */
    const char *sets[9] = {"a photo of a t-shirt.",       "a photo of a bag.",       "a photo of a sneaker.",
                           "a photo of a t-shirt river.", "a photo of a bag river.", "a photo of a sneaker river.",
                           "a photo of a t-shirt stone.", "a photo of a bag stone.", "a photo of a sneaker stone."};
    const int ids[4] = {3, 5, 8, 13};
    float pop[3 * 4 * 3], one[4 * 3], nocache[3 * 4 * 3];
    int32_t lab[12];
    int lo;
    CHECK_MSG(bb_classify_sets(&c, sets, 3, 3, NULL, 0, 0, ids, 4, pop, lab, &lo, &e) == 0, "%s", e.msg);
    CHECK_MSG(bb_classify_sets(&cn, sets, 3, 3, NULL, 0, 0, ids, 4, nocache, lab, &lo, &e) == 0, "%s", e.msg);
    CHECK_CLOSE(pop, nocache, 36, 1e-5, 1e-4);
    for (int q = 0; q < 3; q++) {
        CHECK(bb_classify(&c, sets + 3 * q, 3, ids, 4, one, lab, &lo, &e) == 0);
        CHECK_CLOSE(one, pop + q * 12, 12, 1e-6, 1e-5);
    }
    long queries, n;
    CHECK(bb_stats(&c, &queries, &n, &e) == 0);
    CHECK_INT(queries, 6); /* a set is a query, however it is sent */
    /* contexts: refused by a strict server, answered by a loose one like the in-process tower */
    int W = 0;
    float *mean = NULL, sd = 0;
    CHECK(bb_embedding_space(&c, &W, &mean, &sd, &e) != 0 && strstr(e.msg, "--allow-embeddings"));
    CHECK_MSG(bb_embedding_space(&cl, &W, &mean, &sd, &e) == 0, "%s", e.msg);
    CHECK(W > 0 && sd > 0);
    const int M = 2;
    float *ctx = xalloc_floats((size_t)2 * M * W);
    for (int i = 0; i < 2 * M * W; i++) ctx[i] = mean[i % W] + sd * (float)((i * 7) % 11 - 5) / 5.0f;
    float cp[2 * 4 * 3];
    CHECK(bb_classify_sets(&c, sets, 1, 3, ctx, M, W, ids, 4, cp, lab, &lo, &e) != 0 && strstr(e.msg, "403"));
    CHECK_MSG(bb_classify_sets(&cl, sets, 2, 3, ctx, M, W, ids, 4, cp, lab, &lo, &e) == 0, "%s", e.msg);
    ClipModel m;
    Tokenizer t;
    Dataset d;
    CHECK_MSG(tiny_in_process(&m, &t, &d, &e) == 0, "%s", e.msg);
    const int E = m.cfg.embed_dim, R = m.cfg.image_res;
    int32_t tok[6 * 77];
    float *cx = xalloc_floats((size_t)6 * M * W), *tf = xalloc_floats((size_t)6 * E), *imf = xalloc_floats((size_t)4 * E);
    for (int i = 0; i < 6; i++) {
        int32_t *row = tok + i * 77;
        int len = tokenizer_tokenize(&t, sets[i], 77, row, &e);
        memmove(row + 1 + M, row + 1, sizeof(int32_t) * (size_t)(len - 1));
        row[1] = row[2] = 0;
        memcpy(cx + (size_t)i * M * W, ctx + (size_t)(i / 3) * M * W, sizeof(float) * (size_t)M * W);
    }
    TowerActs a;
    CHECK(text_acts_init(&a, &m, tok, 6, 0, &e) == 0);
    a.ctx = cx, a.n_ctx = M;
    text_forward(&m, &a, tf, NULL);
    tower_acts_free(&a);
    float *px = xalloc_floats((size_t)4 * 3 * R * R), logits[12], want[24];
    dataset_pixels(&d, ids, 4, R, &PIXELS_CLIP, px, NULL, 0);
    CHECK(clip_encode_image(&m, px, 4, imf, NULL, &e) == 0);
    for (int q = 0; q < 2; q++) {
        clip_logits(&m, imf, 4, tf + (size_t)q * 3 * E, 3, logits);
        softmax_forward(want + q * 12, logits, 4, 3);
    }
    CHECK_CLOSE(cp, want, 24, 1e-5, 1e-4);
    /* an uploaded PNG of image 17 is scored as id 17 is */
    char png[600];
    snprintf(png, sizeof png, "%s/fmnist17.png", scratch_dir());
    Image8 im = {.w = d.w, .h = d.h, .channels = d.channels, .px = (uint8_t *)dataset_image(&d, 17)};
    CHECK(image_save_png(&im, png, &e) == 0);
    size_t plen = 0;
    unsigned char *bytes = read_whole(png, &plen);
    gchar *b64 = g_base64_encode(bytes, plen);
    char *body = xmalloc(strlen(b64) + 256);
    sprintf(body, "{\"prompts\":[\"%s\",\"%s\",\"%s\"],\"images_b64\":[\"%s\"]}", sets[0], sets[1], sets[2], b64);
    char u[128];
    snprintf(u, sizeof u, "%s/v1/classify", url);
    char *rep = NULL;
    CHECK_INT(raw_reply(u, body, &rep), 200);
    const int id17 = 17;
    CHECK(bb_classify(&c, sets, 3, &id17, 1, one, lab, &lo, &e) == 0);
    float up[3] = {-1, -1, -1};
    CHECK(rep && sscanf(rep, "{\"probs\":[[%f,%f,%f]]}", &up[0], &up[1], &up[2]) == 3);
    CHECK_CLOSE(up, one, 3, 1e-6, 1e-5);
    free(rep);
    sprintf(body, "{\"prompts\":[\"a\"],\"images_b64\":[\"%s\"]}", "bm90IGFuIGltYWdl"); /* "not an image" */
    CHECK_INT(raw(u, NULL, body, NULL), 400);
    sprintf(body, "{\"prompts\":[\"a\"],\"images_b64\":[\"%s\"]}", "!!!!");
    CHECK_INT(raw(u, NULL, body, NULL), 400);
    g_free(b64), free(bytes), free(body);
    dataset_free(&d), tokenizer_free(&t), clip_free(&m);
    free(ctx), free(cx), free(tf), free(imf), free(px), free(mean);
    bb_client_free(&c), bb_client_free(&cn), bb_client_free(&cl);
    bb_server_stop(s), bb_server_stop(nc), bb_server_stop(loose);
}
