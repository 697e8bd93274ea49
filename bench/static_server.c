/*
 * Baseline for bench/api_throughput.sh: Hearth's own HTTP layer (h2o)
 * responding to every request with a fixed JSON body, so the gap to the panel
 * is what the API itself costs (authentication, lookup, encoding).
 *
 * usage: bench_static PORT   (prints "ready" on stderr; stops on SIGTERM)
 */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <uv.h>

#include "net/http.h"

static const char body[] = "{\"status\":200,\"data\":[],\"time\":0}";
static http_server_t *server;

static void on_request(http_request_t *req, void *data)
{
    http_respond(req, 200, "application/json; charset=utf-8", body,
                 sizeof(body) - 1);
}

static void on_signal(uv_signal_t *handle, int signum)
{
    http_server_free(server);
    uv_close((uv_handle_t *)handle, NULL);
}

int main(int argc, char **argv)
{
    uv_loop_t *loop = uv_default_loop();
    uv_signal_t term;
    const char *err = NULL;

    if (argc != 2) {
        fprintf(stderr, "usage: bench_static PORT\n");
        return 2;
    }
    server = http_server_new(loop, "127.0.0.1", atoi(argv[1]), on_request,
                             NULL, &err);
    if (server == NULL) {
        fprintf(stderr, "bench_static: listen on 127.0.0.1:%s failed: %s\n",
                argv[1], err);
        return 1;
    }
    uv_signal_init(loop, &term);
    uv_signal_start(&term, on_signal, SIGTERM);
    fprintf(stderr, "ready\n");
    uv_run(loop, UV_RUN_DEFAULT);
    uv_loop_close(loop);
    return 0;
}
