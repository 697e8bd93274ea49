#ifndef HEARTH_NET_SIO_H
#define HEARTH_NET_SIO_H

#include <stddef.h>

#include <jansson.h>
#include <uv.h>

#include "net/http.h"

/*
 * Socket.IO 5 server over Engine.IO 4 (HTTP long-polling, WebSocket, and
 * the upgrade from polling to WebSocket), default namespace "/" only.
 * Implemented from the published protocol specifications; interoperates
 * with the reference socket.io-client 4.x.
 *
 * Every event handled here carries at most one argument, as MCSManager's
 * packets do: on_event receives the first argument (or NULL).
 */

typedef struct sio_server sio_server_t;
typedef struct sio_socket sio_socket_t;

typedef struct sio_server_callbacks {
    /* A client joined the default namespace. */
    void (*on_connect)(sio_socket_t *socket, void *data);
    /* An event arrived; arg is borrowed (may be NULL) and valid only during
     * the call. */
    void (*on_event)(sio_socket_t *socket, const char *event, json_t *arg,
                     void *data);
    /* The socket closed for any reason; it is freed after this returns. */
    void (*on_disconnect)(sio_socket_t *socket, const char *reason,
                          void *data);
} sio_server_callbacks_t;

typedef struct sio_server_options {
    const char *path;       /* "/socket.io/" */
    int ping_interval_ms;   /* 20000 as MCSManager's daemon */
    int ping_timeout_ms;    /* 10000 */
    size_t max_payload;     /* 10 MB (MCSManager's maxHttpBufferSize) */
} sio_server_options_t;

/* Creates a server; options may be NULL for the defaults above. */
sio_server_t *sio_server_new(uv_loop_t *loop,
                             const sio_server_options_t *options,
                             const sio_server_callbacks_t *callbacks,
                             void *data);
/*
 * Disconnects every socket (on_disconnect runs for each before this
 * returns, with reason "server shutting down") and frees the server. Must
 * not be called from inside one of the server's callbacks.
 */
void sio_server_free(sio_server_t *server);
/*
 * Offers an HTTP request to the server. Returns 1 if the path is under the
 * server's path (the server then owns and finishes req), 0 otherwise.
 */
int sio_server_handle(sio_server_t *server, http_request_t *req);
/* Number of connected sockets. */
size_t sio_server_count(const sio_server_t *server);

/*
 * Emits event with one argument (borrowed; NULL for none). Returns 0, or -1
 * if the socket is closing.
 */
int sio_socket_emit(sio_socket_t *socket, const char *event, json_t *arg);
/* Sends a Socket.IO DISCONNECT and closes the transport. */
void sio_socket_disconnect(sio_socket_t *socket);
/* The Socket.IO socket id. */
const char *sio_socket_id(const sio_socket_t *socket);
/* Peer IP address as text. */
const char *sio_socket_peer(const sio_socket_t *socket);
/* Bytes queued for the client and not yet sent (for backpressure). */
size_t sio_socket_pending(const sio_socket_t *socket);
void sio_socket_set_data(sio_socket_t *socket, void *data);
void *sio_socket_get_data(const sio_socket_t *socket);

/*
 * Packet codec, shared with the unit tests (not for other modules).
 */

/* Socket.IO 5 packet types. */
enum sio__packet_type {
    SIO__CONNECT,
    SIO__DISCONNECT,
    SIO__EVENT,
    SIO__ACK,
    SIO__CONNECT_ERROR,
    SIO__BINARY_EVENT,
    SIO__BINARY_ACK,
};

typedef struct sio__packet {
    enum sio__packet_type type;
    const char *nsp;        /* points into the decoded text, or "/" */
    size_t nsp_len;
    long long ack_id;       /* -1 when absent */
    json_t *data;           /* owned by the packet; NULL when absent */
} sio__packet_t;

/*
 * Decodes one Socket.IO packet (the payload of an Engine.IO message).
 * Returns 0 and fills packet (release it with json_decref(packet->data)),
 * or -EINVAL for text the protocol rejects: an unknown type, a binary
 * packet (unsupported), invalid JSON, or a payload of the wrong shape for
 * the type.
 */
int sio__packet_decode(const char *text, size_t len, sio__packet_t *packet);
/*
 * Encodes EVENT `2["event",arg]` in the default namespace (arg may be NULL
 * for none). Returns a string the caller frees, its length in *len.
 */
char *sio__event_encode(const char *event, json_t *arg, size_t *len);

#endif
