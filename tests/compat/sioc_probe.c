/*
 * sioc_probe: drives one sioc client for tests/compat/sioc_client.test.js.
 *
 * Usage: sioc_probe PORT [HOST [PREFIX]]   (HOST defaults to 127.0.0.1)
 *
 * Prints one line on stdout per client callback:
 *   connect
 *   event NAME JSON          (JSON compact; "bytes=N" when over 200 bytes)
 *   disconnect REASON
 * On every connect it emits "hello" {"connects": N}. Every "echo" event is
 * emitted back with the same argument. Lines on stdin are commands:
 *   emit NAME JSON | reconnect | free
 * SIGTERM or SIGINT prints "exit", frees the client and ends the loop, so
 * the process exits 0 with nothing left for LeakSanitizer to report.
 */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>
#include <uv.h>

#include "core/log.h"
#include "core/util.h"
#include "net/sioc.h"

#define PROBE_MAX_PRINTED 200

struct probe {
    uv_loop_t *loop;
    sioc_t *client;
    uv_signal_t sigterm;
    uv_signal_t sigint;
    uv_pipe_t input;
    int input_open;
    char *line;
    size_t line_len;
    int connects;
};

static void probe_on_connect(sioc_t *client, void *data)
{
    struct probe *p = data;
    json_t *hello = json_pack("{s:i}", "connects", ++p->connects);

    printf("connect\n");
    if (sioc_emit(client, "hello", hello) != 0)
        printf("error emit hello failed\n");
    json_decref(hello);
}

static void probe_on_event(sioc_t *client, const char *event, json_t *arg,
                           void *data)
{
    char *text = arg != NULL ? json_dumps(arg, JSON_COMPACT | JSON_ENCODE_ANY)
                             : NULL;

    if (text == NULL)
        printf("event %s -\n", event);
    else if (strlen(text) > PROBE_MAX_PRINTED)
        printf("event %s bytes=%zu\n", event, strlen(text));
    else
        printf("event %s %s\n", event, text);
    free(text);
    if (strcmp(event, "echo") == 0 && sioc_emit(client, "echo", arg) != 0)
        printf("error emit echo failed\n");
}

static void probe_on_disconnect(sioc_t *client, const char *reason,
                                void *data)
{
    printf("disconnect %s\n", reason);
}

static void close_input(struct probe *p)
{
    if (p->input_open) {
        p->input_open = 0;
        uv_close((uv_handle_t *)&p->input, NULL);
    }
}

static void stop(struct probe *p)
{
    if (p->client != NULL) {
        sioc_free(p->client);
        p->client = NULL;
    }
    close_input(p);
    if (!uv_is_closing((uv_handle_t *)&p->sigterm)) {
        uv_close((uv_handle_t *)&p->sigterm, NULL);
        uv_close((uv_handle_t *)&p->sigint, NULL);
    }
}

static void run_command(struct probe *p, char *line)
{
    if (strncmp(line, "emit ", 5) == 0 && p->client != NULL) {
        char *name = line + 5, *json = strchr(name, ' ');
        json_t *arg = NULL;
        int r;

        if (json != NULL) {
            *json++ = '\0';
            arg = json_loads(json, JSON_DECODE_ANY, NULL);
            if (arg == NULL) {
                printf("error invalid JSON for %s\n", name);
                return;
            }
        }
        r = sioc_emit(p->client, name, arg);
        printf("emitted %s %d\n", name, r);
        json_decref(arg);
    } else if (strcmp(line, "reconnect") == 0 && p->client != NULL) {
        sioc_reconnect_now(p->client);
    } else if (strcmp(line, "free") == 0) {
        printf("exit\n");
        stop(p);
    } else {
        printf("error unknown command %s\n", line);
    }
}

static void on_input_alloc(uv_handle_t *handle, size_t size, uv_buf_t *buf)
{
    buf->base = xmalloc(size);
    buf->len = size;
}

static void on_input(uv_stream_t *stream, ssize_t nread, const uv_buf_t *buf)
{
    struct probe *p = stream->data;
    ssize_t i;

    if (nread < 0) {
        close_input(p);
    } else {
        for (i = 0; i < nread && p->input_open; i++) {
            if (buf->base[i] != '\n') {
                p->line = xrealloc(p->line, p->line_len + 2);
                p->line[p->line_len++] = buf->base[i];
                continue;
            }
            p->line = xrealloc(p->line, p->line_len + 1);
            p->line[p->line_len] = '\0';
            run_command(p, p->line);
            p->line_len = 0;
        }
    }
    free(buf->base);
}

static void on_signal(uv_signal_t *handle, int signum)
{
    struct probe *p = handle->data;

    printf("exit\n");
    stop(p);
}

int main(int argc, char **argv)
{
    sioc_callbacks_t callbacks = {
        .on_connect = probe_on_connect,
        .on_event = probe_on_event,
        .on_disconnect = probe_on_disconnect,
    };
    struct probe p = {.loop = uv_default_loop()};

    if (argc < 2 || argc > 4) {
        fprintf(stderr, "usage: sioc_probe PORT [HOST [PREFIX]]\n");
        return 2;
    }
    setvbuf(stdout, NULL, _IOLBF, 0);
    log_init("sioc_probe");
    uv_signal_init(p.loop, &p.sigterm);
    uv_signal_init(p.loop, &p.sigint);
    p.sigterm.data = &p;
    p.sigint.data = &p;
    uv_signal_start(&p.sigterm, on_signal, SIGTERM);
    uv_signal_start(&p.sigint, on_signal, SIGINT);
    if (uv_guess_handle(0) == UV_NAMED_PIPE) {
        uv_pipe_init(p.loop, &p.input, 0);
        uv_pipe_open(&p.input, 0);
        p.input.data = &p;
        p.input_open = 1;
        uv_read_start((uv_stream_t *)&p.input, on_input_alloc, on_input);
    }
    p.client = sioc_new(p.loop, argc > 2 ? argv[2] : "127.0.0.1",
                        atoi(argv[1]), argc > 3 ? argv[3] : "", &callbacks,
                        &p);
    uv_run(p.loop, UV_RUN_DEFAULT);
    free(p.line);
    if (uv_loop_close(p.loop) != 0) {
        fprintf(stderr, "sioc_probe: handles left open at exit\n");
        return 1;
    }
    return 0;
}
