/*
 * The panel program: one libuv loop with the store, the API (sessions and
 * nodes) and the HTTP server, stopped cleanly by SIGTERM or SIGINT.
 *
 * For `hearth up` it also bootstraps a single machine. It registers the
 * local daemon as a node. On the first start with a demo folder it creates
 * the administrator, turns API keys on, creates the admin's key and the demo
 * game-server instance, and prints how to start it.
 */
#include "panel/panel.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <jansson.h>
#include <sodium.h>
#include <uv.h>

#include "core/fsutil.h"
#include "core/log.h"
#include "core/util.h"
#include "net/http.h"
#include "panel/api.h"
#include "panel/password.h"
#include "panel/reply.h"
#include "panel/store.h"

/* How often the panel looks for the local daemon's key file. */
#define PANEL_LOCAL_RETRY_MS 1000
/* How long the first-run summary waits for the demo instance before it is
 * printed without the start command. */
#define PANEL_DEMO_WAIT_MS 30000
#define PANEL_ADMIN_NAME "admin"
#define PANEL_DEMO_NICKNAME "flying-squid demo"
#define PANEL_DEMO_PORT 25565

typedef struct panel {
    uv_loop_t loop;
    const panel_options_t *options;
    store_t *store;
    api_t *api;
    http_server_t *server;
    uv_signal_t sig_term, sig_int;
    uv_timer_t local_timer; /* retries reading the local daemon's key */
    uv_timer_t demo_timer;  /* deadline of the first-run summary */
    char url_host[300];     /* host as it appears in a URL */
    int port;               /* the port actually bound */
    int stopping;
    /* First run with a demo folder. */
    int demo_pending;   /* the demo instance is still to be created */
    int demo_requested; /* its instance/new request is in flight */
    int summary_printed;
    char demo_node[33]; /* the node to create it on; "" means any */
    char admin_password[40];
    char admin_key[33];
    char instance_uuid[64];
    char *first_run_path;
} panel_t;

/* ---- the local daemon ---- */

/*
 * Reads <dir>/Config/global.json and registers the daemon as node
 * 127.0.0.1:<port>. Returns 0 when done, -EAGAIN when the file is not
 * ready yet, another negative errno on failure (logged).
 */
static int panel__register_local(panel_t *p)
{
    char *path =
        xasprintf("%s/Config/global.json", p->options->local_daemon_dir);
    json_t *config = json_load_file(path, 0, NULL);
    const char *key = json_string_value(json_object_get(config, "key"));
    json_t *port = json_object_get(config, "port");
    store_node_t node;
    char uuid[33];
    int rc = -EAGAIN;

    if (key != NULL && key[0] != '\0') {
        memset(&node, 0, sizeof(node));
        node.ip = "127.0.0.1";
        node.port =
            json_is_integer(port) ? (int)json_integer_value(port) : 24444;
        node.prefix = "";
        node.remarks = "";
        node.api_key = (char *)key;
        rc = api_node_add(p->api, &node, uuid);
        if (rc == 0) {
            log_info("registered the local daemon as node %s "
                     "(127.0.0.1:%d)",
                     uuid, node.port);
            if (p->demo_node[0] == '\0')
                snprintf(p->demo_node, sizeof(p->demo_node), "%s", uuid);
        } else {
            log_error("cannot register the local daemon from %s: %s", path,
                      strerror(-rc));
        }
    }
    json_decref(config);
    free(path);
    return rc;
}

static void panel__on_local_timer(uv_timer_t *timer)
{
    panel_t *p = timer->data;

    if (panel__register_local(p) != -EAGAIN)
        uv_timer_stop(timer);
}

static void panel__bootstrap_local(panel_t *p)
{
    store_node_t **nodes = NULL;
    size_t count = 0;

    if (p->options->local_daemon_dir == NULL)
        return;
    if (store_node_list(p->store, &nodes, &count) != 0)
        return;
    store_node_list_free(nodes, count);
    if (count > 0)
        return;
    /* In `hearth up` the daemon starts at the same time and may not have
     * written its key yet. */
    if (panel__register_local(p) == -EAGAIN) {
        log_info("waiting for the local daemon's key in %s/Config/global.json",
                 p->options->local_daemon_dir);
        uv_timer_start(&p->local_timer, panel__on_local_timer,
                       PANEL_LOCAL_RETRY_MS, PANEL_LOCAL_RETRY_MS);
    }
}

