/* libFuzzer target: the HTTP layer (serve/http.c over libmicrohttpd) fed raw bytes on a loopback
 * socket: request lines, headers, chunked and declared bodies, whatever a client can send. One
 * server is started once with small limits (4 KB bodies, a 1 s deadline) and a handler that
 * echoes the body's length; each input is sent on a fresh connection, the write side shut, and
 * the reply read until the server closes. The server must never crash, leak or hang; every
 * reply it sends must be HTTP. */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "serve/http.h"

static char *echo(void *ctx, const char *body, size_t len, unsigned *status) {
    (void)ctx, (void)body;
    char msg[64];
    snprintf(msg, sizeof msg, "{\"bytes\":%zu}", len);
    *status = 200;
    return xstrdup(msg);
}

static const HttpRoute ROUTES[] = {{"POST", "/v1/classify", echo}, {"GET", "/v1/stats", echo}};
static HttpServer *server;
static int port;

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (!server) {
        Err e = {{0}};
        HttpOpts o = {.max_body = 4096, .request_timeout_s = 1, .api_key = NULL};
        server = http_start(&o, ROUTES, 2, NULL, &e);
        if (!server) {
            fprintf(stderr, "%s\n", e.msg);
            abort();
        }
        port = http_port(server);
    }
    if (size > 1 << 14) return 0;
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    inet_pton(AF_INET, "127.0.0.1", &a.sin_addr);
    if (connect(fd, (struct sockaddr *)&a, sizeof a) != 0) abort(); /* the server must keep listening */
    size_t sent = 0;
    while (sent < size) {
        ssize_t n = send(fd, data + sent, size - sent, MSG_NOSIGNAL);
        if (n <= 0) break; /* the server may close early on a bad request: fine */
        sent += (size_t)n;
    }
    shutdown(fd, SHUT_WR);
    char buf[4096];
    size_t got = 0;
    char head[5] = {0};
    for (;;) { /* read to the server's close; the deadline bounds how long that can take */
        struct pollfd p = {.fd = fd, .events = POLLIN};
        if (poll(&p, 1, 3000) <= 0) abort(); /* a hang: the server neither answered nor closed */
        ssize_t n = recv(fd, buf, sizeof buf, 0);
        if (n <= 0) break;
        for (ssize_t i = 0; i < n && got + (size_t)i < 4; i++) head[got + (size_t)i] = buf[i];
        got += (size_t)n;
    }
    close(fd);
    if (got >= 4 && memcmp(head, "HTTP", 4) != 0) abort(); /* whatever comes back is HTTP */
    return 0;
}
