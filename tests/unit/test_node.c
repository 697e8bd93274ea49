/*
 * Tests of the panel's daemon link against a stand-in daemon: the reference
 * socket.io 4 server (tests/compat/node_modules) run by node.js, replying
 * to packets the way MCSManager's daemon does. Tests that need it are skipped
 * when node or the modules are missing.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>
#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <uv.h>

#include "panel/node.h"

#define KEY "0123456789abcdef0123456789abcdef0123456789abcde"

/*
 * The stand-in daemon. It prints "port <n>" once it listens on 127.0.0.1
 * and exits when its stdin closes, so it never outlives the test.
 */
static const char daemon_js[] =
    "const http = require('http');\n"
    "const { Server } = require('socket.io');\n"
    "const KEY = process.argv[1];\n"
    "const srv = http.createServer();\n"
    "const io = new Server(srv, { pingInterval: 20000, pingTimeout: 10000,\n"
    "  cookie: false, serveClient: false, maxHttpBufferSize: 1e7 });\n"
    "io.on('connection', (s) => {\n"
    "  let authed = false, language = null;\n"
    "  const reply = (event, p, status, data) =>\n"
    "    s.emit(event, { uuid: p.uuid, status, event, data });\n"
    "  s.onAny((event, p) => {\n"
    "    if (event === 'auth') {\n"
    "      authed = p.data === KEY;\n"
    "      return reply('auth', p, 200, authed);\n"
    "    }\n"
    "    if (!authed)\n"
    "      return s.emit('error', { status: 500, data: '[IGNORE_LOG]' });\n"
    "    switch (event) {\n"
    "    case 'echo': return reply(event, p, 200, p.data);\n"
    "    case 'echo_uuid': return reply(event, p, 200, p.uuid);\n"
    "    case 'fail': return reply(event, p, 500, { err: 'boom' });\n"
    "    case 'fail_text': return reply(event, p, 500, 'Error: plain');\n"
    "    case 'fail_nostatus':\n"
    "      return s.emit(event, { uuid: p.uuid, data: 'x' });\n"
    "    case 'slow':\n"
    "      return setTimeout(() => reply(event, p, 200, p.data), p.data);\n"
    "    case 'never': return;\n"
    "    case 'info/setting':\n"
    "      language = p.data.language; return reply(event, p, 200, true);\n"
    "    case 'whoami': return reply(event, p, 200, language);\n"
    "    case 'push':\n"
    "      s.emit('instance/stdout', { data: { text: 'hi' } });\n"
    "      return reply(event, p, 200, true);\n"
    "    case 'stray':\n"
    "      reply(event, { uuid: 'not-pending' }, 200, 'stray');\n"
    "      reply('other', p, 200, 'other event');\n"
    "      return reply(event, p, 200, 'mine');\n"
    "    case 'drop': return s.disconnect(true);\n"
    "    }\n"
    "  });\n"
    "});\n"
    "srv.listen(0, '127.0.0.1', () => {\n"
    "  process.stdout.write('port ' + srv.address().port + '\\n');\n"
    "});\n"
    "process.stdin.on('end', () => process.exit(0));\n"
    "process.stdin.resume();\n";

static pid_t daemon_pid = -1;
static int daemon_stdin = -1;
static int daemon_port;

/* Finds tests/compat/node_modules next to this source file. */
static char *modules_dir(void)
{
    char *dir = strdup(__FILE__);
    char *slash = strrchr(dir, '/');
    char *path;
    struct stat st;

    if (slash == NULL) {
        free(dir);
        return NULL;
    }
    *slash = '\0';
    if (asprintf(&path, "%s/../compat/node_modules", dir) < 0)
        path = NULL;
    free(dir);
    if (path != NULL && stat(path, &st) != 0) {
        free(path);
        path = NULL;
    }
    return path;
}