/* ---- first run ---- */

/* The curl command that starts the demo instance; the caller frees it. */
static char *panel__curl_line(panel_t *p)
{
    return xasprintf("curl -H 'X-Requested-With: XMLHttpRequest' "
                     "'http://%s:%d/api/protected_instance/open?uuid=%s"
                     "&remote_uuid=%s&apikey=%s'",
                     p->url_host, p->port, p->instance_uuid, p->demo_node,
                     p->admin_key);
}

/* The first-run summary; the caller frees it. The curl command is on a
 * line of its own so that it can be copied (and found) as it is. */
static char *panel__summary(panel_t *p)
{
    char *demo, *curl, *text;

    if (p->instance_uuid[0] != '\0') {
        curl = panel__curl_line(p);
        demo = xasprintf(
            "demo instance: %s (\"" PANEL_DEMO_NICKNAME "\") on node %s\n"
            "start it (the Minecraft server then listens on 127.0.0.1:%d):\n"
            "  %s\n",
            p->instance_uuid, p->demo_node, PANEL_DEMO_PORT, curl);
        sodium_memzero(curl, strlen(curl));
        free(curl);
    } else {
        demo = xstrdup("demo instance: not created yet (the local daemon "
                       "has not answered); the panel creates it as soon as "
                       "the daemon is available\n");
    }
    text =
        xasprintf("Hearth panel, first start\n"
                  "API:           http://%s:%d/api (no web UI yet)\n"
                  "admin user:    " PANEL_ADMIN_NAME "\n"
                  "password:      %s\n"
                  "API key:       %s\n"
                  "%s",
                  p->url_host, p->port, p->admin_password, p->admin_key, demo);
    free(demo);
    return text;
}

static void panel__save_summary(panel_t *p)
{
    char *text = panel__summary(p);
    int rc =
        fs_write_atomic_mode(p->first_run_path, text, strlen(text), 0600);

    if (rc != 0)
        log_error("cannot write %s: %s", p->first_run_path, strerror(-rc));
    sodium_memzero(text, strlen(text));
    free(text);
}

static void panel__print_summary(panel_t *p)
{
    char *text = panel__summary(p);

    fprintf(stdout, "\n%s(also saved in %s, readable only by this user)\n\n",
            text, p->first_run_path);
    fflush(stdout);
    sodium_memzero(text, strlen(text));
    free(text);
    p->summary_printed = 1;
}

static void panel__on_demo_timer(uv_timer_t *timer)
{
    panel_t *p = timer->data;

    if (!p->summary_printed)
        panel__print_summary(p);
}

static void panel__on_demo_created(int status, json_t *data, const char *error,
                                   void *ctx)
{
    panel_t *p = ctx;
    const char *uuid = json_string_value(json_object_get(data, "instanceUuid"));

    p->demo_requested = 0;
    if (status != 200 || uuid == NULL) {
        log_error("cannot create the demo instance: %s",
                  error != NULL ? error : "the daemon sent no instance uuid");
        return;
    }
    p->demo_pending = 0;
    snprintf(p->instance_uuid, sizeof(p->instance_uuid), "%s", uuid);
    log_info("created the demo instance %s on node %s", uuid, p->demo_node);
    panel__save_summary(p);
    if (!p->summary_printed) {
        uv_timer_stop(&p->demo_timer);
        panel__print_summary(p);
    } else {
        char *curl = panel__curl_line(p);

        fprintf(stdout,
                "\nThe demo instance is ready. Start it with:\n  %s\n\n", curl);
        fflush(stdout);
        sodium_memzero(curl, strlen(curl));
        free(curl);
    }
}

/* The demo instance's start command; the launcher path is quoted when it
 * has spaces, which the daemon's command parser understands. */
static char *panel__demo_command(const char *dir)
{
    const char *quote = strchr(dir, ' ') != NULL ? "\"" : "";

    return xasprintf("node %s%s/launcher.js%s --host 127.0.0.1 --port %d",
                     quote, dir, quote, PANEL_DEMO_PORT);
}

