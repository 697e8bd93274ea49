/*
 * Socket.IO and Engine.IO server logic without a network: this file
 * defines the http_* functions that eio.c and sio.c call, so the linker
 * takes these fakes instead of http.c. A fake request records its response
 * and stays alive until the test frees it. A fake WebSocket records the
 * messages sent on it, and the test decides when it closes.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <jansson.h>
#include <uv.h>

#include "core/util.h"
#include "net/http.h"
#include "net/sio.h"

/* Fake HTTP layer. */

struct http_ws {
    http_ws_callbacks_t cb;
    void *user;
    char *messages[64];
    size_t nmessages;
    size_t pending;
    int closing;
    http_ws_t *next_all;
};

struct http_request {
    const char *method;
    char *query;
    char *body;
    size_t body_len;
    int websocket;
    int gone;
    int responded;
    int status;
    char *response;
    size_t response_len;
    int cors;
    char *values[8];    /* returned by http_request_query */
    size_t nvalues;
    http_ws_t *ws;
    http_request_t *next_all;
};

/* Everything the fakes allocate, freed at the end of each test. */
static http_request_t *all_requests;
static http_ws_t *all_ws;

const char *http_request_method(http_request_t *req)
{
    return req->method;
}

const char *http_request_path(http_request_t *req)
{
    return "/socket.io/";
}

const char *http_request_query(http_request_t *req, const char *name)
{
    size_t nlen = strlen(name);
    const char *p = req->query;

    while (p != NULL && *p != '\0') {
        const char *end = strchr(p, '&');
        size_t len = end != NULL ? (size_t)(end - p) : strlen(p);

        if (len > nlen && strncmp(p, name, nlen) == 0 && p[nlen] == '=') {
            assert_true(req->nvalues < ARRAY_SIZE(req->values));
            req->values[req->nvalues] =
                xstrndup(p + nlen + 1, len - nlen - 1);
            return req->values[req->nvalues++];
        }
        p = end != NULL ? end + 1 : NULL;
    }
    return NULL;
}

const char *http_request_header(http_request_t *req, const char *name)
{
    return NULL;
}

const char *http_request_body(http_request_t *req, size_t *len)
{
    *len = req->body_len;
    return req->body != NULL ? req->body : "";
}

const char *http_request_peer(http_request_t *req)
{
    return "127.0.0.1";
}

int http_request_gone(const http_request_t *req)
{
    return req->gone;
}

void http_request_add_header(http_request_t *req, const char *name,
                             const char *value)
{
    if (strcmp(name, "Access-Control-Allow-Origin") == 0)
        req->cors = 1;
}

void http_respond(http_request_t *req, int status, const char *content_type,
                  const char *body, size_t len)
{
    assert_false(req->responded);
    req->responded = 1;
    req->status = status;
    req->response = xmalloc(len + 1);
    memcpy(req->response, body, len);
    req->response[len] = '\0';
    req->response_len = len;
}

int http_request_is_websocket(http_request_t *req)
{
    return req->websocket;
}

http_ws_t *http_upgrade_websocket(http_request_t *req,
                                  const http_ws_callbacks_t *cb, void *user)
{
    http_ws_t *ws;

    if (!req->websocket) {
        http_respond(req, 400, NULL, "", 0);
        return NULL;
    }
    ws = xcalloc(1, sizeof(*ws));
    ws->cb = *cb;
    ws->user = user;
    ws->next_all = all_ws;
    all_ws = ws;
    req->responded = 1;
    req->status = 101;
    req->ws = ws;
    return ws;
}

int http_ws_send(http_ws_t *ws, int opcode, const char *data, size_t len)
{
    assert_int_equal(opcode, 1);
    if (ws->closing)
        return -1;
    assert_true(ws->nmessages < ARRAY_SIZE(ws->messages));
    ws->messages[ws->nmessages++] = xstrndup(data, len);
    return 0;
}

size_t http_ws_pending(const http_ws_t *ws)
{
    return ws->pending;
}

