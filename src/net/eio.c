#include "net/eio.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>

#include <sodium.h>

#include "core/log.h"
#include "core/util.h"

/* Session ids are 15 random bytes in URL-safe base64, as the reference
 * server makes them. */
#define EIO_SID_BYTES 15
#define EIO_SID_LEN 20

/* How long a client may take from opening the probe WebSocket to sending
 * the upgrade packet (the reference server's default). */
#define EIO_UPGRADE_TIMEOUT_MS 10000

/* While a WebSocket session closes, how often to check whether its queued
 * messages are written (http.h has no drain callback). */
#define EIO_DRAIN_POLL_MS 10

/* Largest polling buffer kept between payloads. */
#define EIO_QUEUE_KEEP (64 * 1024)

/* Separates packets in a polling payload. */
#define EIO_SEPARATOR '\x1e'

/* Error codes of the HTTP error body, from the Engine.IO 4 protocol. */
enum eio_error {
    EIO_ERR_UNKNOWN_TRANSPORT,
    EIO_ERR_UNKNOWN_SID,
    EIO_ERR_BAD_HANDSHAKE_METHOD,
    EIO_ERR_BAD_REQUEST,
    EIO_ERR_FORBIDDEN,
    EIO_ERR_UNSUPPORTED_PROTOCOL_VERSION,
};

static const char *const eio_error_messages[] = {
    "Transport unknown",
    "Session ID unknown",
    "Bad handshake method",
    "Bad request",
    "Forbidden",
    "Unsupported protocol version",
};

enum eio_transport { EIO_POLLING, EIO_WEBSOCKET };

/*
 * OPEN: normal operation. CLOSING: the last packets are on their way: on
 * polling, they and the close packet wait for the client's next GET, and on
 * WebSocket the close frame waits until the queued messages are written.
 * CLOSED: out of the session table, handles closing, memory freed by the
 * last close callback.
 */
enum eio_state { EIO_OPEN, EIO_CLOSING, EIO_CLOSED };

/*
 * The user pointer of one WebSocket connection. It is separate from the
 * session because the connection's close callback may arrive after the
 * session is gone; session is NULL from then on.
 */
typedef struct eio_ws_link {
    eio_session_t *session;
    http_ws_t *ws;
} eio_ws_link_t;

struct eio_server {
    uv_loop_t *loop;
    eio_options_t options;
    eio_callbacks_t callbacks;
    void *data;
    eio_session_t *sessions;
    size_t count;
};

struct eio_session {
    eio_server_t *server;
    eio_session_t *prev, *next;
    char id[EIO_SID_LEN + 1];
    char *peer;
    void *data;
    enum eio_transport transport;
    enum eio_state state;
    eio_ws_link_t *ws;      /* the WebSocket transport */
    eio_ws_link_t *probe;   /* a WebSocket being upgraded to */
    int probed;             /* "3probe" was sent on the probe */
    http_request_t *poll;   /* the GET held until there is something to send */
    char *queue;            /* polling payload waiting for a GET */
    size_t queue_len, queue_cap;
    int awaiting_pong;
    uint64_t close_deadline;    /* loop time at which CLOSING gives up */
    /* Heartbeat while OPEN; while CLOSING, the wait for the last packets
     * to leave. */
    uv_timer_t ping_timer;
    uv_timer_t upgrade_timer;
    int open_handles;
};

static void session_close(eio_session_t *s, const char *reason, int flush);
static void ping_timer_cb(uv_timer_t *timer);
static void ws_on_message(http_ws_t *ws, int opcode, const char *data,
                          size_t len, void *user);
static void ws_on_close(http_ws_t *ws, void *user);

static const http_ws_callbacks_t eio_ws_callbacks = {
    .on_message = ws_on_message,
    .on_close = ws_on_close,
};

/* HTTP replies. */

static void add_cors_headers(http_request_t *req)
{
    http_request_add_header(req, "Access-Control-Allow-Origin", "*");
}

static void respond_error(http_request_t *req, enum eio_error code)
{
    char body[96];
    int n;

    n = snprintf(body, sizeof(body), "{\"code\":%d,\"message\":\"%s\"}",
                 (int)code, eio_error_messages[code]);
    add_cors_headers(req);
    http_respond(req, code == EIO_ERR_FORBIDDEN ? 403 : 400,
                 "application/json", body, (size_t)n);
}

