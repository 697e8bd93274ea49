#include "net/sio.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>

#include <sodium.h>

#include "core/log.h"
#include "core/util.h"
#include "net/eio.h"

/* A client that opens an Engine.IO session but joins no namespace within
 * this time is dropped (the reference server's connectTimeout). */
#define SIO_CONNECT_TIMEOUT_MS 45000

#define SIO_ID_BYTES 15
#define SIO_ID_LEN 20

/* Socket.IO state of one Engine.IO session. */
typedef struct sio_conn {
    sio_server_t *server;
    eio_session_t *session;
    sio_socket_t *socket;       /* the default namespace, once joined */
    uv_timer_t *connect_timer;
} sio_conn_t;

struct sio_server {
    uv_loop_t *loop;
    char *path;                 /* without the trailing slash */
    size_t path_len;
    sio_server_callbacks_t callbacks;
    void *data;
    eio_server_t *eio;
    sio_socket_t *sockets;      /* connected */
    size_t count;
    /* Sockets that closed and wait for on_disconnect on a later loop turn,
     * in the order they closed. */
    sio_socket_t *dead_head, *dead_tail;
    uv_timer_t *reaper;
};

struct sio_socket {
    sio_server_t *server;
    sio_conn_t *conn;           /* NULL once closing */
    sio_socket_t *prev, *next;  /* in the connected list */
    sio_socket_t *dead_next;
    char id[SIO_ID_LEN + 1];
    char *peer;
    void *data;
    const char *reason;
};

/* Reserved by the reference implementation; a client may not emit them. */
static const char *const sio_reserved_events[] = {
    "connect", "connect_error", "disconnect", "disconnecting",
    "newListener", "removeListener",
};

/* Codec. */

static int payload_valid(const sio__packet_t *p)
{
    json_t *name;
    size_t i;

    switch (p->type) {
    case SIO__CONNECT:
        return p->data == NULL || json_is_object(p->data);
    case SIO__DISCONNECT:
        return p->data == NULL;
    case SIO__CONNECT_ERROR:
        return p->data == NULL || json_is_object(p->data) ||
               json_is_string(p->data);
    case SIO__ACK:
        return json_is_array(p->data);
    case SIO__EVENT:
        if (!json_is_array(p->data) || json_array_size(p->data) == 0)
            return 0;
        name = json_array_get(p->data, 0);
        if (json_is_integer(name))
            return 1;
        if (!json_is_string(name) ||
            strlen(json_string_value(name)) != json_string_length(name))
            return 0;
        for (i = 0; i < ARRAY_SIZE(sio_reserved_events); i++)
            if (strcmp(json_string_value(name), sio_reserved_events[i]) == 0)
                return 0;
        return 1;
    default:
        return 0;
    }
}

int sio__packet_decode(const char *text, size_t len, sio__packet_t *packet)
{
    const char *p = text, *end = text + len;

    memset(packet, 0, sizeof(*packet));
    packet->nsp = "/";
    packet->nsp_len = 1;
    packet->ack_id = -1;
    if (len == 0 || *p < '0' || *p > '6')
        return -EINVAL;
    packet->type = (enum sio__packet_type)(*p++ - '0');
    /* Binary packets carry their attachments as separate Engine.IO binary
     * messages, which this server does not accept. */
    if (packet->type == SIO__BINARY_EVENT || packet->type == SIO__BINARY_ACK)
        return -EINVAL;

    if (p < end && *p == '/') {
        const char *comma = memchr(p, ',', (size_t)(end - p));

        packet->nsp = p;
        packet->nsp_len = (size_t)((comma != NULL ? comma : end) - p);
        p = comma != NULL ? comma + 1 : end;
    }
    if (p < end && *p >= '0' && *p <= '9') {
        int digits = 0;

        packet->ack_id = 0;
        for (; p < end && *p >= '0' && *p <= '9'; p++) {
            /* Longer ids may not fit a JavaScript number exactly. */
            if (++digits > 15)
                return -EINVAL;
            packet->ack_id = packet->ack_id * 10 + (*p - '0');
        }
    }
    if (p < end) {
        packet->data = json_loadb(p, (size_t)(end - p),
                                  JSON_DECODE_ANY | JSON_ALLOW_NUL, NULL);
        if (packet->data == NULL)
            return -EINVAL;
    }
    if (!payload_valid(packet)) {
        json_decref(packet->data);
        packet->data = NULL;
        return -EINVAL;
    }
    return 0;
}

typedef struct sio_buffer {
    char *data;
    size_t len, cap;
} sio_buffer_t;

static int buffer_append(const char *data, size_t len, void *user)
{
    sio_buffer_t *b = user;

    if (b->len + len + 1 > b->cap) {
        b->cap = b->len + len + 1 > 2 * b->cap ? b->len + len + 1 : 2 * b->cap;
        b->data = xrealloc(b->data, b->cap);
    }
    memcpy(b->data + b->len, data, len);
    b->len += len;
    b->data[b->len] = '\0';
    return 0;
}