void http_ws_close(http_ws_t *ws)
{
    ws->closing = 1;
}

const char *http_ws_peer(const http_ws_t *ws)
{
    return "127.0.0.1";
}

static http_request_t *fake_request(const char *method, const char *query,
                                    const char *body)
{
    http_request_t *req = xcalloc(1, sizeof(*req));

    req->method = method;
    req->query = xstrdup(query);
    if (body != NULL) {
        req->body = xstrdup(body);
        req->body_len = strlen(body);
    }
    req->next_all = all_requests;
    all_requests = req;
    return req;
}

/* What http.c does when a WebSocket ends: on_close, on a later turn. */
static void fake_ws_finish(http_ws_t *ws)
{
    ws->closing = 1;
    ws->cb.on_close(ws, ws->user);
    ws->cb.on_close = NULL;
}

static void fake_ws_receive(http_ws_t *ws, const char *text)
{
    ws->cb.on_message(ws, 1, text, strlen(text), ws->user);
}

static void fakes_free(void)
{
    while (all_requests != NULL) {
        http_request_t *req = all_requests;
        size_t i;

        all_requests = req->next_all;
        for (i = 0; i < req->nvalues; i++)
            free(req->values[i]);
        free(req->query);
        free(req->body);
        free(req->response);
        free(req);
    }
    while (all_ws != NULL) {
        http_ws_t *ws = all_ws;
        size_t i;

        all_ws = ws->next_all;
        /* The server's link to the connection is freed by on_close. */
        if (ws->cb.on_close != NULL)
            ws->cb.on_close(ws, ws->user);
        for (i = 0; i < ws->nmessages; i++)
            free(ws->messages[i]);
        free(ws);
    }
}

/* Server under test and what its callbacks saw. */

typedef struct fixture {
    uv_loop_t loop;
    sio_server_t *server;
    int connects;
    int disconnects;
    char reason[64];
    char last_event[64];
    char *last_arg;
    sio_socket_t *socket;
    int in_callback;
} fixture_t;

static void on_connect(sio_socket_t *socket, void *data)
{
    fixture_t *f = data;

    f->connects++;
    f->socket = socket;
}

static void on_event(sio_socket_t *socket, const char *event, json_t *arg,
                     void *data)
{
    fixture_t *f = data;

    snprintf(f->last_event, sizeof(f->last_event), "%s", event);
    free(f->last_arg);
    f->last_arg = NULL;
    if (arg != NULL)
        f->last_arg = json_dumps(arg, JSON_COMPACT | JSON_ENCODE_ANY);
    if (strcmp(event, "disconnect-me") == 0) {
        f->in_callback = 1;
        sio_socket_disconnect(socket);
        /* The socket must still be usable until this callback returns. */
        assert_string_equal(sio_socket_id(socket), sio_socket_id(f->socket));
        assert_int_equal(sio_socket_emit(socket, "late", NULL), -1);
        assert_int_equal(f->disconnects, 0);
        f->in_callback = 0;
    } else if (strcmp(event, "echo") == 0) {
        assert_int_equal(sio_socket_emit(socket, event, arg), 0);
    }
}

static void on_disconnect(sio_socket_t *socket, const char *reason,
                          void *data)
{
    fixture_t *f = data;

    assert_false(f->in_callback);
    f->disconnects++;
    snprintf(f->reason, sizeof(f->reason), "%s", reason);
    f->socket = NULL;
}

static fixture_t *fixture_new(int ping_interval_ms, int ping_timeout_ms)
{
    static const sio_server_callbacks_t callbacks = {
        .on_connect = on_connect,
        .on_event = on_event,
        .on_disconnect = on_disconnect,
    };
    sio_server_options_t options = {
        .path = "/socket.io/",
        .ping_interval_ms = ping_interval_ms,
        .ping_timeout_ms = ping_timeout_ms,
        .max_payload = 1000,
    };
    fixture_t *f = xcalloc(1, sizeof(*f));

    uv_loop_init(&f->loop);
    f->server = sio_server_new(&f->loop, &options, &callbacks, f);
    return f;
}