static void respond_text(http_request_t *req, int status, const char *body,
                         size_t len)
{
    add_cors_headers(req);
    http_respond(req, status, "text/plain; charset=UTF-8", body, len);
}

/* Responds to a CORS preflight, which browsers send before a cross-origin
 * POST. */
static void respond_preflight(http_request_t *req)
{
    const char *headers;

    headers = http_request_header(req, "Access-Control-Request-Headers");
    add_cors_headers(req);
    http_request_add_header(req, "Access-Control-Allow-Methods", "GET, POST");
    if (headers != NULL)
        http_request_add_header(req, "Access-Control-Allow-Headers", headers);
    http_respond(req, 204, NULL, "", 0);
}

/* Session table and life cycle. */

static eio_session_t *session_find(eio_server_t *server, const char *id)
{
    eio_session_t *s;

    for (s = server->sessions; s != NULL; s = s->next)
        if (strcmp(s->id, id) == 0)
            return s;
    return NULL;
}

static void session_handle_closed(uv_handle_t *handle)
{
    eio_session_t *s = handle->data;

    if (--s->open_handles > 0)
        return;
    free(s->queue);
    free(s->peer);
    free(s);
}

static eio_session_t *session_new(eio_server_t *server,
                                  enum eio_transport transport,
                                  const char *peer)
{
    unsigned char raw[EIO_SID_BYTES];
    eio_session_t *s = xcalloc(1, sizeof(*s));

    s->server = server;
    randombytes_buf(raw, sizeof(raw));
    sodium_bin2base64(s->id, sizeof(s->id), raw, sizeof(raw),
                      sodium_base64_VARIANT_URLSAFE_NO_PADDING);
    s->peer = xstrdup(peer != NULL ? peer : "");
    s->transport = transport;
    uv_timer_init(server->loop, &s->ping_timer);
    uv_timer_init(server->loop, &s->upgrade_timer);
    s->ping_timer.data = s;
    s->upgrade_timer.data = s;
    s->open_handles = 2;

    s->next = server->sessions;
    if (server->sessions != NULL)
        server->sessions->prev = s;
    server->sessions = s;
    server->count++;
    return s;
}

static void link_detach(eio_ws_link_t *link)
{
    /* The link itself is freed by ws_on_close, which may run inside
     * http_ws_close. */
    link->session = NULL;
    http_ws_close(link->ws);
}

/*
 * Takes the session out of the table and releases its resources. A held
 * GET receives a close packet so that the client does not wait for it.
 */
static void session_destroy(eio_session_t *s)
{
    eio_server_t *server = s->server;

    if (s->state == EIO_CLOSED)
        return;
    s->state = EIO_CLOSED;
    if (s->prev != NULL)
        s->prev->next = s->next;
    else
        server->sessions = s->next;
    if (s->next != NULL)
        s->next->prev = s->prev;
    server->count--;

    if (s->poll != NULL) {
        http_request_t *req = s->poll;

        s->poll = NULL;
        respond_text(req, 200, "1", 1);
    }
    if (s->probe != NULL) {
        link_detach(s->probe);
        s->probe = NULL;
    }
    if (s->ws != NULL) {
        link_detach(s->ws);
        s->ws = NULL;
    }
    uv_close((uv_handle_t *)&s->ping_timer, session_handle_closed);
    uv_close((uv_handle_t *)&s->upgrade_timer, session_handle_closed);
    log_debug("engine.io session %s closed", s->id);
}

/* Sending. */

static void queue_append(eio_session_t *s, char type, const char *data,
                         size_t len)
{
    size_t need = s->queue_len + len + 2;

    if (need > s->queue_cap) {
        s->queue_cap = need > 2 * s->queue_cap ? need : 2 * s->queue_cap;
        s->queue = xrealloc(s->queue, s->queue_cap);
    }
    if (s->queue_len > 0)
        s->queue[s->queue_len++] = EIO_SEPARATOR;
    s->queue[s->queue_len++] = type;
    memcpy(s->queue + s->queue_len, data, len);
    s->queue_len += len;
}

/*
 * Responds to the held GET with everything queued. A GET whose client
 * went away cannot deliver, so the session is then closed.
 */
