/*
 * hearth: one binary, three subcommands.
 *
 *   hearth daemon --data DIR [--listen 127.0.0.1:24444]
 *   hearth panel  --data DIR [--listen 127.0.0.1:23333]
 *   hearth up     [--data DIR] [--demo DIR] [--panel-listen HOST:PORT]
 *                 [--daemon-listen HOST:PORT]
 *
 * `up` runs a daemon and a panel as two child processes of its own, so a
 * panel restart never touches a running game server.
 */
#include <errno.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <uv.h>

#include "core/fsutil.h"
#include "core/log.h"
#include "core/util.h"
#include "daemon/daemon.h"
#include "panel/panel.h"

#define DEFAULT_DAEMON_LISTEN "127.0.0.1:24444"
#define DEFAULT_PANEL_LISTEN "127.0.0.1:23333"

static void usage(FILE *out)
{
    fprintf(out,
            "usage:\n"
            "  hearth daemon --data DIR [--listen HOST:PORT]\n"
            "      Node daemon: runs game-server instances. DIR is an\n"
            "      MCSManager daemon data folder (created when missing).\n"
            "      Default listen address " DEFAULT_DAEMON_LISTEN ".\n"
            "  hearth panel --data DIR [--listen HOST:PORT]\n"
            "      Panel: users, API keys, nodes and the /api HTTP API.\n"
            "      DIR holds the SQLite store. Default listen address "
            DEFAULT_PANEL_LISTEN ".\n"
            "  hearth up [--data DIR] [--demo DIR] [--panel-listen HOST:PORT]\n"
            "            [--daemon-listen HOST:PORT]\n"
            "      Both programs, the panel bound to the local daemon.\n"
            "      --data defaults to ./hearth-data; --demo is the demo\n"
            "      game server's folder (default: demo/flying-squid next\n"
            "      to the build folder); the listen addresses default to\n"
            "      " DEFAULT_PANEL_LISTEN " and " DEFAULT_DAEMON_LISTEN ".\n");
}

/*
 * Splits "HOST:PORT" or "[V6]:PORT" into host (a buffer of size bytes)
 * and port.
 * Returns 0, or -1 with a message printed.
 */
static int parse_listen(const char *text, char *host, size_t size, int *port)
{
    const char *colon = strrchr(text, ':');
    const char *h = text;
    size_t hlen;
    char *end;
    long p;

    if (colon == NULL)
        goto invalid;
    hlen = (size_t)(colon - text);
    if (text[0] == '[' && hlen >= 2 && text[hlen - 1] == ']') {
        h = text + 1;
        hlen -= 2;
    }
    if (hlen == 0 || hlen >= size)
        goto invalid;
    memcpy(host, h, hlen);
    host[hlen] = '\0';
    errno = 0;
    p = strtol(colon + 1, &end, 10);
    if (errno != 0 || *end != '\0' || end == colon + 1 || p < 0 || p > 65535)
        goto invalid;
    *port = (int)p;
    return 0;
invalid:
    fprintf(stderr,
            "hearth: invalid --listen value \"%s\": expected HOST:PORT, "
            "for example 127.0.0.1:24444\n",
            text);
    return -1;
}

typedef struct options {
    const char *data;
    const char *listen;
    const char *demo;
    const char *local_daemon;
    const char *panel_listen;  /* up only */
    const char *daemon_listen; /* up only */
} options_t;

/* Parses the flags after the subcommand. Returns 0, or -1 on bad usage. */
static int parse_options(int argc, char **argv, options_t *opt)
{
    int i;

    for (i = 0; i < argc; i++) {
        const char **slot = NULL;

        if (strcmp(argv[i], "-h") == 0 || strcmp(argv[i], "--help") == 0) {
            usage(stdout);
            exit(0);
        }
        if (strcmp(argv[i], "--data") == 0)
            slot = &opt->data;
        else if (strcmp(argv[i], "--listen") == 0)
            slot = &opt->listen;
        else if (strcmp(argv[i], "--demo") == 0)
            slot = &opt->demo;
        else if (strcmp(argv[i], "--local-daemon") == 0)
            slot = &opt->local_daemon;
        else if (strcmp(argv[i], "--panel-listen") == 0)
            slot = &opt->panel_listen;
        else if (strcmp(argv[i], "--daemon-listen") == 0)
            slot = &opt->daemon_listen;
        if (slot == NULL) {
            fprintf(stderr,
                    "hearth: unknown option \"%s\"; see hearth --help\n",
                    argv[i]);
            return -1;
        }
        if (i + 1 >= argc) {
            fprintf(stderr, "hearth: option %s needs a value\n", argv[i]);
            return -1;
        }
        *slot = argv[++i];
    }
    return 0;
}

