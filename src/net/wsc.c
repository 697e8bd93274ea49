#include "net/wsc.h"

#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include <openssl/sha.h>
#include <sodium.h>
#include <wslay/wslay.h>

#include "core/log.h"
#include "core/util.h"

#define WSC_READ_SIZE 65536
#define WSC_KEY_BYTES 16
#define WSC_GUID "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"

enum wsc_state {
    WSC_RESOLVING,
    WSC_CONNECTING,
    WSC_HANDSHAKE,
    WSC_OPEN,
    WSC_DONE,   /* on_close was called, so only wsc_free() remains */
};

struct wsc {
    uv_loop_t *loop;
    wsc_callbacks_t callbacks;
    void *data;
    char *host;
    char *path;
    int port;
    size_t max_message;
    char key[32];
    enum wsc_state state;

    uv_getaddrinfo_t resolver;
    int resolving;
    struct addrinfo *addrs;
    struct addrinfo *next_addr;
    int last_error;

    uv_tcp_t tcp;
    uv_connect_t connect_req;
    int tcp_open;           /* tcp initialised and its close_cb not run */

    char *header;           /* upgrade response collected so far */
    size_t header_len;

    wslay_event_context_ptr ctx;
    const uint8_t *input;   /* bytes wslay's recv_callback reads from */
    size_t input_len;
    char *output;           /* bytes wslay's send_callback produced */
    size_t output_len;
    size_t output_cap;
    int write_error;

    /* Depth of wsc frames on the stack. wsc_free() called inside one only
     * marks the client; the outermost frame does the shutdown, so no
     * frame ever runs on released memory. */
    int depth;
    int freed;
    char read_buf[WSC_READ_SIZE];
};

struct wsc_write {
    uv_write_t req;
    wsc_t *ws;
    char *data;
};

static void finish(wsc_t *ws, const char *reason);
static void connect_next(wsc_t *ws);
static void leave(wsc_t *ws);

void wsc_accept_key(const char *key, char out[WSC_ACCEPT_LEN + 1])
{
    unsigned char digest[SHA_DIGEST_LENGTH];
    char *joined = xasprintf("%s%s", key, WSC_GUID);

    SHA1((const unsigned char *)joined, strlen(joined), digest);
    free(joined);
    sodium_bin2base64(out, WSC_ACCEPT_LEN + 1, digest, sizeof(digest),
                      sodium_base64_VARIANT_ORIGINAL);
}

char *wsc_build_request(const char *host, int port, const char *path,
                        const char *key)
{
    const char *open = strchr(host, ':') != NULL ? "[" : "";
    const char *close = *open != '\0' ? "]" : "";

    return xasprintf("GET %s HTTP/1.1\r\n"
                     "Host: %s%s%s:%d\r\n"
                     "Upgrade: websocket\r\n"
                     "Connection: Upgrade\r\n"
                     "Sec-WebSocket-Key: %s\r\n"
                     "Sec-WebSocket-Version: 13\r\n"
                     "\r\n",
                     path, open, host, close, port, key);
}

/* 1 when the comma-separated list value contains token (any case). */
static int has_token(const char *value, size_t len, const char *token)
{
    size_t token_len = strlen(token), i = 0;

    while (i < len) {
        size_t start, end;

        while (i < len && (value[i] == ' ' || value[i] == '\t' ||
                           value[i] == ','))
            i++;
        start = i;
        while (i < len && value[i] != ',')
            i++;
        end = i;
        while (end > start && (value[end - 1] == ' ' ||
                               value[end - 1] == '\t'))
            end--;
        if (end - start == token_len &&
            strncasecmp(value + start, token, token_len) == 0)
            return 1;
    }
    return 0;
}

static int fail_parse(char *err, size_t err_size, const char *what)
{
    snprintf(err, err_size, "WebSocket handshake failed: %s", what);
    return -1;
}

