#include "panel/node.h"

#include <errno.h>
#include <inttypes.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <sodium.h>

#include "core/ident.h"
#include "core/log.h"
#include "core/util.h"
#include "net/sioc.h"

/* MCSManager's panel gives the daemon 5 s to reply to auth. */
#define NODE_AUTH_TIMEOUT_MS 5000
/* Nodes that are not available reconnect from scratch this often. */
#define NODE_RETRY_MS 60000
/* uuid v4 with dashes (36) + ms timestamp (13 digits until year 2286). */
#define NODE_PACKET_UUID_MAX 64

/*
 * A request waiting for its reply. It sits in the node's table while
 * attached (node != NULL). A request that failed before it was sent is
 * detached and completes from its 0 ms timer, so callbacks never run
 * inside node_request.
 */
struct node_req {
    struct node_req *next;     /* hash chain in the node's table */
    node_t *node;              /* NULL when detached */
    char uuid[NODE_PACKET_UUID_MAX];
    char *event;
    node_request_cb cb;
    void *ctx;
    uv_timer_t timer;
    int fail_status;           /* detached: the status to report */
    char *fail_error;          /* detached: the message to report */
};

struct node {
    uv_loop_t *loop;
    char *uuid;
    char *ip;          /* as configured, possibly a ws:// URL */
    char *host;        /* ip without the scheme; NULL if unsupported */
    char *prefix;
    char *key;
    char *remarks;
    char *language;
    int port;
    sioc_t *sio;
    int available;
    int closing;
    int authenticating;
    int denied_logged; /* a key denial was logged at warn level */
    uv_timer_t retry_timer;

    struct node_req **buckets;
    size_t bucket_count;   /* a power of two */
    size_t pending;

    node_event_cb event_cb;
    void *event_data;
    node_status_cb status_cb;
    void *status_data;
};

static void node_send(node_t *node, const char *event, json_t *data,
                      int timeout_ms, node_request_cb cb, void *ctx,
                      int force);

/* ---- request table ---- */

static size_t req_hash(const char *uuid)
{
    uint64_t h = 1469598103934665603ULL; /* FNV-1a */

    for (; *uuid != '\0'; uuid++) {
        h ^= (unsigned char)*uuid;
        h *= 1099511628211ULL;
    }
    return (size_t)h;
}

static void table_grow(node_t *node)
{
    size_t count = node->bucket_count * 2, i;
    struct node_req **buckets = xcalloc(count, sizeof(*buckets));

    for (i = 0; i < node->bucket_count; i++) {
        struct node_req *req = node->buckets[i], *next;

        for (; req != NULL; req = next) {
            size_t b = req_hash(req->uuid) & (count - 1);

            next = req->next;
            req->next = buckets[b];
            buckets[b] = req;
        }
    }
    free(node->buckets);
    node->buckets = buckets;
    node->bucket_count = count;
}

static void table_insert(node_t *node, struct node_req *req)
{
    size_t b;

    if (node->pending >= node->bucket_count)
        table_grow(node);
    b = req_hash(req->uuid) & (node->bucket_count - 1);
    req->next = node->buckets[b];
    node->buckets[b] = req;
    node->pending++;
}

/* Removes and returns the request with this uuid, or NULL. */
static struct node_req *table_take(node_t *node, const char *uuid)
{
    struct node_req **link =
        &node->buckets[req_hash(uuid) & (node->bucket_count - 1)];

    for (; *link != NULL; link = &(*link)->next) {
        struct node_req *req = *link;

        if (strcmp(req->uuid, uuid) == 0) {
            *link = req->next;
            req->next = NULL;
            node->pending--;
            return req;
        }
    }
    return NULL;
}

/* Empties the table and returns its requests as one chain. */
static struct node_req *table_take_all(node_t *node)
{
    struct node_req *all = NULL;
    size_t i;

    for (i = 0; i < node->bucket_count; i++) {
        while (node->buckets[i] != NULL) {
            struct node_req *req = node->buckets[i];

            node->buckets[i] = req->next;
            req->next = all;
            all = req;
        }
    }
    node->pending = 0;
    return all;
}

/* ---- request completion ---- */

static void req_free_cb(uv_handle_t *handle)
{
    struct node_req *req = handle->data;

    free(req->event);
    free(req->fail_error);
    free(req);
}

/*
 * Completes a request that is no longer in any table: calls its callback
 * once, then releases it. Touches nothing of the node, which the callback
 * may have freed.
 */