static void session_flush(eio_session_t *s)
{
    http_request_t *req = s->poll;

    if (req == NULL || s->queue_len == 0)
        return;
    s->poll = NULL;
    if (http_request_gone(req)) {
        http_respond(req, 200, NULL, "", 0);
        session_close(s, "transport close", 0);
        return;
    }
    respond_text(req, 200, s->queue, s->queue_len);
    s->queue_len = 0;
    /* Do not keep a buffer sized for one large payload for the whole
     * session. */
    if (s->queue_cap > EIO_QUEUE_KEEP) {
        free(s->queue);
        s->queue = NULL;
        s->queue_cap = 0;
    }
    if (s->state == EIO_CLOSING)
        session_destroy(s);
}

static int ws_send_packet(eio_ws_link_t *link, char type, const char *data,
                          size_t len)
{
    char *frame = xmalloc(len + 1);
    int rc;

    frame[0] = type;
    memcpy(frame + 1, data, len);
    rc = http_ws_send(link->ws, 1, frame, len + 1);
    free(frame);
    return rc < 0 ? -EPIPE : 0;
}

static int session_send_packet(eio_session_t *s, char type, const char *data,
                               size_t len)
{
    if (s->transport == EIO_WEBSOCKET) {
        if (s->ws == NULL)
            return -EPIPE;
        return ws_send_packet(s->ws, type, data, len);
    }
    queue_append(s, type, data, len);
    session_flush(s);
    return 0;
}

/* Moves the polling queue onto the WebSocket, one frame per packet. */
static void queue_move_to_ws(eio_session_t *s)
{
    const char *p = s->queue, *end = s->queue + s->queue_len;

    while (p < end) {
        const char *sep = memchr(p, EIO_SEPARATOR, (size_t)(end - p));
        const char *stop = sep != NULL ? sep : end;

        http_ws_send(s->ws->ws, 1, p, (size_t)(stop - p));
        p = stop + 1;
    }
    s->queue_len = 0;
}

/* Closing. */

/*
 * Closes the session once, telling the upper layer. With flush, the
 * packets already queued still reach the client, as the reference server
 * does it: on WebSocket the close frame waits until they are written, on
 * polling they and a close packet wait for the next GET. Either wait lasts
 * at most ping_timeout_ms. Without flush (the transport failed, or the peer
 * is not responding) the session goes at once. Calling it again on a closing
 * session without flush ends the wait.
 */
static void session_close(eio_session_t *s, const char *reason, int flush)
{
    eio_server_t *server = s->server;

    if (s->state == EIO_CLOSING && !flush)
        session_destroy(s);
    if (s->state != EIO_OPEN)
        return;
    s->state = EIO_CLOSING;
    uv_timer_stop(&s->ping_timer);
    uv_timer_stop(&s->upgrade_timer);
    if (s->probe != NULL) {
        link_detach(s->probe);
        s->probe = NULL;
    }
    log_debug("engine.io session %s closing: %s", s->id, reason);
    server->callbacks.on_close(s, reason, server->data);

    if (!flush) {
        session_destroy(s);
        return;
    }
    s->close_deadline = uv_now(server->loop) +
                        (uint64_t)server->options.ping_timeout_ms;
    if (s->transport == EIO_WEBSOCKET) {
        /* The close frame would overtake the queued messages. */
        if (s->ws == NULL || http_ws_pending(s->ws->ws) == 0)
            session_destroy(s);
        else
            uv_timer_start(&s->ping_timer, ping_timer_cb, EIO_DRAIN_POLL_MS,
                           EIO_DRAIN_POLL_MS);
        return;
    }
    queue_append(s, '1', "", 0);
    if (s->poll != NULL) {
        session_flush(s);
        return;
    }
    uv_timer_start(&s->ping_timer, ping_timer_cb,
                   (uint64_t)server->options.ping_timeout_ms, 0);
}

/* Heartbeat and upgrade timers. */

static void ping_timer_cb(uv_timer_t *timer)
{
    eio_session_t *s = timer->data;
    eio_server_t *server = s->server;

    if (s->state == EIO_CLOSING) {
        /* Done once the WebSocket drained, or when the wait is over (on
         * polling, the client never came back for the close packet). */
        if (s->transport == EIO_POLLING || s->ws == NULL ||
            http_ws_pending(s->ws->ws) == 0 ||
            uv_now(server->loop) >= s->close_deadline)
            session_destroy(s);
        return;
    }
    if (s->awaiting_pong) {
        session_close(s, "ping timeout", 0);
        return;
    }
    s->awaiting_pong = 1;
    uv_timer_start(&s->ping_timer, ping_timer_cb,
                   (uint64_t)server->options.ping_timeout_ms, 0);
    session_send_packet(s, '2', "", 0);
}