/* Checks the status line; returns 0, or -1 with err filled. */
static int parse_status_line(const char *line, size_t len, char *err,
                             size_t err_size)
{
    char text[64], msg[128];
    int status;

    if (len < 12 || strncmp(line, "HTTP/1.", 7) != 0 || line[8] != ' ' ||
        !isdigit((unsigned char)line[9]) ||
        !isdigit((unsigned char)line[10]) ||
        !isdigit((unsigned char)line[11]))
        return fail_parse(err, err_size, "malformed HTTP status line");
    status = (line[9] - '0') * 100 + (line[10] - '0') * 10 +
             (line[11] - '0');
    if (status == 101)
        return 0;
    /* The reason phrase is server text: escape it before it reaches logs. */
    log_escape(text, sizeof(text), line + 12, len - 12);
    snprintf(msg, sizeof(msg), "server answered HTTP %d%s", status, text);
    return fail_parse(err, err_size, msg);
}

int wsc_parse_response(const char *buf, size_t len, const char *key,
                       size_t *header_len, char *err, size_t err_size)
{
    char expected[WSC_ACCEPT_LEN + 1];
    const char *end = memmem(buf, len, "\r\n\r\n", 4);
    const char *line, *eol;
    int upgrade = 0, connection = 0, accept = 0;

    if (end == NULL) {
        if (len > WSC_MAX_HEADER)
            return fail_parse(err, err_size, "response header too large");
        return 0;
    }
    /* Every line, the status line included, ends with a CRLF at or
     * before end, so the searches below cannot come back empty. */
    eol = memmem(buf, (size_t)(end + 2 - buf), "\r\n", 2);
    if (eol == NULL)
        return fail_parse(err, err_size, "malformed HTTP status line");
    if (parse_status_line(buf, (size_t)(eol - buf), err, err_size) < 0)
        return -1;
    wsc_accept_key(key, expected);
    for (line = eol + 2; line < end + 2; line = eol + 2) {
        const char *colon, *value;
        size_t name_len, value_len;

        eol = memmem(line, (size_t)(end + 2 - line), "\r\n", 2);
        if (eol == NULL)
            return fail_parse(err, err_size, "malformed header line");
        colon = memchr(line, ':', (size_t)(eol - line));
        if (colon == NULL)
            return fail_parse(err, err_size, "malformed header line");
        name_len = (size_t)(colon - line);
        value = colon + 1;
        while (value < eol && (*value == ' ' || *value == '\t'))
            value++;
        value_len = (size_t)(eol - value);
        while (value_len > 0 && (value[value_len - 1] == ' ' ||
                                 value[value_len - 1] == '\t'))
            value_len--;

#define NAME_IS(n) (name_len == strlen(n) && \
                    strncasecmp(line, n, name_len) == 0)
        if (NAME_IS("Upgrade"))
            upgrade = has_token(value, value_len, "websocket");
        else if (NAME_IS("Connection"))
            connection = has_token(value, value_len, "upgrade");
        else if (NAME_IS("Sec-WebSocket-Accept"))
            accept = value_len == WSC_ACCEPT_LEN &&
                     memcmp(value, expected, WSC_ACCEPT_LEN) == 0;
        else if (NAME_IS("Sec-WebSocket-Extensions") ||
                 NAME_IS("Sec-WebSocket-Protocol"))
            /* RFC 6455 section 4.1: the client requested none, so it must
             * fail the connection. */
            return fail_parse(err, err_size,
                              "server selected an extension or subprotocol "
                              "that was not requested");
#undef NAME_IS
    }
    if (!upgrade)
        return fail_parse(err, err_size, "missing \"Upgrade: websocket\"");
    if (!connection)
        return fail_parse(err, err_size, "missing \"Connection: Upgrade\"");
    if (!accept)
        return fail_parse(err, err_size,
                          "Sec-WebSocket-Accept missing or not matching the "
                          "key");
    *header_len = (size_t)(end + 4 - buf);
    return 1;
}

