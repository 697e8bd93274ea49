#ifndef HEARTH_NET_EIO_H
#define HEARTH_NET_EIO_H

#include <stddef.h>

#include <uv.h>

#include "net/http.h"

/*
 * Engine.IO 4 server: sessions over HTTP long-polling and WebSocket, the
 * upgrade from polling to WebSocket, and the server-driven ping/pong
 * heartbeat. Only text message packets are carried; a binary packet is a
 * protocol error. Socket.IO (sio.c) runs on top of it.
 */

typedef struct eio_server eio_server_t;
typedef struct eio_session eio_session_t;

typedef struct eio_callbacks {
    /* A session completed its handshake; the open packet is already sent. */
    void (*on_open)(eio_session_t *session, void *data);
    /* A message packet arrived. msg is not NUL-terminated and is valid only
     * during the call. */
    void (*on_message)(eio_session_t *session, const char *msg, size_t len,
                       void *data);
    /*
     * The session closed. Called exactly once per opened session, whatever
     * the reason, including from inside eio_session_close() and
     * eio_server_free(). reason is a static string such as "ping timeout"
     * or "transport close". The session accepts no more messages and its
     * memory is released on a later loop turn.
     */
    void (*on_close)(eio_session_t *session, const char *reason, void *data);
} eio_callbacks_t;

typedef struct eio_options {
    int ping_interval_ms;
    int ping_timeout_ms;
    size_t max_payload;     /* largest POST body or WebSocket message */
} eio_options_t;

/* Creates a server on loop. options are copied; callbacks are required. */
eio_server_t *eio_server_new(uv_loop_t *loop, const eio_options_t *options,
                             const eio_callbacks_t *callbacks, void *data);
/*
 * Closes every session (on_close with "server shutting down") and frees the
 * server. Must not be called from inside one of its callbacks.
 */
void eio_server_free(eio_server_t *server);
/* Takes req, a request under the Engine.IO path, and finishes it. */
void eio_server_handle(eio_server_t *server, http_request_t *req);
/* Number of open sessions. */
size_t eio_server_count(const eio_server_t *server);

/*
 * Queues a message packet. Returns 0, -EPIPE if the session is closing, or
 * -EINVAL if msg contains the polling record separator 0x1e, which cannot
 * be framed.
 */
int eio_session_send(eio_session_t *session, const char *msg, size_t len);
/*
 * Closes the session after the packets already queued: on polling, the
 * client's next GET receives them followed by a close packet. on_close runs
 * before this returns. No-op on a closing session.
 */
void eio_session_close(eio_session_t *session, const char *reason);
/* The session id (20 URL-safe characters). */
const char *eio_session_id(const eio_session_t *session);
/* Peer IP address as text. */
const char *eio_session_peer(const eio_session_t *session);
/* The current transport: "polling" or "websocket". */
const char *eio_session_transport(const eio_session_t *session);
/* Bytes queued for the client and not yet written. */
size_t eio_session_pending(const eio_session_t *session);
void eio_session_set_data(eio_session_t *session, void *data);
void *eio_session_get_data(const eio_session_t *session);

#endif