static int start_daemon(void **state)
{
    char *modules = modules_dir();
    int in[2], out[2];
    char line[64] = "";
    size_t len = 0;

    if (modules == NULL || access("/usr/bin/node", X_OK) != 0) {
        free(modules);
        return 0;
    }
    if (pipe(in) != 0 || pipe(out) != 0)
        return -1;
    daemon_pid = fork();
    if (daemon_pid == 0) {
        dup2(in[0], 0);
        dup2(out[1], 1);
        close(in[1]);
        close(out[0]);
        setenv("NODE_PATH", modules, 1);
        execl("/usr/bin/node", "node", "-e", daemon_js, KEY, (char *)NULL);
        _exit(127);
    }
    free(modules);
    close(in[0]);
    close(out[1]);
    daemon_stdin = in[1];

    /* Wait up to 10 s for the port line. */
    while (len < sizeof(line) - 1 && strchr(line, '\n') == NULL) {
        struct pollfd pfd = {.fd = out[0], .events = POLLIN};
        ssize_t n;

        if (poll(&pfd, 1, 10000) <= 0)
            break;
        n = read(out[0], line + len, sizeof(line) - 1 - len);
        if (n <= 0)
            break;
        len += (size_t)n;
        line[len] = '\0';
    }
    close(out[0]);
    if (sscanf(line, "port %d", &daemon_port) != 1)
        return -1;
    return 0;
}

static int stop_daemon(void **state)
{
    if (daemon_pid > 0) {
        close(daemon_stdin);
        kill(daemon_pid, SIGTERM);
        waitpid(daemon_pid, NULL, 0);
    }
    return 0;
}

static void need_daemon(void)
{
    if (daemon_pid <= 0)
        skip();
}

/* ---- loop helpers ---- */

static int timed_out;

static void on_deadline(uv_timer_t *timer)
{
    timed_out = 1;
}

/* Runs the loop until *flag is non-zero or ms pass; returns *flag. */
static int run_until(uv_loop_t *loop, const int *flag, int ms)
{
    uv_timer_t deadline;

    timed_out = 0;
    uv_timer_init(loop, &deadline);
    uv_timer_start(&deadline, on_deadline, (uint64_t)ms, 0);
    while (!*flag && !timed_out)
        uv_run(loop, UV_RUN_ONCE);
    uv_close((uv_handle_t *)&deadline, NULL);
    uv_run(loop, UV_RUN_NOWAIT);
    return *flag;
}

/* Runs the loop for ms, whatever happens. */
static void run_for(uv_loop_t *loop, int ms)
{
    int never = 0;

    run_until(loop, &never, ms);
}

static void close_loop(uv_loop_t *loop)
{
    /* Let closing handles finish, then the loop must be empty. */
    run_for(loop, 50);
    uv_run(loop, UV_RUN_DEFAULT);
    assert_int_equal(uv_loop_close(loop), 0);
}

struct result {
    int calls;
    int status;
    char error[256];
    json_t *data;
};

static void on_reply(int status, json_t *data, const char *error, void *ctx)
{
    struct result *r = ctx;

    r->calls++;
    r->status = status;
    snprintf(r->error, sizeof(r->error), "%s", error != NULL ? error : "");
    json_decref(r->data);
    r->data = json_incref(data);
}

static void result_clear(struct result *r)
{
    json_decref(r->data);
    memset(r, 0, sizeof(*r));
}

struct status_log {
    int up;
    int down;
};

static void on_status(node_t *node, int available, void *data)
{
    struct status_log *log = data;

    if (available)
        log->up++;
    else
        log->down++;
}

/* Creates a node on the stand-in daemon and waits until it is available. */
static node_t *connect_node(uv_loop_t *loop, const char *key,
                            struct status_log *log)
{
    node_t *node = node_new(loop, "00112233445566778899aabbccddeeff",
                            "127.0.0.1", daemon_port, "", key);

    node_on_status(node, on_status, log);
    return node;
}

/* ---- tests against the stand-in daemon ---- */