static void req_finish(struct node_req *req, int status, json_t *data,
                       const char *error)
{
    node_request_cb cb = req->cb;

    uv_timer_stop(&req->timer);
    req->node = NULL;
    req->cb = NULL;
    if (cb != NULL)
        cb(status, data, error, req->ctx);
    uv_close((uv_handle_t *)&req->timer, req_free_cb);
}

/* Fails every pending request of the node with status and message. */
static void node_fail_all(node_t *node, int status, const char *error)
{
    struct node_req *req = table_take_all(node), *next;

    for (; req != NULL; req = next) {
        next = req->next;
        req->next = NULL;
        req_finish(req, status, NULL, error);
    }
}

static void req_timer_cb(uv_timer_t *timer)
{
    struct node_req *req = timer->data;
    node_t *node = req->node;
    char *error;

    if (node == NULL) {
        req_finish(req, req->fail_status, NULL, req->fail_error);
        return;
    }
    table_take(node, req->uuid);
    error = xasprintf("request timeout (daemon %s:%d)", node->ip, node->port);
    log_debug("node %s: %s timed out", node->uuid, req->event);
    req_finish(req, -ETIMEDOUT, NULL, error);
    free(error);
}

static struct node_req *req_new(node_t *node, const char *event,
                                node_request_cb cb, void *ctx)
{
    struct node_req *req = xcalloc(1, sizeof(*req));
    char uuid[37];

    /* MCSManager's packet id: uuid v4 with dashes, then the ms clock. */
    ident_uuid36(uuid);
    snprintf(req->uuid, sizeof(req->uuid), "%s%" PRId64, uuid,
             util_now_ms());
    req->event = xstrdup(event);
    req->cb = cb;
    req->ctx = ctx;
    uv_timer_init(node->loop, &req->timer);
    req->timer.data = req;
    return req;
}

/* Completes req with status and error on the next loop turn. */
static void req_defer_failure(struct node_req *req, int status,
                              char *error)
{
    req->node = NULL;
    req->fail_status = status;
    req->fail_error = error;
    uv_timer_start(&req->timer, req_timer_cb, 0, 0);
}

/* ---- replies and events ---- */

/* Returns MCSManager's rejection text: data.err if present, else data. */
static char *reply_error(json_t *data, int status)
{
    json_t *err = json_object_get(data, "err");

    if (err != NULL && !json_is_null(err))
        data = err;
    if (json_is_string(data))
        return xstrdup(json_string_value(data));
    if (data == NULL || json_is_null(data))
        return xasprintf("daemon returned status %d without a message",
                         status);
    return json_dumps(data, JSON_ENCODE_ANY | JSON_COMPACT);
}

static void node_deliver(node_t *node, struct node_req *req, json_t *packet)
{
    json_t *status_value = json_object_get(packet, "status");
    json_t *data = json_object_get(packet, "data");
    int status;
    char *error;

    /* A reply without a status is not a success in MCSManager either. */
    status = json_is_integer(status_value)
                 ? (int)json_integer_value(status_value)
                 : 500;
    if (status == 200) {
        req_finish(req, 200, data, NULL);
        return;
    }
    if (status <= 0)
        status = 500;
    error = reply_error(data, status);
    req_finish(req, status, data, error);
    free(error);
}

static void node_on_sio_event(sioc_t *client, const char *event,
                              json_t *arg, void *data)
{
    node_t *node = data;
    const char *uuid = json_string_value(json_object_get(arg, "uuid"));
    struct node_req *req = NULL;

    if (node->closing)
        return;
    if (uuid != NULL)
        req = table_take(node, uuid);
    if (req != NULL && strcmp(req->event, event) != 0) {
        /* Same id on another event: not the reply MCSManager waits for. */
        table_insert(node, req);
        req = NULL;
    }
    if (req != NULL) {
        node_deliver(node, req, arg);
        return;
    }
    if (strcmp(event, "error") == 0) {
        /* A daemon sends this to sockets it considers unauthenticated. */
        log_debug("node %s: daemon sent an error packet", node->uuid);
        return;
    }
    if (node->event_cb != NULL) {
        node->event_cb(node, event, arg, node->event_data);
        return;
    }
    log_debug("node %s: unhandled event %s", node->uuid, event);
}

static void node_set_available(node_t *node, int available)
{
    if (node->available == available)
        return;
    node->available = available;
    if (node->status_cb != NULL)
        node->status_cb(node, available, node->status_data);
}

