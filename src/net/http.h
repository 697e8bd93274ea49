#ifndef HEARTH_NET_HTTP_H
#define HEARTH_NET_HTTP_H

#include <stddef.h>

#include <uv.h>

/*
 * HTTP/1.1 server glue over h2o (its libuv build) and WebSocket upgrades
 * over h2o's wslay integration. One server per listening address, all on
 * the caller's loop.
 *
 * Every request reaches the server's handler as an http_request_t. The
 * handler must finish it exactly once, now or later from another callback,
 * with http_respond() or http_upgrade_websocket(). If the client goes away
 * first, the request stays valid for the handler; http_request_gone()
 * returns 1 and http_respond() only releases it.
 */

typedef struct http_server http_server_t;
typedef struct http_request http_request_t;
typedef struct http_ws http_ws_t;

typedef void (*http_handler_fn)(http_request_t *req, void *data);

/* Largest request body accepted; larger ones get 413 before the handler
 * runs (MCSManager's panel and daemon take 10 MB of JSON). */
#define HTTP_MAX_BODY (10 * 1024 * 1024)

/*
 * Listens on host:port (numeric IPv4 or IPv6). Returns NULL and sets *err to
 * a message (static storage) when the address cannot be bound.
 */
http_server_t *http_server_new(uv_loop_t *loop, const char *host, int port,
                               http_handler_fn handler, void *data,
                               const char **err);
/* Stops listening and closes idle connections; in-flight requests finish. */
void http_server_free(http_server_t *server);
/* The port actually bound (useful with port 0). */
int http_server_port(const http_server_t *server);
/*
 * Adds a header sent on every response of this server (for example
 * "X-Powered-By"). name and value are copied.
 */
void http_server_add_default_header(http_server_t *server, const char *name,
                                    const char *value);

/*
 * Percent-decodes s[0..len) into a new string (caller frees); plus_space
 * turns '+' into a space as form encoding does. Invalid escapes are kept
 * as they are.
 */
char *http_url_decode(const char *s, size_t len, int plus_space);

/* Request accessors. Returned strings live as long as the request. */
const char *http_request_method(http_request_t *req);
/* Path without the query string, percent-decoded. */
const char *http_request_path(http_request_t *req);
/* The raw query string after '?', or "" when there is none. */
const char *http_request_query_string(http_request_t *req);
/* First value of a query parameter, percent-decoded ('+' is a space);
 * NULL when absent. Names compare exactly (case-sensitive). */
const char *http_request_query(http_request_t *req, const char *name);
/* First value of a header (name compared case-insensitively) or NULL. */
const char *http_request_header(http_request_t *req, const char *name);
/* Value of one cookie from the Cookie header, or NULL. */
const char *http_request_cookie(http_request_t *req, const char *name);
/* Request body (may contain NUL bytes; always NUL-terminated). */
const char *http_request_body(http_request_t *req, size_t *len);
/* Peer IP address as text ("127.0.0.1"). */
const char *http_request_peer(http_request_t *req);
/* 1 once the client has disconnected; the request is then only released. */
int http_request_gone(const http_request_t *req);

/* Arbitrary pointer owned by the caller, for async handlers. */
void http_request_set_data(http_request_t *req, void *data);
void *http_request_get_data(const http_request_t *req);

/* Adds a response header (copied). Call before http_respond(). */
void http_request_add_header(http_request_t *req, const char *name,
                             const char *value);
/*
 * Sends the response and releases req; body is copied. content_type may be
 * NULL for no Content-Type header. req must not be used afterwards.
 */
void http_respond(http_request_t *req, int status, const char *content_type,
                  const char *body, size_t len);

/* WebSocket. Opcodes are the RFC 6455 ones: 1 text, 2 binary. */
typedef struct http_ws_callbacks {
    /* A complete message arrived. */
    void (*on_message)(http_ws_t *ws, int opcode, const char *data,
                       size_t len, void *user);
    /* The connection closed (either side, or an error). ws is freed after
     * this returns. */
    void (*on_close)(http_ws_t *ws, void *user);
} http_ws_callbacks_t;

/* 1 if req is a valid WebSocket upgrade request. */
int http_request_is_websocket(http_request_t *req);
/*
 * Completes the handshake (101) and releases req. Returns the connection,
 * or NULL (req gets a 400 and is released) if req is not an upgrade request.
 */
http_ws_t *http_upgrade_websocket(http_request_t *req,
                                  const http_ws_callbacks_t *cb, void *user);
/* Queues a message. Returns 0, or -1 if the connection is closing. */
int http_ws_send(http_ws_t *ws, int opcode, const char *data, size_t len);
/* Bytes queued but not yet written to the socket, for backpressure. */
size_t http_ws_pending(const http_ws_t *ws);
/* Starts a close; on_close follows. */
void http_ws_close(http_ws_t *ws);
/* Peer IP address as text. */
const char *http_ws_peer(const http_ws_t *ws);

#endif