static void ping_schedule(eio_session_t *s)
{
    s->awaiting_pong = 0;
    uv_timer_start(&s->ping_timer, ping_timer_cb,
                   (uint64_t)s->server->options.ping_interval_ms, 0);
}

/* Gives up an upgrade; the session stays on polling. */
static void probe_drop(eio_session_t *s)
{
    if (s->probe == NULL)
        return;
    link_detach(s->probe);
    s->probe = NULL;
    s->probed = 0;
    uv_timer_stop(&s->upgrade_timer);
}

static void upgrade_timer_cb(uv_timer_t *timer)
{
    eio_session_t *s = timer->data;

    log_debug("engine.io session %s: upgrade timed out", s->id);
    probe_drop(s);
}

/* Packets from the client. */

/*
 * Handles one packet received on the session's transport. Returns 0, or -1
 * for a packet the protocol does not allow here (the caller closes the
 * session).
 */
static int session_on_packet(eio_session_t *s, const char *data, size_t len)
{
    eio_server_t *server = s->server;

    if (len == 0)
        return -1;
    switch (data[0]) {
    case '1':
        session_close(s, "transport close", 0);
        return 0;
    case '2':
        /* Engine.IO 4 clients do not ping, but a pong costs nothing. */
        session_send_packet(s, '3', data + 1, len - 1);
        return 0;
    case '3':
        if (s->awaiting_pong)
            ping_schedule(s);
        return 0;
    case '4':
        server->callbacks.on_message(s, data + 1, len - 1, server->data);
        return 0;
    case '6':
        return 0;
    default:
        /* Open and upgrade are not valid here, and "b" (base64 binary)
         * is not supported. */
        return -1;
    }
}

/* Completes the held GET so that a client pausing polling for an upgrade
 * can finish it. */
static void poll_release_for_upgrade(eio_session_t *s)
{
    http_request_t *req = s->poll;

    if (req == NULL)
        return;
    if (s->queue_len > 0) {
        session_flush(s);
        return;
    }
    s->poll = NULL;
    respond_text(req, 200, "6", 1);
}

static void upgrade_complete(eio_session_t *s)
{
    s->ws = s->probe;
    s->probe = NULL;
    s->probed = 0;
    s->transport = EIO_WEBSOCKET;
    uv_timer_stop(&s->upgrade_timer);
    /* The client paused polling before sending the upgrade packet, so a
     * GET still held here is stale: it gets a noop and the queue goes to
     * the WebSocket. */
    if (s->poll != NULL) {
        http_request_t *req = s->poll;

        s->poll = NULL;
        respond_text(req, 200, "6", 1);
    }
    queue_move_to_ws(s);
    log_debug("engine.io session %s upgraded to websocket", s->id);
}

/*
 * The probe exchange: the client sends "2probe", the server replies
 * "3probe" and releases the held GET with a noop, then the client sends
 * "5" and the WebSocket becomes the transport. Anything else aborts the
 * upgrade only.
 */
static void probe_on_message(eio_session_t *s, int opcode, const char *data,
                             size_t len)
{
    if (opcode == 1 && !s->probed && len == 6 &&
        memcmp(data, "2probe", 6) == 0) {
        s->probed = 1;
        ws_send_packet(s->probe, '3', "probe", 5);
        poll_release_for_upgrade(s);
        return;
    }
    if (opcode == 1 && s->probed && len == 1 && data[0] == '5') {
        upgrade_complete(s);
        return;
    }
    log_debug("engine.io session %s: invalid upgrade packet", s->id);
    probe_drop(s);
}

