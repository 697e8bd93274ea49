#include "net/sioc.h"

#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "core/log.h"
#include "core/util.h"
#include "net/wsc.h"

/*
 * Engine.IO 4 runs here on a WebSocket only, so every text message is one
 * packet: a type digit and its payload ("0{...}" open, "2" ping, "4..."
 * message). A message packet carries one Socket.IO 5 packet:
 * <type>[<attachments>-][<namespace>,][<ack id>][<JSON>].
 */

/* Larger than MCSManager's 1e7-byte maxHttpBufferSize, so the panel reads
 * whatever a daemon may send in one message. */
#define SIOC_MAX_MESSAGE (10 * 1024 * 1024)
#define SIOC_BACKOFF_MIN_MS 500
#define SIOC_BACKOFF_MAX_MS 5000
/* socket.io-client's default "timeout" for the namespace connection. */
#define SIOC_CONNECT_TIMEOUT_MS 20000
/* A repeated failure is logged once per this many attempts (at 5 s apart,
 * about every 5 minutes). */
#define SIOC_LOG_EVERY 60

enum sio_type {
    SIO_CONNECT = 0,
    SIO_DISCONNECT = 1,
    SIO_EVENT = 2,
    SIO_ACK = 3,
    SIO_CONNECT_ERROR = 4,
    SIO_BINARY_EVENT = 5,
    SIO_BINARY_ACK = 6,
};

/* The fields of an Engine.IO open packet that a WebSocket client uses. */
struct eio_open {
    char sid[64];
    int ping_interval_ms;
    int ping_timeout_ms;
};

/* One decoded Socket.IO packet; data is owned (NULL when absent). */
struct sio_packet {
    int type;
    int attachments;
    int default_namespace;  /* 1 for "/", 0 for any other namespace */
    long long ack_id;       /* -1 when absent */
    json_t *data;
};

enum sioc_state {
    SIOC_WAITING,       /* backoff before the next attempt */
    SIOC_OPENING,       /* resolving, TCP connect, HTTP upgrade */
    SIOC_HANDSHAKING,   /* WebSocket open, waiting for Engine.IO open */
    SIOC_JOINING,       /* Socket.IO CONNECT sent, waiting for the reply */
    SIOC_CONNECTED,
};

struct sioc {
    uv_loop_t *loop;
    char *host;
    int port;
    char *path;
    char *name;             /* "host:port" for log lines */
    sioc_callbacks_t callbacks;
    void *data;

    enum sioc_state state;
    wsc_t *ws;
    /* One timer serves every state: the backoff wait, the connect
     * timeout, then the ping timeout. */
    uv_timer_t timer;
    int backoff_ms;
    int ping_interval_ms;
    int ping_timeout_ms;
    int skip_binary;        /* binary attachments still to drop */
    unsigned failures;      /* consecutive failed attempts */
    int freed;
};

/* Parses the JSON after the "0" of an Engine.IO open packet. */
static int parse_open(const char *payload, size_t len, struct eio_open *out)
{
    json_t *root = json_loadb(payload, len, 0, NULL);
    json_t *sid, *interval, *timeout;
    int r = -1;

    if (root == NULL)
        return -1;
    sid = json_object_get(root, "sid");
    interval = json_object_get(root, "pingInterval");
    timeout = json_object_get(root, "pingTimeout");
    if (!json_is_string(sid) || json_string_length(sid) == 0 ||
        json_string_length(sid) >= sizeof(out->sid) ||
        !json_is_integer(interval) || !json_is_integer(timeout))
        goto out;
    if (json_integer_value(interval) <= 0 ||
        json_integer_value(interval) > INT32_MAX / 2 ||
        json_integer_value(timeout) <= 0 ||
        json_integer_value(timeout) > INT32_MAX / 2)
        goto out;
    snprintf(out->sid, sizeof(out->sid), "%s", json_string_value(sid));
    out->ping_interval_ms = (int)json_integer_value(interval);
    out->ping_timeout_ms = (int)json_integer_value(timeout);
    r = 0;
out:
    json_decref(root);
    return r;
}

/* Reads up to max_digits decimal digits at *pos; -1 when there are none. */
static long long parse_number(const char *msg, size_t len, size_t *pos,
                              int max_digits)
{
    long long value = 0;
    int digits = 0;

    while (*pos < len && isdigit((unsigned char)msg[*pos])) {
        if (++digits > max_digits)
            return -1;
        value = value * 10 + (msg[*pos] - '0');
        (*pos)++;
    }
    return digits > 0 ? value : -1;
}