static void auth_then_echo(void **state)
{
    uv_loop_t loop;
    struct status_log log = {0};
    struct result r = {0};
    node_t *node;
    json_t *data;

    need_daemon();
    uv_loop_init(&loop);
    node = connect_node(&loop, KEY, &log);
    assert_int_equal(node_available(node), 0);
    assert_true(run_until(&loop, &log.up, 5000));
    assert_int_equal(node_available(node), 1);
    assert_string_equal(node_uuid(node), "00112233445566778899aabbccddeeff");
    assert_string_equal(node_ip(node), "127.0.0.1");
    assert_int_equal(node_port(node), daemon_port);

    data = json_pack("{s:s, s:i}", "hello", "world", "n", 7);
    node_request(node, "echo", data, 0, on_reply, &r);
    json_decref(data);
    /* Never completed from inside node_request. */
    assert_int_equal(r.calls, 0);
    assert_int_equal(node_pending_count(node), 1);
    assert_true(run_until(&loop, &r.calls, 3000));
    assert_int_equal(r.status, 200);
    assert_string_equal(r.error, "");
    assert_string_equal(json_string_value(json_object_get(r.data, "hello")),
                        "world");
    assert_int_equal(node_pending_count(node), 0);
    result_clear(&r);

    /* NULL data goes out as null and comes back as null. */
    node_request(node, "echo", NULL, 0, on_reply, &r);
    assert_true(run_until(&loop, &r.calls, 3000));
    assert_int_equal(r.status, 200);
    assert_true(json_is_null(r.data));
    result_clear(&r);

    node_free(node);
    close_loop(&loop);
    assert_int_equal(log.up, 1);
}

static void packet_uuid_format(void **state)
{
    uv_loop_t loop;
    struct status_log log = {0};
    struct result r = {0};
    node_t *node;
    const char *uuid;
    size_t i;

    need_daemon();
    uv_loop_init(&loop);
    node = connect_node(&loop, KEY, &log);
    assert_true(run_until(&loop, &log.up, 5000));
    node_request(node, "echo_uuid", NULL, 0, on_reply, &r);
    assert_true(run_until(&loop, &r.calls, 3000));
    uuid = json_string_value(r.data);
    assert_non_null(uuid);
    /* uuid v4 with dashes, then a 13-digit ms timestamp. */
    assert_int_equal(strlen(uuid), 49);
    for (i = 0; i < 36; i++) {
        if (i == 8 || i == 13 || i == 18 || i == 23)
            assert_int_equal(uuid[i], '-');
        else
            assert_non_null(strchr("0123456789abcdef", uuid[i]));
    }
    assert_int_equal(uuid[14], '4');
    assert_int_equal(strspn(uuid + 36, "0123456789"), 13);
    result_clear(&r);
    node_free(node);
    close_loop(&loop);
}

static void daemon_errors(void **state)
{
    uv_loop_t loop;
    struct status_log log = {0};
    struct result fail = {0}, text = {0}, nostatus = {0};
    node_t *node;

    need_daemon();
    uv_loop_init(&loop);
    node = connect_node(&loop, KEY, &log);
    assert_true(run_until(&loop, &log.up, 5000));

    node_request(node, "fail", NULL, 0, on_reply, &fail);
    node_request(node, "fail_text", NULL, 0, on_reply, &text);
    node_request(node, "fail_nostatus", NULL, 0, on_reply, &nostatus);
    assert_true(run_until(&loop, &nostatus.calls, 3000));
    assert_true(run_until(&loop, &text.calls, 3000));
    assert_true(run_until(&loop, &fail.calls, 3000));

    /* data.err when present, else data itself as text. */
    assert_int_equal(fail.status, 500);
    assert_string_equal(fail.error, "boom");
    assert_non_null(fail.data);
    assert_int_equal(text.status, 500);
    assert_string_equal(text.error, "Error: plain");
    assert_int_equal(nostatus.status, 500);
    assert_string_equal(nostatus.error, "x");
    result_clear(&fail);
    result_clear(&text);
    result_clear(&nostatus);
    node_free(node);
    close_loop(&loop);
}