static void fixture_free(fixture_t *f)
{
    sio_server_free(f->server);
    fakes_free();
    uv_run(&f->loop, UV_RUN_DEFAULT);
    assert_int_equal(uv_loop_close(&f->loop), 0);
    free(f->last_arg);
    free(f);
}

static void run_once(fixture_t *f)
{
    uv_run(&f->loop, UV_RUN_NOWAIT);
}

static http_request_t *send_request(fixture_t *f, const char *method,
                                    const char *query, const char *body)
{
    http_request_t *req = fake_request(method, query, body);

    assert_int_equal(sio_server_handle(f->server, req), 1);
    return req;
}

/* Opens a polling session; returns its query string (caller frees). */
static char *open_polling(fixture_t *f)
{
    http_request_t *req;
    json_t *open;
    char *query;

    req = send_request(f, "GET", "EIO=4&transport=polling&t=1", NULL);
    assert_int_equal(req->status, 200);
    assert_true(req->cors);
    assert_int_equal(req->response[0], '0');
    open = json_loads(req->response + 1, 0, NULL);
    assert_non_null(open);
    assert_string_equal(
        json_string_value(json_array_get(json_object_get(open, "upgrades"),
                                         0)),
        "websocket");
    assert_int_equal(json_integer_value(json_object_get(open, "maxPayload")),
                     1000);
    query = xasprintf("EIO=4&transport=polling&sid=%s",
                      json_string_value(json_object_get(open, "sid")));
    json_decref(open);
    return query;
}

static void post_ok(fixture_t *f, const char *query, const char *body)
{
    http_request_t *req = send_request(f, "POST", query, body);

    assert_int_equal(req->status, 200);
    assert_string_equal(req->response, "ok");
}

/* Opens a polling session and joins the default namespace. */
static char *connect_polling(fixture_t *f)
{
    char *query = open_polling(f);
    http_request_t *get;

    post_ok(f, query, "40");
    get = send_request(f, "GET", query, NULL);
    assert_int_equal(get->status, 200);
    assert_memory_equal(get->response, "40{\"sid\":\"", 10);
    assert_int_equal(f->connects, 1);
    assert_non_null(f->socket);
    return query;
}

/* Packet codec. */

static void decode_connect(void **state)
{
    sio__packet_t p;

    assert_int_equal(sio__packet_decode("0", 1, &p), 0);
    assert_int_equal(p.type, SIO__CONNECT);
    assert_int_equal(p.nsp_len, 1);
    assert_memory_equal(p.nsp, "/", 1);
    assert_null(p.data);
    assert_true(p.ack_id == -1);

    assert_int_equal(sio__packet_decode("0{\"token\":\"x\"}", 14, &p), 0);
    assert_true(json_is_object(p.data));
    json_decref(p.data);

    assert_int_equal(sio__packet_decode("0/admin,{\"a\":1}", 15, &p), 0);
    assert_int_equal(p.nsp_len, 6);
    assert_memory_equal(p.nsp, "/admin", 6);
    assert_true(json_is_object(p.data));
    json_decref(p.data);

    assert_int_equal(sio__packet_decode("0/admin,", 8, &p), 0);
    assert_int_equal(p.nsp_len, 6);
    assert_null(p.data);

    assert_int_equal(sio__packet_decode("0/admin", 7, &p), 0);
    assert_int_equal(p.nsp_len, 6);
}