static void panel__create_demo(panel_t *p, node_t *node)
{
    char *command = panel__demo_command(p->options->demo_dir);
    json_t *config =
        json_pack("{s:s, s:s, s:s, s:s, s:s, s:s, s:s, s:{s:b}}", "nickname",
                  PANEL_DEMO_NICKNAME, "startCommand", command, "stopCommand",
                  "stop", "processType", "general", "type", "minecraft/java",
                  "ie", "utf8", "oe", "utf8", "terminalOption", "pty", 0);

    snprintf(p->demo_node, sizeof(p->demo_node), "%s", node_uuid(node));
    p->demo_requested = 1;
    node_request(node, "instance/new", config, NODE_TIMEOUT_MS,
                 panel__on_demo_created, p);
    json_decref(config);
    free(command);
}

static void panel__on_node(api_t *api, node_t *node, int available, void *data)
{
    panel_t *p = data;

    if (!available || !p->demo_pending || p->demo_requested || p->stopping)
        return;
    if (p->demo_node[0] != '\0' && strcmp(p->demo_node, node_uuid(node)) != 0)
        return;
    panel__create_demo(p, node);
}

/* A random password that meets MCSManager's policy. */
static void panel__random_password(char out[40])
{
    static const char alphabet[] = "ABCDEFGHJKLMNPQRSTUVWXYZ"
                                   "abcdefghijkmnopqrstuvwxyz"
                                   "23456789";
    int i;

    do {
        for (i = 0; i < 20; i++)
            out[i] = alphabet[randombytes_uniform(sizeof(alphabet) - 1)];
        out[20] = '\0';
    } while (password_policy_error(out) != NULL);
}

/*
 * Creates the administrator (random password), enables API keys and
 * creates the admin's key. Returns 0 or -1 (logged).
 */
static int panel__create_admin(panel_t *p)
{
    char hash[PASSWORD_HASH_MAX];
    char uuid[33];
    json_t *patch;
    int rc;

    panel__random_password(p->admin_password);
    /* Hashing blocks for a moment, but nothing is served yet. */
    if (password_hash(p->admin_password, hash) != 0 ||
        store_user_create(p->store, PANEL_ADMIN_NAME, hash, PASSWORD_ARGON2ID,
                          STORE_PERM_ADMIN, uuid) != 0) {
        log_error("first start: cannot create the administrator");
        return -1;
    }
    patch = json_pack("{s:b}", "enableApiKey", 1);
    rc = store_settings_update(p->store, patch, NULL);
    json_decref(patch);
    if (rc != 0 || store_user_new_api_key(p->store, uuid, p->admin_key) != 0) {
        log_error("first start: cannot enable API keys or create the "
                  "administrator's key");
        return -1;
    }
    log_info("first start: created administrator %s with an API key", uuid);
    return 0;
}

/* Copies the value after "<label>" on its line of text into out. */
static void panel__summary_value(const char *text, const char *label,
                                 char *out, size_t size)
{
    const char *at = strstr(text, label);
    size_t len;

    if (at == NULL)
        return;
    at += strlen(label);
    at += strspn(at, " ");
    len = strcspn(at, "\n");
    if (len < size) {
        memcpy(out, at, len);
        out[len] = '\0';
    }
}

/*
 * A first start that ended before the daemon responded left the demo
 * instance uncreated; first-run.txt then says so and still has the
 * credentials, so this start creates the instance and completes the file.
 * Returns 1 when the demo instance is pending again.
 */
static int panel__resume_demo(panel_t *p)
{
    char *text = fs_read_all(p->first_run_path, NULL);
    int pending = 0;

    if (text == NULL)
        return 0;
    if (p->options->demo_dir != NULL &&
        strstr(text, "demo instance: not created yet") != NULL) {
        panel__summary_value(text, "password:", p->admin_password,
                             sizeof(p->admin_password));
        panel__summary_value(text, "API key:", p->admin_key,
                             sizeof(p->admin_key));
        pending = p->admin_key[0] != '\0';
    }
    sodium_memzero(text, strlen(text));
    free(text);
    return pending;
}

static void panel__bootstrap_demo(panel_t *p)
{
    struct stat st;

    p->first_run_path = xasprintf("%s/first-run.txt", p->options->data_dir);
    if (store_user_count(p->store) > 0) {
        if (panel__resume_demo(p)) {
            log_info("the demo instance of the first start was not "
                     "created; creating it now");
            p->demo_pending = 1;
            /* The password was printed at the first start; this start
             * prints only the command that starts the demo. */
            p->summary_printed = 1;
            return;
        }
        if (stat(p->first_run_path, &st) == 0)
            log_info("the first-run credentials are in %s", p->first_run_path);
        return;
    }
    if (p->options->demo_dir == NULL || panel__create_admin(p) != 0)
        return;
    p->demo_pending = 1;
    panel__save_summary(p);
    /* Nodes connect once the loop runs, so the node hook creates the demo
     * instance when the local node (or, without one, any node) becomes
     * available. */
    uv_timer_start(&p->demo_timer, panel__on_demo_timer, PANEL_DEMO_WAIT_MS, 0);
}

