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
#include "test.h"

static const char *PROMPTS[3] = {"a photo of a t-shirt.", "a photo of a bag.", "a photo of a sneaker."};

static BbServer *start(int labels, const char *key) {
    char model[1024];
    snprintf(model, sizeof model, "%s/tiny/model.safetensors", ref_dir());
    ServerOpts o = {.model = model, .dataset = "fmnist:test", .reveal_labels = labels, .api_key = key, .max_body = 4096};
    Err e = {{0}};
    BbServer *s = bb_server_start(&o, &e);
    if (!s) test_fail(__FILE__, __LINE__, "%s", e.msg);
    return s;
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
    char model[1024];
    snprintf(model, sizeof model, "%s/tiny/model.safetensors", ref_dir());
    ClipModel m;
    Tokenizer t;
    Dataset d;
    CHECK(clip_load(&m, model, NULL, &e) == 0 && tokenizer_init(&t, &e) == 0 && dataset_load_named(&d, "fmnist:test", NULL, &e) == 0);
    float tf[3 * 32], imf[2 * 32], px[2 * 3 * 32 * 32], logits[6], want[6];
    CHECK(clip_encode_texts(&m, &t, PROMPTS, 3, tf, &e) == 0);
    dataset_pixels(&d, ids, 2, 32, px, NULL, 0);
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