static void decode_event(void **state)
{
    const char *text = "2[\"status\",{\"uuid\":\"u1\",\"data\":null}]";
    sio__packet_t p;

    assert_int_equal(sio__packet_decode(text, strlen(text), &p), 0);
    assert_int_equal(p.type, SIO__EVENT);
    assert_true(p.ack_id == -1);
    assert_string_equal(json_string_value(json_array_get(p.data, 0)),
                        "status");
    assert_true(json_is_object(json_array_get(p.data, 1)));
    json_decref(p.data);

    text = "212[\"ev\"]";
    assert_int_equal(sio__packet_decode(text, strlen(text), &p), 0);
    assert_true(p.ack_id == 12);
    assert_int_equal(json_array_size(p.data), 1);
    json_decref(p.data);

    text = "2/ns,5[\"ev\",1]";
    assert_int_equal(sio__packet_decode(text, strlen(text), &p), 0);
    assert_int_equal(p.nsp_len, 3);
    assert_memory_equal(p.nsp, "/ns", 3);
    assert_true(p.ack_id == 5);
    json_decref(p.data);

    /* JavaScript clients may use a number as an event name. */
    text = "2[7,\"x\"]";
    assert_int_equal(sio__packet_decode(text, strlen(text), &p), 0);
    json_decref(p.data);

    /* A NUL inside an argument is valid JSON. */
    text = "2[\"ev\",\"a\\u0000b\"]";
    assert_int_equal(sio__packet_decode(text, strlen(text), &p), 0);
    assert_int_equal(json_string_length(json_array_get(p.data, 1)), 3);
    json_decref(p.data);

    assert_int_equal(sio__packet_decode("1", 1, &p), 0);
    assert_int_equal(p.type, SIO__DISCONNECT);

    text = "3[\"ok\"]";
    assert_int_equal(sio__packet_decode(text, strlen(text), &p), 0);
    assert_int_equal(p.type, SIO__ACK);
    json_decref(p.data);
}

static void decode_rejects_invalid(void **state)
{
    static const char *const invalid[] = {
        "",
        "7",
        "a",
        "51-[\"ev\",{\"_placeholder\":true,\"num\":0}]",
        "61-0[{\"_placeholder\":true,\"num\":0}]",
        "2[\"ev\"",
        "2{\"a\":1}",
        "2[]",
        "2[{}]",
        "2[\"connect\"]",
        "2[\"disconnect\",1]",
        "2[\"a\\u0000b\"]",
        "2",
        "1{\"a\":1}",
        "0[1]",
        "0\"text\"",
        "3{}",
        "21234567890123456[\"ev\"]",
    };
    size_t i;

    for (i = 0; i < ARRAY_SIZE(invalid); i++) {
        sio__packet_t p;
        int rc = sio__packet_decode(invalid[i], strlen(invalid[i]), &p);

        if (rc != -EINVAL)
            fail_msg("accepted invalid packet '%s'", invalid[i]);
        assert_null(p.data);
    }
}

static void encode_event(void **state)
{
    json_t *arg = json_pack("{s:s,s:i}", "uuid", "a\"b", "status", 200);
    size_t len;
    char *text;

    text = sio__event_encode("stream/auth", arg, &len);
    assert_string_equal(
        text, "2[\"stream/auth\",{\"uuid\":\"a\\\"b\",\"status\":200}]");
    assert_int_equal(len, strlen(text));
    free(text);
    json_decref(arg);

    text = sio__event_encode("bare", NULL, &len);
    assert_string_equal(text, "2[\"bare\"]");
    free(text);
}

/* Polling. */

static void polling_handshake_and_event(void **state)
{
    fixture_t *f = fixture_new(0, 0);
    char *query = connect_polling(f);
    http_request_t *get;

    assert_int_equal(sio_server_count(f->server), 1);
    assert_string_equal(sio_socket_peer(f->socket), "127.0.0.1");

    /* The GET is held until there is something to send. */
    get = send_request(f, "GET", query, NULL);
    assert_false(get->responded);
    post_ok(f, query, "42[\"echo\",{\"n\":1}]");
    assert_string_equal(f->last_event, "echo");
    assert_string_equal(f->last_arg, "{\"n\":1}");
    assert_true(get->responded);
    assert_string_equal(get->response, "42[\"echo\",{\"n\":1}]");

    /* Several packets in one POST, each delivered; queued replies are
     * joined with the record separator. */
    post_ok(f, query,
            "42[\"echo\",1]\x1e" "42[\"other\"]\x1e" "42[\"echo\",2]");
    assert_string_equal(f->last_event, "echo");
    assert_string_equal(f->last_arg, "2");
    assert_int_equal(sio_socket_pending(f->socket), 25);
    get = send_request(f, "GET", query, NULL);
    assert_string_equal(get->response,
                        "42[\"echo\",1]\x1e" "42[\"echo\",2]");
    assert_int_equal(sio_socket_pending(f->socket), 0);

    free(query);
    fixture_free(f);
}

