/*
 * The HTTP glue against a real loopback socket: a client on the same loop
 * writes raw HTTP/1.1 and reads until the server closes.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <uv.h>

#include "core/util.h"
#include "net/http.h"

typedef struct client {
    uv_tcp_t tcp;
    uv_connect_t connect;
    uv_write_t write;
    char *request;
    char response[65536];
    size_t used;
    int done;
} client_t;

static uv_timer_t deferred_timer;

static void on_deferred(uv_timer_t *timer)
{
    http_request_t *req = timer->data;

    http_respond(req, 200, "text/plain", "later", 5);
}

static void handler(http_request_t *req, void *data)
{
    const char *path = http_request_path(req);
    char *body;
    size_t len;

    if (strcmp(path, "/later") == 0) {
        deferred_timer.data = req;
        uv_timer_start(&deferred_timer, on_deferred, 20, 0);
        return;
    }
    http_request_body(req, &len);
    body = xasprintf("%s %s q=%s h=%s c=%s len=%zu peer=%s",
                     http_request_method(req), path,
                     http_request_query(req, "q") ? http_request_query(req, "q")
                                                  : "-",
                     http_request_header(req, "X-Test")
                         ? http_request_header(req, "X-Test")
                         : "-",
                     http_request_cookie(req, "sid")
                         ? http_request_cookie(req, "sid")
                         : "-",
                     len, http_request_peer(req));
    http_request_add_header(req, "X-Extra", "1");
    http_respond(req, 201, "text/plain", body, strlen(body));
    free(body);
}

static void on_alloc(uv_handle_t *h, size_t size, uv_buf_t *buf)
{
    client_t *c = h->data;

    buf->base = c->response + c->used;
    buf->len = sizeof(c->response) - c->used - 1;
}

static void on_read(uv_stream_t *s, ssize_t n, const uv_buf_t *buf)
{
    client_t *c = s->data;

    if (n > 0) {
        c->used += (size_t)n;
        c->response[c->used] = '\0';
        return;
    }
    if (n < 0) {
        c->done = 1;
        uv_close((uv_handle_t *)s, NULL);
    }
}

static void on_write(uv_write_t *w, int status)
{
    client_t *c = w->data;

    uv_read_start((uv_stream_t *)&c->tcp, on_alloc, on_read);
}

static void on_connect(uv_connect_t *req, int status)
{
    client_t *c = req->data;
    uv_buf_t buf = uv_buf_init(c->request, (unsigned)strlen(c->request));

    assert_int_equal(status, 0);
    c->write.data = c;
    uv_write(&c->write, (uv_stream_t *)&c->tcp, &buf, 1, on_write);
}

/* Sends one raw request to the server and returns the whole response. */
static char *exchange(uv_loop_t *loop, int port, const char *request)
{
    client_t *c = xcalloc(1, sizeof(*c));
    struct sockaddr_in addr;
    char *out;

    uv_ip4_addr("127.0.0.1", port, &addr);
    uv_tcp_init(loop, &c->tcp);
    c->tcp.data = c;
    c->connect.data = c;
    c->request = xstrdup(request);
    uv_tcp_connect(&c->connect, &c->tcp, (struct sockaddr *)&addr,
                   on_connect);
    while (!c->done)
        uv_run(loop, UV_RUN_ONCE);
    uv_run(loop, UV_RUN_NOWAIT);
    out = xstrdup(c->response);
    free(c->request);
    free(c);
    return out;
}

static http_server_t *start(uv_loop_t *loop)
{
    const char *err = NULL;
    http_server_t *server =
        http_server_new(loop, "127.0.0.1", 0, handler, NULL, &err);

    assert_non_null(server);
    assert_true(http_server_port(server) > 0);
    http_server_add_default_header(server, "X-Powered-By", "MCSManager");
    uv_timer_init(loop, &deferred_timer);
    return server;
}

static void stop(uv_loop_t *loop, http_server_t *server)
{
    http_server_free(server);
    uv_close((uv_handle_t *)&deferred_timer, NULL);
    uv_run(loop, UV_RUN_DEFAULT);
    assert_int_equal(uv_loop_close(loop), 0);
}

static void request_accessors(void **state)
{
    uv_loop_t loop;
    http_server_t *server;
    char *resp;

    uv_loop_init(&loop);
    server = start(&loop);
    resp = exchange(&loop, http_server_port(server),
                    "POST /api/a%20b?q=x%2By+z&other=1 HTTP/1.1\r\n"
                    "Host: x\r\nX-Test: hello\r\n"
                    "Cookie: a=1; sid=abc\r\nContent-Length: 4\r\n"
                    "Connection: close\r\n\r\nbody");
    assert_non_null(strstr(resp, "HTTP/1.1 201 "));
    assert_non_null(strstr(resp, "X-Powered-By: MCSManager"));
    assert_non_null(strstr(resp, "X-Extra: 1"));
    assert_non_null(strstr(resp, "POST /api/a b q=x+y z h=hello c=abc len=4 "
                                 "peer=127.0.0.1"));
    free(resp);
    stop(&loop, server);
}

static void deferred_response(void **state)
{
    uv_loop_t loop;
    http_server_t *server;
    char *resp;

    uv_loop_init(&loop);
    server = start(&loop);
    resp = exchange(&loop, http_server_port(server),
                    "GET /later HTTP/1.1\r\nHost: x\r\n"
                    "Connection: close\r\n\r\n");
    assert_non_null(strstr(resp, "HTTP/1.1 200 "));
    assert_null(strstr(resp, "chunked"));
    assert_non_null(strstr(resp, "\r\n\r\nlater"));
    free(resp);
    stop(&loop, server);
}

static void oversized_body_rejected(void **state)
{
    uv_loop_t loop;
    http_server_t *server;
    size_t size = HTTP_MAX_BODY + 1;
    char *head = xasprintf("PUT /x HTTP/1.1\r\nHost: x\r\nContent-Length: "
                           "%zu\r\nConnection: close\r\n\r\n",
                           size);
    char *request = xmalloc(strlen(head) + size + 1);
    char *resp;

    memcpy(request, head, strlen(head));
    memset(request + strlen(head), 'a', size);
    request[strlen(head) + size] = '\0';
    uv_loop_init(&loop);
    server = start(&loop);
    resp = exchange(&loop, http_server_port(server), request);
    assert_non_null(strstr(resp, "HTTP/1.1 413 "));
    assert_non_null(strstr(resp, "\"status\":413"));
    free(resp);
    free(request);
    free(head);
    stop(&loop, server);
}

static void bind_failure_reported(void **state)
{
    uv_loop_t loop;
    const char *err = NULL;
    http_server_t *server;

    uv_loop_init(&loop);
    server = http_server_new(&loop, "not-an-ip", 0, handler, NULL, &err);
    assert_null(server);
    assert_non_null(err);
    uv_run(&loop, UV_RUN_DEFAULT);
    assert_int_equal(uv_loop_close(&loop), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(request_accessors),
        cmocka_unit_test(deferred_response),
        cmocka_unit_test(oversized_body_rejected),
        cmocka_unit_test(bind_failure_reported),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
