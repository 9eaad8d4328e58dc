/* The load test on loopback: 8 concurrent clients send 2,000 requests in the test suite
 * (`make bench-load` sends 10,000; FORGET_LOAD_REQUESTS sets any count), a quarter of them bad in
 * every way issue 10 found a hole: bad JSON, trailing garbage, a raw NUL in a string, wrong types,
 * unknown ids, 10 MB bodies, replies over the value limit, prompts over the token limit, and
 * contexts sent to a strict server. Good requests alternate between a plain prompt list and one
 * prompt set (whose reply must be {"results": [...]}). Every good one is answered 200 with the
 * right shape, every bad one 4xx, the server keeps running, and its query and rejection counts are
 * exact. Under ASan/UBSan this is also the no-crash, no-leak check. */
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
    const char *big, *values, *tokens; /* 10 MB; over the value limit; over the token limit */
    int first, count;
    long good_ok, bad_4xx, wrong;
} Loader;

enum { KINDS = 9 };

/* Request r's body (bad ones cycle through the kinds) into body; *len = -1 for a C string. */
static const char *make_body(const Loader *w, int r, int bad, char *body, size_t cap, long *len) {
    *len = -1;
    if (!bad) {
        if (r % 2)
            snprintf(body, cap, "{\"prompts\":[\"a photo of a t-shirt.\",\"a photo of a bag.\"],\"images\":[%d,%d]}", r % 10000,
                     (r * 7) % 10000);
        else
            snprintf(body, cap, "{\"prompt_sets\":[[\"a photo of a t-shirt.\",\"a photo of a bag.\"]],\"images\":[%d]}", r % 10000);
        return body;
    }
    switch ((r / 4) % KINDS) {
    case 0: snprintf(body, cap, "{\"prompts\":[\"a photo\",\"images\":[1,2]"); break;
    case 1: snprintf(body, cap, "{\"prompts\":[\"a\",\"b\"],\"images\":[1]}trailing garbage"); break;
    case 2: memcpy(body, "{\"prompts\":[\"a\0b\",\"c\"],\"images\":[1]}", 37), *len = 36; break;
    case 3: snprintf(body, cap, "{\"prompts\":\"a photo of a bag.\",\"images\":[\"one\"]}"); break;
    case 4: snprintf(body, cap, "{\"prompts\":[\"a\",\"b\"],\"images\":[%d]}", 10000 + r); break;
    case 5: *len = 10L << 20; return w->big;
    case 6: return w->values;  /* 4 sets x 2 prompts x 200 images, over a limit of 1000 values */
    case 7: return w->tokens;  /* 2 prompts of 77 tokens, over a limit of 100 positions */
    default: snprintf(body, cap, "{\"prompts\":[\"a\"],\"images\":[1],\"contexts\":[[0.5]]}"); break;
    }
    return body;
}

static void *load(void *arg) {
    Loader *w = arg;
    CURL *h = curl_easy_init();
    char body[256];
    ReplyBuf g = {0};
    for (int r = w->first; r < w->first + w->count; r++) {
        const int bad = r % 4 == 3;
        long len;
        const char *send = make_body(w, r, bad, body, sizeof body, &len);
        curl_easy_reset(h);
        g.len = 0;
        curl_easy_setopt(h, CURLOPT_URL, w->url);
        curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, reply_collect);
        curl_easy_setopt(h, CURLOPT_WRITEDATA, &g);
        curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
        curl_easy_setopt(h, CURLOPT_POSTFIELDS, send);
        if (len >= 0) curl_easy_setopt(h, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)len);
        long status = 0;
        if (curl_easy_perform(h) == CURLE_OK) curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &status);
        const int shape_ok = g.buf && (r % 2 ? strncmp(g.buf, "{\"probs\":", 9) == 0 : strncmp(g.buf, "{\"results\":[{", 13) == 0);
        if (!bad && status == 200 && shape_ok) w->good_ok++;
        else if (bad && status >= 400 && status < 500) w->bad_4xx++;
        else w->wrong++;
    }
    free(g.buf);
    curl_easy_cleanup(h);
    return NULL;
}

TEST(server_load_test_8_clients_a_quarter_bad) {
    BbServer *s = tiny_server((ServerOpts){.max_values = 1000, .max_tokens = 100}, NULL, 0);
    if (!s) return;
    Err e = {{0}};
    char url[96], base[64];
    snprintf(base, sizeof base, "http://127.0.0.1:%d", bb_server_port(s));
    snprintf(url, sizeof url, "%s/v1/classify", base);
    const char *env = getenv("FORGET_LOAD_REQUESTS");
    const int total = env ? atoi(env) : 2000, T = 8;
    char *big = xmalloc(10L << 20);
    memset(big, ' ', 10L << 20);
    big[0] = '{';
    char *values = xmalloc(4096), *tokens = xmalloc(2048);
    size_t n = (size_t)snprintf(values, 4096, "{\"prompt_sets\":[[\"a\",\"b\"],[\"a\",\"b\"],[\"a\",\"b\"],[\"a\",\"b\"]],\"images\":[");
    for (int i = 0; i < 200; i++) n += (size_t)snprintf(values + n, 4096 - n, "%s%d", i ? "," : "", i);
    snprintf(values + n, 4096 - n, "]}");
    n = (size_t)snprintf(tokens, 2048, "{\"prompts\":[");
    for (int p = 0; p < 2; p++) {
        n += (size_t)snprintf(tokens + n, 2048 - n, "%s\"", p ? "," : "");
        for (int k = 0; k < 80; k++) n += (size_t)snprintf(tokens + n, 2048 - n, "w ");
        n += (size_t)snprintf(tokens + n, 2048 - n, "\"");
    }
    snprintf(tokens + n, 2048 - n, "],\"images\":[1]}");
    Loader w[8];
    pthread_t th[8];
    for (int i = 0; i < T; i++) {
        const int first = (int)((long)total * i / T), next = (int)((long)total * (i + 1) / T);
        w[i] = (Loader){url, big, values, tokens, first, next - first, 0, 0, 0};
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
    long q = -1, split;
    CHECK(bb_client_init(&c, base, NULL, &e) == 0 && bb_stats(&c, &q, &split, &e) == 0);
    CHECK_INT(q, total - want_bad); /* exact: one query per accepted request, none for rejected ones */
    bb_client_free(&c);
    free(big), free(values), free(tokens);
    bb_server_stop(s);
}
