#ifndef HEARTH_NET_SIOC_H
#define HEARTH_NET_SIOC_H

#include <jansson.h>
#include <uv.h>

/*
 * Socket.IO 5 client over Engine.IO 4 on a WebSocket transport (no
 * polling), default namespace only, on the caller's loop. It is how the
 * panel reaches each daemon, and it interoperates with the reference
 * socket.io 4.x server as MCSManager's daemon runs it.
 *
 * The client connects at once and, after any failure or disconnect,
 * reconnects with a backoff from 500 ms doubling to 5 s, until freed.
 */

typedef struct sioc sioc_t;

typedef struct sioc_callbacks {
    /* The default namespace is connected; emits are now delivered. */
    void (*on_connect)(sioc_t *client, void *data);
    /* An event arrived; arg is borrowed (may be NULL). */
    void (*on_event)(sioc_t *client, const char *event, json_t *arg,
                     void *data);
    /* A connection was lost or a connect attempt failed; reason is a
     * human-readable message ("connection refused", "ping timeout"). */
    void (*on_disconnect)(sioc_t *client, const char *reason, void *data);
} sioc_callbacks_t;

/*
 * Starts a client for ws://host:port<prefix>/socket.io/. host may be a name
 * ("localhost") or a numeric address. prefix may be "" or NULL.
 */
sioc_t *sioc_new(uv_loop_t *loop, const char *host, int port,
                 const char *prefix, const sioc_callbacks_t *callbacks,
                 void *data);
/* Closes the connection and frees the client; safe inside its callbacks
 * (the memory is released on a later loop turn). */
void sioc_free(sioc_t *client);
/* 1 while the namespace is connected. */
int sioc_connected(const sioc_t *client);
/* Emits event with one argument (borrowed). Returns 0, or -1 when not
 * connected. */
int sioc_emit(sioc_t *client, const char *event, json_t *arg);
/* Drops any backoff wait and connects now (no-op when connected). */
void sioc_reconnect_now(sioc_t *client);

#endif