static void node_ignore_reply(int status, json_t *data, const char *error,
                              void *ctx)
{
}

static void node_auth_done(int status, json_t *data, const char *error,
                           void *ctx)
{
    node_t *node = ctx;

    /* -ECANCELED: the node is being freed or reconnected. */
    if (status == -ECANCELED)
        return;
    node->authenticating = 0;
    if (status == 200 && json_is_true(data)) {
        log_info("node %s: connected to daemon %s:%d", node->uuid, node->ip,
                 node->port);
        node->denied_logged = 0;
        if (node->language != NULL) {
            json_t *setting = json_pack("{s:s}", "language", node->language);

            node_send(node, "info/setting", setting, 0, node_ignore_reply,
                      NULL, 1);
            json_decref(setting);
        }
        node_set_available(node, 1);
        return;
    }
    if (status == 200) {
        /* Repeated denials (each reconnect) are logged at debug level. */
        if (node->denied_logged)
            log_debug("node %s: key validation denied by daemon %s:%d",
                      node->uuid, node->ip, node->port);
        else
            log_warn("node %s: key validation denied by daemon %s:%d; "
                     "check the daemon key of this node",
                     node->uuid, node->ip, node->port);
        node->denied_logged = 1;
        return;
    }
    log_warn("node %s: auth with daemon %s:%d failed: %s", node->uuid,
             node->ip, node->port, error != NULL ? error : "no reply");
}

static void node_on_sio_connect(sioc_t *client, void *data)
{
    node_t *node = data;
    json_t *key;

    if (node->closing)
        return;
    log_debug("node %s: socket connected, sending auth", node->uuid);
    node->authenticating = 1;
    key = json_string(node->key);
    node_send(node, "auth", key, NODE_AUTH_TIMEOUT_MS, node_auth_done, node,
              1);
    json_decref(key);
}

static void node_on_sio_disconnect(sioc_t *client, const char *reason,
                                   void *data)
{
    node_t *node = data;
    int was_available = node->available;
    char *error;

    if (node->closing)
        return;
    node->authenticating = 0;
    error = xasprintf("connection to daemon %s:%d lost (%s)", node->ip,
                      node->port, reason != NULL ? reason : "closed");
    node->available = 0;
    node_fail_all(node, -ECONNRESET, error);
    free(error);
    if (node->closing)
        return;

    /* The Socket.IO client logs its own failed attempts (rate-limited), so
     * only the loss of an available node is worth a warning here. */
    if (was_available)
        log_warn("node %s: daemon %s:%d disconnected: %s", node->uuid,
                 node->ip, node->port, reason != NULL ? reason : "closed");
    else
        log_debug("node %s: daemon %s:%d unreachable: %s", node->uuid,
                  node->ip, node->port, reason != NULL ? reason : "closed");
    if (was_available && node->status_cb != NULL)
        node->status_cb(node, 0, node->status_data);
}

/* ---- connection ---- */

/*
 * Derives the host to connect to from ip. MCSManager accepts a ws:// or
 * wss:// URL there and appends ":<port>"; Hearth's client has no TLS yet,
 * so wss:// leaves host NULL.
 */
static void node_parse_address(node_t *node)
{
    const char *ip = node->ip;
    size_t len;

    free(node->host);
    node->host = NULL;
    if (strncmp(ip, "wss://", 6) == 0) {
        log_error("node %s: %s needs TLS, which Hearth's daemon link does "
                  "not support yet; use a ws:// address",
                  node->uuid, ip);
        return;
    }
    if (strncmp(ip, "ws://", 5) == 0)
        ip += 5;
    len = strlen(ip);
    while (len > 0 && ip[len - 1] == '/')
        len--;
    node->host = xstrndup(ip, len);
}

/* Drops any current client and starts a new one. */
static void node_connect(node_t *node)
{
    static const sioc_callbacks_t callbacks = {
        .on_connect = node_on_sio_connect,
        .on_event = node_on_sio_event,
        .on_disconnect = node_on_sio_disconnect,
    };

    if (node->sio != NULL) {
        sioc_free(node->sio);
        node->sio = NULL;
    }
    node->authenticating = 0;
    if (node->host == NULL || node->host[0] == '\0')
        return;
    node->sio = sioc_new(node->loop, node->host, node->port, node->prefix,
                         &callbacks, node);
    if (node->sio == NULL)
        log_error("node %s: cannot start a client for %s:%d", node->uuid,
                  node->host, node->port);
}

