#include "daemon/daemon.h"

#include <signal.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include <sodium.h>
#include <uv.h>

#include "core/log.h"
#include "core/util.h"
#include "daemon/config.h"
#include "daemon/protocol.h"
#include "daemon/registry.h"
#include "daemon/sysinfo.h"
#include "net/http.h"
#include "net/sio.h"

/* The page served at the daemon's root path. */
static const char daemon_root_page[] =
    "<!DOCTYPE html>\n"
    "<html lang=\"en\">\n"
    "<head><meta charset=\"UTF-8\"><title>Hearth daemon</title></head>\n"
    "<body>\n"
    "<h1>Hearth daemon is running</h1>\n"
    "<p>This address is for the panel and its terminals. Open the panel "
    "to manage the instances of this node.</p>\n"
    "</body>\n"
    "</html>\n";

struct daemon {
    uv_loop_t loop;
    dconfig_t *cfg;
    sysinfo_t *sysinfo;
    protocol_t *proto;
    registry_t *registry;
    sio_server_t *sio;
    http_server_t *http;
    char *sio_path; /* "<prefix>/socket.io/" */
    uv_signal_t sigterm;
    uv_signal_t sigint;
    uv_timer_t shutdown_timer;
    bool handles_open;
    bool shutting_down;
    bool finish_scheduled;
    bool finished;
};

static void daemon_finish(struct daemon *d);

/* HTTP. */

static void daemon_on_http(http_request_t *req, void *data)
{
    struct daemon *d = data;
    const char *path = http_request_path(req);
    const char *prefix = d->cfg->prefix;

    if (d->sio != NULL && sio_server_handle(d->sio, req))
        return;
    if (strcmp(http_request_method(req), "OPTIONS") == 0) {
        http_respond(req, 204, NULL, "", 0);
        return;
    }
    if (strcmp(path, "/") == 0 ||
        (prefix[0] != '\0' && strcmp(path, prefix) == 0)) {
        http_respond(req, 200, "text/html; charset=utf-8", daemon_root_page,
                     sizeof(daemon_root_page) - 1);
        return;
    }
    http_respond(req, 404, "text/plain; charset=utf-8", "Not Found", 9);
}

/* The headers MCSManager's daemon sends on every response. */
static void daemon_add_headers(http_server_t *http)
{
    http_server_add_default_header(http, "Access-Control-Allow-Origin", "*");
    http_server_add_default_header(http, "Access-Control-Allow-Methods",
                                   "POST, GET, PUT, DELETE, OPTIONS");
    http_server_add_default_header(
        http, "Access-Control-Allow-Headers",
        "Content-Type, Cookie, Accept-Encoding, User-Agent, Host, Referer, "
        "X-Requested-With, Accept, Accept-Language, Cache-Control, "
        "Connection");
    http_server_add_default_header(http, "X-Power-by", "MCSManager");
}

/* Instance events. */

static void daemon_on_finish_timer(uv_timer_t *timer)
{
    daemon_finish(timer->data);
}

/*
 * Finishes the shutdown once no instance is alive. This runs inside the
 * instances' own callbacks, so the release waits for the next loop turn.
 */
static void daemon_check_stopped(struct daemon *d)
{
    if (d->shutting_down && !d->finished && !d->finish_scheduled &&
        registry_count_active(d->registry) == 0) {
        /* Several status callbacks can report the last exit. */
        d->finish_scheduled = 1;
        log_info("every instance has stopped");
        uv_timer_start(&d->shutdown_timer, daemon_on_finish_timer, 0, 0);
    }
}

static void daemon_on_status(instance_t *inst, int old_status, int new_status,
                             void *data)
{
    if (new_status == INSTANCE_STOPPED)
        daemon_check_stopped(data);
}

static void daemon_on_opened(instance_t *inst, void *data)
{
    struct daemon *d = data;

    protocol_push_state(d->proto, inst, "instance/opened");
}

static void daemon_on_stopped(instance_t *inst, void *data)
{
    struct daemon *d = data;

    protocol_push_state(d->proto, inst, "instance/stopped");
    daemon_check_stopped(d);
}

static void daemon_on_failure(instance_t *inst, const char *message, void *data)
{
    struct daemon *d = data;

    protocol_push_state(d->proto, inst, "instance/failure");
}

