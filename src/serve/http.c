#include "serve/http.h"

#include <arpa/inet.h>
#include <cjson/cJSON.h>
#include <microhttpd.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "core/threads.h"

/* One open connection, as the watchdog sees it. */
typedef struct Conn {
    struct Conn *prev, *next;
    int fd;
    int receiving;    /* a request is (or may be) on its way: the deadline runs */
    int cut;          /* already shut down by the watchdog */
    double since;     /* when the current request's deadline started */
} Conn;

struct HttpServer {
    HttpOpts o;
    const HttpRoute *routes;
    int n_routes;
    void *ctx;
    struct MHD_Daemon *d;
    pthread_mutex_t lock; /* conns and counters */
    Conn *conns;
    long rejected, timeouts;
    pthread_t watchdog;
    int stopping, watchdog_started;
    pthread_cond_t wake;
};

typedef struct {
    char *buf;
    size_t len;
    int too_big;
} Body;

char *http_error_json(const char *msg) {
    cJSON *j = cJSON_CreateObject();
    cJSON_AddStringToObject(j, "error", msg);
    char *s = cJSON_PrintUnformatted(j);
    cJSON_Delete(j);
    return s;
}

static void count_rejected(HttpServer *h) {
    pthread_mutex_lock(&h->lock);
    h->rejected++;
    pthread_mutex_unlock(&h->lock);
}

/* Queues JSON text (malloc'd; the response frees it). */
static enum MHD_Result reply_text(HttpServer *h, struct MHD_Connection *c, unsigned status, char *text) {
    if (status >= 400) count_rejected(h);
    struct MHD_Response *r = MHD_create_response_from_buffer(strlen(text), text, MHD_RESPMEM_MUST_FREE);
    MHD_add_response_header(r, "Content-Type", "application/json");
    enum MHD_Result ret = MHD_queue_response(c, status, r);
    MHD_destroy_response(r);
    return ret;
}