static void node_retry_cb(uv_timer_t *timer)
{
    node_t *node = timer->data;

    if (!node->available && !node->authenticating)
        node_reconnect(node);
}

static char *prefix_copy(const char *prefix)
{
    size_t len;

    if (prefix == NULL)
        return xstrdup("");
    len = strlen(prefix);
    while (len > 0 && prefix[len - 1] == '/')
        len--;
    return xstrndup(prefix, len);
}

node_t *node_new(uv_loop_t *loop, const char *uuid, const char *ip, int port,
                 const char *prefix, const char *key)
{
    node_t *node = xcalloc(1, sizeof(*node));

    node->loop = loop;
    node->uuid = xstrdup(uuid != NULL ? uuid : "");
    node->ip = xstrdup(ip != NULL ? ip : "");
    node->port = port;
    node->prefix = prefix_copy(prefix);
    node->key = xstrdup(key != NULL ? key : "");
    node->remarks = xstrdup("");
    node->bucket_count = 16;
    node->buckets = xcalloc(node->bucket_count, sizeof(*node->buckets));
    uv_timer_init(loop, &node->retry_timer);
    node->retry_timer.data = node;
    uv_timer_start(&node->retry_timer, node_retry_cb, NODE_RETRY_MS,
                   NODE_RETRY_MS);
    node_parse_address(node);
    node_connect(node);
    return node;
}

static void node_free_cb(uv_handle_t *handle)
{
    node_t *node = handle->data;

    free(node->uuid);
    free(node->ip);
    free(node->host);
    free(node->prefix);
    sodium_memzero(node->key, strlen(node->key));
    free(node->key);
    free(node->remarks);
    free(node->language);
    free(node->buckets);
    free(node);
}

void node_free(node_t *node)
{
    if (node == NULL || node->closing)
        return;
    node->closing = 1;
    node->available = 0;
    node_fail_all(node, -ECANCELED, "the node was removed");
    if (node->sio != NULL) {
        sioc_free(node->sio);
        node->sio = NULL;
    }
    /* The struct outlives this call until the timer is closed, so that
     * callers up the stack may still read node->closing. */
    uv_timer_stop(&node->retry_timer);
    uv_close((uv_handle_t *)&node->retry_timer, node_free_cb);
}

void node_reconnect(node_t *node)
{
    int was_available = node->available;

    if (node->closing)
        return;
    node->available = 0;
    node_fail_all(node, -ECANCELED, "the connection to the daemon was reset");
    if (node->closing)
        return;
    if (was_available && node->status_cb != NULL) {
        node->status_cb(node, 0, node->status_data);
        if (node->closing)
            return;
    }
    node_connect(node);
}

/* ---- requests ---- */

/*
 * Sends a request. force skips the availability check (for auth itself and
 * the info/setting that follows it), but still needs a connected socket.
 */
static void node_send(node_t *node, const char *event, json_t *data,
                      int timeout_ms, node_request_cb cb, void *ctx,
                      int force)
{
    struct node_req *req = req_new(node, event, cb, ctx);
    json_t *packet;
    int rc = -1;

    if (node->closing) {
        req_defer_failure(req, -ECANCELED, xstrdup("the node was removed"));
        return;
    }
    if ((!force && !node->available) || node->sio == NULL) {
        req_defer_failure(req, -ENOTCONN,
                          xasprintf("daemon %s:%d is not available (not "
                                    "connected or key not accepted)",
                                    node->ip, node->port));
        return;
    }
    packet = json_object();
    json_object_set_new(packet, "uuid", json_string(req->uuid));
    json_object_set(packet, "data", data != NULL ? data : json_null());
    rc = sioc_emit(node->sio, event, packet);
    json_decref(packet);
    if (rc != 0) {
        req_defer_failure(req, -ENOTCONN,
                          xasprintf("daemon %s:%d is not connected",
                                    node->ip, node->port));
        return;
    }
    req->node = node;
    table_insert(node, req);
    uv_timer_start(&req->timer, req_timer_cb,
                   (uint64_t)(timeout_ms > 0 ? timeout_ms : NODE_TIMEOUT_MS),
                   0);
}

void node_request(node_t *node, const char *event, json_t *data,
                  int timeout_ms, node_request_cb cb, void *ctx)
{
    node_send(node, event, data, timeout_ms, cb, ctx, 0);
}