static void replies_matched_by_uuid(void **state)
{
    uv_loop_t loop;
    struct status_log log = {0};
    struct result slow = {0}, fast = {0};
    node_t *node;
    json_t *ms;

    need_daemon();
    uv_loop_init(&loop);
    node = connect_node(&loop, KEY, &log);
    assert_true(run_until(&loop, &log.up, 5000));

    ms = json_integer(400);
    node_request(node, "slow", ms, 0, on_reply, &slow);
    json_decref(ms);
    ms = json_integer(50);
    node_request(node, "slow", ms, 0, on_reply, &fast);
    json_decref(ms);
    assert_int_equal(node_pending_count(node), 2);

    /* The later request gets its reply first, with its own data. */
    assert_true(run_until(&loop, &fast.calls, 3000));
    assert_int_equal(slow.calls, 0);
    assert_int_equal(json_integer_value(fast.data), 50);
    assert_true(run_until(&loop, &slow.calls, 3000));
    assert_int_equal(json_integer_value(slow.data), 400);
    result_clear(&slow);
    result_clear(&fast);
    node_free(node);
    close_loop(&loop);
}

struct event_log {
    int calls;
    char events[4][32];
};

static void on_push(node_t *node, const char *event, json_t *packet,
                    void *data)
{
    struct event_log *log = data;

    if (log->calls < 4)
        snprintf(log->events[log->calls], sizeof(log->events[0]), "%s",
                 event);
    log->calls++;
}

static void unsolicited_packets(void **state)
{
    uv_loop_t loop;
    struct status_log log = {0};
    struct event_log events = {0};
    struct result push = {0}, stray = {0};
    node_t *node;

    need_daemon();
    uv_loop_init(&loop);
    node = connect_node(&loop, KEY, &log);
    node_on_event(node, on_push, &events);
    assert_true(run_until(&loop, &log.up, 5000));

    node_request(node, "push", NULL, 0, on_reply, &push);
    assert_true(run_until(&loop, &push.calls, 3000));
    assert_int_equal(push.status, 200);
    assert_int_equal(events.calls, 1);
    assert_string_equal(events.events[0], "instance/stdout");

    /* A foreign uuid, and our uuid on another event, are not the reply. */
    node_request(node, "stray", NULL, 0, on_reply, &stray);
    assert_true(run_until(&loop, &stray.calls, 3000));
    assert_string_equal(json_string_value(stray.data), "mine");
    assert_int_equal(events.calls, 3);
    assert_string_equal(events.events[1], "stray");
    assert_string_equal(events.events[2], "other");
    result_clear(&push);
    result_clear(&stray);
    node_free(node);
    close_loop(&loop);
}

static void request_timeout(void **state)
{
    uv_loop_t loop;
    struct status_log log = {0};
    struct result r = {0};
    node_t *node;
    char expected[128];
    uint64_t start;

    need_daemon();
    uv_loop_init(&loop);
    node = connect_node(&loop, KEY, &log);
    assert_true(run_until(&loop, &log.up, 5000));

    start = uv_now(&loop);
    node_request(node, "never", NULL, 200, on_reply, &r);
    assert_true(run_until(&loop, &r.calls, 3000));
    assert_true(uv_now(&loop) - start >= 200);
    assert_int_equal(r.status, -ETIMEDOUT);
    snprintf(expected, sizeof(expected),
             "request timeout (daemon 127.0.0.1:%d)", daemon_port);
    assert_string_equal(r.error, expected);
    assert_null(r.data);
    assert_int_equal(node_pending_count(node), 0);
    result_clear(&r);
    node_free(node);
    close_loop(&loop);
}

static void wrong_key_denied(void **state)
{
    uv_loop_t loop;
    struct status_log log = {0};
    struct result r = {0};
    node_t *node;

    need_daemon();
    uv_loop_init(&loop);
    node = connect_node(&loop, "wrong-key", &log);
    run_for(&loop, 800);
    assert_int_equal(node_available(node), 0);
    assert_int_equal(log.up, 0);

    node_request(node, "echo", NULL, 0, on_reply, &r);
    assert_int_equal(r.calls, 0);
    assert_true(run_until(&loop, &r.calls, 1000));
    assert_int_equal(r.status, -ENOTCONN);
    assert_non_null(strstr(r.error, "not available"));
    assert_int_equal(node_emit(node, "echo", NULL), -ENOTCONN);
    result_clear(&r);

    /* A corrected key applies at the next reconnect. */
    node_set_address(node, NULL, 0, NULL, KEY);
    node_reconnect(node);
    assert_true(run_until(&loop, &log.up, 5000));
    node_free(node);
    close_loop(&loop);
}