static void polling_errors(void **state)
{
    fixture_t *f = fixture_new(0, 0);
    http_request_t *req;
    char *query;

    req = send_request(f, "GET", "EIO=4&transport=polling&sid=nope", NULL);
    assert_int_equal(req->status, 400);
    assert_true(req->cors);
    assert_string_equal(req->response,
                        "{\"code\":1,\"message\":\"Session ID unknown\"}");

    req = send_request(f, "GET", "EIO=4&transport=flash", NULL);
    assert_string_equal(req->response,
                        "{\"code\":0,\"message\":\"Transport unknown\"}");

    req = send_request(f, "GET", "transport=polling", NULL);
    assert_string_equal(
        req->response,
        "{\"code\":5,\"message\":\"Unsupported protocol version\"}");

    req = send_request(f, "POST", "EIO=4&transport=polling", "40");
    assert_string_equal(req->response,
                        "{\"code\":2,\"message\":\"Bad handshake method\"}");

    req = send_request(f, "GET", "EIO=4&transport=websocket", NULL);
    assert_string_equal(req->response,
                        "{\"code\":3,\"message\":\"Bad request\"}");
    assert_int_equal(sio_server_count(f->server), 0);

    query = open_polling(f);
    req = send_request(f, "OPTIONS", query, NULL);
    assert_int_equal(req->status, 204);
    assert_true(req->cors);
    free(query);
    fixture_free(f);
}

static void polling_overlapping_get(void **state)
{
    fixture_t *f = fixture_new(0, 0);
    char *query = connect_polling(f);
    http_request_t *first, *second;

    first = send_request(f, "GET", query, NULL);
    second = send_request(f, "GET", query, NULL);
    assert_int_equal(second->status, 400);
    assert_string_equal(first->response, "1");
    assert_int_equal(f->disconnects, 0);
    run_once(f);
    assert_int_equal(f->disconnects, 1);
    assert_string_equal(f->reason, "transport error");
    assert_int_equal(sio_server_count(f->server), 0);

    second = send_request(f, "GET", query, NULL);
    assert_int_equal(second->status, 400);
    free(query);
    fixture_free(f);
}

static void polling_gone_get_replaced(void **state)
{
    fixture_t *f = fixture_new(0, 0);
    char *query = connect_polling(f);
    http_request_t *first, *second;

    first = send_request(f, "GET", query, NULL);
    first->gone = 1;
    second = send_request(f, "GET", query, NULL);
    assert_true(first->responded);
    assert_false(second->responded);
    sio_socket_emit(f->socket, "x", NULL);
    assert_string_equal(second->response, "42[\"x\"]");

    /* Data that meets a GET whose client left cannot be delivered. */
    second = send_request(f, "GET", query, NULL);
    second->gone = 1;
    sio_socket_emit(f->socket, "y", NULL);
    run_once(f);
    assert_int_equal(f->disconnects, 1);
    assert_string_equal(f->reason, "transport close");
    free(query);
    fixture_free(f);
}

