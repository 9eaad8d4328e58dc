/* The load test on loopback: 8 concurrent clients send 10,000 requests (set
 * FORGET_LOAD_REQUESTS to change), a quarter of them malformed in four ways (bad JSON, wrong
 * types, unknown ids, 10 MB bodies). Every good one is answered 200, every bad one 4xx, the
 * server keeps running, and its query and rejection counts are exact. Under ASan/UBSan this is
 * also the no-crash, no-leak check. */
#include <curl/curl.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "core/err.h"
#include "serve/client.h"
#include "serve/server.h"
#include "serve/fixture.h"
#include "test.h"

typedef struct {
    const char *url;
    const char *big; /* 10 MB */
    int first, count;
    long good_ok, bad_4xx, wrong;
} Loader;

static size_t discard(char *p, size_t a, size_t b, void *u) {
    (void)p, (void)u;
    return a * b;
}

static void *load(void *arg) {
    Loader *w = arg;
    CURL *h = curl_easy_init();
    char body[256];
    for (int r = w->first; r < w->first + w->count; r++) {
        const int bad = r % 4 == 3, kind = (r / 4) % 4;
        const char *send = body;
        long len = -1;
        if (!bad) {
            snprintf(body, sizeof body, "{\"prompts\":[\"a photo of a t-shirt.\",\"a photo of a bag.\"],\"images\":[%d,%d]}",
                     r % 10000, (r * 7) % 10000);
        } else if (kind == 0) {
            snprintf(body, sizeof body, "{\"prompts\":[\"a photo\",\"images\":[1,2]");
        } else if (kind == 1) {
            snprintf(body, sizeof body, "{\"prompts\":\"a photo of a bag.\",\"images\":[\"one\"]}");
        } else if (kind == 2) {
            snprintf(body, sizeof body, "{\"prompts\":[\"a\",\"b\"],\"images\":[%d]}", 10000 + r);
        } else {
            send = w->big, len = 10L << 20;
        }
        curl_easy_reset(h);
        curl_easy_setopt(h, CURLOPT_URL, w->url);
        curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, discard);
        curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
        curl_easy_setopt(h, CURLOPT_POSTFIELDS, send);
        if (len >= 0) curl_easy_setopt(h, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)len);
        long status = 0;
        if (curl_easy_perform(h) == CURLE_OK) curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &status);
        if (!bad && status == 200) w->good_ok++;
        else if (bad && status >= 400 && status < 500) w->bad_4xx++;
        else w->wrong++;
    }
    curl_easy_cleanup(h);
    return NULL;
}

TEST(server_load_test_10000_requests_8_clients) {
    BbServer *s = tiny_server((ServerOpts){0}, NULL, 0);
    if (!s) return;
    Err e = {{0}};
    char url[96], base[64];
    snprintf(base, sizeof base, "http://127.0.0.1:%d", bb_server_port(s));
    snprintf(url, sizeof url, "%s/v1/classify", base);
    const char *env = getenv("FORGET_LOAD_REQUESTS");
    const int total = env ? atoi(env) : 10000, T = 8;
    char *big = xmalloc(10L << 20);
    memset(big, ' ', 10L << 20);
    big[0] = '{';
    Loader w[8];
    pthread_t th[8];
    for (int i = 0; i < T; i++) {
        const int first = (int)((long)total * i / T), next = (int)((long)total * (i + 1) / T);
        w[i] = (Loader){url, big, first, next - first, 0, 0, 0};
        pthread_create(&th[i], NULL, load, &w[i]);
    }
    long good = 0, bad = 0, wrong = 0;
    for (int i = 0; i < T; i++) {
        pthread_join(th[i], NULL);
        good += w[i].good_ok, bad += w[i].bad_4xx, wrong += w[i].wrong;
    }
    long want_bad = 0;
    for (int r = 0; r < total; r++) want_bad += r % 4 == 3;
    CHECK_INT(wrong, 0);
    CHECK_INT(good, total - want_bad);
    CHECK_INT(bad, want_bad);
    BbClient c;
    long q = -1, n;
    CHECK(bb_client_init(&c, base, NULL, &e) == 0 && bb_stats(&c, &q, &n, &e) == 0);
    CHECK_INT(q, total - want_bad); /* exact: one query per accepted request, none for rejected ones */
    bb_client_free(&c);
    free(big);
    bb_server_stop(s);
}
