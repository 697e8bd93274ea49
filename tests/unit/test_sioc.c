/*
 * Unit tests for the Socket.IO client: the Engine.IO and Socket.IO packet
 * codec, the WebSocket upgrade request and response, and the life cycle
 * against a closed port. The codec is static in sioc.c, so this file
 * compiles sioc.c into itself; the archive's copy is then never linked.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "net/sioc.c"

static void open_packet_valid(void **state)
{
    const char *json = "{\"sid\":\"lv_VI97HAXpY6yYWAAAC\",\"upgrades\":[],"
                       "\"pingInterval\":25000,\"pingTimeout\":20000,"
                       "\"maxPayload\":1000000}";
    struct eio_open open;

    assert_int_equal(parse_open(json, strlen(json), &open), 0);
    assert_string_equal(open.sid, "lv_VI97HAXpY6yYWAAAC");
    assert_int_equal(open.ping_interval_ms, 25000);
    assert_int_equal(open.ping_timeout_ms, 20000);
}

static void open_packet_invalid(void **state)
{
    static const char *const cases[] = {
        "",
        "not json",
        "[]",
        "{\"pingInterval\":25000,\"pingTimeout\":20000}",
        "{\"sid\":\"\",\"pingInterval\":25000,\"pingTimeout\":20000}",
        "{\"sid\":\"a\",\"pingInterval\":\"25000\",\"pingTimeout\":20000}",
        "{\"sid\":\"a\",\"pingInterval\":0,\"pingTimeout\":20000}",
        "{\"sid\":\"a\",\"pingInterval\":25000,\"pingTimeout\":-1}",
        "{\"sid\":\"a\",\"pingInterval\":25000}",
        "{\"sid\":\"a\",\"pingInterval\":25000,\"pingTimeout\":20000} x",
    };
    struct eio_open open;
    size_t i;

    for (i = 0; i < ARRAY_SIZE(cases); i++) {
        if (parse_open(cases[i], strlen(cases[i]), &open) == 0)
            fail_msg("accepted invalid open packet %s", cases[i]);
    }
}

static int parse(const char *text, struct sio_packet *p)
{
    return parse_packet(text, strlen(text), p);
}

static void packet_connect(void **state)
{
    struct sio_packet p;

    assert_int_equal(parse("0{\"sid\":\"oSO0OpakmV4x\"}", &p), 0);
    assert_int_equal(p.type, SIO_CONNECT);
    assert_int_equal(p.default_namespace, 1);
    assert_int_equal(p.ack_id, -1);
    assert_string_equal(json_string_value(json_object_get(p.data, "sid")),
                        "oSO0OpakmV4x");
    json_decref(p.data);

    /* Socket.IO 4 servers send CONNECT without a payload. */
    assert_int_equal(parse("0", &p), 0);
    assert_int_equal(p.type, SIO_CONNECT);
    assert_null(p.data);
}

static void packet_event(void **state)
{
    struct sio_packet p;

    assert_int_equal(parse("2[\"hello\",{\"a\":[1,2]},3]", &p), 0);
    assert_int_equal(p.type, SIO_EVENT);
    assert_int_equal(p.default_namespace, 1);
    assert_string_equal(json_string_value(json_array_get(p.data, 0)),
                        "hello");
    assert_int_equal(json_integer_value(json_array_get(
                         json_object_get(json_array_get(p.data, 1), "a"),
                         1)),
                     2);
    json_decref(p.data);

    assert_int_equal(parse("2[\"bare\"]", &p), 0);
    assert_null(json_array_get(p.data, 1));
    json_decref(p.data);
}

static void packet_event_with_ack(void **state)
{
    struct sio_packet p;

    assert_int_equal(parse("2123[\"x\",null]", &p), 0);
    assert_int_equal(p.type, SIO_EVENT);
    assert_int_equal(p.ack_id, 123);
    json_decref(p.data);
}

static void packet_other_namespace(void **state)
{
    struct sio_packet p;

    assert_int_equal(parse("2/admin,[\"x\"]", &p), 0);
    assert_int_equal(p.default_namespace, 0);
    json_decref(p.data);

    assert_int_equal(parse("1/admin,", &p), 0);
    assert_int_equal(p.type, SIO_DISCONNECT);
    assert_int_equal(p.default_namespace, 0);

    assert_int_equal(parse("2/,[\"x\"]", &p), 0);
    assert_int_equal(p.default_namespace, 1);
    json_decref(p.data);
}