static void disconnect_inside_event(void **state)
{
    fixture_t *f = fixture_new(0, 0);
    char *query = connect_polling(f);
    http_request_t *get;

    get = send_request(f, "GET", query, NULL);
    post_ok(f, query, "42[\"disconnect-me\",{}]");
    assert_string_equal(get->response, "41");
    assert_int_equal(f->disconnects, 0);
    assert_int_equal(sio_server_count(f->server), 0);
    run_once(f);
    assert_int_equal(f->disconnects, 1);
    assert_string_equal(f->reason, "server namespace disconnect");

    /* The close packet waits for the next GET, then the session is gone. */
    get = send_request(f, "GET", query, NULL);
    assert_string_equal(get->response, "1");
    get = send_request(f, "GET", query, NULL);
    assert_int_equal(get->status, 400);
    free(query);
    fixture_free(f);
}

static void disconnect_waits_for_next_get(void **state)
{
    fixture_t *f = fixture_new(0, 0);
    char *query = connect_polling(f);
    http_request_t *get;

    sio_socket_emit(f->socket, "bye", NULL);
    sio_socket_disconnect(f->socket);
    run_once(f);
    assert_int_equal(f->disconnects, 1);
    /* The session lingers until the client collects the close packet. */
    get = send_request(f, "GET", query, NULL);
    assert_string_equal(get->response, "42[\"bye\"]\x1e" "41\x1e" "1");
    get = send_request(f, "GET", query, NULL);
    assert_int_equal(get->status, 400);
    free(query);
    fixture_free(f);
}

static void client_namespace_disconnect(void **state)
{
    fixture_t *f = fixture_new(0, 0);
    char *query = connect_polling(f);
    http_request_t *get;

    post_ok(f, query, "41");
    run_once(f);
    assert_int_equal(f->disconnects, 1);
    assert_string_equal(f->reason, "client namespace disconnect");

    /* The Engine.IO session survives and may join again. */
    post_ok(f, query, "40");
    get = send_request(f, "GET", query, NULL);
    assert_memory_equal(get->response, "40{\"sid\":", 9);
    assert_int_equal(f->connects, 2);
    free(query);
    fixture_free(f);
}

static void invalid_namespace_and_packets(void **state)
{
    fixture_t *f = fixture_new(0, 0);
    char *query = open_polling(f);
    http_request_t *req;

    post_ok(f, query, "40/admin,");
    req = send_request(f, "GET", query, NULL);
    assert_string_equal(req->response,
                        "44/admin,{\"message\":\"Invalid namespace\"}");
    assert_int_equal(f->connects, 0);

    /* Events before joining are dropped. */
    post_ok(f, query, "42[\"echo\",1]");
    assert_string_equal(f->last_event, "");

    /* A malformed Socket.IO packet ends the session. */
    req = send_request(f, "POST", query, "42[\"echo\"");
    assert_int_equal(req->status, 200);
    req = send_request(f, "GET", query, NULL);
    assert_string_equal(req->response, "1");
    req = send_request(f, "GET", query, NULL);
    assert_int_equal(req->status, 400);
    free(query);

    /* So does a base64 binary Engine.IO packet. */
    query = connect_polling(f);
    req = send_request(f, "POST", query, "bAQID");
    assert_int_equal(req->status, 400);
    run_once(f);
    assert_string_equal(f->reason, "parse error");
    free(query);
    fixture_free(f);
}

static void post_over_max_payload(void **state)
{
    fixture_t *f = fixture_new(0, 0);
    char *query = connect_polling(f);
    char *body = xmalloc(1100);
    http_request_t *req;

    memset(body, 'x', 1099);
    memcpy(body, "42[\"echo\",\"", 11);
    memcpy(body + 1096, "\"]", 3);
    req = send_request(f, "POST", query, body);
    assert_int_equal(req->status, 413);
    run_once(f);
    assert_int_equal(f->disconnects, 1);
    assert_string_equal(f->reason, "transport error");
    free(body);
    free(query);
    fixture_free(f);
}

/* Heartbeat. */