/* Frame bookkeeping: see the depth field. */
static void enter(wsc_t *ws)
{
    ws->depth++;
}

static void release_if_idle(wsc_t *ws)
{
    if (ws->resolving || ws->tcp_open)
        return;
    if (ws->addrs != NULL)
        uv_freeaddrinfo(ws->addrs);
    if (ws->ctx != NULL)
        wslay_event_context_free(ws->ctx);
    free(ws->output);
    free(ws->header);
    free(ws->host);
    free(ws->path);
    free(ws);
}

static void on_write(uv_write_t *req, int status)
{
    struct wsc_write *w = req->data;
    wsc_t *ws = w->ws;

    free(w->data);
    free(w);
    if (status == UV_ECANCELED || status == 0)
        return;
    /* The read side usually reports the same failure; leave() ends the
     * connection in case it does not. */
    if (ws->write_error == 0)
        ws->write_error = status;
    enter(ws);
    leave(ws);
}

/* Hands data (ownership included) to libuv. */
static void write_owned(wsc_t *ws, char *data, size_t len)
{
    struct wsc_write *w = xcalloc(1, sizeof(*w));
    uv_buf_t buf = uv_buf_init(data, (unsigned int)len);
    int r;

    w->ws = ws;
    w->data = data;
    w->req.data = w;
    r = uv_write(&w->req, (uv_stream_t *)&ws->tcp, &buf, 1, on_write);
    if (r < 0) {
        free(data);
        free(w);
        if (ws->write_error == 0)
            ws->write_error = r;
    }
}

/* Runs wslay's sender and writes what it produced in one request. */
static void flush(wsc_t *ws)
{
    int r;

    if (ws->ctx == NULL || !ws->tcp_open ||
        uv_is_closing((uv_handle_t *)&ws->tcp))
        return;
    r = wslay_event_send(ws->ctx);
    if (r < 0 && ws->write_error == 0)
        ws->write_error = -ENOMEM;
    if (ws->output_len > 0) {
        write_owned(ws, ws->output, ws->output_len);
        ws->output = NULL;
        ws->output_len = 0;
        ws->output_cap = 0;
    }
}

static void on_tcp_closed(uv_handle_t *handle)
{
    wsc_t *ws = handle->data;

    ws->tcp_open = 0;
    if (ws->freed)
        release_if_idle(ws);
    else
        connect_next(ws);
}

/* Closes everything once the outermost frame is left after wsc_free(). */
static void shutdown_now(wsc_t *ws)
{
    if (ws->state == WSC_OPEN || ws->state == WSC_DONE)
        flush(ws);
    if (ws->resolving)
        uv_cancel((uv_req_t *)&ws->resolver);
    if (ws->tcp_open && !uv_is_closing((uv_handle_t *)&ws->tcp))
        uv_close((uv_handle_t *)&ws->tcp, on_tcp_closed);
    release_if_idle(ws);
}

/* Leaves a frame; the caller must return right after, as ws may be gone. */
static void leave(wsc_t *ws)
{
    if (--ws->depth > 0)
        return;
    if (ws->freed) {
        shutdown_now(ws);
        return;
    }
    if (ws->state == WSC_OPEN)
        flush(ws);
    if (ws->write_error < 0 && ws->state != WSC_DONE) {
        enter(ws);
        finish(ws, uv_strerror(ws->write_error));
        leave(ws);
    }
}

/* Ends the connection and calls on_close, once. Call inside a frame. */
static void finish(wsc_t *ws, const char *reason)
{
    if (ws->state == WSC_DONE || ws->freed)
        return;
    ws->state = WSC_DONE;
    if (ws->tcp_open && !uv_is_closing((uv_handle_t *)&ws->tcp))
        uv_read_stop((uv_stream_t *)&ws->tcp);
    if (ws->callbacks.on_close != NULL)
        ws->callbacks.on_close(ws, reason, ws->data);
}