static void packet_connect_error(void **state)
{
    struct sio_packet p;

    assert_int_equal(parse("4{\"message\":\"Not authorized\"}", &p), 0);
    assert_int_equal(p.type, SIO_CONNECT_ERROR);
    assert_string_equal(
        json_string_value(json_object_get(p.data, "message")),
        "Not authorized");
    json_decref(p.data);

    assert_int_equal(parse("4\"Not authorized\"", &p), 0);
    assert_true(json_is_string(p.data));
    json_decref(p.data);
}

static void packet_binary_event(void **state)
{
    struct sio_packet p;

    assert_int_equal(
        parse("52-[\"f\",{\"_placeholder\":true,\"num\":0},"
              "{\"_placeholder\":true,\"num\":1}]",
              &p),
        0);
    assert_int_equal(p.type, SIO_BINARY_EVENT);
    assert_int_equal(p.attachments, 2);
    json_decref(p.data);
}

static void packet_invalid(void **state)
{
    static const char *const cases[] = {
        "",
        "7",
        "x",
        "2",
        "2[]",
        "2[1]",
        "2{\"a\":1}",
        "2[\"x\"",
        "2[\"x\"] trailing",
        "1{}",
        "0[]",
        "4",
        "3[]",
        "5[\"x\"]",
        "5-[\"x\"]",
        "21234567890123456[\"x\"]",
    };
    struct sio_packet p;
    size_t i;

    for (i = 0; i < ARRAY_SIZE(cases); i++) {
        if (parse(cases[i], &p) == 0) {
            json_decref(p.data);
            fail_msg("accepted invalid packet \"%s\"", cases[i]);
        }
        assert_null(p.data);
    }
}

static void event_encoding(void **state)
{
    json_t *arg = json_pack("{s:i,s:s}", "n", 7, "text", "a\"b\xc3\xa9");
    json_t *big = json_string("");
    size_t len = 0;
    char *msg;

    msg = encode_event("hello", arg, &len);
    assert_string_equal(msg,
                        "42[\"hello\",{\"n\":7,\"text\":\"a\\\"b\xc3\xa9\"}]");
    assert_int_equal(len, strlen(msg));
    free(msg);

    msg = encode_event("ping", NULL, &len);
    assert_string_equal(msg, "42[\"ping\"]");
    assert_int_equal(len, 10);
    free(msg);

    /* Long strings keep their exact length through the dump. */
    json_decref(big);
    {
        char *text = xmalloc(1 << 20);

        memset(text, 'x', (1 << 20) - 1);
        text[(1 << 20) - 1] = '\0';
        big = json_string(text);
        free(text);
    }
    msg = encode_event("big", big, &len);
    assert_int_equal(len, strlen("42[\"big\",\"\"]") + (1 << 20) - 1);
    assert_int_equal(msg[len - 1], ']');
    free(msg);
    json_decref(big);
    json_decref(arg);
}

static void event_roundtrip(void **state)
{
    json_t *arg = json_pack("{s:[i,b,n],s:f}", "list", 1, 1, "x", 0.5);
    struct sio_packet p;
    size_t len = 0;
    char *msg = encode_event("stream/detail", arg, &len);

    assert_int_equal(parse_packet(msg + 1, len - 1, &p), 0);
    assert_int_equal(p.type, SIO_EVENT);
    assert_string_equal(json_string_value(json_array_get(p.data, 0)),
                        "stream/detail");
    assert_true(json_equal(json_array_get(p.data, 1), arg));
    json_decref(p.data);
    free(msg);
    json_decref(arg);
}

static void path_building(void **state)
{
    static const struct {
        const char *prefix, *path;
    } cases[] = {
        {NULL, "/socket.io/?EIO=4&transport=websocket"},
        {"", "/socket.io/?EIO=4&transport=websocket"},
        {"/", "/socket.io/?EIO=4&transport=websocket"},
        {"/daemon", "/daemon/socket.io/?EIO=4&transport=websocket"},
        {"daemon/", "/daemon/socket.io/?EIO=4&transport=websocket"},
        {"/a/b//", "/a/b/socket.io/?EIO=4&transport=websocket"},
    };
    size_t i;

    for (i = 0; i < ARRAY_SIZE(cases); i++) {
        char *path = build_path(cases[i].prefix);

        assert_string_equal(path, cases[i].path);
        free(path);
    }
}