static void ping_timeout_closes(void **state)
{
    fixture_t *f = fixture_new(20, 20);
    char *query = connect_polling(f);
    http_request_t *get;

    get = send_request(f, "GET", query, NULL);
    while (!get->responded)
        uv_run(&f->loop, UV_RUN_ONCE);
    assert_string_equal(get->response, "2");
    while (f->disconnects == 0)
        uv_run(&f->loop, UV_RUN_ONCE);
    assert_string_equal(f->reason, "ping timeout");
    free(query);
    fixture_free(f);
}

static void pong_keeps_session(void **state)
{
    fixture_t *f = fixture_new(20, 20);
    char *query = connect_polling(f);
    int pings = 0;

    while (pings < 4) {
        http_request_t *get = send_request(f, "GET", query, NULL);

        while (!get->responded)
            uv_run(&f->loop, UV_RUN_ONCE);
        assert_string_equal(get->response, "2");
        pings++;
        post_ok(f, query, "3");
    }
    assert_int_equal(f->disconnects, 0);
    free(query);
    fixture_free(f);
}

/* WebSocket. */

static http_ws_t *open_websocket(fixture_t *f)
{
    http_request_t *req = fake_request("GET", "EIO=4&transport=websocket",
                                       NULL);
    http_ws_t *ws;

    req->websocket = 1;
    assert_int_equal(sio_server_handle(f->server, req), 1);
    ws = req->ws;
    assert_non_null(ws);
    assert_int_equal(ws->nmessages, 1);
    assert_memory_equal(ws->messages[0], "0{\"sid\":\"", 9);
    assert_non_null(strstr(ws->messages[0], "\"upgrades\":[]"));
    fake_ws_receive(ws, "40");
    assert_int_equal(ws->nmessages, 2);
    assert_memory_equal(ws->messages[1], "40{\"sid\":\"", 10);
    assert_int_equal(f->connects, 1);
    return ws;
}

static void websocket_session(void **state)
{
    fixture_t *f = fixture_new(0, 0);
    http_ws_t *ws = open_websocket(f);

    fake_ws_receive(ws, "42[\"echo\",[1,2]]");
    assert_int_equal(ws->nmessages, 3);
    assert_string_equal(ws->messages[2], "42[\"echo\",[1,2]]");
    ws->pending = 7;
    assert_int_equal(sio_socket_pending(f->socket), 7);
    ws->pending = 0;

    fake_ws_finish(ws);
    assert_int_equal(f->disconnects, 0);
    run_once(f);
    assert_int_equal(f->disconnects, 1);
    assert_string_equal(f->reason, "transport close");
    fixture_free(f);
}

static void websocket_disconnect_drains(void **state)
{
    fixture_t *f = fixture_new(0, 0);
    http_ws_t *ws = open_websocket(f);

    /* The close frame waits while messages are still queued. */
    ws->pending = 100;
    fake_ws_receive(ws, "42[\"disconnect-me\"]");
    assert_string_equal(ws->messages[2], "41");
    assert_false(ws->closing);
    uv_run(&f->loop, UV_RUN_ONCE);
    assert_int_equal(f->disconnects, 1);
    assert_false(ws->closing);
    ws->pending = 0;
    while (!ws->closing)
        uv_run(&f->loop, UV_RUN_ONCE);
    fixture_free(f);
}

static void websocket_binary_rejected(void **state)
{
    fixture_t *f = fixture_new(0, 0);
    http_ws_t *ws = open_websocket(f);

    ws->cb.on_message(ws, 2, "\x04\x01", 2, ws->user);
    assert_true(ws->closing);
    run_once(f);
    assert_string_equal(f->reason, "parse error");
    fixture_free(f);
}