int node_emit(node_t *node, const char *event, json_t *data)
{
    char uuid[37], packet_uuid[NODE_PACKET_UUID_MAX];
    json_t *packet;
    int rc;

    if (node->closing || !node->available || node->sio == NULL)
        return -ENOTCONN;
    ident_uuid36(uuid);
    snprintf(packet_uuid, sizeof(packet_uuid), "%s%" PRId64, uuid,
             util_now_ms());
    packet = json_object();
    json_object_set_new(packet, "uuid", json_string(packet_uuid));
    json_object_set(packet, "data", data != NULL ? data : json_null());
    rc = sioc_emit(node->sio, event, packet);
    json_decref(packet);
    return rc == 0 ? 0 : -ENOTCONN;
}

size_t node_pending_count(const node_t *node)
{
    return node->pending;
}

/* ---- accessors ---- */

int node_available(const node_t *node)
{
    return node->available;
}

const char *node_uuid(const node_t *node)
{
    return node->uuid;
}

const char *node_ip(const node_t *node)
{
    return node->ip;
}

int node_port(const node_t *node)
{
    return node->port;
}

const char *node_prefix(const node_t *node)
{
    return node->prefix;
}

const char *node_remarks(const node_t *node)
{
    return node->remarks;
}

void node_set_remarks(node_t *node, const char *remarks)
{
    free(node->remarks);
    node->remarks = xstrdup(remarks != NULL ? remarks : "");
}

void node_set_address(node_t *node, const char *ip, int port,
                      const char *prefix, const char *key)
{
    if (ip != NULL) {
        free(node->ip);
        node->ip = xstrdup(ip);
        node_parse_address(node);
    }
    if (port > 0)
        node->port = port;
    if (prefix != NULL) {
        free(node->prefix);
        node->prefix = prefix_copy(prefix);
    }
    if (key != NULL) {
        sodium_memzero(node->key, strlen(node->key));
        free(node->key);
        node->key = xstrdup(key);
    }
}

void node_set_language(node_t *node, const char *language)
{
    free(node->language);
    node->language = language != NULL ? xstrdup(language) : NULL;
}

void node_on_event(node_t *node, node_event_cb cb, void *data)
{
    node->event_cb = cb;
    node->event_data = data;
}

void node_on_status(node_t *node, node_status_cb cb, void *data)
{
    node->status_cb = cb;
    node->status_data = data;
}

/* ---- registry ---- */

struct node_registry {
    node_t **nodes;
    size_t count;
    size_t capacity;
};

node_registry_t *node_registry_new(void)
{
    return xcalloc(1, sizeof(node_registry_t));
}

void node_registry_free(node_registry_t *registry)
{
    size_t i;

    if (registry == NULL)
        return;
    for (i = 0; i < registry->count; i++)
        node_free(registry->nodes[i]);
    free(registry->nodes);
    free(registry);
}

static ssize_t registry_index(const node_registry_t *registry,
                              const char *uuid)
{
    size_t i;

    for (i = 0; i < registry->count; i++)
        if (strcmp(registry->nodes[i]->uuid, uuid) == 0)
            return (ssize_t)i;
    return -1;
}

int node_registry_add(node_registry_t *registry, node_t *node)
{
    if (registry_index(registry, node->uuid) >= 0)
        return -EEXIST;
    if (registry->count == registry->capacity) {
        registry->capacity = registry->capacity ? registry->capacity * 2 : 8;
        registry->nodes = xrealloc(registry->nodes, registry->capacity *
                                                        sizeof(node_t *));
    }
    registry->nodes[registry->count++] = node;
    return 0;
}

node_t *node_registry_find(const node_registry_t *registry, const char *uuid)
{
    ssize_t i = uuid != NULL ? registry_index(registry, uuid) : -1;

    return i >= 0 ? registry->nodes[i] : NULL;
}

int node_registry_remove(node_registry_t *registry, const char *uuid)
{
    ssize_t i = registry_index(registry, uuid);
    node_t *node;

    if (i < 0)
        return -ENOENT;
    node = registry->nodes[i];
    memmove(&registry->nodes[i], &registry->nodes[i + 1],
            (registry->count - (size_t)i - 1) * sizeof(node_t *));
    registry->count--;
    node_free(node);
    return 0;
}

size_t node_registry_count(const node_registry_t *registry)
{
    return registry->count;
}

node_t *node_registry_at(const node_registry_t *registry, size_t i)
{
    return i < registry->count ? registry->nodes[i] : NULL;
}