static void ws_on_message(http_ws_t *ws, int opcode, const char *data,
                          size_t len, void *user)
{
    eio_ws_link_t *link = user;
    eio_session_t *s = link->session;

    if (s == NULL || s->state != EIO_OPEN)
        return;
    if (link == s->probe) {
        probe_on_message(s, opcode, data, len);
        return;
    }
    if (len > s->server->options.max_payload) {
        log_debug("engine.io session %s: message of %zu bytes exceeds "
                  "the maximum payload", s->id, len);
        session_close(s, "transport error", 0);
        return;
    }
    if (opcode != 1 || session_on_packet(s, data, len) < 0)
        session_close(s, "parse error", 0);
}

static void ws_on_close(http_ws_t *ws, void *user)
{
    eio_ws_link_t *link = user;
    eio_session_t *s = link->session;

    free(link);
    if (s == NULL)
        return;
    if (link == s->probe) {
        s->probe = NULL;
        s->probed = 0;
        uv_timer_stop(&s->upgrade_timer);
        return;
    }
    if (link == s->ws) {
        s->ws = NULL;
        session_close(s, "transport close", 0);
    }
}

/* Requests. */

static eio_ws_link_t *ws_accept(http_request_t *req)
{
    eio_ws_link_t *link = xcalloc(1, sizeof(*link));

    link->ws = http_upgrade_websocket(req, &eio_ws_callbacks, link);
    if (link->ws == NULL) {
        free(link);
        return NULL;
    }
    return link;
}

static void handshake(eio_server_t *server, http_request_t *req,
                      enum eio_transport transport)
{
    eio_ws_link_t *link = NULL;
    eio_session_t *s;
    char open[256];
    int n;

    if (transport == EIO_WEBSOCKET) {
        link = ws_accept(req);
        if (link == NULL)
            return;
        s = session_new(server, transport, http_ws_peer(link->ws));
        s->ws = link;
        link->session = s;
    } else {
        s = session_new(server, transport, http_request_peer(req));
    }
    n = snprintf(open, sizeof(open),
                 "{\"sid\":\"%s\",\"upgrades\":[%s],\"pingInterval\":%d,"
                 "\"pingTimeout\":%d,\"maxPayload\":%zu}",
                 s->id, transport == EIO_POLLING ? "\"websocket\"" : "",
                 server->options.ping_interval_ms,
                 server->options.ping_timeout_ms,
                 server->options.max_payload);
    if (link != NULL) {
        ws_send_packet(link, '0', open, (size_t)n);
    } else {
        /* The open packet is a one-packet payload. */
        memmove(open + 1, open, (size_t)n + 1);
        open[0] = '0';
        respond_text(req, 200, open, (size_t)n + 1);
    }
    log_debug("engine.io session %s opened (%s, peer %s)", s->id,
              transport == EIO_POLLING ? "polling" : "websocket", s->peer);
    ping_schedule(s);
    server->callbacks.on_open(s, server->data);
}

static void handle_poll(eio_session_t *s, http_request_t *req)
{
    if (s->poll != NULL) {
        if (!http_request_gone(s->poll)) {
            /* Two GETs at once break the order of delivery. */
            respond_error(req, EIO_ERR_BAD_REQUEST);
            session_close(s, "transport error", 0);
            return;
        }
        /* A GET is held only while nothing is queued, and this one's
         * client went away, so replacing it loses no packet. */
        http_respond(s->poll, 200, NULL, "", 0);
    }
    s->poll = req;
    if (s->queue_len > 0)
        session_flush(s);
    else if (s->probed)
        poll_release_for_upgrade(s);
}

static void handle_post(eio_session_t *s, http_request_t *req)
{
    const char *p, *end, *sep;
    size_t len;
    int bad = 0;

    p = http_request_body(req, &len);
    if (s->state != EIO_OPEN) {
        respond_text(req, 200, "ok", 2);
        return;
    }
    if (len > s->server->options.max_payload) {
        respond_text(req, 413, "Payload Too Large", 17);
        session_close(s, "transport error", 0);
        return;
    }
    end = p + len;
    do {
        sep = memchr(p, EIO_SEPARATOR, (size_t)(end - p));
        if (sep == NULL)
            sep = end;
        if (session_on_packet(s, p, (size_t)(sep - p)) < 0) {
            bad = 1;
            break;
        }
        p = sep + 1;
    } while (sep < end && s->state == EIO_OPEN);

    if (bad) {
        respond_error(req, EIO_ERR_BAD_REQUEST);
        session_close(s, "parse error", 0);
        return;
    }
    respond_text(req, 200, "ok", 2);
}