static ssize_t wslay_recv(wslay_event_context_ptr ctx, uint8_t *buf,
                          size_t len, int flags, void *user_data)
{
    wsc_t *ws = user_data;
    size_t n = ws->input_len < len ? ws->input_len : len;

    if (n == 0 || ws->freed) {
        wslay_event_set_error(ctx, WSLAY_ERR_WOULDBLOCK);
        return -1;
    }
    memcpy(buf, ws->input, n);
    ws->input += n;
    ws->input_len -= n;
    return (ssize_t)n;
}

static ssize_t wslay_send(wslay_event_context_ptr ctx, const uint8_t *data,
                          size_t len, int flags, void *user_data)
{
    wsc_t *ws = user_data;

    if (ws->output_len + len > ws->output_cap) {
        size_t cap = ws->output_cap == 0 ? 4096 : ws->output_cap;

        while (cap < ws->output_len + len)
            cap *= 2;
        ws->output = xrealloc(ws->output, cap);
        ws->output_cap = cap;
    }
    memcpy(ws->output + ws->output_len, data, len);
    ws->output_len += len;
    return (ssize_t)len;
}

static int wslay_genmask(wslay_event_context_ptr ctx, uint8_t *buf,
                         size_t len, void *user_data)
{
    randombytes_buf(buf, len);
    return 0;
}

static void wslay_on_message(wslay_event_context_ptr ctx,
                             const struct wslay_event_on_msg_recv_arg *arg,
                             void *user_data)
{
    wsc_t *ws = user_data;

    if (ws->freed || ws->state != WSC_OPEN)
        return;
    if (arg->opcode != WSLAY_TEXT_FRAME && arg->opcode != WSLAY_BINARY_FRAME)
        return;
    if (ws->callbacks.on_message != NULL)
        ws->callbacks.on_message(ws, arg->msg, arg->msg_length,
                                 arg->opcode == WSLAY_BINARY_FRAME, ws->data);
}

/* Ends the connection if wslay saw a close frame or stopped reading. */
static void check_closed(wsc_t *ws)
{
    char reason[96];
    unsigned code;

    if (ws->freed || ws->state != WSC_OPEN)
        return;
    if (wslay_event_get_close_received(ws->ctx)) {
        code = wslay_event_get_status_code_received(ws->ctx);
        /* Sends the close reply that wslay queued before ending. */
        flush(ws);
        snprintf(reason, sizeof(reason),
                 "connection closed by server (close code %u)", code);
        finish(ws, reason);
    } else if (!wslay_event_get_read_enabled(ws->ctx)) {
        /* wslay queued a close frame with the reason; once it is sent,
         * its status code can be read back. */
        flush(ws);
        code = wslay_event_get_status_code_sent(ws->ctx);
        if (code == WSLAY_CODE_MESSAGE_TOO_BIG)
            snprintf(reason, sizeof(reason),
                     "message from server larger than %zu bytes",
                     ws->max_message);
        else
            snprintf(reason, sizeof(reason),
                     "WebSocket protocol error (close code %u sent)", code);
        finish(ws, reason);
    }
}

/* Passes received bytes through wslay, which calls wslay_on_message. */
static void feed_frames(wsc_t *ws, const uint8_t *data, size_t len)
{
    int r;

    ws->input = data;
    ws->input_len = len;
    r = wslay_event_recv(ws->ctx);
    ws->input = NULL;
    ws->input_len = 0;
    if (ws->freed || ws->state != WSC_OPEN)
        return;
    if (r < 0) {
        finish(ws, "WebSocket receive failed");
        return;
    }
    check_closed(ws);
}

static int start_frames(wsc_t *ws)
{
    struct wslay_event_callbacks callbacks = {
        .recv_callback = wslay_recv,
        .send_callback = wslay_send,
        .genmask_callback = wslay_genmask,
        .on_msg_recv_callback = wslay_on_message,
    };

    if (wslay_event_context_client_init(&ws->ctx, &callbacks, ws) != 0)
        return -ENOMEM;
    wslay_event_config_set_max_recv_msg_length(ws->ctx, ws->max_message);
    return 0;
}