static void drop_fails_pending_and_recovers(void **state)
{
    uv_loop_t loop;
    struct status_log log = {0};
    struct result never = {0}, drop = {0}, again = {0};
    node_t *node;

    need_daemon();
    uv_loop_init(&loop);
    node = connect_node(&loop, KEY, &log);
    assert_true(run_until(&loop, &log.up, 5000));

    node_request(node, "never", NULL, 10000, on_reply, &never);
    node_request(node, "drop", NULL, 10000, on_reply, &drop);
    assert_true(run_until(&loop, &never.calls, 3000));
    assert_true(run_until(&loop, &drop.calls, 3000));
    assert_int_equal(never.status, -ECONNRESET);
    assert_int_equal(drop.status, -ECONNRESET);
    assert_non_null(strstr(never.error, "lost"));
    assert_int_equal(log.down, 1);
    assert_int_equal(node_available(node), 0);

    /* The client reconnects by itself and authenticates again. */
    log.up = 0;
    assert_true(run_until(&loop, &log.up, 8000));
    node_request(node, "echo", NULL, 0, on_reply, &again);
    assert_true(run_until(&loop, &again.calls, 3000));
    assert_int_equal(again.status, 200);
    result_clear(&never);
    result_clear(&drop);
    result_clear(&again);
    node_free(node);
    close_loop(&loop);
}

static void free_cancels_pending(void **state)
{
    uv_loop_t loop;
    struct status_log log = {0};
    struct result a = {0}, b = {0};
    node_t *node;

    need_daemon();
    uv_loop_init(&loop);
    node = connect_node(&loop, KEY, &log);
    assert_true(run_until(&loop, &log.up, 5000));
    node_request(node, "never", NULL, 10000, on_reply, &a);
    node_request(node, "never", NULL, 10000, on_reply, &b);
    node_free(node);
    assert_int_equal(a.calls, 1);
    assert_int_equal(a.status, -ECANCELED);
    assert_int_equal(b.calls, 1);
    assert_int_equal(b.status, -ECANCELED);
    result_clear(&a);
    result_clear(&b);
    close_loop(&loop);
}

/* Frees the node from inside its own request callback. */
static void on_reply_free_node(int status, json_t *data, const char *error,
                               void *ctx)
{
    node_t **node = ctx;

    node_free(*node);
    *node = NULL;
}

static void free_inside_callback(void **state)
{
    uv_loop_t loop;
    struct status_log log = {0};
    struct result other = {0};
    node_t *node;

    need_daemon();
    uv_loop_init(&loop);
    node = connect_node(&loop, KEY, &log);
    assert_true(run_until(&loop, &log.up, 5000));
    node_request(node, "never", NULL, 10000, on_reply, &other);
    node_request(node, "echo", NULL, 0, on_reply_free_node, &node);
    run_for(&loop, 500);
    assert_null(node);
    assert_int_equal(other.status, -ECANCELED);
    result_clear(&other);
    close_loop(&loop);
}

static void language_sent_after_auth(void **state)
{
    uv_loop_t loop;
    struct status_log log = {0};
    struct result r = {0};
    node_t *node;

    need_daemon();
    uv_loop_init(&loop);
    node = node_new(&loop, "lang", "ws://127.0.0.1", daemon_port, "/",
                    KEY);
    node_set_language(node, "zh_cn");
    node_on_status(node, on_status, &log);
    assert_string_equal(node_prefix(node), "");
    assert_true(run_until(&loop, &log.up, 5000));
    node_request(node, "whoami", NULL, 0, on_reply, &r);
    assert_true(run_until(&loop, &r.calls, 3000));
    assert_string_equal(json_string_value(r.data), "zh_cn");
    result_clear(&r);
    node_free(node);
    close_loop(&loop);
}

/* ---- tests without a daemon ---- */

static void unreachable_fails_later(void **state)
{
    uv_loop_t loop;
    struct result r = {0};
    node_t *node;

    uv_loop_init(&loop);
    /* Port 1 on loopback refuses connections. */
    node = node_new(&loop, "down", "127.0.0.1", 1, NULL, KEY);
    node_request(node, "echo", NULL, 0, on_reply, &r);
    assert_int_equal(r.calls, 0);
    assert_true(run_until(&loop, &r.calls, 1000));
    assert_int_equal(r.status, -ENOTCONN);
    assert_null(r.data);
    result_clear(&r);
    run_for(&loop, 200);
    assert_int_equal(node_available(node), 0);
    node_free(node);
    close_loop(&loop);
}

