/*
 * sio_echo PORT [PING_INTERVAL_MS PING_TIMEOUT_MS]
 *
 * A Socket.IO server for the compatibility tests: listens on 127.0.0.1:PORT
 * (0 picks a free port) and prints "PORT <n>" once it listens. Every event
 * is emitted back with the same name and argument, except "disconnect-me",
 * which makes the server disconnect the socket. Socket life-cycle events go
 * to stdout as "CONNECT <id>" and "DISCONNECT <id> <reason>" lines.
 * SIGTERM or SIGINT stops the server and frees everything before exit.
 */

#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <uv.h>

#include "core/log.h"
#include "net/http.h"
#include "net/sio.h"

typedef struct echo {
    http_server_t *http;
    sio_server_t *sio;
    uv_signal_t sigterm;
    uv_signal_t sigint;
} echo_t;

static void on_request(http_request_t *req, void *data)
{
    echo_t *echo = data;
    static const char missing[] = "not found\n";
    static const char stopping[] = "shutting down\n";

    /* Requests on kept-alive connections may still arrive while the HTTP
     * server drains after a signal. */
    if (echo->sio == NULL)
        http_respond(req, 503, "text/plain", stopping, sizeof(stopping) - 1);
    else if (!sio_server_handle(echo->sio, req))
        http_respond(req, 404, "text/plain", missing, sizeof(missing) - 1);
}

static void on_connect(sio_socket_t *socket, void *data)
{
    printf("CONNECT %s\n", sio_socket_id(socket));
    fflush(stdout);
}

static void on_event(sio_socket_t *socket, const char *event, json_t *arg,
                     void *data)
{
    if (strcmp(event, "disconnect-me") == 0) {
        sio_socket_disconnect(socket);
        return;
    }
    if (sio_socket_emit(socket, event, arg) < 0)
        fprintf(stderr, "sio_echo: emit on closing socket %s\n",
                sio_socket_id(socket));
}

static void on_disconnect(sio_socket_t *socket, const char *reason,
                          void *data)
{
    printf("DISCONNECT %s %s\n", sio_socket_id(socket), reason);
    fflush(stdout);
}

static void on_signal(uv_signal_t *handle, int signum)
{
    echo_t *echo = handle->data;

    sio_server_free(echo->sio);
    echo->sio = NULL;
    http_server_free(echo->http);
    echo->http = NULL;
    uv_close((uv_handle_t *)&echo->sigterm, NULL);
    uv_close((uv_handle_t *)&echo->sigint, NULL);
}

int main(int argc, char **argv)
{
    static const sio_server_callbacks_t callbacks = {
        .on_connect = on_connect,
        .on_event = on_event,
        .on_disconnect = on_disconnect,
    };
    sio_server_options_t options = {.path = "/socket.io/"};
    uv_loop_t *loop = uv_default_loop();
    echo_t echo = {0};
    const char *err = NULL;
    int rc;

    if (argc != 2 && argc != 4) {
        fprintf(stderr, "usage: sio_echo PORT [PING_INTERVAL_MS "
                        "PING_TIMEOUT_MS]\n");
        return 2;
    }
    if (argc == 4) {
        options.ping_interval_ms = atoi(argv[2]);
        options.ping_timeout_ms = atoi(argv[3]);
    }
    log_init("sio_echo");
    echo.sio = sio_server_new(loop, &options, &callbacks, &echo);
    echo.http = http_server_new(loop, "127.0.0.1", atoi(argv[1]), on_request,
                                &echo, &err);
    if (echo.http == NULL) {
        fprintf(stderr, "sio_echo: cannot listen on 127.0.0.1:%s: %s\n",
                argv[1], err);
        sio_server_free(echo.sio);
        uv_run(loop, UV_RUN_DEFAULT);
        uv_loop_close(loop);
        return 1;
    }
    uv_signal_init(loop, &echo.sigterm);
    uv_signal_init(loop, &echo.sigint);
    echo.sigterm.data = &echo;
    echo.sigint.data = &echo;
    uv_signal_start(&echo.sigterm, on_signal, SIGTERM);
    uv_signal_start(&echo.sigint, on_signal, SIGINT);
    printf("PORT %d\n", http_server_port(echo.http));
    fflush(stdout);

    uv_run(loop, UV_RUN_DEFAULT);
    rc = uv_loop_close(loop);
    if (rc != 0) {
        fprintf(stderr, "sio_echo: handles still open at exit: %s\n",
                uv_strerror(rc));
        return 1;
    }
    printf("EXIT\n");
    return 0;
}