static void on_header_bytes(wsc_t *ws, const char *data, size_t len)
{
    char err[192];
    size_t header_len = 0;
    int r;

    ws->header = xrealloc(ws->header, ws->header_len + len + 1);
    memcpy(ws->header + ws->header_len, data, len);
    ws->header_len += len;
    ws->header[ws->header_len] = '\0';
    r = wsc_parse_response(ws->header, ws->header_len, ws->key, &header_len,
                           err, sizeof(err));
    if (r == 0)
        return;
    if (r < 0) {
        finish(ws, err);
        return;
    }
    if (start_frames(ws) < 0) {
        finish(ws, "out of memory for the WebSocket context");
        return;
    }
    ws->state = WSC_OPEN;
    if (ws->callbacks.on_open != NULL)
        ws->callbacks.on_open(ws, ws->data);
    /* A server often sends its first frame in the same segment as the
     * 101 response. */
    if (!ws->freed && ws->state == WSC_OPEN && ws->header_len > header_len)
        feed_frames(ws, (const uint8_t *)ws->header + header_len,
                    ws->header_len - header_len);
    free(ws->header);
    ws->header = NULL;
    ws->header_len = 0;
}

static void on_alloc(uv_handle_t *handle, size_t suggested, uv_buf_t *buf)
{
    wsc_t *ws = handle->data;

    *buf = uv_buf_init(ws->read_buf, sizeof(ws->read_buf));
}

static void on_read(uv_stream_t *stream, ssize_t nread, const uv_buf_t *buf)
{
    wsc_t *ws = stream->data;

    if (nread == 0)
        return;
    enter(ws);
    if (ws->freed || ws->state == WSC_DONE) {
        /* Reads after the end are dropped. */
    } else if (nread == UV_EOF) {
        finish(ws, "connection closed by server");
    } else if (nread < 0) {
        finish(ws, uv_strerror((int)nread));
    } else if (ws->state == WSC_HANDSHAKE) {
        on_header_bytes(ws, buf->base, (size_t)nread);
    } else if (ws->state == WSC_OPEN) {
        feed_frames(ws, (const uint8_t *)buf->base, (size_t)nread);
    }
    leave(ws);
}

static void on_connected(uv_connect_t *req, int status)
{
    wsc_t *ws = req->data;
    char *request;
    int r;

    if (status == UV_ECANCELED || ws->freed)
        return;
    if (status < 0) {
        /* Try the next resolved address; on_tcp_closed continues. */
        ws->last_error = status;
        uv_close((uv_handle_t *)&ws->tcp, on_tcp_closed);
        return;
    }
    enter(ws);
    uv_freeaddrinfo(ws->addrs);
    ws->addrs = NULL;
    ws->next_addr = NULL;
    ws->state = WSC_HANDSHAKE;
    uv_tcp_nodelay(&ws->tcp, 1);
    r = uv_read_start((uv_stream_t *)&ws->tcp, on_alloc, on_read);
    if (r < 0) {
        finish(ws, uv_strerror(r));
    } else {
        request = wsc_build_request(ws->host, ws->port, ws->path, ws->key);
        write_owned(ws, request, strlen(request));
    }
    leave(ws);
}

/* Connects to the next resolved address, or reports the last error. */
static void connect_next(wsc_t *ws)
{
    struct addrinfo *ai = ws->next_addr;
    int r;

    enter(ws);
    if (ai == NULL) {
        finish(ws, uv_strerror(ws->last_error));
        leave(ws);
        return;
    }
    ws->next_addr = ai->ai_next;
    r = uv_tcp_init(ws->loop, &ws->tcp);
    if (r < 0) {
        ws->last_error = r;
        finish(ws, uv_strerror(r));
        leave(ws);
        return;
    }
    ws->tcp_open = 1;
    ws->tcp.data = ws;
    ws->connect_req.data = ws;
    r = uv_tcp_connect(&ws->connect_req, &ws->tcp, ai->ai_addr,
                       on_connected);
    if (r < 0) {
        ws->last_error = r;
        uv_close((uv_handle_t *)&ws->tcp, on_tcp_closed);
    }
    leave(ws);
}