static int run_daemon(const options_t *opt)
{
    char host[256];
    int port;

    if (opt->data == NULL) {
        fprintf(stderr, "hearth daemon: --data DIR is required\n");
        return 2;
    }
    log_init("daemon");
    /* Without --listen the daemon uses the ip and port of its
     * Config/global.json, 127.0.0.1:24444 by default. */
    if (opt->listen == NULL)
        return daemon_run(opt->data, NULL, -1);
    if (parse_listen(opt->listen, host, sizeof(host), &port) != 0)
        return 2;
    return daemon_run(opt->data, host, port);
}

static int run_panel(const options_t *opt)
{
    panel_options_t po;
    char host[256];

    memset(&po, 0, sizeof(po));
    if (opt->data == NULL) {
        fprintf(stderr, "hearth panel: --data DIR is required\n");
        return 2;
    }
    if (parse_listen(opt->listen ? opt->listen : DEFAULT_PANEL_LISTEN, host,
                     sizeof(host), &po.port) != 0)
        return 2;
    po.data_dir = opt->data;
    po.host = host;
    po.local_daemon_dir = opt->local_daemon;
    po.demo_dir = opt->demo;
    log_init("panel");
    return panel_run(&po);
}

/* `hearth up`: two children and the signals that stop them. */

typedef struct up_child {
    const char *name;
    uv_process_t process;
    int running;
    int64_t status;
    int term_signal;
} up_child_t;

static up_child_t up_children[2] = {{.name = "daemon"}, {.name = "panel"}};
/* SIGHUP too: a closed terminal must not leave the daemon and panel
 * behind, since they run in sessions of their own. */
static const int up_signums[] = {SIGTERM, SIGINT, SIGHUP};
static uv_signal_t up_signals[ARRAY_SIZE(up_signums)];
static int up_stopping;

static void up_stop_all(int signum)
{
    size_t i;

    up_stopping = 1;
    for (i = 0; i < ARRAY_SIZE(up_children); i++)
        if (up_children[i].running)
            uv_process_kill(&up_children[i].process, signum);
}

static void up_on_child_closed(uv_handle_t *handle)
{
    static int signals_closed;
    size_t i;

    (void)handle;
    for (i = 0; i < ARRAY_SIZE(up_children); i++)
        if (up_children[i].running)
            return;
    /* Both children may exit before either close callback runs, so this
     * can be reached twice. */
    if (signals_closed)
        return;
    signals_closed = 1;
    for (i = 0; i < ARRAY_SIZE(up_signals); i++)
        uv_close((uv_handle_t *)&up_signals[i], NULL);
}

static void up_on_child_exit(uv_process_t *process, int64_t status, int sig)
{
    up_child_t *child = process->data;

    child->running = 0;
    child->status = status;
    child->term_signal = sig;
    if (!up_stopping) {
        log_error("%s exited unexpectedly (status %lld, signal %d); "
                  "stopping the other program",
                  child->name, (long long)status, sig);
        up_stop_all(SIGTERM);
    }
    uv_close((uv_handle_t *)process, up_on_child_closed);
}

static void up_on_signal(uv_signal_t *handle, int signum)
{
    log_info("received %s; stopping daemon and panel", strsignal(signum));
    up_stop_all(SIGTERM);
}

/*
 * The panel registers the local daemon from the daemon's Config/global.json,
 * which contains the final key and port once the daemon accepts connections,
 * so `up` starts the panel only then.
 */
#define UP_PROBE_INTERVAL_MS 50
#define UP_PROBE_TRIES 200 /* 10 s */