/* Checks that data has the shape the packet type requires. */
static int check_packet_data(const struct sio_packet *p)
{
    switch (p->type) {
    case SIO_CONNECT:
        return p->data == NULL || json_is_object(p->data) ? 0 : -1;
    case SIO_DISCONNECT:
        return p->data == NULL ? 0 : -1;
    case SIO_EVENT:
    case SIO_BINARY_EVENT:
        return json_is_array(p->data) && json_array_size(p->data) > 0 &&
               json_is_string(json_array_get(p->data, 0)) ? 0 : -1;
    case SIO_ACK:
    case SIO_BINARY_ACK:
        return json_is_array(p->data) && p->ack_id >= 0 ? 0 : -1;
    case SIO_CONNECT_ERROR:
        /* Socket.IO 5 sends an object, version 4 servers a string. */
        return json_is_object(p->data) || json_is_string(p->data) ? 0 : -1;
    }
    return -1;
}

/*
 * Decodes a Socket.IO packet (the Engine.IO message payload). Returns 0
 * and fills out (the caller releases out->data), or -1 when it is invalid.
 */
static int parse_packet(const char *msg, size_t len, struct sio_packet *out)
{
    size_t pos = 1;

    memset(out, 0, sizeof(*out));
    out->ack_id = -1;
    out->default_namespace = 1;
    if (len == 0 || msg[0] < '0' || msg[0] > '6')
        return -1;
    out->type = msg[0] - '0';
    if (out->type == SIO_BINARY_EVENT || out->type == SIO_BINARY_ACK) {
        long long n = parse_number(msg, len, &pos, 6);

        if (n < 0 || pos >= len || msg[pos] != '-')
            return -1;
        out->attachments = (int)n;
        pos++;
    }
    if (pos < len && msg[pos] == '/') {
        const char *comma = memchr(msg + pos, ',', len - pos);
        size_t end = comma != NULL ? (size_t)(comma - msg) : len;

        out->default_namespace = end - pos == 1;
        pos = comma != NULL ? end + 1 : len;
    }
    if (pos < len && isdigit((unsigned char)msg[pos])) {
        out->ack_id = parse_number(msg, len, &pos, 15);
        if (out->ack_id < 0)
            return -1;
    }
    if (pos < len) {
        out->data = json_loadb(msg + pos, len - pos, JSON_DECODE_ANY, NULL);
        if (out->data == NULL)
            return -1;
    }
    if (check_packet_data(out) < 0) {
        json_decref(out->data);
        out->data = NULL;
        return -1;
    }
    return 0;
}

/*
 * Encodes the Engine.IO message for EVENT [event, arg] ("42[...]"); arg
 * may be NULL for no argument. Returns a string the caller frees, with its
 * length in *len, or NULL when arg cannot be encoded.
 */
static char *encode_event(const char *event, json_t *arg, size_t *len)
{
    json_t *array = json_array();
    size_t size;
    char *buf = NULL;

    json_array_append_new(array, json_string(event));
    if (arg != NULL)
        json_array_append(array, arg);
    if (json_array_size(array) != (arg != NULL ? 2u : 1u))
        goto out;
    size = json_dumpb(array, NULL, 0, JSON_COMPACT);
    if (size == 0)
        goto out;
    buf = xmalloc(size + 3);
    memcpy(buf, "42", 2);
    json_dumpb(array, buf + 2, size, JSON_COMPACT);
    buf[size + 2] = '\0';
    *len = size + 2;
out:
    json_decref(array);
    return buf;
}

static void on_retry_timer(uv_timer_t *timer);

/* Ends the current attempt or connection and schedules the next one. */
static void drop_connection(sioc_t *s, const char *reason)
{
    int was_connected = s->state == SIOC_CONNECTED;
    int delay = s->backoff_ms;

    if (s->ws != NULL) {
        wsc_free(s->ws);
        s->ws = NULL;
    }
    s->state = SIOC_WAITING;
    s->skip_binary = 0;
    s->backoff_ms = delay * 2 < SIOC_BACKOFF_MAX_MS ? delay * 2
                                                    : SIOC_BACKOFF_MAX_MS;
    uv_timer_start(&s->timer, on_retry_timer, (uint64_t)delay, 0);
    s->failures++;
    if (was_connected)
        log_warn("sioc %s: disconnected: %s; reconnecting in %d ms",
                 s->name, reason, delay);
    else if (s->failures % SIOC_LOG_EVERY == 1)
        log_warn("sioc %s: connect failed (attempt %u): %s; retrying in "
                 "%d ms", s->name, s->failures, reason, delay);
    else
        log_debug("sioc %s: connect failed (attempt %u): %s", s->name,
                  s->failures, reason);
    if (s->callbacks.on_disconnect != NULL)
        s->callbacks.on_disconnect(s, reason, s->data);
}

static void on_ping_timeout(uv_timer_t *timer)
{
    drop_connection(timer->data, "ping timeout");
}

