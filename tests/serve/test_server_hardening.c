/* Issue 10's holes in the API server and its client, each as its repro: lenient JSON, the reply
 * shape of one prompt set, slow senders, too many connections, non-finite output, amplification,
 * head-of-line blocking, and a hostile server feeding the client. Loopback only, bounded. */
#include <arpa/inet.h>
#include <cjson/cJSON.h>
#include <curl/curl.h>
#include <errno.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include "core/threads.h"
#include "serve/client.h"
#include "serve/fixture.h"
#include "serve/http.h"
#include "serve/server.h"
#include "test.h"

static long post_str(const char *url, const char *body, char **reply) { return http_post(url, body, strlen(body), reply); }

TEST(server_hardening_strict_json_and_reply_shape) {
    char base[64], url[96];
    BbServer *s = tiny_server((ServerOpts){0}, base, sizeof base);
    if (!s) return;
    snprintf(url, sizeof url, "%s/v1/classify", base);
    char *r = NULL;
    /* trailing garbage: before, 200 */
    CHECK_INT(post_str(url, "{\"prompts\":[\"a\",\"b\"],\"images\":[1]}trailing garbage", &r), 400);
    CHECK_MSG(r && strstr(r, "byte 34: unexpected data after the JSON value"), "got: %s", r);
    free(r);
    CHECK_INT(post_str(url, "{\"prompts\":[\"a\",\"b\"],\"images\":[1]}  \n", NULL), 200); /* white space is fine */
    /* a raw NUL inside a string: before, 200 with the prompt silently cut */
    const char nul[] = "{\"prompts\":[\"a\0b\",\"c\"],\"images\":[1]}";
    CHECK_INT(http_post(url, nul, sizeof nul - 1, &r), 400);
    CHECK_MSG(r && strstr(r, "byte 14: raw control character 0x00 inside a string"), "got: %s", r);
    free(r);
    CHECK_INT(post_str(url, "{\"prompts\":[\"a\\u0000b\",\"c\"],\"images\":[1]}", NULL), 400);
    CHECK_INT(post_str(url, "{\"prompts\":[\"a\xff\",\"c\"],\"images\":[1]}", &r), 400);
    CHECK_MSG(r && strstr(r, "not valid UTF-8"), "got: %s", r);
    free(r);
    /* one prompt set answers {"results": [...]}, as any number of sets does: before, {"probs": ...} */
    CHECK_INT(post_str(url, "{\"prompt_sets\":[[\"a\",\"b\"]],\"images\":[1,2]}", &r), 200);
    cJSON *j = r ? cJSON_Parse(r) : NULL;
    const cJSON *res = cJSON_GetObjectItem(j, "results");
    CHECK_MSG(cJSON_IsArray(res) && cJSON_GetArraySize(res) == 1 && !cJSON_GetObjectItem(j, "probs"), "got: %s", r);
    cJSON_Delete(j);
    free(r);
    bb_server_stop(s);
}

/* A raw connection to 127.0.0.1:port, or -1. */
static int connect_to(int port) {
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    inet_pton(AF_INET, "127.0.0.1", &a.sin_addr);
    if (connect(fd, (struct sockaddr *)&a, sizeof a) != 0) {
        close(fd);
        return -1;
    }
    struct timeval tv = {.tv_sec = 0, .tv_usec = 200000};
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    return fd;
}

/* Whether the server closed fd (a read of 0 bytes, or a reset) within the next 200 ms. */
static int closed_by_server(int fd) {
    char c[256];
    ssize_t n = recv(fd, c, sizeof c, 0);
    return n == 0 || (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK);
}

TEST(server_hardening_slow_senders_and_connection_limits) {
    BbServer *s = tiny_server((ServerOpts){.request_timeout_s = 2, .max_per_client = 4}, NULL, 0);
    if (!s) return;
    const int port = bb_server_port(s);
    /* one header line every 0.5 s: before, kept open indefinitely */
    int fd = connect_to(port);
    CHECK(fd >= 0);
    const char *first = "POST /v1/classify HTTP/1.1\r\nHost: x\r\n";
    CHECK(send(fd, first, strlen(first), MSG_NOSIGNAL) > 0);
    double t0 = now_seconds(), closed_at = -1;
    for (int i = 0; i < 20 && closed_at < 0; i++) {
        char line[64];
        snprintf(line, sizeof line, "X-Slow-%d: 1\r\n", i);
        if (send(fd, line, strlen(line), MSG_NOSIGNAL) < 0 || closed_by_server(fd)) closed_at = now_seconds() - t0;
        else usleep(300000);
    }
    close(fd);
    CHECK_MSG(closed_at > 1.5 && closed_at < 4.0, "a slow sender was cut after %.2f s (limit 2 s)", closed_at);
    /* more than max_per_client connections from one address: the extra ones are refused */
    int fds[6], refused = 0;
    for (int i = 0; i < 6; i++) fds[i] = connect_to(port);
    usleep(100000);
    for (int i = 0; i < 6; i++) {
        if (fds[i] < 0 || closed_by_server(fds[i])) refused++;
        if (fds[i] >= 0) close(fds[i]);
    }
    CHECK_MSG(refused == 2, "%d of 6 connections refused with a limit of 4 per client", refused);
    /* the server still answers */
    BbClient c;
    Err e = {{0}};
    char base[64];
    snprintf(base, sizeof base, "http://127.0.0.1:%d", port);
    long q, n;
    CHECK(bb_client_init(&c, base, NULL, &e) == 0 && bb_stats(&c, &q, &n, &e) == 0);
    bb_client_free(&c);
    bb_server_stop(s);
}