static void accept_key_rfc_sample(void **state)
{
    char out[WSC_ACCEPT_LEN + 1];

    /* The worked example of RFC 6455 section 1.3. */
    wsc_accept_key("dGhlIHNhbXBsZSBub25jZQ==", out);
    assert_string_equal(out, "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=");
}

static void upgrade_request(void **state)
{
    char *req = wsc_build_request("127.0.0.1", 24444,
                                  "/socket.io/?EIO=4&transport=websocket",
                                  "dGhlIHNhbXBsZSBub25jZQ==");

    assert_string_equal(req,
                        "GET /socket.io/?EIO=4&transport=websocket HTTP/1.1\r\n"
                        "Host: 127.0.0.1:24444\r\n"
                        "Upgrade: websocket\r\n"
                        "Connection: Upgrade\r\n"
                        "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
                        "Sec-WebSocket-Version: 13\r\n"
                        "\r\n");
    free(req);

    req = wsc_build_request("::1", 80, "/", "k");
    assert_non_null(strstr(req, "\r\nHost: [::1]:80\r\n"));
    free(req);
}

#define KEY "dGhlIHNhbXBsZSBub25jZQ=="
#define ACCEPT "s3pPLMBiTxaQ9kYGzzhZRbK+xOo="

static int check_response(const char *text, size_t *header_len, char *err)
{
    return wsc_parse_response(text, strlen(text), KEY, header_len, err, 192);
}

static void response_valid(void **state)
{
    const char *text = "HTTP/1.1 101 Switching Protocols\r\n"
                       "upgrade: WebSocket\r\n"
                       "connection: keep-alive, Upgrade\r\n"
                       "sec-websocket-accept: " ACCEPT "  \r\n"
                       "\r\n"
                       "\x81\x02" "40";
    char err[192] = "";
    size_t header_len = 0;

    assert_int_equal(check_response(text, &header_len, err), 1);
    assert_int_equal(header_len, strlen(text) - 4);
}

static void response_incomplete(void **state)
{
    char err[192] = "";
    size_t header_len = 0;

    assert_int_equal(check_response("HTTP/1.1 101 Switching Protocols\r\n"
                                     "Upgrade: websocket\r\n",
                                     &header_len, err),
                     0);
    assert_int_equal(check_response("", &header_len, err), 0);
}

static void response_rejected(void **state)
{
    static const struct {
        const char *text, *message;
    } cases[] = {
        {"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n\r\n",
         "server answered HTTP 400 Bad Request"},
        {"HTTP/1.1 200 OK\r\n\r\n", "server answered HTTP 200 OK"},
        {"SSH-2.0-OpenSSH\r\n\r\n", "malformed HTTP status line"},
        {"HTTP/1.1 101 Switching Protocols\r\n"
         "Connection: Upgrade\r\nSec-WebSocket-Accept: " ACCEPT "\r\n\r\n",
         "missing \"Upgrade: websocket\""},
        {"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n"
         "Sec-WebSocket-Accept: " ACCEPT "\r\n\r\n",
         "missing \"Connection: Upgrade\""},
        {"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n"
         "Connection: Upgrade\r\n\r\n",
         "Sec-WebSocket-Accept missing or not matching the key"},
        {"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n"
         "Connection: Upgrade\r\n"
         "Sec-WebSocket-Accept: AAAAAAAAAAAAAAAAAAAAAAAAAAA=\r\n\r\n",
         "Sec-WebSocket-Accept missing or not matching the key"},
        {"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n"
         "Connection: Upgrade\r\nSec-WebSocket-Accept: " ACCEPT "\r\n"
         "Sec-WebSocket-Extensions: permessage-deflate\r\n\r\n",
         "server selected an extension or subprotocol that was not "
         "requested"},
        {"HTTP/1.1 101 Switching Protocols\r\nbroken line\r\n\r\n",
         "malformed header line"},
    };
    size_t i;

    for (i = 0; i < ARRAY_SIZE(cases); i++) {
        char err[192] = "", expected[192];
        size_t header_len = 0;

        snprintf(expected, sizeof(expected), "WebSocket handshake failed: %s",
                 cases[i].message);
        assert_int_equal(check_response(cases[i].text, &header_len, err),
                         -1);
        assert_string_equal(err, expected);
    }
}