/* ---- life cycle ---- */

static void panel__stop(panel_t *p, int signum)
{
    if (p->stopping)
        return;
    p->stopping = 1;
    if (signum > 0)
        log_info("received %s; panel stopping", strsignal(signum));
    else
        log_info("panel stopping");
    uv_close((uv_handle_t *)&p->sig_term, NULL);
    uv_close((uv_handle_t *)&p->sig_int, NULL);
    uv_close((uv_handle_t *)&p->local_timer, NULL);
    uv_close((uv_handle_t *)&p->demo_timer, NULL);
    http_server_free(p->server);
    p->server = NULL;
    api_close(p->api);
}

static void panel__on_signal(uv_signal_t *handle, int signum)
{
    panel__stop(handle->data, signum);
}

static void panel__url_host(panel_t *p, const char *host)
{
    /* A wildcard address is not something to type into a browser. */
    if (strcmp(host, "0.0.0.0") == 0)
        host = "127.0.0.1";
    else if (strcmp(host, "::") == 0)
        host = "::1";
    if (strchr(host, ':') != NULL)
        snprintf(p->url_host, sizeof(p->url_host), "[%s]", host);
    else
        snprintf(p->url_host, sizeof(p->url_host), "%s", host);
}

static int panel__start(panel_t *p)
{
    const panel_options_t *o = p->options;
    const char *err = NULL;

    p->store = store_new(o->data_dir);
    if (p->store == NULL)
        return -1;
    p->api = api_new(&p->loop, p->store);
    if (p->api == NULL)
        return -1;
    api_set_node_hook(p->api, panel__on_node, p);
    p->server =
        http_server_new(&p->loop, o->host, o->port, api_handle, p->api, &err);
    if (p->server == NULL) {
        log_error("cannot listen on %s:%d: %s; stop the program that uses "
                  "it or choose another address with --listen (hearth up: "
                  "--panel-listen)",
                  o->host, o->port, err);
        return -1;
    }
    http_server_add_default_header(p->server, "X-Powered-By", "MCSManager");
    http_server_add_default_header(p->server, "X-Version", REPLY_MCSM_VERSION);
    http_server_add_default_header(p->server, "X-Hearth-Version",
                                   HEARTH_VERSION);
    p->port = http_server_port(p->server);
    panel__url_host(p, o->host);
    panel__bootstrap_local(p);
    panel__bootstrap_demo(p);
    return 0;
}

int panel_run(const panel_options_t *options)
{
    panel_t *p = xcalloc(1, sizeof(*p));
    int rc = 0, closed;

    p->options = options;
    uv_loop_init(&p->loop);
    uv_signal_init(&p->loop, &p->sig_term);
    uv_signal_init(&p->loop, &p->sig_int);
    p->sig_term.data = p->sig_int.data = p;
    uv_timer_init(&p->loop, &p->local_timer);
    uv_timer_init(&p->loop, &p->demo_timer);
    p->local_timer.data = p->demo_timer.data = p;
    uv_signal_start(&p->sig_term, panel__on_signal, SIGTERM);
    uv_signal_start(&p->sig_int, panel__on_signal, SIGINT);

    if (panel__start(p) != 0) {
        rc = 1;
        panel__stop(p, 0);
    } else {
        log_info("panel ready on http://%s:%d", p->url_host, p->port);
    }
    uv_run(&p->loop, UV_RUN_DEFAULT);

    api_free(p->api);
    store_free(p->store);
    closed = uv_loop_close(&p->loop);
    if (closed != 0)
        log_warn("the event loop still had open handles at exit: %s",
                 uv_strerror(closed));
    sodium_memzero(p->admin_password, sizeof(p->admin_password));
    sodium_memzero(p->admin_key, sizeof(p->admin_key));
    free(p->first_run_path);
    free(p);
    if (rc == 0)
        log_info("panel stopped");
    return rc;
}
