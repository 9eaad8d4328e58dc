/* The HTTP layer every forget endpoint sits on (libmicrohttpd, one thread per connection):
 * routing by method and path, the request body collected within a size limit, the API key,
 * JSON replies, and the guarantees a hostile client cannot break:
 *  - a request (headers and body) must arrive complete within request_timeout seconds of the
 *    connection opening or of the previous reply; slow senders are cut off (a watchdog shuts
 *    their socket), and so are keep-alive connections left idle that long;
 *  - at most max_per_client connections per client address and max_connections in all;
 *  - a declared oversize body is refused before it is sent (413);
 *  - every reply is JSON, every failure a 4xx with {"error": "..."}, counted.
 * Handlers get the body and return the reply text; they run concurrently and do their own
 * locking. */
#ifndef FORGET_HTTP_H
#define FORGET_HTTP_H

#include <stddef.h>

#include "core/err.h"

/* The reply's JSON text (malloc'd) and its status. body is NUL-terminated (len bytes). */
typedef char *(*HttpHandler)(void *ctx, const char *body, size_t len, unsigned *status);

typedef struct {
    const char *method, *path;
    HttpHandler fn;
} HttpRoute;

typedef struct {
    const char *bind;        /* IPv4 address; default 127.0.0.1 */
    int port;                /* 0: any free port */
    const char *api_key;     /* NULL: none required (header X-API-Key) */
    long max_body;           /* bytes; default 1 MiB */
    int request_timeout_s;   /* default 10 */
    int max_connections;     /* default 128 */
    int max_per_client;      /* default 32 */
} HttpOpts;

typedef struct HttpServer HttpServer;

/* routes and ctx must outlive the server. */
HttpServer *http_start(const HttpOpts *o, const HttpRoute *routes, int n_routes, void *ctx, Err *e);
int http_port(const HttpServer *h);
/* Replies of status >= 400 so far (HTTP-level and handlers'), and connections cut for being slow. */
long http_rejected(const HttpServer *h);
long http_timeouts(const HttpServer *h);
void http_stop(HttpServer *h);
/* {"error": msg} as reply text (malloc'd), for handlers. */
char *http_error_json(const char *msg);

#endif