static void daemon_on_output(instance_t *inst, const char *text, size_t len,
                             void *data)
{
    struct daemon *d = data;

    protocol_push_output(d->proto, inst, text, len);
}

static const instance_callbacks_t daemon_instance_callbacks = {
    .on_status = daemon_on_status,
    .on_opened = daemon_on_opened,
    .on_stopped = daemon_on_stopped,
    .on_failure = daemon_on_failure,
    .on_output = daemon_on_output,
};

/* Shutdown. */

static void daemon_close_servers(struct daemon *d)
{
    /* sio_server_free disconnects every socket, which must happen while
     * the protocol layer still exists. */
    sio_server_free(d->sio);
    d->sio = NULL;
    http_server_free(d->http);
    d->http = NULL;
}

/*
 * Releases everything that keeps the loop alive; uv_run then returns once
 * the instances' handles have closed. Instances still alive are killed
 * (SIGKILL to their process groups) by registry_free.
 */
static void daemon_finish(struct daemon *d)
{
    if (d->finished)
        return;
    d->finished = true;
    daemon_close_servers(d);
    if (d->handles_open) {
        uv_close((uv_handle_t *)&d->sigterm, NULL);
        uv_close((uv_handle_t *)&d->sigint, NULL);
        uv_close((uv_handle_t *)&d->shutdown_timer, NULL);
        d->handles_open = false;
    }
    registry_free(d->registry);
    d->registry = NULL;
    protocol_free(d->proto);
    d->proto = NULL;
    sysinfo_free(d->sysinfo);
    d->sysinfo = NULL;
}

static void daemon_on_shutdown_timeout(uv_timer_t *timer)
{
    struct daemon *d = timer->data;

    log_warn("%zu instances still running after %d s; killing them",
             registry_count_active(d->registry),
             d->cfg->soft_shutdown_wait_seconds);
    daemon_finish(d);
}

/* Sends every live instance its stop command. */
static void daemon_stop_instances(struct daemon *d)
{
    instance_t *const *list;
    size_t n = registry_list(d->registry, &list), i;
    instance_t *global = registry_get(d->registry, REGISTRY_GLOBAL_UUID);

    for (i = 0; i <= n; i++) {
        instance_t *inst = i < n ? list[i] : global;
        int status;
        char *err = NULL;

        if (inst == NULL)
            continue;
        status = instance_status(inst);
        if (status == INSTANCE_STOPPED || status == INSTANCE_BUSY)
            continue;
        if (instance_stop(inst, &err) < 0)
            log_warn("instance %s: stop at shutdown failed: %s",
                     instance_uuid(inst), err ? err : "unknown error");
        free(err);
    }
}

static void daemon_on_signal(uv_signal_t *handle, int signum)
{
    struct daemon *d = handle->data;
    size_t active;

    if (d->shutting_down) {
        log_warn("received %s again; killing every instance now",
                 strsignal(signum));
        daemon_finish(d);
        return;
    }
    d->shutting_down = true;
    registry_autostart_cancel(d->registry);
    daemon_close_servers(d);
    active = registry_count_active(d->registry);
    if (active == 0 || !d->cfg->enable_soft_shutdown) {
        log_info("received %s; shutting down", strsignal(signum));
        daemon_finish(d);
        return;
    }
    log_info("received %s; stopping %zu instance(s) (waiting up to %d s, "
             "send the signal again to kill them now)",
             strsignal(signum), active, d->cfg->soft_shutdown_wait_seconds);
    uv_timer_start(&d->shutdown_timer, daemon_on_shutdown_timeout,
                   (uint64_t)d->cfg->soft_shutdown_wait_seconds * 1000, 0);
    daemon_stop_instances(d);
    daemon_check_stopped(d);
}

/* Start-up. */

static int daemon_listen(struct daemon *d, const char *host, int port)
{
    sio_server_options_t opts = {0};
    sio_server_callbacks_t callbacks;
    const char *err = NULL;
    size_t len = strlen(d->cfg->prefix);

    /* The Socket.IO path is the prefix without its trailing slash plus
     * "/socket.io", as MCSManager's panel computes it. */
    while (len > 0 && d->cfg->prefix[len - 1] == '/')
        len--;
    d->sio_path = xasprintf("%.*s/socket.io/", (int)len, d->cfg->prefix);
    opts.path = d->sio_path;
    opts.ping_interval_ms = 20000;
    opts.ping_timeout_ms = 10000;
    opts.max_payload = 10 * 1000 * 1000;
    protocol_sio_callbacks(&callbacks);
    d->sio = sio_server_new(&d->loop, &opts, &callbacks, d->proto);

    d->http = http_server_new(&d->loop, host, port, daemon_on_http, d, &err);
    if (d->http == NULL) {
        log_error("listen on %s port %d failed: %s; stop the program that "
                  "uses it or choose another address with --listen (hearth "
                  "up: --daemon-listen)",
                  host, port, err ? err : "unknown error");
        return -1;
    }
    daemon_add_headers(d->http);
    return 0;
}