typedef struct up_wait {
    uv_timer_t timer;
    uv_tcp_t tcp;
    uv_connect_t connect;
    struct sockaddr_storage addr;
    char **panel_args;
    int tries;
    int probing;
    int done;
} up_wait_t;

static up_wait_t up_wait;

static int up_spawn(uv_loop_t *loop, up_child_t *child, char **args);

static void up_wait_finish(void)
{
    up_wait.done = 1;
    uv_close((uv_handle_t *)&up_wait.timer, NULL);
}

static void up_on_probe_closed(uv_handle_t *handle)
{
    up_wait.probing = 0;
}

static void up_on_probe(uv_connect_t *req, int status)
{
    uv_close((uv_handle_t *)req->handle, up_on_probe_closed);
    if (status != 0 || up_wait.done)
        return;
    up_wait_finish();
    if (!up_stopping && up_spawn(req->handle->loop, &up_children[1],
                                 up_wait.panel_args) != 0)
        up_stop_all(SIGTERM);
}

static void up_on_wait_tick(uv_timer_t *timer)
{
    if (up_wait.probing)
        return;
    if (up_stopping || !up_children[0].running) {
        up_wait_finish();
        return;
    }
    if (up_wait.tries-- <= 0) {
        log_error("the daemon did not accept connections within 10 s; "
                  "stopping it");
        up_wait_finish();
        up_stop_all(SIGTERM);
        return;
    }
    up_wait.probing = 1;
    uv_tcp_init(timer->loop, &up_wait.tcp);
    uv_tcp_connect(&up_wait.connect, &up_wait.tcp,
                   (struct sockaddr *)&up_wait.addr, up_on_probe);
}

/* Starts probing the daemon's address; the panel is spawned on success. */
static int up_wait_for_daemon(uv_loop_t *loop, const char *listen,
                              char **panel_args)
{
    char host[256];
    int port;

    if (parse_listen(listen, host, sizeof(host), &port) != 0)
        return -1;
    if (uv_ip4_addr(host, port, (struct sockaddr_in *)&up_wait.addr) != 0 &&
        uv_ip6_addr(host, port, (struct sockaddr_in6 *)&up_wait.addr) != 0) {
        log_error("invalid daemon address \"%s\": expected a numeric "
                  "IPv4 or IPv6 address",
                  listen);
        return -1;
    }
    up_wait.panel_args = panel_args;
    up_wait.tries = UP_PROBE_TRIES;
    uv_timer_init(loop, &up_wait.timer);
    uv_timer_start(&up_wait.timer, up_on_wait_tick, UP_PROBE_INTERVAL_MS,
                   UP_PROBE_INTERVAL_MS);
    return 0;
}

static int up_spawn(uv_loop_t *loop, up_child_t *child, char **args)
{
    uv_process_options_t po;
    uv_stdio_container_t stdio[3];
    int rc;

    memset(&po, 0, sizeof(po));
    stdio[0].flags = UV_IGNORE;
    stdio[1].flags = UV_INHERIT_FD;
    stdio[1].data.fd = 1;
    stdio[2].flags = UV_INHERIT_FD;
    stdio[2].data.fd = 2;
    po.file = args[0];
    po.args = args;
    po.exit_cb = up_on_child_exit;
    /*
     * Own sessions, so a Ctrl-C on the terminal reaches only `up`, which
     * forwards one SIGTERM. The daemon takes a second signal as "kill
     * every instance now", so it must not get the terminal's as well.
     */
    po.flags = UV_PROCESS_DETACHED;
    po.stdio = stdio;
    po.stdio_count = 3;
    child->process.data = child;
    rc = uv_spawn(loop, &child->process, &po);
    if (rc != 0) {
        log_error("cannot start %s (%s): %s", child->name, args[0],
                  uv_strerror(rc));
        return -1;
    }
    child->running = 1;
    return 0;
}

/* The demo folder next to the build folder: <exe>/../demo/flying-squid. */
static char *up_default_demo(const char *exe)
{
    char *copy = xstrdup(exe);
    char *slash = strrchr(copy, '/');
    char *path;
    struct stat st;

    if (slash != NULL)
        *slash = '\0';
    path = xasprintf("%s/../demo/flying-squid", copy);
    free(copy);
    if (stat(path, &st) != 0) {
        free(path);
        return NULL;
    }
    return path;
}