char *sio__event_encode(const char *event, json_t *arg, size_t *len)
{
    sio_buffer_t b = {0};
    json_t *array = json_array();

    json_array_append_new(array, json_string(event));
    if (arg != NULL)
        json_array_append(array, arg);
    buffer_append("2", 1, &b);
    json_dump_callback(array, buffer_append, &b, JSON_COMPACT);
    json_decref(array);
    *len = b.len;
    return b.data;
}

/* Sockets. */

static void make_id(char out[SIO_ID_LEN + 1])
{
    unsigned char raw[SIO_ID_BYTES];

    randombytes_buf(raw, sizeof(raw));
    sodium_bin2base64(out, SIO_ID_LEN + 1, raw, sizeof(raw),
                      sodium_base64_VARIANT_URLSAFE_NO_PADDING);
}

static void reaper_cb(uv_timer_t *timer)
{
    sio_server_t *server = timer->data;

    /* on_disconnect may close more sockets, which join the list. */
    while (server->dead_head != NULL) {
        sio_socket_t *sock = server->dead_head;

        server->dead_head = sock->dead_next;
        if (server->dead_head == NULL)
            server->dead_tail = NULL;
        server->callbacks.on_disconnect(sock, sock->reason, server->data);
        free(sock->peer);
        free(sock);
    }
}

/*
 * Closes a socket once. on_disconnect runs on a later loop turn, so that a
 * socket closed from inside one of its own callbacks is still valid when
 * that callback returns.
 */
static void socket_kill(sio_socket_t *sock, const char *reason)
{
    sio_server_t *server = sock->server;

    if (sock->conn == NULL)
        return;
    sock->conn->socket = NULL;
    sock->conn = NULL;
    sock->reason = reason;
    if (sock->prev != NULL)
        sock->prev->next = sock->next;
    else
        server->sockets = sock->next;
    if (sock->next != NULL)
        sock->next->prev = sock->prev;
    server->count--;

    if (server->dead_tail != NULL)
        server->dead_tail->dead_next = sock;
    else
        server->dead_head = sock;
    server->dead_tail = sock;
    uv_timer_start(server->reaper, reaper_cb, 0, 0);
    log_debug("socket.io socket %s closed: %s", sock->id, reason);
}

static void socket_connect(sio_conn_t *conn)
{
    sio_server_t *server = conn->server;
    sio_socket_t *sock = xcalloc(1, sizeof(*sock));
    char reply[64];
    int n;

    sock->server = server;
    sock->conn = conn;
    make_id(sock->id);
    sock->peer = xstrdup(eio_session_peer(conn->session));
    sock->next = server->sockets;
    if (server->sockets != NULL)
        server->sockets->prev = sock;
    server->sockets = sock;
    server->count++;
    conn->socket = sock;
    uv_timer_stop(conn->connect_timer);

    n = snprintf(reply, sizeof(reply), "0{\"sid\":\"%s\"}", sock->id);
    eio_session_send(conn->session, reply, (size_t)n);
    log_debug("socket.io socket %s connected (session %s, %s)", sock->id,
              eio_session_id(conn->session),
              eio_session_transport(conn->session));
    server->callbacks.on_connect(sock, server->data);
}

/* Connection events from Engine.IO. */

static void connect_timer_cb(uv_timer_t *timer)
{
    sio_conn_t *conn = timer->data;

    log_debug("engine.io session %s joined no namespace in time",
              eio_session_id(conn->session));
    eio_session_close(conn->session, "connect timeout");
}

static void conn_open(eio_session_t *session, void *data)
{
    sio_server_t *server = data;
    sio_conn_t *conn = xcalloc(1, sizeof(*conn));

    conn->server = server;
    conn->session = session;
    conn->connect_timer = xmalloc(sizeof(*conn->connect_timer));
    uv_timer_init(server->loop, conn->connect_timer);
    conn->connect_timer->data = conn;
    uv_timer_start(conn->connect_timer, connect_timer_cb,
                   SIO_CONNECT_TIMEOUT_MS, 0);
    eio_session_set_data(session, conn);
}

static void reject_namespace(sio_conn_t *conn, const sio__packet_t *p)
{
    static const char error[] = "{\"message\":\"Invalid namespace\"}";
    char *reply;

    reply = xasprintf("4%.*s,%s", (int)p->nsp_len, p->nsp, error);
    eio_session_send(conn->session, reply, strlen(reply));
    free(reply);
}

static void dispatch_event(sio_conn_t *conn, const sio__packet_t *p)
{
    sio_server_t *server = conn->server;
    json_t *name = json_array_get(p->data, 0);
    char number[32];
    const char *event;

    if (json_is_integer(name)) {
        snprintf(number, sizeof(number), "%" JSON_INTEGER_FORMAT,
                 json_integer_value(name));
        event = number;
    } else {
        event = json_string_value(name);
    }
    /* NOTE: an acknowledgement id is ignored because the callbacks cannot
     * send an acknowledgement, so a client's ack callback never runs. */
    server->callbacks.on_event(conn->socket, event,
                               json_array_get(p->data, 1), server->data);
}

static int is_default_nsp(const sio__packet_t *p)
{
    return p->nsp_len == 1 && p->nsp[0] == '/';
}