TEST(server_hardening_nonfinite_and_amplification_are_4xx) {
    char base[64], url[96];
    BbServer *s = tiny_server((ServerOpts){.allow_embeddings = 1}, base, sizeof base);
    if (!s) return;
    snprintf(url, sizeof url, "%s/v1/classify", base);
    BbClient c;
    Err e = {{0}};
    int W = 0;
    float *mean = NULL, sd;
    CHECK(bb_client_init(&c, base, NULL, &e) == 0 && bb_embedding_space(&c, &W, &mean, &sd, &e) == 0);
    /* contexts of 3e38: before, 200 with -nan in the JSON */
    size_t cap = (size_t)W * 16 + 128;
    char *body = xmalloc(cap), *r = NULL;
    size_t n = (size_t)snprintf(body, cap, "{\"prompts\":[\"a\",\"b\"],\"images\":[1],\"contexts\":[[");
    for (int k = 0; k < W; k++) n += (size_t)snprintf(body + n, cap - n, "%s3e38", k ? "," : "");
    snprintf(body + n, cap - n, "]]}");
    CHECK_INT(post_str(url, body, &r), 422);
    CHECK_MSG(r && strstr(r, "not finite") && !strstr(r, "nan"), "got: %s", r);
    free(r);
    snprintf(body, cap, "{\"prompts\":[\"a\"],\"images\":[1],\"contexts\":[[1e39]]}");
    CHECK_INT(post_str(url, body, NULL), 400);
    free(body);
    /* 4,096 sets x 2 prompts x 4,096 ids in 216 KB: before, a 441 MB reply */
    const int S = 4096, N = 4096;
    cap = (size_t)S * 20 + (size_t)N * 8 + 64;
    body = xmalloc(cap);
    n = (size_t)snprintf(body, cap, "{\"prompt_sets\":[");
    for (int q = 0; q < S; q++) n += (size_t)snprintf(body + n, cap - n, "%s[\"a\",\"b\"]", q ? "," : "");
    n += (size_t)snprintf(body + n, cap - n, "],\"images\":[");
    for (int i = 0; i < N; i++) n += (size_t)snprintf(body + n, cap - n, "%s%d", i ? "," : "", i);
    snprintf(body + n, cap - n, "]}");
    double t0 = now_seconds();
    CHECK_INT(post_str(url, body, &r), 413);
    CHECK_MSG(r && strstr(r, "the reply would hold 33554432 values"), "got: %s", r);
    CHECK(now_seconds() - t0 < 2);
    free(r), free(body), free(mean);
    long q, nn;
    CHECK(bb_stats(&c, &q, &nn, &e) == 0 && q == 0); /* refused requests are not queries */
    bb_client_free(&c);
    bb_server_stop(s);
}

typedef struct {
    const char *url, *body;
    int rounds;
    long status;
} Big;

static void *send_big(void *arg) {
    Big *b = arg;
    for (int i = 0; i < b->rounds; i++) b->status = post_str(b->url, b->body, NULL);
    return NULL;
}