static void on_connect_timeout(uv_timer_t *timer)
{
    char reason[64];

    snprintf(reason, sizeof(reason), "connect timed out after %d ms",
             SIOC_CONNECT_TIMEOUT_MS);
    drop_connection(timer->data, reason);
}

static void send_text(sioc_t *s, const char *text)
{
    int r = wsc_send(s->ws, text, strlen(text));

    /* A failed write also ends the connection through wsc's on_close. */
    if (r < 0)
        log_debug("sioc %s: send failed: %s", s->name, uv_strerror(r));
}

static void on_engine_open(sioc_t *s, const char *payload, size_t len)
{
    struct eio_open open;
    char sid[sizeof(open.sid) + 16];

    if (s->state != SIOC_HANDSHAKING) {
        drop_connection(s, "unexpected second Engine.IO open packet");
        return;
    }
    if (parse_open(payload, len, &open) < 0) {
        drop_connection(s, "invalid Engine.IO open packet");
        return;
    }
    s->ping_interval_ms = open.ping_interval_ms;
    s->ping_timeout_ms = open.ping_timeout_ms;
    s->state = SIOC_JOINING;
    log_debug("sioc %s: Engine.IO session %s, ping every %d ms", s->name,
              log_escape(sid, sizeof(sid), open.sid, strlen(open.sid)),
              open.ping_interval_ms);
    send_text(s, "40");
}

static void restart_ping_timer(sioc_t *s)
{
    uv_timer_start(&s->timer, on_ping_timeout,
                   (uint64_t)s->ping_interval_ms +
                       (uint64_t)s->ping_timeout_ms,
                   0);
}

static void on_namespace_connect(sioc_t *s)
{
    if (s->state != SIOC_JOINING)
        return;
    s->state = SIOC_CONNECTED;
    s->backoff_ms = SIOC_BACKOFF_MIN_MS;
    s->failures = 0;
    restart_ping_timer(s);
    log_info("sioc %s: connected", s->name);
    if (s->callbacks.on_connect != NULL)
        s->callbacks.on_connect(s, s->data);
}

static void on_connect_error(sioc_t *s, json_t *data)
{
    json_t *message = json_is_object(data)
                          ? json_object_get(data, "message") : data;
    const char *text = json_is_string(message) ? json_string_value(message)
                                                : "no reason given";
    char escaped[200], *reason;

    log_escape(escaped, sizeof(escaped), text, strlen(text));
    reason = xasprintf("server rejected the connection: %s", escaped);
    drop_connection(s, reason);
    free(reason);
}

/* Handles one Socket.IO packet; a packet that does not parse drops the
 * connection. */
static void on_socket_packet(sioc_t *s, const char *msg, size_t len)
{
    struct sio_packet p;

    if (parse_packet(msg, len, &p) < 0) {
        drop_connection(s, "invalid Socket.IO packet from server");
        return;
    }
    if (p.attachments > 0)
        s->skip_binary = p.attachments;
    if (!p.default_namespace) {
        json_decref(p.data);
        return;
    }
    switch (p.type) {
    case SIO_CONNECT:
        on_namespace_connect(s);
        break;
    case SIO_DISCONNECT:
        drop_connection(s, "server disconnected the namespace");
        break;
    case SIO_CONNECT_ERROR:
        on_connect_error(s, p.data);
        break;
    case SIO_EVENT:
        if (s->state == SIOC_CONNECTED && s->callbacks.on_event != NULL)
            s->callbacks.on_event(
                s, json_string_value(json_array_get(p.data, 0)),
                json_array_get(p.data, 1), s->data);
        break;
    case SIO_BINARY_EVENT:
        log_debug("sioc %s: ignored an event with binary attachments",
                  s->name);
        break;
    default:
        /* This client never requests acknowledgements. */
        break;
    }
    json_decref(p.data);
}

static void on_ws_open(wsc_t *ws, void *data)
{
    sioc_t *s = data;

    s->state = SIOC_HANDSHAKING;
}