static void conn_message(eio_session_t *session, const char *msg, size_t len,
                         void *data)
{
    sio_conn_t *conn = eio_session_get_data(session);
    sio__packet_t p;

    if (sio__packet_decode(msg, len, &p) < 0) {
        log_debug("engine.io session %s: invalid socket.io packet",
                  eio_session_id(session));
        eio_session_close(session, "parse error");
        return;
    }
    switch (p.type) {
    case SIO__CONNECT:
        if (!is_default_nsp(&p))
            reject_namespace(conn, &p);
        else if (conn->socket == NULL)
            socket_connect(conn);
        break;
    case SIO__DISCONNECT:
        if (is_default_nsp(&p) && conn->socket != NULL)
            socket_kill(conn->socket, "client namespace disconnect");
        break;
    case SIO__EVENT:
        if (is_default_nsp(&p) && conn->socket != NULL)
            dispatch_event(conn, &p);
        break;
    default:
        /* Acknowledgements are never requested by this server. */
        break;
    }
    json_decref(p.data);
}

static void timer_free_cb(uv_handle_t *handle)
{
    free(handle);
}

static void conn_close(eio_session_t *session, const char *reason, void *data)
{
    sio_conn_t *conn = eio_session_get_data(session);

    if (conn->socket != NULL)
        socket_kill(conn->socket, reason);
    uv_close((uv_handle_t *)conn->connect_timer, timer_free_cb);
    eio_session_set_data(session, NULL);
    free(conn);
}

/* Public interface. */

sio_server_t *sio_server_new(uv_loop_t *loop,
                             const sio_server_options_t *options,
                             const sio_server_callbacks_t *callbacks,
                             void *data)
{
    static const eio_callbacks_t eio_callbacks = {
        .on_open = conn_open,
        .on_message = conn_message,
        .on_close = conn_close,
    };
    sio_server_t *server = xcalloc(1, sizeof(*server));
    eio_options_t eio_options = {
        .ping_interval_ms = 20000,
        .ping_timeout_ms = 10000,
        .max_payload = 10000000,
    };
    const char *path = "/socket.io/";

    if (options != NULL) {
        if (options->path != NULL)
            path = options->path;
        if (options->ping_interval_ms > 0)
            eio_options.ping_interval_ms = options->ping_interval_ms;
        if (options->ping_timeout_ms > 0)
            eio_options.ping_timeout_ms = options->ping_timeout_ms;
        if (options->max_payload > 0)
            eio_options.max_payload = options->max_payload;
    }
    server->loop = loop;
    server->path_len = strlen(path);
    while (server->path_len > 0 && path[server->path_len - 1] == '/')
        server->path_len--;
    server->path = xstrndup(path, server->path_len);
    server->callbacks = *callbacks;
    server->data = data;
    server->reaper = xmalloc(sizeof(*server->reaper));
    uv_timer_init(loop, server->reaper);
    server->reaper->data = server;
    server->eio = eio_server_new(loop, &eio_options, &eio_callbacks, server);
    return server;
}

void sio_server_free(sio_server_t *server)
{
    if (server == NULL)
        return;
    /* Closing the sessions closes every socket ("server shutting down");
     * their on_disconnect calls then run here rather than on a later
     * turn, since the server is going away. */
    eio_server_free(server->eio);
    reaper_cb(server->reaper);
    uv_close((uv_handle_t *)server->reaper, timer_free_cb);
    free(server->path);
    free(server);
}

int sio_server_handle(sio_server_t *server, http_request_t *req)
{
    const char *path = http_request_path(req);

    if (strncmp(path, server->path, server->path_len) != 0 ||
        (path[server->path_len] != '\0' && path[server->path_len] != '/'))
        return 0;
    eio_server_handle(server->eio, req);
    return 1;
}

size_t sio_server_count(const sio_server_t *server)
{
    return server->count;
}

int sio_socket_emit(sio_socket_t *sock, const char *event, json_t *arg)
{
    char *packet;
    size_t len;
    int rc;

    if (sock->conn == NULL)
        return -1;
    packet = sio__event_encode(event, arg, &len);
    rc = eio_session_send(sock->conn->session, packet, len);
    free(packet);
    return rc < 0 ? -1 : 0;
}

void sio_socket_disconnect(sio_socket_t *sock)
{
    eio_session_t *session;

    if (sock->conn == NULL)
        return;
    session = sock->conn->session;
    eio_session_send(session, "1", 1);
    socket_kill(sock, "server namespace disconnect");
    eio_session_close(session, "server namespace disconnect");
}

const char *sio_socket_id(const sio_socket_t *sock)
{
    return sock->id;
}

const char *sio_socket_peer(const sio_socket_t *sock)
{
    return sock->peer;
}

size_t sio_socket_pending(const sio_socket_t *sock)
{
    if (sock->conn == NULL)
        return 0;
    return eio_session_pending(sock->conn->session);
}

void sio_socket_set_data(sio_socket_t *sock, void *data)
{
    sock->data = data;
}

void *sio_socket_get_data(const sio_socket_t *sock)
{
    return sock->data;
}