static void wss_unsupported(void **state)
{
    uv_loop_t loop;
    struct result r = {0};
    node_t *node;

    uv_loop_init(&loop);
    node = node_new(&loop, "tls", "wss://127.0.0.1", 1, NULL, KEY);
    assert_string_equal(node_ip(node), "wss://127.0.0.1");
    node_request(node, "echo", NULL, 0, on_reply, &r);
    assert_true(run_until(&loop, &r.calls, 1000));
    assert_int_equal(r.status, -ENOTCONN);
    result_clear(&r);
    node_free(node);
    close_loop(&loop);
}

static void setters_and_remarks(void **state)
{
    uv_loop_t loop;
    node_t *node;

    uv_loop_init(&loop);
    node = node_new(&loop, "n1", "127.0.0.1", 1, "/base/", KEY);
    assert_string_equal(node_prefix(node), "/base");
    assert_string_equal(node_remarks(node), "");
    node_set_remarks(node, "main host");
    assert_string_equal(node_remarks(node), "main host");
    node_set_address(node, "localhost", 2, "", NULL);
    assert_string_equal(node_ip(node), "localhost");
    assert_int_equal(node_port(node), 2);
    assert_string_equal(node_prefix(node), "");
    node_set_address(node, NULL, 0, NULL, NULL);
    assert_string_equal(node_ip(node), "localhost");
    assert_int_equal(node_port(node), 2);
    node_free(node);
    close_loop(&loop);
}

static void registry_ops(void **state)
{
    uv_loop_t loop;
    node_registry_t *reg;
    node_t *a, *b, *dup;

    uv_loop_init(&loop);
    reg = node_registry_new();
    a = node_new(&loop, "aaaa", "127.0.0.1", 1, NULL, KEY);
    b = node_new(&loop, "bbbb", "127.0.0.1", 1, NULL, KEY);
    dup = node_new(&loop, "aaaa", "127.0.0.1", 1, NULL, KEY);
    assert_int_equal(node_registry_add(reg, a), 0);
    assert_int_equal(node_registry_add(reg, b), 0);
    assert_int_equal(node_registry_add(reg, dup), -EEXIST);
    node_free(dup);
    assert_int_equal(node_registry_count(reg), 2);
    assert_ptr_equal(node_registry_find(reg, "bbbb"), b);
    assert_null(node_registry_find(reg, "cccc"));
    assert_null(node_registry_find(reg, NULL));
    assert_ptr_equal(node_registry_at(reg, 0), a);
    assert_null(node_registry_at(reg, 2));
    assert_int_equal(node_registry_remove(reg, "aaaa"), 0);
    assert_int_equal(node_registry_remove(reg, "aaaa"), -ENOENT);
    assert_int_equal(node_registry_count(reg), 1);
    assert_ptr_equal(node_registry_at(reg, 0), b);
    node_registry_free(reg);
    close_loop(&loop);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(auth_then_echo),
        cmocka_unit_test(packet_uuid_format),
        cmocka_unit_test(daemon_errors),
        cmocka_unit_test(replies_matched_by_uuid),
        cmocka_unit_test(unsolicited_packets),
        cmocka_unit_test(request_timeout),
        cmocka_unit_test(wrong_key_denied),
        cmocka_unit_test(drop_fails_pending_and_recovers),
        cmocka_unit_test(free_cancels_pending),
        cmocka_unit_test(free_inside_callback),
        cmocka_unit_test(language_sent_after_auth),
        cmocka_unit_test(unreachable_fails_later),
        cmocka_unit_test(wss_unsupported),
        cmocka_unit_test(setters_and_remarks),
        cmocka_unit_test(registry_ops),
    };

    signal(SIGPIPE, SIG_IGN);
    return cmocka_run_group_tests(tests, start_daemon, stop_daemon);
}