static void daemon_start_signals(struct daemon *d)
{
    uv_signal_init(&d->loop, &d->sigterm);
    uv_signal_init(&d->loop, &d->sigint);
    uv_timer_init(&d->loop, &d->shutdown_timer);
    d->sigterm.data = d;
    d->sigint.data = d;
    d->shutdown_timer.data = d;
    d->handles_open = true;
    uv_signal_start(&d->sigterm, daemon_on_signal, SIGTERM);
    uv_signal_start(&d->sigint, daemon_on_signal, SIGINT);
}

static void daemon_log_ready(struct daemon *d, const char *host)
{
    int port = http_server_port(d->http);

    if (strchr(host, ':') != NULL)
        log_info("daemon ready on http://[%s]:%d (key in %s)", host, port,
                 d->cfg->path);
    else
        log_info("daemon ready on http://%s:%d (key in %s)", host, port,
                 d->cfg->path);
}

/* Runs the loop until every handle has closed, then releases it. */
static void daemon_drain(struct daemon *d)
{
    uv_run(&d->loop, UV_RUN_DEFAULT);
    if (uv_loop_close(&d->loop) != 0)
        log_warn("event loop closed with handles still open");
}

int daemon_run(const char *data_dir, const char *host, int port)
{
    struct daemon d;
    int rc = 1;

    memset(&d, 0, sizeof(d));
    if (sodium_init() < 0) {
        log_error("libsodium initialization failed");
        return 1;
    }
    /* A game server that closes its stdin must not kill the daemon with
     * SIGPIPE; libuv resets the disposition in the children it spawns. */
    signal(SIGPIPE, SIG_IGN);
    if (dconfig_load(data_dir, &d.cfg) < 0)
        return 1;
    /* The command line wins over the stored ip and port. Port 0 selects
     * an ephemeral port. An empty stored ip means loopback here, not all
     * interfaces as in MCSManager. */
    if (host == NULL || host[0] == '\0')
        host = d.cfg->ip[0] != '\0' ? d.cfg->ip : "127.0.0.1";
    if (port < 0)
        port = d.cfg->port;

    uv_loop_init(&d.loop);
    d.sysinfo = sysinfo_new(&d.loop);
    d.proto = protocol_new(&d.loop, d.cfg, d.sysinfo);
    /* A panel on this host finds its local daemon through the stored port
     * (as MCSManager's does), so keep it equal to the one in use. A fixed
     * port is stored before listening, so that the file is final once the
     * port accepts connections; an ephemeral one only after. */
    if (port > 0 && d.cfg->port != port) {
        d.cfg->port = port;
        if (dconfig_save(d.cfg) < 0)
            log_warn("cannot store port %d in Config/global.json; a panel "
                     "reading that file will not find this daemon",
                     port);
    }
    if (daemon_listen(&d, host, port) < 0)
        goto out;
    if (d.cfg->port != http_server_port(d.http)) {
        d.cfg->port = http_server_port(d.http);
        if (dconfig_save(d.cfg) < 0)
            log_warn("cannot store port %d in Config/global.json; a panel "
                     "reading that file will not find this daemon",
                     d.cfg->port);
    }
    d.registry =
        registry_new(&d.loop, data_dir, d.cfg, http_server_port(d.http),
                     &daemon_instance_callbacks, &d);
    if (d.registry == NULL)
        goto out;
    protocol_set_registry(d.proto, d.registry);
    daemon_start_signals(&d);
    registry_autostart(d.registry);
    daemon_log_ready(&d, host);
    uv_run(&d.loop, UV_RUN_DEFAULT);
    rc = 0;

out:
    daemon_finish(&d);
    daemon_drain(&d);
    log_info("daemon stopped");
    dconfig_free(d.cfg);
    free(d.sio_path);
    return rc;
}