static int run_up(const options_t *opt)
{
    uv_loop_t *loop = uv_default_loop();
    char exe[PATH_MAX], data_abs[PATH_MAX];
    char *daemon_dir, *panel_dir, *demo = NULL, *demo_abs = NULL;
    const char *data = opt->data ? opt->data : "hearth-data";
    ssize_t n;
    int rc = 1;
    size_t i;

    log_init("up");
    n = readlink("/proc/self/exe", exe, sizeof(exe) - 1);
    if (n < 0) {
        log_error("cannot find the hearth binary: readlink(/proc/self/exe): "
                  "%s",
                  strerror(errno));
        return 1;
    }
    exe[n] = '\0';
    if (fs_mkdir_p(data) != 0 || realpath(data, data_abs) == NULL) {
        log_error("cannot create the data folder \"%s\": %s", data,
                  strerror(errno));
        return 1;
    }
    demo = opt->demo ? xstrdup(opt->demo) : up_default_demo(exe);
    if (demo != NULL)
        demo_abs = realpath(demo, NULL);
    if (demo_abs == NULL)
        log_warn("no demo game server folder found%s%s; the panel starts "
                 "without a demo instance",
                 demo ? " at " : "", demo ? demo : "");
    daemon_dir = xasprintf("%s/daemon", data_abs);
    panel_dir = xasprintf("%s/panel", data_abs);
    {
        char *daemon_listen = (char *)(opt->daemon_listen
                                           ? opt->daemon_listen
                                           : DEFAULT_DAEMON_LISTEN);
        char *panel_listen = (char *)(opt->panel_listen ? opt->panel_listen
                                                        : DEFAULT_PANEL_LISTEN);
        char *daemon_args[] = {exe,        "daemon",      "--data", daemon_dir,
                               "--listen", daemon_listen, NULL};
        char *panel_args[] = {exe,
                              "panel",
                              "--data",
                              panel_dir,
                              "--listen",
                              panel_listen,
                              "--local-daemon",
                              daemon_dir,
                              demo_abs ? "--demo" : NULL,
                              demo_abs,
                              NULL};

        for (i = 0; i < ARRAY_SIZE(up_signals); i++) {
            uv_signal_init(loop, &up_signals[i]);
            uv_signal_start(&up_signals[i], up_on_signal, up_signums[i]);
        }
        if (up_spawn(loop, &up_children[0], daemon_args) == 0 &&
            up_wait_for_daemon(loop, daemon_listen, panel_args) == 0)
            rc = 0;
        else
            up_stop_all(SIGTERM);
        if (!up_children[0].running && !up_children[1].running)
            up_on_child_closed(NULL);
        uv_run(loop, UV_RUN_DEFAULT);
    }
    for (i = 0; i < ARRAY_SIZE(up_children); i++)
        if (up_children[i].status != 0 || up_children[i].term_signal != 0)
            rc = 1;
    uv_loop_close(loop);
    free(daemon_dir);
    free(panel_dir);
    free(demo);
    free(demo_abs);
    return rc;
}

int main(int argc, char **argv)
{
    options_t opt;

    memset(&opt, 0, sizeof(opt));
    signal(SIGPIPE, SIG_IGN);
    if (argc < 2) {
        usage(stderr);
        return 2;
    }
    if (strcmp(argv[1], "-h") == 0 || strcmp(argv[1], "--help") == 0 ||
        strcmp(argv[1], "help") == 0) {
        usage(stdout);
        return 0;
    }
    if (parse_options(argc - 2, argv + 2, &opt) != 0) {
        usage(stderr);
        return 2;
    }
    if (strcmp(argv[1], "daemon") == 0)
        return run_daemon(&opt);
    if (strcmp(argv[1], "panel") == 0)
        return run_panel(&opt);
    if (strcmp(argv[1], "up") == 0)
        return run_up(&opt);
    fprintf(stderr, "hearth: unknown command \"%s\"\n", argv[1]);
    usage(stderr);
    return 2;
}