static enum MHD_Result fail(HttpServer *h, struct MHD_Connection *c, unsigned status, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
static enum MHD_Result fail(HttpServer *h, struct MHD_Connection *c, unsigned status, const char *fmt, ...) {
    char msg[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    return reply_text(h, c, status, http_error_json(msg));
}

static Conn *conn_of(struct MHD_Connection *c) {
    const union MHD_ConnectionInfo *i = MHD_get_connection_info(c, MHD_CONNECTION_INFO_SOCKET_CONTEXT);
    return i ? i->socket_context : NULL;
}

static void set_receiving(HttpServer *h, struct MHD_Connection *c, int receiving) {
    Conn *k = conn_of(c);
    if (!k) return;
    pthread_mutex_lock(&h->lock);
    k->receiving = receiving;
    k->since = now_seconds();
    pthread_mutex_unlock(&h->lock);
}

static enum MHD_Result handle(void *cls, struct MHD_Connection *c, const char *url, const char *method,
                              const char *version, const char *upload, size_t *upload_size, void **con_cls) {
    (void)version;
    HttpServer *h = cls;
    if (!*con_cls) { /* first call for this request: only the headers so far */
        /* a declared oversize body is refused before it is sent (answering Expect: 100-continue) */
        const char *cl = MHD_lookup_connection_value(c, MHD_HEADER_KIND, MHD_HTTP_HEADER_CONTENT_LENGTH);
        if (cl && strtoll(cl, NULL, 10) > h->o.max_body) {
            set_receiving(h, c, 0);
            return fail(h, c, 413, "request body over %ld bytes", h->o.max_body);
        }
        *con_cls = xcalloc(1, sizeof(Body));
        return MHD_YES;
    }
    Body *body = *con_cls;
    if (*upload_size) { /* a chunk of the body */
        if (body->len + *upload_size > (size_t)h->o.max_body) {
            body->too_big = 1;
        } else {
            body->buf = xrealloc(body->buf, body->len + *upload_size + 1);
            memcpy(body->buf + body->len, upload, *upload_size);
            body->len += *upload_size;
            body->buf[body->len] = 0;
        }
        *upload_size = 0;
        return MHD_YES;
    }
    set_receiving(h, c, 0); /* the request is complete: the work is not bound by the deadline */
    if (h->o.api_key) {
        const char *k = MHD_lookup_connection_value(c, MHD_HEADER_KIND, "X-API-Key");
        if (!k || strcmp(k, h->o.api_key) != 0) return fail(h, c, 401, "missing or wrong X-API-Key");
    }
    const HttpRoute *route = NULL, *same_path = NULL; /* the route, or one of the path's for a 405 */
    for (int i = 0; i < h->n_routes && !route; i++)
        if (strcmp(url, h->routes[i].path) == 0) {
            if (!same_path) same_path = &h->routes[i];
            if (strcmp(method, h->routes[i].method) == 0) route = &h->routes[i];
        }
    if (!same_path) return fail(h, c, 404, "no such endpoint: %.200s", url);
    if (!route) return fail(h, c, 405, "%s takes %s", url, same_path->method);
    if (body->too_big) return fail(h, c, 413, "request body over %ld bytes", h->o.max_body);
    unsigned status = 500;
    char *text = route->fn(h->ctx, body->buf ? body->buf : "", body->len, &status);
    if (!text) return fail(h, c, 500, "the handler gave no reply");
    return reply_text(h, c, status, text);
}

static void request_done(void *cls, struct MHD_Connection *c, void **con_cls, enum MHD_RequestTerminationCode toe) {
    (void)toe;
    HttpServer *h = cls;
    Body *b = *con_cls;
    if (b) free(b->buf);
    free(b);
    *con_cls = NULL;
    set_receiving(h, c, 1); /* a keep-alive connection: the next request's deadline starts now */
}

static void notify_connection(void *cls, struct MHD_Connection *c, void **socket_context, enum MHD_ConnectionNotificationCode code) {
    HttpServer *h = cls;
    if (code == MHD_CONNECTION_NOTIFY_STARTED) {
        Conn *k = xcalloc(1, sizeof *k);
        const union MHD_ConnectionInfo *i = MHD_get_connection_info(c, MHD_CONNECTION_INFO_CONNECTION_FD);
        k->fd = i ? i->connect_fd : -1;
        k->receiving = 1;
        k->since = now_seconds();
        pthread_mutex_lock(&h->lock);
        k->next = h->conns;
        if (h->conns) h->conns->prev = k;
        h->conns = k;
        pthread_mutex_unlock(&h->lock);
        *socket_context = k;
    } else if (*socket_context) {
        /* MHD closes the socket after this returns; under the lock the watchdog cannot be using it */
        Conn *k = *socket_context;
        pthread_mutex_lock(&h->lock);
        if (k->prev) k->prev->next = k->next;
        else h->conns = k->next;
        if (k->next) k->next->prev = k->prev;
        pthread_mutex_unlock(&h->lock);
        free(k);
        *socket_context = NULL;
    }
}

/* Four times a second: shut the sockets of requests past their deadline (MHD then closes them). */
static void *watchdog(void *arg) {
    HttpServer *h = arg;
    pthread_mutex_lock(&h->lock);
    while (!h->stopping) {
        const double now = now_seconds();
        for (Conn *k = h->conns; k; k = k->next)
            if (k->receiving && !k->cut && k->fd >= 0 && now - k->since > h->o.request_timeout_s) {
                shutdown(k->fd, SHUT_RDWR);
                k->cut = 1;
                h->timeouts++;
            }
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        ts.tv_nsec += 250000000L;
        if (ts.tv_nsec >= 1000000000L) ts.tv_sec++, ts.tv_nsec -= 1000000000L;
        pthread_cond_timedwait(&h->wake, &h->lock, &ts);
    }
    pthread_mutex_unlock(&h->lock);
    return NULL;
}

HttpServer *http_start(const HttpOpts *o, const HttpRoute *routes, int n_routes, void *ctx, Err *e) {
    HttpServer *h = xcalloc(1, sizeof *h);
    h->o = *o;
    if (h->o.max_body <= 0) h->o.max_body = 1 << 20;
    if (h->o.request_timeout_s <= 0) h->o.request_timeout_s = 10;
    if (h->o.max_connections <= 0) h->o.max_connections = 128;
    if (h->o.max_per_client <= 0) h->o.max_per_client = 32;
    h->routes = routes, h->n_routes = n_routes, h->ctx = ctx;
    pthread_mutex_init(&h->lock, NULL);
    pthread_cond_init(&h->wake, NULL);
    struct sockaddr_in addr;
    memset(&addr, 0, sizeof addr);
    addr.sin_family = AF_INET;
    addr.sin_port = htons((uint16_t)o->port);
    const char *bind = o->bind ? o->bind : "127.0.0.1";
    if (inet_pton(AF_INET, bind, &addr.sin_addr) != 1) {
        err_set(e, "cannot listen on \"%s\": not an IPv4 address", bind);
        http_stop(h);
        return NULL;
    }
    h->d = MHD_start_daemon(MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_THREAD_PER_CONNECTION | MHD_USE_ERROR_LOG, 0, NULL,
                            NULL, handle, h, MHD_OPTION_SOCK_ADDR, (struct sockaddr *)&addr,
                            MHD_OPTION_NOTIFY_COMPLETED, request_done, h, MHD_OPTION_NOTIFY_CONNECTION, notify_connection, h,
                            MHD_OPTION_CONNECTION_TIMEOUT, (unsigned)60, MHD_OPTION_CONNECTION_LIMIT,
                            (unsigned)h->o.max_connections, MHD_OPTION_PER_IP_CONNECTION_LIMIT, (unsigned)h->o.max_per_client,
                            MHD_OPTION_END);
    if (!h->d) {
        err_set(e, "cannot listen on %s:%d (in use?)", bind, o->port);
        http_stop(h);
        return NULL;
    }
    if (pthread_create(&h->watchdog, NULL, watchdog, h) != 0) {
        err_set(e, "cannot start the server's watchdog thread");
        http_stop(h);
        return NULL;
    }
    h->watchdog_started = 1;
    return h;
}

int http_port(const HttpServer *h) {
    const union MHD_DaemonInfo *i = MHD_get_daemon_info(h->d, MHD_DAEMON_INFO_BIND_PORT);
    return i ? i->port : -1;
}

long http_rejected(const HttpServer *h) {
    pthread_mutex_lock((pthread_mutex_t *)&h->lock);
    long n = h->rejected;
    pthread_mutex_unlock((pthread_mutex_t *)&h->lock);
    return n;
}

long http_timeouts(const HttpServer *h) {
    pthread_mutex_lock((pthread_mutex_t *)&h->lock);
    long n = h->timeouts;
    pthread_mutex_unlock((pthread_mutex_t *)&h->lock);
    return n;
}

void http_stop(HttpServer *h) {
    if (!h) return;
    if (h->watchdog_started) {
        pthread_mutex_lock(&h->lock);
        h->stopping = 1;
        pthread_cond_signal(&h->wake);
        pthread_mutex_unlock(&h->lock);
        pthread_join(h->watchdog, NULL);
    }
    if (h->d) MHD_stop_daemon(h->d);
    pthread_cond_destroy(&h->wake);
    pthread_mutex_destroy(&h->lock);
    free(h);
}