static void on_resolved(uv_getaddrinfo_t *req, int status,
                        struct addrinfo *res)
{
    wsc_t *ws = req->data;
    char reason[256], host[128];

    ws->resolving = 0;
    if (ws->freed) {
        if (res != NULL)
            uv_freeaddrinfo(res);
        release_if_idle(ws);
        return;
    }
    if (status < 0) {
        enter(ws);
        snprintf(reason, sizeof(reason), "cannot resolve \"%s\": %s",
                 log_escape(host, sizeof(host), ws->host, strlen(ws->host)),
                 uv_strerror(status));
        finish(ws, reason);
        leave(ws);
        return;
    }
    ws->addrs = res;
    ws->next_addr = res;
    ws->last_error = UV_EADDRNOTAVAIL;
    ws->state = WSC_CONNECTING;
    connect_next(ws);
}

int wsc_connect(uv_loop_t *loop, const char *host, int port,
                const char *path, size_t max_message,
                const wsc_callbacks_t *callbacks, void *data, wsc_t **out)
{
    struct addrinfo hints = {
        .ai_family = AF_UNSPEC,
        .ai_socktype = SOCK_STREAM,
    };
    unsigned char nonce[WSC_KEY_BYTES];
    char service[16];
    wsc_t *ws;
    int r;

    if (sodium_init() < 0)
        return -EIO;
    ws = xcalloc(1, sizeof(*ws));
    ws->loop = loop;
    ws->callbacks = *callbacks;
    ws->data = data;
    ws->host = xstrdup(host);
    ws->path = xstrdup(path);
    ws->port = port;
    ws->max_message = max_message;
    ws->state = WSC_RESOLVING;
    randombytes_buf(nonce, sizeof(nonce));
    sodium_bin2base64(ws->key, sizeof(ws->key), nonce, sizeof(nonce),
                      sodium_base64_VARIANT_ORIGINAL);
    snprintf(service, sizeof(service), "%d", port);
    ws->resolver.data = ws;
    r = uv_getaddrinfo(loop, &ws->resolver, on_resolved, host, service,
                       &hints);
    if (r < 0) {
        free(ws->host);
        free(ws->path);
        free(ws);
        return r;
    }
    ws->resolving = 1;
    *out = ws;
    return 0;
}

void wsc_free(wsc_t *ws)
{
    if (ws == NULL)
        return;
    ws->freed = 1;
    if (ws->state == WSC_OPEN && ws->ctx != NULL &&
        !wslay_event_get_close_sent(ws->ctx))
        wslay_event_queue_close(ws->ctx, WSLAY_CODE_NORMAL_CLOSURE, NULL, 0);
    if (ws->depth > 0)
        return;
    shutdown_now(ws);
}

int wsc_send(wsc_t *ws, const char *text, size_t len)
{
    struct wslay_event_msg msg = {
        .opcode = WSLAY_TEXT_FRAME,
        .msg = (const uint8_t *)text,
        .msg_length = len,
    };
    int r;

    if (ws->freed || ws->state != WSC_OPEN)
        return -ENOTCONN;
    r = wslay_event_queue_msg(ws->ctx, &msg);
    if (r == WSLAY_ERR_NOMEM)
        return -ENOMEM;
    if (r != 0)
        return -ENOTCONN;
    /* Inside a frame, leave() flushes once for everything queued. */
    if (ws->depth == 0)
        flush(ws);
    if (ws->write_error < 0)
        return ws->write_error;
    return 0;
}