/* Dispatches one Engine.IO packet. */
static void on_ws_message(wsc_t *ws, const uint8_t *msg, size_t len,
                          int binary, void *data)
{
    sioc_t *s = data;
    const char *text = (const char *)msg;
    char reason[64];

    if (binary) {
        if (s->skip_binary > 0)
            s->skip_binary--;
        return;
    }
    if (len == 0) {
        drop_connection(s, "empty Engine.IO packet from server");
        return;
    }
    switch (text[0]) {
    case '0':
        on_engine_open(s, text + 1, len - 1);
        break;
    case '1':
        drop_connection(s, "server closed the Engine.IO session");
        break;
    case '2':
        /* The pong echoes the ping's payload, as the protocol requires. */
        if (len == 1) {
            send_text(s, "3");
        } else {
            char *pong = xstrndup(text, len);

            pong[0] = '3';
            send_text(s, pong);
            free(pong);
        }
        if (s->state == SIOC_CONNECTED)
            restart_ping_timer(s);
        break;
    case '3':
    case '6':
        break;
    case '4':
        if (s->state == SIOC_JOINING || s->state == SIOC_CONNECTED)
            on_socket_packet(s, text + 1, len - 1);
        break;
    default:
        snprintf(reason, sizeof(reason),
                 "invalid Engine.IO packet type 0x%02x from server",
                 (unsigned char)text[0]);
        drop_connection(s, reason);
        break;
    }
}

static void on_ws_close(wsc_t *ws, const char *reason, void *data)
{
    drop_connection(data, reason);
}

static const wsc_callbacks_t sioc_ws_callbacks = {
    .on_open = on_ws_open,
    .on_message = on_ws_message,
    .on_close = on_ws_close,
};

static void start_attempt(sioc_t *s)
{
    char reason[128];
    int r;

    r = wsc_connect(s->loop, s->host, s->port, s->path, SIOC_MAX_MESSAGE,
                    &sioc_ws_callbacks, s, &s->ws);
    if (r < 0) {
        s->ws = NULL;
        snprintf(reason, sizeof(reason), "cannot start connecting: %s",
                 uv_strerror(r));
        drop_connection(s, reason);
        return;
    }
    s->state = SIOC_OPENING;
    uv_timer_start(&s->timer, on_connect_timeout, SIOC_CONNECT_TIMEOUT_MS,
                   0);
}

static void on_retry_timer(uv_timer_t *timer)
{
    start_attempt(timer->data);
}

/* Builds "<prefix>/socket.io/?EIO=4&transport=websocket" with the prefix
 * reduced to "" or "/x" (no trailing slash). */
static char *build_path(const char *prefix)
{
    size_t len;

    if (prefix == NULL)
        prefix = "";
    while (*prefix == '/')
        prefix++;
    len = strlen(prefix);
    while (len > 0 && prefix[len - 1] == '/')
        len--;
    return xasprintf("%s%.*s/socket.io/?EIO=4&transport=websocket",
                     len > 0 ? "/" : "", (int)len, prefix);
}

sioc_t *sioc_new(uv_loop_t *loop, const char *host, int port,
                 const char *prefix, const sioc_callbacks_t *callbacks,
                 void *data)
{
    sioc_t *s = xcalloc(1, sizeof(*s));

    s->loop = loop;
    s->host = xstrdup(host);
    s->port = port;
    s->path = build_path(prefix);
    s->name = xasprintf("%s:%d", host, port);
    if (callbacks != NULL)
        s->callbacks = *callbacks;
    s->data = data;
    s->state = SIOC_WAITING;
    s->backoff_ms = SIOC_BACKOFF_MIN_MS;
    uv_timer_init(loop, &s->timer);
    s->timer.data = s;
    /* Starting from the loop keeps every callback out of sioc_new. */
    uv_timer_start(&s->timer, on_retry_timer, 0, 0);
    return s;
}

static void on_timer_closed(uv_handle_t *handle)
{
    sioc_t *s = handle->data;

    free(s->host);
    free(s->path);
    free(s->name);
    free(s);
}

void sioc_free(sioc_t *client)
{
    if (client == NULL || client->freed)
        return;
    client->freed = 1;
    if (client->ws != NULL) {
        /* Tell the server this is a deliberate disconnect, as the
         * reference client does. */
        if (client->state == SIOC_CONNECTED)
            send_text(client, "41");
        wsc_free(client->ws);
        client->ws = NULL;
    }
    client->state = SIOC_WAITING;
    uv_timer_stop(&client->timer);
    uv_close((uv_handle_t *)&client->timer, on_timer_closed);
}

int sioc_connected(const sioc_t *client)
{
    return client->state == SIOC_CONNECTED;
}

int sioc_emit(sioc_t *client, const char *event, json_t *arg)
{
    size_t len = 0;
    char *msg;
    int r;

    if (client->state != SIOC_CONNECTED)
        return -1;
    msg = encode_event(event, arg, &len);
    if (msg == NULL) {
        log_warn("sioc %s: emit %s failed: invalid event name or argument",
                 client->name, event);
        return -1;
    }
    r = wsc_send(client->ws, msg, len);
    free(msg);
    return r < 0 ? -1 : 0;
}

void sioc_reconnect_now(sioc_t *client)
{
    if (client->freed || client->state != SIOC_WAITING)
        return;
    uv_timer_start(&client->timer, on_retry_timer, 0, 0);
}