static void handle_upgrade(eio_session_t *s, http_request_t *req)
{
    if (s->state != EIO_OPEN || s->transport != EIO_POLLING ||
        s->probe != NULL) {
        respond_error(req, EIO_ERR_BAD_REQUEST);
        return;
    }
    s->probe = ws_accept(req);
    if (s->probe == NULL)
        return;
    s->probe->session = s;
    uv_timer_start(&s->upgrade_timer, upgrade_timer_cb,
                   EIO_UPGRADE_TIMEOUT_MS, 0);
}

/* Public interface. */

eio_server_t *eio_server_new(uv_loop_t *loop, const eio_options_t *options,
                             const eio_callbacks_t *callbacks, void *data)
{
    eio_server_t *server = xcalloc(1, sizeof(*server));

    server->loop = loop;
    server->options = *options;
    server->callbacks = *callbacks;
    server->data = data;
    return server;
}

void eio_server_free(eio_server_t *server)
{
    if (server == NULL)
        return;
    while (server->sessions != NULL) {
        eio_session_t *s = server->sessions;

        session_close(s, "server shutting down", 1);
        session_destroy(s);
    }
    free(server);
}

void eio_server_handle(eio_server_t *server, http_request_t *req)
{
    const char *method = http_request_method(req);
    const char *transport_name = http_request_query(req, "transport");
    const char *version = http_request_query(req, "EIO");
    const char *sid = http_request_query(req, "sid");
    enum eio_transport transport;
    eio_session_t *s;

    if (strcmp(method, "OPTIONS") == 0) {
        respond_preflight(req);
        return;
    }
    if (transport_name != NULL && strcmp(transport_name, "polling") == 0) {
        transport = EIO_POLLING;
    } else if (transport_name != NULL &&
               strcmp(transport_name, "websocket") == 0) {
        transport = EIO_WEBSOCKET;
    } else {
        respond_error(req, EIO_ERR_UNKNOWN_TRANSPORT);
        return;
    }
    if (version == NULL || strcmp(version, "4") != 0) {
        respond_error(req, EIO_ERR_UNSUPPORTED_PROTOCOL_VERSION);
        return;
    }
    if (transport == EIO_WEBSOCKET && !http_request_is_websocket(req)) {
        respond_error(req, EIO_ERR_BAD_REQUEST);
        return;
    }
    if (sid == NULL) {
        if (strcmp(method, "GET") != 0)
            respond_error(req, EIO_ERR_BAD_HANDSHAKE_METHOD);
        else
            handshake(server, req, transport);
        return;
    }

    s = session_find(server, sid);
    if (s == NULL) {
        respond_error(req, EIO_ERR_UNKNOWN_SID);
        return;
    }
    if (transport == EIO_WEBSOCKET)
        handle_upgrade(s, req);
    else if (s->transport != EIO_POLLING)
        respond_error(req, EIO_ERR_BAD_REQUEST);
    else if (strcmp(method, "GET") == 0)
        handle_poll(s, req);
    else if (strcmp(method, "POST") == 0)
        handle_post(s, req);
    else
        respond_error(req, EIO_ERR_BAD_REQUEST);
}

size_t eio_server_count(const eio_server_t *server)
{
    return server->count;
}

int eio_session_send(eio_session_t *s, const char *msg, size_t len)
{
    if (s->state != EIO_OPEN)
        return -EPIPE;
    if (memchr(msg, EIO_SEPARATOR, len) != NULL)
        return -EINVAL;
    return session_send_packet(s, '4', msg, len);
}

void eio_session_close(eio_session_t *s, const char *reason)
{
    session_close(s, reason, 1);
}

const char *eio_session_id(const eio_session_t *s)
{
    return s->id;
}

const char *eio_session_peer(const eio_session_t *s)
{
    return s->peer;
}

const char *eio_session_transport(const eio_session_t *s)
{
    return s->transport == EIO_WEBSOCKET ? "websocket" : "polling";
}

size_t eio_session_pending(const eio_session_t *s)
{
    size_t pending = s->queue_len;

    if (s->ws != NULL)
        pending += http_ws_pending(s->ws->ws);
    return pending;
}

void eio_session_set_data(eio_session_t *s, void *data)
{
    s->data = data;
}

void *eio_session_get_data(const eio_session_t *s)
{
    return s->data;
}