static void upgrade_from_polling(void **state)
{
    fixture_t *f = fixture_new(0, 0);
    char *query = connect_polling(f);
    char *ws_query;
    http_request_t *get, *upgrade;
    http_ws_t *ws;

    get = send_request(f, "GET", query, NULL);
    ws_query = xasprintf("EIO=4&transport=websocket&%s",
                         strstr(query, "sid="));
    upgrade = fake_request("GET", ws_query, NULL);
    upgrade->websocket = 1;
    assert_int_equal(sio_server_handle(f->server, upgrade), 1);
    ws = upgrade->ws;
    assert_non_null(ws);
    assert_int_equal(ws->nmessages, 0);

    fake_ws_receive(ws, "2probe");
    assert_string_equal(ws->messages[0], "3probe");
    assert_string_equal(get->response, "6");

    /* Sent during the probe: stays queued, then goes on the WebSocket. */
    sio_socket_emit(f->socket, "during", NULL);
    fake_ws_receive(ws, "5");
    assert_int_equal(ws->nmessages, 2);
    assert_string_equal(ws->messages[1], "42[\"during\"]");
    sio_socket_emit(f->socket, "after", NULL);
    assert_string_equal(ws->messages[2], "42[\"after\"]");
    fake_ws_receive(ws, "42[\"echo\",\"via ws\"]");
    assert_string_equal(ws->messages[3], "42[\"echo\",\"via ws\"]");

    /* Polling is over for this session. */
    get = send_request(f, "GET", query, NULL);
    assert_int_equal(get->status, 400);
    assert_int_equal(f->disconnects, 0);

    free(ws_query);
    free(query);
    fixture_free(f);
}

static void upgrade_bad_probe(void **state)
{
    fixture_t *f = fixture_new(0, 0);
    char *query = connect_polling(f);
    char *ws_query = xasprintf("EIO=4&transport=websocket&%s",
                               strstr(query, "sid="));
    http_request_t *upgrade, *get;
    http_ws_t *ws;

    upgrade = fake_request("GET", ws_query, NULL);
    upgrade->websocket = 1;
    sio_server_handle(f->server, upgrade);
    ws = upgrade->ws;
    fake_ws_receive(ws, "5");
    assert_true(ws->closing);
    fake_ws_finish(ws);

    /* The session carries on over polling. */
    get = send_request(f, "GET", query, NULL);
    sio_socket_emit(f->socket, "still", NULL);
    assert_string_equal(get->response, "42[\"still\"]");
    assert_int_equal(f->disconnects, 0);
    free(ws_query);
    free(query);
    fixture_free(f);
}

static void server_free_closes_sockets(void **state)
{
    fixture_t *f = fixture_new(0, 0);
    char *query = connect_polling(f);
    http_request_t *get = send_request(f, "GET", query, NULL);

    sio_server_free(f->server);
    f->server = NULL;
    assert_int_equal(f->disconnects, 1);
    assert_string_equal(f->reason, "server shutting down");
    assert_string_equal(get->response, "1");
    fakes_free();
    uv_run(&f->loop, UV_RUN_DEFAULT);
    assert_int_equal(uv_loop_close(&f->loop), 0);
    free(f->last_arg);
    free(f);
    free(query);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(decode_connect),
        cmocka_unit_test(decode_event),
        cmocka_unit_test(decode_rejects_invalid),
        cmocka_unit_test(encode_event),
        cmocka_unit_test(polling_handshake_and_event),
        cmocka_unit_test(polling_errors),
        cmocka_unit_test(polling_overlapping_get),
        cmocka_unit_test(polling_gone_get_replaced),
        cmocka_unit_test(disconnect_inside_event),
        cmocka_unit_test(disconnect_waits_for_next_get),
        cmocka_unit_test(client_namespace_disconnect),
        cmocka_unit_test(invalid_namespace_and_packets),
        cmocka_unit_test(post_over_max_payload),
        cmocka_unit_test(ping_timeout_closes),
        cmocka_unit_test(pong_keeps_session),
        cmocka_unit_test(websocket_session),
        cmocka_unit_test(websocket_disconnect_drains),
        cmocka_unit_test(websocket_binary_rejected),
        cmocka_unit_test(upgrade_from_polling),
        cmocka_unit_test(upgrade_bad_probe),
        cmocka_unit_test(server_free_closes_sockets),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