static void response_too_large(void **state)
{
    char *text = xmalloc(WSC_MAX_HEADER + 2);
    char err[192] = "";
    size_t header_len = 0;

    memset(text, 'a', WSC_MAX_HEADER + 1);
    text[WSC_MAX_HEADER + 1] = '\0';
    assert_int_equal(check_response(text, &header_len, err), -1);
    assert_string_equal(err,
                        "WebSocket handshake failed: response header too "
                        "large");
    free(text);
}

/* Life cycle against a closed port. */
struct refused_run {
    sioc_t *client;
    int disconnects;
    char reason[128];
    int free_after;
};

static void refused_on_disconnect(sioc_t *client, const char *reason,
                                  void *data)
{
    struct refused_run *run = data;

    run->disconnects++;
    snprintf(run->reason, sizeof(run->reason), "%s", reason);
    assert_int_equal(sioc_connected(client), 0);
    assert_int_equal(sioc_emit(client, "x", NULL), -1);
    if (run->disconnects == 1)
        sioc_reconnect_now(client);
    if (run->disconnects == run->free_after)
        sioc_free(client);
}

/* Returns a loopback port that refuses connections (bound, then closed). */
static int closed_port(uv_loop_t *loop)
{
    struct sockaddr_in addr;
    struct sockaddr_storage bound;
    int len = sizeof(bound);
    uv_tcp_t tcp;

    uv_ip4_addr("127.0.0.1", 0, &addr);
    uv_tcp_init(loop, &tcp);
    assert_int_equal(uv_tcp_bind(&tcp, (struct sockaddr *)&addr, 0), 0);
    uv_tcp_getsockname(&tcp, (struct sockaddr *)&bound, &len);
    uv_close((uv_handle_t *)&tcp, NULL);
    uv_run(loop, UV_RUN_DEFAULT);
    return ntohs(((struct sockaddr_in *)&bound)->sin_port);
}

static void refused_then_free_in_callback(void **state)
{
    sioc_callbacks_t callbacks = {.on_disconnect = refused_on_disconnect};
    struct refused_run run = {.free_after = 3};
    uv_loop_t loop;
    uint64_t start;
    int port;

    uv_loop_init(&loop);
    port = closed_port(&loop);
    start = uv_now(&loop);
    run.client = sioc_new(&loop, "127.0.0.1", port, "", &callbacks, &run);
    assert_int_equal(uv_run(&loop, UV_RUN_DEFAULT), 0);
    assert_int_equal(run.disconnects, 3);
    assert_string_equal(run.reason, "connection refused");
    /* Attempts 1 and 2 are immediate (start, reconnect_now); the third
     * waits one backoff step of 1 s. */
    uv_update_time(&loop);
    assert_true(uv_now(&loop) - start >= 900);
    assert_int_equal(uv_loop_close(&loop), 0);
}

static void free_while_resolving(void **state)
{
    sioc_callbacks_t callbacks = {.on_disconnect = refused_on_disconnect};
    struct refused_run run = {.free_after = 1};
    uv_loop_t loop;

    uv_loop_init(&loop);
    run.client = sioc_new(&loop, "localhost", 9, NULL, &callbacks, &run);
    /* One turn starts the resolver; freeing now must wait for it. */
    uv_run(&loop, UV_RUN_NOWAIT);
    sioc_free(run.client);
    assert_int_equal(uv_run(&loop, UV_RUN_DEFAULT), 0);
    assert_int_equal(run.disconnects, 0);
    assert_int_equal(uv_loop_close(&loop), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(open_packet_valid),
        cmocka_unit_test(open_packet_invalid),
        cmocka_unit_test(packet_connect),
        cmocka_unit_test(packet_event),
        cmocka_unit_test(packet_event_with_ack),
        cmocka_unit_test(packet_other_namespace),
        cmocka_unit_test(packet_connect_error),
        cmocka_unit_test(packet_binary_event),
        cmocka_unit_test(packet_invalid),
        cmocka_unit_test(event_encoding),
        cmocka_unit_test(event_roundtrip),
        cmocka_unit_test(path_building),
        cmocka_unit_test(accept_key_rfc_sample),
        cmocka_unit_test(upgrade_request),
        cmocka_unit_test(response_valid),
        cmocka_unit_test(response_incomplete),
        cmocka_unit_test(response_rejected),
        cmocka_unit_test(response_too_large),
        cmocka_unit_test(refused_then_free_in_callback),
        cmocka_unit_test(free_while_resolving),
    };

    log_init("test");
    return cmocka_run_group_tests(tests, NULL, NULL);
}