static int cmp_d(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

TEST(server_hardening_small_requests_are_not_stalled_by_a_large_one) {
    char base[64], url[96];
    /* a small slice, so the tiny model's work is sliced as a real model's would be at 10 GFLOP;
     * FORGET_LATENCY_MODEL=FILE measures a real model instead, with the default slice */
    const char *real = getenv("FORGET_LATENCY_MODEL");
    Err se = {{0}};
    BbServer *s = real ? bb_server_start(&(ServerOpts){.model = real, .dataset = "fmnist:test"}, &se)
                       : tiny_server((ServerOpts){.max_slice_gflop = 0.05}, base, sizeof base);
    if (real && s) snprintf(base, sizeof base, "http://127.0.0.1:%d", bb_server_port(s));
    CHECK_MSG(s != NULL, "%s", se.msg);
    if (!s) return;
    snprintf(url, sizeof url, "%s/v1/classify", base);
    /* the largest request allowed: 8,192 distinct prompts (the prompt limit) of 8 to 12 tokens */
    const int P = 8192;
    size_t cap = (size_t)P * 64 + 64, n;
    char *body = xmalloc(cap);
    n = (size_t)snprintf(body, cap, "{\"prompts\":[");
    for (int i = 0; i < P; i++) n += (size_t)snprintf(body + n, cap - n, "%s\"w%d a b c d e\"", i ? "," : "", i);
    snprintf(body + n, cap - n, "],\"images\":[1,2,3,4]}");
    Big big = {url, body, 1, 0};
    double t0 = now_seconds();
    CHECK_INT(post_str(url, body, NULL), 200); /* how long the large request takes alone */
    const double alone = now_seconds() - t0;
    big.rounds = 1;
    pthread_t th;
    pthread_create(&th, NULL, send_big, &big);
    usleep(20000);
    double lat[400];
    int k = 0;
    for (; k < 400; k++) {
        double a = now_seconds();
        CHECK_INT(post_str(url, "{\"prompts\":[\"a photo of a bag.\",\"a photo of a shirt.\"],\"images\":[5,6]}", NULL), 200);
        lat[k] = now_seconds() - a;
        if (now_seconds() - t0 > alone * 3 + 1 || (real && big.status)) break;
    }
    pthread_join(th, NULL);
    CHECK_INT(big.status, 200);
    const int m = k < 400 ? k + 1 : 400;
    qsort(lat, (size_t)m, sizeof *lat, cmp_d);
    const double p99 = lat[(int)(0.99 * (m - 1))];
    CHECK_MSG(p99 < 0.2, "small request p99 %.3f s while a large one (%.2f s alone) ran", p99, alone);
    fprintf(stdout, "      (large request alone %.2f s; %d small requests meanwhile, p50 %.4f s, p99 %.4f s)\n", alone, m,
            lat[m / 2], p99);
    free(body);
    bb_server_stop(s);
}

/* A hostile server: answers every path with the text its test sets. */
static const char *hostile_reply;
static char *hostile(void *ctx, const char *body, size_t len, unsigned *status) {
    (void)ctx, (void)body, (void)len;
    *status = 200;
    return xstrdup(hostile_reply);
}

TEST(server_hardening_client_trusts_nothing_the_server_says) {
    static const HttpRoute routes[] = {{"GET", "/v1/dataset", hostile}, {"POST", "/v1/classify", hostile}, {"GET", "/v1/stats", hostile}};
    Err e = {{0}};
    HttpServer *h = http_start(&(HttpOpts){0}, routes, 3, NULL, &e);
    CHECK_MSG(h != NULL, "%s", e.msg);
    if (!h) return;
    char base[64];
    snprintf(base, sizeof base, "http://127.0.0.1:%d", http_port(h));
    BbClient c;
    CHECK(bb_client_init(&c, base, NULL, &e) == 0);
    char **cls;
    int nc, n;
    int32_t *lab;
    /* an out-of-range label: before, a heap-buffer-overflow read in forget_score */
    hostile_reply = "{\"classes\":[\"a\",\"b\"],\"labels\":[0,1,7]}";
    CHECK(bb_dataset(&c, &cls, &nc, &lab, &n, &e) != 0);
    CHECK_MSG(strstr(e.msg, "labels[2] is not a class index in 0..1"), "%s", e.msg);
    hostile_reply = "{\"classes\":[\"a\",\"b\"],\"labels\":[0,1.5]}";
    CHECK(bb_dataset(&c, &cls, &nc, &lab, &n, &e) != 0);
    const char *prompts[2] = {"a", "b"};
    const int ids[2] = {0, 1};
    float probs[4];
    int32_t labels[2];
    int lo;
    static const char *bad[] = {
        "{\"probs\":[[\"x\",1],[0.5,0.5]]}",   /* non-numeric: before, read as 0 */
        "{\"probs\":[[0.5,0.5]]}",            /* too few rows */
        "{\"probs\":[[0.9,0.9],[0.5,0.5]]}",  /* not a distribution */
        "{\"probs\":[[-0.5,1.5],[0.5,0.5]]}", /* out of [0, 1] */
        "{\"labels\":[0,2]}",                 /* a label past the prompts */
        "{\"probs\":[[0.5,0.5],[0.5,0.5]]} x", /* not strict JSON */
    };
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        hostile_reply = bad[i];
        CHECK_MSG(bb_classify(&c, prompts, 2, ids, 2, probs, labels, &lo, &e) != 0, "accepted %s", bad[i]);
    }
    hostile_reply = "{\"probs\":[[0.25,0.75],[0.5,0.5]]}";
    CHECK_MSG(bb_classify(&c, prompts, 2, ids, 2, probs, labels, &lo, &e) == 0, "%s", e.msg);
    hostile_reply = "{\"queries\":-3,\"split_size\":10}";
    long q, sz;
    CHECK(bb_stats(&c, &q, &sz, &e) != 0);
    bb_client_free(&c);
    http_stop(h);
}
