#include "net/http.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <h2o.h>
#include <h2o/websocket.h>

#include "core/log.h"
#include "core/util.h"

/*
 * h2o buffers a whole request body before it calls the handler. Bodies up
 * to H2O_BODY_LIMIT reach http.c, which rejects those over HTTP_MAX_BODY
 * with a 413 in MCSManager's envelope. h2o itself rejects larger ones
 * with its own plain-text 413, so one request never buffers more.
 */
#define H2O_BODY_LIMIT (4 * HTTP_MAX_BODY)

/* Interval at which a closing server or WebSocket checks what is left to
 * write. */
#define HTTP_DRAIN_POLL_MS 10

/* A WebSocket whose peer never replies to our close frame is dropped after
 * this long. */
#define HTTP_WS_CLOSE_TIMEOUT_MS 3000

typedef struct http_header {
    char *name;
    char *value;
} http_header_t;

struct http_server {
    uv_loop_t *loop;
    uv_tcp_t listener;
    uv_timer_t drain_timer;
    h2o_globalconf_t config;
    h2o_context_t context;
    h2o_accept_ctx_t accept_ctx;
    http_handler_fn handler;
    void *data;
    int port;
    http_header_t *defaults;
    size_t ndefaults;
    int closing;
};

typedef struct http_handler {
    h2o_handler_t super;
    http_server_t *server;
} http_handler_t;

typedef struct http_param {
    char *name;
    char *value;
} http_param_t;

struct http_request {
    http_server_t *server;
    h2o_req_t *req; /* NULL once h2o has disposed of the request */
    http_request_t **pool_slot;
    char *method;
    char *path;
    char *query_string;
    http_param_t *params;
    size_t nparams;
    int params_parsed;
    char *body;
    size_t body_len;
    char peer[64];
    /* Strings returned by accessors, freed with the request. */
    char **owned;
    size_t nowned;
    void *data;
};

struct http_ws {
    h2o_websocket_conn_t *conn;
    http_ws_callbacks_t cb;
    void *user;
    char peer[64];
    int in_proceed; /* inside h2o's read/write loop: only queue */
    int closing;    /* our close frame is queued */
    int finishing;  /* the final teardown is scheduled */
    int closed;
    uint64_t close_deadline; /* loop time at which a drain stops waiting */
    uv_timer_t *timer;
};

static const char *http__reason(int status)
{
    switch (status) {
    case 101:
        return "Switching Protocols";
    case 200:
        return "OK";
    case 201:
        return "Created";
    case 204:
        return "No Content";
    case 302:
        return "Found";
    case 304:
        return "Not Modified";
    case 400:
        return "Bad Request";
    case 401:
        return "Unauthorized";
    case 403:
        return "Forbidden";
    case 404:
        return "Not Found";
    case 405:
        return "Method Not Allowed";
    case 409:
        return "Conflict";
    case 413:
        return "Payload Too Large";
    case 429:
        return "Too Many Requests";
    case 500:
        return "Internal Server Error";
    case 502:
        return "Bad Gateway";
    case 503:
        return "Service Unavailable";
    case 504:
        return "Gateway Timeout";
    default:
        return "Unknown";
    }
}

static char *http__own(http_request_t *r, char *s)
{
    r->owned = xrealloc(r->owned, (r->nowned + 1) * sizeof(*r->owned));
    r->owned[r->nowned++] = s;
    return s;
}

static int http__hex(int c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

char *http_url_decode(const char *s, size_t len, int plus_space)
{
    char *out = xmalloc(len + 1);
    size_t i, o = 0;

    for (i = 0; i < len; i++) {
        int hi, lo;

        if (s[i] == '%' && i + 2 < len &&
            (hi = http__hex((unsigned char)s[i + 1])) >= 0 &&
            (lo = http__hex((unsigned char)s[i + 2])) >= 0) {
            out[o++] = (char)(hi * 16 + lo);
            i += 2;
        } else if (s[i] == '+' && plus_space) {
            out[o++] = ' ';
        } else {
            out[o++] = s[i];
        }
    }
    out[o] = '\0';
    return out;
}

static void http__parse_params(http_request_t *r)
{
    const char *p = r->query_string;

    r->params_parsed = 1;
    while (*p != '\0') {
        const char *amp = strchr(p, '&');
        size_t len = amp ? (size_t)(amp - p) : strlen(p);
        const char *eq = memchr(p, '=', len);
        size_t nlen = eq ? (size_t)(eq - p) : len;

        if (len > 0) {
            http_param_t *param;

            r->params =
                xrealloc(r->params, (r->nparams + 1) * sizeof(*r->params));
            param = &r->params[r->nparams++];
            param->name = http_url_decode(p, nlen, 1);
            param->value = eq ? http_url_decode(eq + 1, len - nlen - 1, 1)
                              : xstrdup("");
        }
        p += len;
        if (*p == '&')
            p++;
    }
}

static void http__request_release(http_request_t *r)
{
    size_t i;

    if (r->pool_slot != NULL)
        *r->pool_slot = NULL;
    for (i = 0; i < r->nparams; i++) {
        free(r->params[i].name);
        free(r->params[i].value);
    }
    for (i = 0; i < r->nowned; i++)
        free(r->owned[i]);
    free(r->params);
    free(r->owned);
    free(r->method);
    free(r->path);
    free(r->query_string);
    free(r->body);
    free(r);
}

/* Runs when h2o clears the request's memory pool: after the response was
 * written, or when the connection dies first. */
static void http__on_pool_dispose(void *p)
{
    http_request_t **slot = p;

    if (*slot != NULL) {
        (*slot)->req = NULL;
        (*slot)->pool_slot = NULL;
    }
}

static void http__add_header(h2o_req_t *req, const char *name,
                             const char *value)
{
    size_t nlen = strlen(name), vlen = strlen(value);
    h2o_iovec_t n = h2o_strdup(&req->pool, name, nlen);
    h2o_iovec_t v = h2o_strdup(&req->pool, value, vlen);

    h2o_add_header_by_str(&req->pool, &req->res.headers, n.base, n.len, 1,
                          NULL, v.base, v.len);
}

static void http__send(http_request_t *r, int status, const char *ctype,
                       const char *body, size_t len)
{
    h2o_req_t *req = r->req;
    size_t i;

    if (r->pool_slot != NULL)
        *r->pool_slot = NULL;
    r->pool_slot = NULL;
    req->res.status = status;
    req->res.reason = http__reason(status);
    /* Without it h2o sends a response finished outside the handler call
     * with chunked encoding. */
    req->res.content_length = len;
    for (i = 0; i < r->server->ndefaults; i++)
        http__add_header(req, r->server->defaults[i].name,
                         r->server->defaults[i].value);
    if (ctype != NULL)
        h2o_add_header(&req->pool, &req->res.headers, H2O_TOKEN_CONTENT_TYPE,
                       NULL, h2o_strdup(&req->pool, ctype, SIZE_MAX).base,
                       strlen(ctype));
    h2o_send_inline(req, body, len);
}

static void http__reject_too_large(http_request_t *r)
{
    char *body = xasprintf(
        "{\"status\":413,\"data\":\"Request body too large: %zu bytes, the "
        "limit is %d bytes (10 MiB). Send a smaller body.\",\"time\":%lld}",
        r->req->entity.len, HTTP_MAX_BODY, (long long)util_now_ms());

    http__send(r, 413, "application/json; charset=utf-8", body,
               strlen(body));
    free(body);
    http__request_release(r);
}

static int http__on_req(h2o_handler_t *self, h2o_req_t *req)
{
    http_server_t *server = ((http_handler_t *)self)->server;
    http_request_t *r = xcalloc(1, sizeof(*r));
    size_t path_len =
        req->query_at != SIZE_MAX ? req->query_at : req->path.len;

    r->server = server;
    r->req = req;
    r->pool_slot = h2o_mem_alloc_shared(&req->pool, sizeof(*r->pool_slot),
                                        http__on_pool_dispose);
    *r->pool_slot = r;
    r->method = xstrndup(req->method.base, req->method.len);
    r->path = http_url_decode(req->path.base, path_len, 0);
    if (req->query_at != SIZE_MAX)
        r->query_string = xstrndup(req->path.base + req->query_at + 1,
                                   req->path.len - req->query_at - 1);
    else
        r->query_string = xstrdup("");
    if (req->entity.base != NULL && req->entity.len > HTTP_MAX_BODY) {
        http__reject_too_large(r);
        return 0;
    }
    server->handler(r, server->data);
    return 0;
}

static void http__on_accept(uv_stream_t *listener, int status)
{
    http_server_t *server = listener->data;
    uv_tcp_t *conn;
    h2o_socket_t *sock;

    if (status != 0) {
        log_warn("accept failed: %s", uv_strerror(status));
        return;
    }
    conn = xmalloc(sizeof(*conn));
    uv_tcp_init(listener->loop, conn);
    if (uv_accept(listener, (uv_stream_t *)conn) != 0) {
        uv_close((uv_handle_t *)conn, (uv_close_cb)free);
        return;
    }
    uv_tcp_nodelay(conn, 1);
    sock = h2o_uv_socket_create((uv_stream_t *)conn, (uv_close_cb)free);
    h2o_accept(&server->accept_ctx, sock);
}

static int http__bind(http_server_t *server, const char *host, int port,
                      const char **err)
{
    struct sockaddr_storage addr;
    struct sockaddr_storage bound;
    int len = sizeof(bound);
    int rc;

    if (uv_ip4_addr(host, port, (struct sockaddr_in *)&addr) != 0 &&
        uv_ip6_addr(host, port, (struct sockaddr_in6 *)&addr) != 0) {
        *err = "invalid listen address (expected a numeric IPv4 or IPv6 "
               "address)";
        return -1;
    }
    uv_tcp_init(server->loop, &server->listener);
    server->listener.data = server;
    rc = uv_tcp_bind(&server->listener, (struct sockaddr *)&addr, 0);
    if (rc == 0)
        rc = uv_listen((uv_stream_t *)&server->listener, 1024,
                       http__on_accept);
    if (rc != 0) {
        *err = uv_strerror(rc);
        return -1;
    }
    uv_tcp_getsockname(&server->listener, (struct sockaddr *)&bound, &len);
    if (bound.ss_family == AF_INET)
        server->port = ntohs(((struct sockaddr_in *)&bound)->sin_port);
    else
        server->port = ntohs(((struct sockaddr_in6 *)&bound)->sin6_port);
    return 0;
}

http_server_t *http_server_new(uv_loop_t *loop, const char *host, int port,
                               http_handler_fn handler, void *data,
                               const char **err)
{
    http_server_t *server = xcalloc(1, sizeof(*server));
    h2o_hostconf_t *hostconf;
    h2o_pathconf_t *pathconf;
    http_handler_t *h;

    server->loop = loop;
    server->handler = handler;
    server->data = data;
    h2o_config_init(&server->config);
    server->config.server_name = h2o_iovec_init(H2O_STRLIT("hearth"));
    server->config.max_request_entity_size = H2O_BODY_LIMIT;
    hostconf = h2o_config_register_host(
        &server->config, h2o_iovec_init(H2O_STRLIT("default")), 65535);
    pathconf = h2o_config_register_path(hostconf, "/", 0);
    h = (http_handler_t *)h2o_create_handler(pathconf, sizeof(*h));
    h->super.on_req = http__on_req;
    h->server = server;
    h2o_context_init(&server->context, loop, &server->config);
    server->accept_ctx.ctx = &server->context;
    server->accept_ctx.hosts = server->config.hosts;
    uv_timer_init(loop, &server->drain_timer);
    server->drain_timer.data = server;
    if (http__bind(server, host, port, err) != 0) {
        /* The listener handle was initialised by http__bind (or not at
         * all); release it through the normal drain path. */
        http_server_free(server);
        return NULL;
    }
    return server;
}

static void http__free_memory(uv_handle_t *handle)
{
    http_server_t *server = handle->data;
    size_t i;

    for (i = 0; i < server->ndefaults; i++) {
        free(server->defaults[i].name);
        free(server->defaults[i].value);
    }
    free(server->defaults);
    free(server);
}

/* 1 when no connection or pending h2o timer still refers to the context,
 * so that h2o_context_dispose() is safe. */
static int http__context_idle(h2o_context_t *ctx)
{
    h2o_timeout_t *timeouts[] = {
        &ctx->zero_timeout,        &ctx->one_sec_timeout,
        &ctx->hundred_ms_timeout,  &ctx->handshake_timeout,
        &ctx->http1.req_timeout,   &ctx->http2.idle_timeout,
        &ctx->http2.graceful_shutdown_timeout, &ctx->proxy.io_timeout,
    };
    size_t i;

    if (!h2o_linklist_is_empty(&ctx->http1._conns) ||
        !h2o_linklist_is_empty(&ctx->http2._conns))
        return 0;
    for (i = 0; i < ARRAY_SIZE(timeouts); i++)
        if (!h2o_linklist_is_empty(&timeouts[i]->_entries))
            return 0;
    return 1;
}

static void http__on_drain_tick(uv_timer_t *timer)
{
    http_server_t *server = timer->data;

    /*
     * h2o 2.2.5 ends idle keep-alive connections only when their request
     * timeout fires (up to 10 s later). Firing that timeout now closes
     * every connection that waits for a request. Those with a response in
     * flight are not on it, and they close once the response is written
     * because shutdown makes them non-persistent.
     */
    h2o_timeout_run(server->loop, &server->context.http1.req_timeout,
                    UINT64_MAX / 2);
    /* The shutdown request also links HTTP/2's graceful-shutdown step
     * into the one-second timeout; Hearth serves no HTTP/2 connections,
     * so running it now finds nothing to close. */
    h2o_timeout_run(server->loop, &server->context.one_sec_timeout,
                    UINT64_MAX / 2);
    if (!http__context_idle(&server->context))
        return;
    uv_timer_stop(timer);
    /*
     * h2o_context_dispose() runs the loop itself (UV_RUN_NOWAIT) until its
     * own timers are closed, so the memory they live in can be freed once
     * it returns. The drain timer is closed last for that reason.
     */
    h2o_context_dispose(&server->context);
    h2o_config_dispose(&server->config);
    uv_close((uv_handle_t *)timer, http__free_memory);
}

void http_server_free(http_server_t *server)
{
    if (server == NULL || server->closing)
        return;
    server->closing = 1;
    if (server->listener.loop != NULL)
        uv_close((uv_handle_t *)&server->listener, NULL);
    h2o_context_request_shutdown(&server->context);
    uv_timer_start(&server->drain_timer, http__on_drain_tick, 0,
                   HTTP_DRAIN_POLL_MS);
}

int http_server_port(const http_server_t *server)
{
    return server->port;
}

void http_server_add_default_header(http_server_t *server, const char *name,
                                    const char *value)
{
    size_t size = (server->ndefaults + 1) * sizeof(*server->defaults);

    server->defaults = xrealloc(server->defaults, size);
    server->defaults[server->ndefaults].name = xstrdup(name);
    server->defaults[server->ndefaults].value = xstrdup(value);
    server->ndefaults++;
}

const char *http_request_method(http_request_t *req)
{
    return req->method;
}

const char *http_request_path(http_request_t *req)
{
    return req->path;
}

const char *http_request_query_string(http_request_t *req)
{
    return req->query_string;
}

const char *http_request_query(http_request_t *req, const char *name)
{
    size_t i;

    if (!req->params_parsed)
        http__parse_params(req);
    for (i = 0; i < req->nparams; i++)
        if (strcmp(req->params[i].name, name) == 0)
            return req->params[i].value;
    return NULL;
}

const char *http_request_header(http_request_t *req, const char *name)
{
    size_t i, nlen = strlen(name);

    if (req->req == NULL)
        return NULL;
    for (i = 0; i < req->req->headers.size; i++) {
        h2o_header_t *h = &req->req->headers.entries[i];

        if (h->name->len == nlen && strncasecmp(h->name->base, name, nlen) == 0)
            return http__own(req, xstrndup(h->value.base, h->value.len));
    }
    return NULL;
}

const char *http_request_cookie(http_request_t *req, const char *name)
{
    const char *header = http_request_header(req, "cookie");
    size_t nlen = strlen(name);
    const char *p = header;

    while (p != NULL && *p != '\0') {
        const char *end = strchr(p, ';');
        size_t len = end ? (size_t)(end - p) : strlen(p);

        while (*p == ' ' && len > 0) {
            p++;
            len--;
        }
        if (len > nlen && strncmp(p, name, nlen) == 0 && p[nlen] == '=')
            return http__own(req, xstrndup(p + nlen + 1, len - nlen - 1));
        p = end ? end + 1 : NULL;
    }
    return NULL;
}

const char *http_request_body(http_request_t *req, size_t *len)
{
    if (req->body == NULL) {
        if (req->req != NULL && req->req->entity.base != NULL) {
            req->body_len = req->req->entity.len;
            req->body = xstrndup(req->req->entity.base, req->body_len);
        } else {
            req->body = xstrdup("");
            req->body_len = 0;
        }
    }
    if (len != NULL)
        *len = req->body_len;
    return req->body;
}

static void http__format_peer(const struct sockaddr *sa, char *out,
                              size_t size)
{
    out[0] = '\0';
    if (sa->sa_family == AF_INET)
        uv_ip4_name((const struct sockaddr_in *)sa, out, size);
    else if (sa->sa_family == AF_INET6)
        uv_ip6_name((const struct sockaddr_in6 *)sa, out, size);
}

const char *http_request_peer(http_request_t *req)
{
    struct sockaddr_storage sa;

    if (req->peer[0] == '\0' && req->req != NULL) {
        memset(&sa, 0, sizeof(sa));
        if (req->req->conn->callbacks->get_peername(req->req->conn,
                                                    (struct sockaddr *)&sa))
            http__format_peer((struct sockaddr *)&sa, req->peer,
                              sizeof(req->peer));
    }
    return req->peer;
}

int http_request_gone(const http_request_t *req)
{
    return req->req == NULL;
}

void http_request_set_data(http_request_t *req, void *data)
{
    req->data = data;
}

void *http_request_get_data(const http_request_t *req)
{
    return req->data;
}

void http_request_add_header(http_request_t *req, const char *name,
                             const char *value)
{
    if (req->req != NULL)
        http__add_header(req->req, name, value);
}

void http_respond(http_request_t *req, int status, const char *content_type,
                  const char *body, size_t len)
{
    if (req->req != NULL)
        http__send(req, status, content_type, body, len);
    http__request_release(req);
}

/* WebSocket */

int http_request_is_websocket(http_request_t *req)
{
    const char *key = NULL;

    if (req->req == NULL)
        return 0;
    return h2o_is_websocket_handshake(req->req, &key) == 0 && key != NULL;
}

static void http__ws_timer_closed(uv_handle_t *handle)
{
    http_ws_t *ws = handle->data;

    free(ws->timer);
    free(ws);
}

/* Ends the connection for good: calls on_close, then frees h2o's side.
 * Always runs from the timer, never inside h2o's read/write loop or inside
 * a call the user made, so no caller finds its ws freed under it. */
static void http__ws_finish(uv_timer_t *timer)
{
    http_ws_t *ws = timer->data;

    ws->closed = 1;
    if (ws->cb.on_close != NULL)
        ws->cb.on_close(ws, ws->user);
    h2o_websocket_close(ws->conn);
    uv_close((uv_handle_t *)ws->timer, http__ws_timer_closed);
}

static void http__ws_schedule_finish(http_ws_t *ws, uint64_t delay_ms)
{
    if (ws->finishing)
        return;
    if (delay_ms == 0)
        ws->finishing = 1;
    uv_timer_start(ws->timer, http__ws_finish, delay_ms, 0);
}

static void http__ws_on_message(h2o_websocket_conn_t *conn,
                                const struct wslay_event_on_msg_recv_arg *arg)
{
    http_ws_t *ws = conn->data;

    if (arg == NULL) {
        /* h2o expects h2o_websocket_close() from here or later; it does
         * not touch conn again after this callback. */
        http__ws_schedule_finish(ws, 0);
        return;
    }
    if (arg->opcode != WSLAY_TEXT_FRAME && arg->opcode != WSLAY_BINARY_FRAME)
        return;
    if (ws->closing || ws->finishing || ws->cb.on_message == NULL)
        return;
    /* h2o calls this from inside its read loop; sends made by the user now
     * are queued and flushed when that loop continues. */
    ws->in_proceed++;
    ws->cb.on_message(ws, arg->opcode, (const char *)arg->msg,
                      arg->msg_length, ws->user);
    ws->in_proceed--;
}

http_ws_t *http_upgrade_websocket(http_request_t *req,
                                  const http_ws_callbacks_t *cb, void *user)
{
    const char *key = NULL;
    http_ws_t *ws;

    if (req->req == NULL || h2o_is_websocket_handshake(req->req, &key) != 0 ||
        key == NULL) {
        static const char msg[] = "Bad Request: not a WebSocket upgrade\n";

        http_respond(req, 400, "text/plain; charset=utf-8", msg,
                     sizeof(msg) - 1);
        return NULL;
    }
    ws = xcalloc(1, sizeof(*ws));
    ws->cb = *cb;
    ws->user = user;
    ws->timer = xmalloc(sizeof(*ws->timer));
    uv_timer_init(req->server->loop, ws->timer);
    ws->timer->data = ws;
    snprintf(ws->peer, sizeof(ws->peer), "%s", http_request_peer(req));
    if (req->pool_slot != NULL)
        *req->pool_slot = NULL;
    req->pool_slot = NULL;
    /* Until h2o completes the upgrade, conn->sock is NULL: messages sent
     * meanwhile stay queued in wslay and go out when h2o first proceeds. */
    ws->conn =
        h2o_upgrade_to_websocket(req->req, key, ws, http__ws_on_message);
    http__request_release(req);
    return ws;
}

static void http__ws_proceed(http_ws_t *ws)
{
    if (ws->in_proceed || ws->conn->sock == NULL || ws->finishing)
        return;
    ws->in_proceed++;
    h2o_websocket_proceed(ws->conn);
    ws->in_proceed--;
}

int http_ws_send(http_ws_t *ws, int opcode, const char *data, size_t len)
{
    struct wslay_event_msg msg;

    if (ws->closing || ws->finishing)
        return -1;
    msg.opcode = (uint8_t)opcode;
    msg.msg = (const uint8_t *)data;
    msg.msg_length = len;
    if (wslay_event_queue_msg(ws->conn->ws_ctx, &msg) != 0)
        return -1;
    http__ws_proceed(ws);
    return 0;
}

size_t http_ws_pending(const http_ws_t *ws)
{
    if (ws->finishing)
        return 0;
    return wslay_event_get_queued_msg_length(ws->conn->ws_ctx);
}

/* Queues the close frame and bounds the wait for the peer's reply. */
static void http__ws_send_close(http_ws_t *ws)
{
    wslay_event_queue_close(ws->conn->ws_ctx, 1000, NULL, 0);
    /* A peer that never replies to the close frame is dropped anyway. */
    http__ws_schedule_finish(ws, HTTP_WS_CLOSE_TIMEOUT_MS);
    http__ws_proceed(ws);
}

static void http__ws_on_drain_tick(uv_timer_t *timer)
{
    http_ws_t *ws = timer->data;

    if (ws->finishing)
        return;
    if (wslay_event_get_queued_msg_length(ws->conn->ws_ctx) > 0 &&
        uv_now(timer->loop) < ws->close_deadline)
        return;
    uv_timer_stop(timer);
    http__ws_send_close(ws);
}

void http_ws_close(http_ws_t *ws)
{
    if (ws->closing || ws->finishing)
        return;
    ws->closing = 1;
    /*
     * wslay sends control frames ahead of queued data, so a close frame
     * queued now would overtake (and lose) the messages already queued.
     * Wait until they are written, for at most HTTP_WS_CLOSE_TIMEOUT_MS.
     */
    if (wslay_event_get_queued_msg_length(ws->conn->ws_ctx) == 0) {
        http__ws_send_close(ws);
        return;
    }
    ws->close_deadline = uv_now(ws->timer->loop) + HTTP_WS_CLOSE_TIMEOUT_MS;
    uv_timer_start(ws->timer, http__ws_on_drain_tick, HTTP_DRAIN_POLL_MS,
                   HTTP_DRAIN_POLL_MS);
}

const char *http_ws_peer(const http_ws_t *ws)
{
    return ws->peer;
}
