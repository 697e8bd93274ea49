#include "daemon/protocol.h"

#include <ctype.h>
#include <errno.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "core/log.h"
#include "core/util.h"
#include "daemon/output.h"

/* The data of MCSManager's "ignore" error: its panel drops such packets
 * without logging, so an unauthorized request simply times out there. */
#define PROTOCOL_IGNORE "[IGNORE_LOG]"
/* Rejected events logged per socket before the rest go to debug level. */
#define PROTOCOL_REJECT_LOG_MAX 3

struct handler {
    char *event;
    protocol_handler_fn fn;
    void *user;
};

/* One instance whose events a socket receives. */
struct subscription {
    char *uuid;
    bool dropped; /* output was skipped; send a notice with the next */
};

/*
 * The state of one connected socket. A session is freed when its socket
 * has gone, its timer is closed and no request refers to it (refs == 0).
 */
struct session {
    protocol_t *proto;
    sio_socket_t *socket; /* NULL once disconnected */
    uv_timer_t auth_timer;
    int refs;
    bool authenticated; /* a panel that sent the daemon key */
    char *stream_uuid;  /* a browser terminal bound to this instance */
    int rejected;       /* count of events refused for lack of auth */
    struct subscription *subs;
    size_t nsubs;
    struct session *prev, *next;
    char id[32];
    char peer[64];
};

struct protocol_request {
    struct session *session;
    char *event;
    json_t *uuid; /* the request's packet uuid as sent, or null */
};

/* A one-hour credential the panel registers for a browser. */
struct passport {
    char *name;
    char *password;
    json_t *parameter;
    int64_t end_ms;
};

struct protocol {
    uv_loop_t *loop;
    dconfig_t *cfg;
    sysinfo_t *sysinfo;
    registry_t *registry;
    struct handler *handlers;
    size_t nhandlers;
    struct session *sessions;
    struct passport *passports;
    size_t npassports;
};

static int starts_with(const char *s, const char *prefix)
{
    return strncmp(s, prefix, strlen(prefix)) == 0;
}

/* JavaScript truthiness of a JSON value (absent counts as undefined). */
static int json_truthy(const json_t *v)
{
    if (v == NULL || json_is_null(v) || json_is_false(v))
        return 0;
    if (json_is_string(v))
        return json_string_length(v) > 0;
    if (json_is_number(v))
        return json_number_value(v) != 0;
    return 1;
}

/* Sessions. */

static void session_unref(struct session *s)
{
    size_t i;

    if (--s->refs > 0)
        return;
    for (i = 0; i < s->nsubs; i++)
        free(s->subs[i].uuid);
    free(s->subs);
    free(s->stream_uuid);
    free(s);
}

static void session_on_timer_closed(uv_handle_t *handle)
{
    session_unref(handle->data);
}

static struct subscription *session_find_sub(struct session *s,
                                             const char *uuid)
{
    size_t i;

    for (i = 0; i < s->nsubs; i++) {
        if (strcmp(s->subs[i].uuid, uuid) == 0)
            return &s->subs[i];
    }
    return NULL;
}

static void session_subscribe(struct session *s, const char *uuid)
{
    if (session_find_sub(s, uuid) != NULL)
        return;
    s->subs = xrealloc(s->subs, (s->nsubs + 1) * sizeof(*s->subs));
    s->subs[s->nsubs].uuid = xstrdup(uuid);
    s->subs[s->nsubs].dropped = false;
    s->nsubs++;
}

static void session_unsubscribe(struct session *s, const char *uuid)
{
    struct subscription *sub = session_find_sub(s, uuid);
    size_t i;

    if (sub == NULL)
        return;
    i = (size_t)(sub - s->subs);
    free(sub->uuid);
    memmove(&s->subs[i], &s->subs[i + 1],
            (s->nsubs - i - 1) * sizeof(*s->subs));
    s->nsubs--;
}

/* Detaches a session from its socket and from the protocol's list. */
static void session_close(struct session *s)
{
    protocol_t *proto = s->proto;

    if (s->prev != NULL)
        s->prev->next = s->next;
    else if (proto != NULL && proto->sessions == s)
        proto->sessions = s->next;
    if (s->next != NULL)
        s->next->prev = s->prev;
    s->prev = s->next = NULL;
    if (s->socket != NULL)
        sio_socket_set_data(s->socket, NULL);
    s->socket = NULL;
    s->proto = NULL;
    uv_close((uv_handle_t *)&s->auth_timer, session_on_timer_closed);
    session_unref(s);
}

static void session_on_auth_timeout(uv_timer_t *timer)
{
    struct session *s = timer->data;

    if (s->socket == NULL || s->authenticated || s->stream_uuid != NULL)
        return;
    log_info("socket %s (%s): not authenticated within %d ms; "
             "disconnecting",
             s->id, s->peer, PROTOCOL_AUTH_TIMEOUT_MS);
    sio_socket_disconnect(s->socket);
}

static void protocol_on_connect(sio_socket_t *socket, void *data)
{
    protocol_t *proto = data;
    struct session *s = xcalloc(1, sizeof(*s));

    s->proto = proto;
    s->socket = socket;
    s->refs = 2; /* the socket and the timer handle */
    snprintf(s->id, sizeof(s->id), "%s", sio_socket_id(socket));
    snprintf(s->peer, sizeof(s->peer), "%s", sio_socket_peer(socket));
    uv_timer_init(proto->loop, &s->auth_timer);
    s->auth_timer.data = s;
    uv_timer_start(&s->auth_timer, session_on_auth_timeout,
                   PROTOCOL_AUTH_TIMEOUT_MS, 0);
    s->next = proto->sessions;
    if (proto->sessions != NULL)
        proto->sessions->prev = s;
    proto->sessions = s;
    sio_socket_set_data(socket, s);
    log_debug("socket %s (%s): connected", s->id, s->peer);
}

static void protocol_on_disconnect(sio_socket_t *socket, const char *reason,
                                   void *data)
{
    struct session *s = sio_socket_get_data(socket);

    if (s == NULL)
        return;
    if (s->authenticated || s->stream_uuid != NULL)
        log_info("socket %s (%s): disconnected: %s", s->id, s->peer, reason);
    else
        log_debug("socket %s (%s): disconnected: %s", s->id, s->peer, reason);
    session_close(s);
}

/* Requests and replies. */

static protocol_request_t *request_new(struct session *s, const char *event,
                                       const json_t *uuid)
{
    protocol_request_t *req = xcalloc(1, sizeof(*req));

    req->session = s;
    s->refs++;
    req->event = xstrdup(event);
    req->uuid = uuid != NULL ? json_deep_copy(uuid) : json_null();
    return req;
}

const char *protocol_request_event(const protocol_request_t *req)
{
    return req->event;
}

/* Emits {uuid, status, event: packet_event, data} on emit_event. */
static void request_emit(protocol_request_t *req, const char *emit_event,
                         const char *packet_event, int status, json_t *data)
{
    sio_socket_t *socket = req->session->socket;
    json_t *packet;

    if (socket == NULL) {
        json_decref(data);
        return;
    }
    packet =
        json_pack("{sO si ss so}", "uuid", req->uuid, "status", status, "event",
                  packet_event, "data", data != NULL ? data : json_null());
    sio_socket_emit(socket, emit_event, packet);
    json_decref(packet);
}

void protocol_send(protocol_request_t *req, int status, json_t *data)
{
    request_emit(req, req->event, req->event, status, data);
}

void protocol_end(protocol_request_t *req)
{
    session_unref(req->session);
    json_decref(req->uuid);
    free(req->event);
    free(req);
}

void protocol_reply(protocol_request_t *req, json_t *data)
{
    protocol_send(req, 200, data);
    protocol_end(req);
}

void protocol_reply_error(protocol_request_t *req, json_t *data)
{
    protocol_send(req, 500, data);
    protocol_end(req);
}

/* Replies 500 with MCSManager's "Error: <message>" string. */
static void reply_error_text(protocol_request_t *req, const char *message)
{
    char *text = xasprintf("Error: %s", message);

    protocol_reply_error(req, json_string(text));
    free(text);
}

/* {instanceUuid, err} as MCSManager's instance handlers send errors. */
static json_t *error_object(const json_t *uuid, const char *nickname,
                            const char *message)
{
    json_t *o = json_object();

    json_object_set_new(o, "instanceUuid",
                        uuid != NULL ? json_deep_copy(uuid) : json_null());
    if (nickname != NULL)
        json_object_set_new(o, "nickname", json_string(nickname));
    json_object_set_new(o, "err", json_string(message));
    return o;
}

/* Builds MCSManager's "does not exist" error for data.instanceUuid. */
static json_t *missing_instance_error(const json_t *uuid)
{
    const char *id =
        json_is_string(uuid) ? json_string_value(uuid) : "undefined";
    char *message = xasprintf("The operation failed, the instance %s does "
                              "not exist.",
                              id);
    json_t *error = error_object(uuid, NULL, message);

    free(message);
    return error;
}

/* Rejects an event of an unauthorized socket the way MCSManager does. */
static void reject_unauthorized(protocol_request_t *req)
{
    struct session *s = req->session;
    enum log_level level = LOG_WARN;

    if (++s->rejected > PROTOCOL_REJECT_LOG_MAX)
        level = LOG_DEBUG;
    log_write(level, "socket %s (%s): event %s rejected: not authorized", s->id,
              s->peer, req->event);
    request_emit(req, "error", "error", 500, json_string(PROTOCOL_IGNORE));
    protocol_end(req);
}

/* Handler table. */

void protocol_register(protocol_t *proto, const char *event,
                       protocol_handler_fn handler, void *user)
{
    size_t i;

    for (i = 0; i < proto->nhandlers; i++) {
        if (strcmp(proto->handlers[i].event, event) == 0) {
            proto->handlers[i].fn = handler;
            proto->handlers[i].user = user;
            return;
        }
    }
    proto->handlers = xrealloc(proto->handlers, (proto->nhandlers + 1) *
                                                    sizeof(*proto->handlers));
    proto->handlers[proto->nhandlers].event = xstrdup(event);
    proto->handlers[proto->nhandlers].fn = handler;
    proto->handlers[proto->nhandlers].user = user;
    proto->nhandlers++;
}

static const struct handler *find_handler(const protocol_t *proto,
                                          const char *event)
{
    size_t i;

    for (i = 0; i < proto->nhandlers; i++) {
        if (strcmp(proto->handlers[i].event, event) == 0)
            return &proto->handlers[i];
    }
    return NULL;
}

/* Middleware. */

/* Events of the instance group that name no single existing instance. */
static int instance_check_exempt(const char *event, const json_t *data)
{
    static const char *const exempt[] = {
        "instance/overview",          "instance/select",
        "instance/asynchronous",      "instance/query_asynchronous",
        "instance/stop_asynchronous",
    };
    size_t i;

    if (strcmp(event, "instance/new") == 0 && json_truthy(data))
        return 1;
    for (i = 0; i < ARRAY_SIZE(exempt); i++) {
        if (strcmp(event, exempt[i]) == 0)
            return 1;
    }
    return json_truthy(json_object_get(data, "instanceUuids"));
}

/* Returns 0 when the request may go on, or -1 after replying to it. */
static int check_request(protocol_request_t *req, const json_t *data)
{
    struct session *s = req->session;
    protocol_t *proto = s->proto;
    const char *event = req->event;
    const json_t *uuid;

    if (strcmp(event, "auth") == 0 || strcmp(event, "stream/auth") == 0)
        return 0;
    if (starts_with(event, "stream")) {
        if (s->stream_uuid == NULL) {
            reject_unauthorized(req);
            return -1;
        }
        return 0;
    }
    if (!s->authenticated) {
        reject_unauthorized(req);
        return -1;
    }
    if (!starts_with(event, "instance") || instance_check_exempt(event, data))
        return 0;
    uuid = json_object_get(data, "instanceUuid");
    if (registry_get(proto->registry, json_string_value(uuid)) != NULL)
        return 0;
    protocol_reply_error(req, missing_instance_error(uuid));
    return -1;
}

static void protocol_on_event(sio_socket_t *socket, const char *event,
                              json_t *arg, void *data)
{
    struct session *s = sio_socket_get_data(socket);
    const struct handler *h;
    protocol_request_t *req;
    const json_t *payload;

    if (s == NULL || s->proto == NULL)
        return;
    /* MCSManager drops events without a packet object. */
    if (!json_is_object(arg)) {
        log_debug("socket %s (%s): event %s without a packet; ignored", s->id,
                  s->peer, event);
        return;
    }
    payload = json_object_get(arg, "data");
    if (json_is_null(payload))
        payload = NULL;
    req = request_new(s, event, json_object_get(arg, "uuid"));
    if (check_request(req, payload) < 0)
        return;
    h = find_handler(s->proto, event);
    if (h == NULL) {
        char *message = xasprintf("The event %s is not supported by this "
                                  "daemon",
                                  event);

        reply_error_text(req, message);
        free(message);
        return;
    }
    h->fn(req, payload, h->user);
}

void protocol_sio_callbacks(sio_server_callbacks_t *out)
{
    out->on_connect = protocol_on_connect;
    out->on_event = protocol_on_event;
    out->on_disconnect = protocol_on_disconnect;
}

/* Pushes. */

static json_t *push_packet(const char *event, json_t *data)
{
    return json_pack("{sn si ss so}", "uuid", "status", 200, "event", event,
                     "data", data);
}

void protocol_push_state(protocol_t *proto, instance_t *inst, const char *event)
{
    const char *uuid = instance_uuid(inst);
    json_t *packet = NULL;
    struct session *s;

    for (s = proto->sessions; s != NULL; s = s->next) {
        if (s->socket == NULL || session_find_sub(s, uuid) == NULL)
            continue;
        if (packet == NULL)
            packet = push_packet(event, json_pack("{ss ss}", "instanceUuid",
                                                  uuid, "instanceName",
                                                  instance_nickname(inst)));
        sio_socket_emit(s->socket, event, packet);
    }
    json_decref(packet);
}

static json_t *output_packet(const char *uuid, const char *notice,
                             const char *text, size_t len)
{
    json_t *jtext;

    if (notice == NULL) {
        jtext = json_stringn(text, len);
    } else {
        char *joined = xasprintf("%s%.*s", notice, (int)len, text);

        jtext = json_string(joined);
        free(joined);
    }
    if (jtext == NULL)
        return NULL;
    return push_packet("instance/stdout", json_pack("{ss so}", "instanceUuid",
                                                    uuid, "text", jtext));
}

void protocol_push_output(protocol_t *proto, instance_t *inst, const char *text,
                          size_t len)
{
    const char *uuid = instance_uuid(inst);
    json_t *packet = NULL;
    struct session *s;

    for (s = proto->sessions; s != NULL; s = s->next) {
        struct subscription *sub;

        if (s->socket == NULL)
            continue;
        sub = session_find_sub(s, uuid);
        if (sub == NULL)
            continue;
        if (sio_socket_pending(s->socket) > PROTOCOL_PENDING_MAX) {
            if (!sub->dropped)
                log_warn("socket %s (%s): output of instance %s skipped: "
                         "the client is not reading",
                         s->id, s->peer, uuid);
            sub->dropped = true;
            continue;
        }
        if (sub->dropped) {
            json_t *own = output_packet(uuid, OUTPUT_DROPPED_NOTICE, text, len);

            sub->dropped = false;
            if (own != NULL)
                sio_socket_emit(s->socket, "instance/stdout", own);
            json_decref(own);
            continue;
        }
        if (packet == NULL)
            packet = output_packet(uuid, NULL, text, len);
        if (packet == NULL) {
            log_debug("instance %s: output is not valid UTF-8; not sent", uuid);
            return;
        }
        sio_socket_emit(s->socket, "instance/stdout", packet);
    }
    json_decref(packet);
}

/* auth and info events. */

/* Strips the IPv4-mapped prefix, as MCSManager does before comparing. */
static const char *plain_ip(const char *peer)
{
    return starts_with(peer, "::ffff:") ? peer + 7 : peer;
}

static int peer_allowed(const protocol_t *proto, const char *peer)
{
    const json_t *v;
    size_t i;

    if (!proto->cfg->white_list_panel_ip)
        return 1;
    json_array_foreach(proto->cfg->white_list_panel_ips, i, v)
    {
        if (json_is_string(v) &&
            strcmp(plain_ip(json_string_value(v)), plain_ip(peer)) == 0)
            return 1;
    }
    return 0;
}

static void handle_auth(protocol_request_t *req, const json_t *data, void *user)
{
    protocol_t *proto = user;
    struct session *s = req->session;
    int ok;

    if (!peer_allowed(proto, s->peer)) {
        log_warn("socket %s (%s): auth rejected: address not in "
                 "whiteListPanelIps",
                 s->id, s->peer);
        protocol_reply(req, json_false());
        return;
    }
    ok = json_is_string(data) &&
         util_secure_equal(json_string_value(data), proto->cfg->key);
    if (!ok) {
        log_warn("socket %s (%s): auth rejected: wrong key", s->id, s->peer);
        protocol_reply(req, json_false());
        return;
    }
    if (!s->authenticated)
        log_info("socket %s (%s): authenticated", s->id, s->peer);
    s->authenticated = true;
    uv_timer_stop(&s->auth_timer);
    protocol_reply(req, json_true());
}

static void handle_info_overview(protocol_request_t *req, const json_t *data,
                                 void *user)
{
    protocol_t *proto = user;
    instance_t *const *list;
    size_t total = registry_list(proto->registry, &list);
    json_t *o = json_object();

    json_object_set_new(o, "version", json_string(PROTOCOL_DAEMON_VERSION));
    json_object_set_new(o, "process", sysinfo_process_json());
    json_object_set_new(
        o, "instance",
        json_pack("{sI sI}", "running",
                  (json_int_t)registry_count_running(proto->registry), "total",
                  (json_int_t)total));
    json_object_set_new(o, "system", sysinfo_system_json(proto->sysinfo));
    json_object_set_new(o, "cpuMemChart", sysinfo_chart_json(proto->sysinfo));
    json_object_set_new(o, "config", dconfig_overview_json(proto->cfg));
    protocol_reply(req, o);
}

static void handle_info_setting(protocol_request_t *req, const json_t *data,
                                void *user)
{
    protocol_t *proto = user;
    int rc;

    if (dconfig_apply_setting(proto->cfg, data) > 0) {
        rc = dconfig_save(proto->cfg);
        if (rc < 0) {
            char *message = xasprintf("Saving %s failed: %s", proto->cfg->path,
                                      strerror(-rc));

            log_error("%s", message);
            reply_error_text(req, message);
            free(message);
            return;
        }
        log_info("settings changed by socket %s (%s)", req->session->id,
                 req->session->peer);
    }
    protocol_reply(req, json_true());
}

/* Passports and the stream events of browser terminals. */

static void passports_purge(protocol_t *proto)
{
    int64_t now = util_now_ms();
    size_t i = 0;

    while (i < proto->npassports) {
        struct passport *p = &proto->passports[i];

        if (p->end_ms > now) {
            i++;
            continue;
        }
        free(p->name);
        free(p->password);
        json_decref(p->parameter);
        *p = proto->passports[--proto->npassports];
    }
}

static const struct passport *
passport_find(protocol_t *proto, const char *password, const char *name)
{
    size_t i;

    passports_purge(proto);
    for (i = 0; i < proto->npassports; i++) {
        const struct passport *p = &proto->passports[i];

        if (util_secure_equal(p->password, password) &&
            (name == NULL || strcmp(p->name, name) == 0))
            return p;
    }
    return NULL;
}

static void handle_passport_register(protocol_request_t *req,
                                     const json_t *data, void *user)
{
    protocol_t *proto = user;
    const json_t *name = json_object_get(data, "name");
    const json_t *password = json_object_get(data, "password");
    struct passport *p;

    if (!json_is_string(name) || !json_is_string(password) ||
        json_string_length(password) == 0) {
        reply_error_text(req, "A passport needs a name and a password");
        return;
    }
    if (passport_find(proto, json_string_value(password), NULL) != NULL) {
        reply_error_text(req, "A passport with this password already "
                              "exists");
        return;
    }
    proto->passports = xrealloc(
        proto->passports, (proto->npassports + 1) * sizeof(*proto->passports));
    p = &proto->passports[proto->npassports++];
    p->name = xstrdup(json_string_value(name));
    p->password = xstrdup(json_string_value(password));
    p->parameter = json_deep_copy(json_object_get(data, "parameter"));
    if (p->parameter == NULL)
        p->parameter = json_object();
    p->end_ms = util_now_ms() + PROTOCOL_PASSPORT_TTL_MS;
    protocol_reply(req, json_true());
}

static void handle_stream_auth(protocol_request_t *req, const json_t *data,
                               void *user)
{
    protocol_t *proto = user;
    struct session *s = req->session;
    const json_t *password = json_object_get(data, "password");
    const struct passport *p = NULL;
    instance_t *inst;

    if (json_is_string(password))
        p = passport_find(proto, json_string_value(password), "stream_channel");
    if (p == NULL) {
        reply_error_text(req, "The stream passport does not exist or has "
                              "expired");
        return;
    }
    inst = registry_get(proto->registry, json_string_value(json_object_get(
                                             p->parameter, "instanceUuid")));
    if (inst == NULL) {
        reply_error_text(req, "The instance of this stream passport does "
                              "not exist");
        return;
    }
    if (s->stream_uuid != NULL) {
        session_unsubscribe(s, s->stream_uuid);
        free(s->stream_uuid);
    }
    s->stream_uuid = xstrdup(instance_uuid(inst));
    session_subscribe(s, s->stream_uuid);
    uv_timer_stop(&s->auth_timer);
    log_info("socket %s (%s): terminal of instance %s attached", s->id, s->peer,
             s->stream_uuid);
    protocol_reply(req, json_true());
}

static instance_t *stream_instance(protocol_request_t *req)
{
    protocol_t *proto = req->session->proto;

    return registry_get(proto->registry, req->session->stream_uuid);
}

static void handle_stream_detail(protocol_request_t *req, const json_t *data,
                                 void *user)
{
    protocol_t *proto = user;
    instance_t *inst = stream_instance(req);
    json_int_t watchers = 0;
    struct session *s;
    json_t *detail;

    if (inst == NULL) {
        reply_error_text(req, "The instance of this terminal no longer "
                              "exists");
        return;
    }
    for (s = proto->sessions; s != NULL; s = s->next) {
        if (s->stream_uuid != NULL &&
            strcmp(s->stream_uuid, req->session->stream_uuid) == 0)
            watchers++;
    }
    detail = instance_detail_json(inst, 0);
    json_object_set_new(detail, "watcher", json_integer(watchers));
    protocol_reply(req, detail);
}

/* stream/input, stream/write and stream/resize send no reply, and their
 * errors are dropped, because a terminal sends them per keystroke. */
static void handle_stream_input(protocol_request_t *req, const json_t *data,
                                void *user)
{
    instance_t *inst = stream_instance(req);
    const json_t *command = json_object_get(data, "command");
    char *err = NULL;

    if (inst != NULL && json_is_string(command))
        instance_command(inst, json_string_value(command), &err);
    free(err);
    protocol_end(req);
}

static void handle_stream_write(protocol_request_t *req, const json_t *data,
                                void *user)
{
    instance_t *inst = stream_instance(req);
    const json_t *input = json_object_get(data, "input");
    char *err = NULL;

    if (inst != NULL && json_is_string(input))
        instance_write(inst, json_string_value(input),
                       json_string_length(input), &err);
    free(err);
    protocol_end(req);
}

/* Without a PTY there is no window to resize. */
static void handle_stream_resize(protocol_request_t *req, const json_t *data,
                                 void *user)
{
    protocol_end(req);
}

/* Instance events. */

/*
 * Returns the instance named by data.instanceUuid, or replies with the
 * "does not exist" error and returns NULL. The middleware has checked the
 * id already, except for requests that also carry instanceUuids.
 */
static instance_t *request_instance(protocol_request_t *req, const json_t *data)
{
    protocol_t *proto = req->session->proto;
    const json_t *uuid = json_object_get(data, "instanceUuid");
    instance_t *inst = registry_get(proto->registry, json_string_value(uuid));

    if (inst == NULL)
        protocol_reply_error(req, missing_instance_error(uuid));
    return inst;
}

static void handle_select(protocol_request_t *req, const json_t *data,
                          void *user)
{
    protocol_t *proto = user;

    protocol_reply(req, registry_select(proto->registry, data));
}

static void handle_overview(protocol_request_t *req, const json_t *data,
                            void *user)
{
    protocol_t *proto = user;
    instance_t *const *list;
    size_t n = registry_list(proto->registry, &list), i;
    json_t *arr = json_array();

    for (i = 0; i < n; i++)
        json_array_append_new(arr, instance_detail_json(list[i], 0));
    protocol_reply(req, arr);
}

/* Details of the listed instances that exist, in registry order. */
static void handle_section(protocol_request_t *req, const json_t *data,
                           void *user)
{
    protocol_t *proto = user;
    const json_t *uuids = json_object_get(data, "instanceUuids");
    instance_t *const *list;
    size_t n = registry_list(proto->registry, &list), i, j;
    json_t *arr = json_array();

    for (i = 0; i < n && json_is_array(uuids); i++) {
        const json_t *v;

        json_array_foreach(uuids, j, v)
        {
            const char *id = json_string_value(v);

            if (id != NULL && strcmp(id, instance_uuid(list[i])) == 0) {
                json_array_append_new(arr, instance_detail_json(list[i], 0));
                break;
            }
        }
    }
    protocol_reply(req, arr);
}

static void handle_detail(protocol_request_t *req, const json_t *data,
                          void *user)
{
    instance_t *inst = request_instance(req, data);

    if (inst != NULL)
        protocol_reply(req, instance_detail_json(inst, 1));
}

static void handle_new(protocol_request_t *req, const json_t *data, void *user)
{
    protocol_t *proto = user;
    json_t *empty = json_object();
    const json_t *config = json_is_object(data) ? data : empty;
    char *err = NULL;
    instance_t *inst = registry_create(proto->registry, config, &err);

    json_decref(empty);
    if (inst == NULL) {
        protocol_reply_error(
            req, error_object(NULL, NULL, err ? err : "unknown error"));
        free(err);
        return;
    }
    protocol_reply(req,
                   json_pack("{ss so ss}", "instanceUuid", instance_uuid(inst),
                             "config", instance_config_json(inst), "nickname",
                             instance_nickname(inst)));
}

static void handle_update(protocol_request_t *req, const json_t *data,
                          void *user)
{
    instance_t *inst = request_instance(req, data);
    const json_t *config = json_object_get(data, "config");
    const json_t *uuid = json_object_get(data, "instanceUuid");
    char *err = NULL;

    if (inst == NULL)
        return;
    if (!json_is_object(config)) {
        protocol_reply_error(req, error_object(uuid, NULL,
                                               "The config parameter must "
                                               "be an object"));
        return;
    }
    if (instance_update(inst, config, &err) < 0) {
        protocol_reply_error(
            req, error_object(uuid, NULL, err ? err : "unknown error"));
        free(err);
        return;
    }
    protocol_reply(req, json_pack("{sO}", "instanceUuid", uuid));
}

static void handle_delete(protocol_request_t *req, const json_t *data,
                          void *user)
{
    protocol_t *proto = user;
    const json_t *uuids = json_object_get(data, "instanceUuids");
    int delete_files = json_truthy(json_object_get(data, "deleteFile"));
    json_t *deleted = NULL;
    char *err = NULL;

    if (registry_delete(proto->registry, uuids, delete_files, &deleted, &err) <
        0) {
        protocol_reply_error(
            req, json_pack("{ss}", "err", err ? err : "unknown error"));
        json_decref(deleted);
        free(err);
        return;
    }
    protocol_reply(req, json_pack("{sO so}", "instanceUuids", uuids,
                                  "instances", deleted));
}

static void handle_forward(protocol_request_t *req, const json_t *data,
                           void *user)
{
    instance_t *inst = request_instance(req, data);
    struct session *s = req->session;

    if (inst == NULL)
        return;
    if (json_truthy(json_object_get(data, "forward"))) {
        session_subscribe(s, instance_uuid(inst));
        log_info("socket %s (%s): receives the events of instance %s", s->id,
                 s->peer, instance_uuid(inst));
    } else {
        session_unsubscribe(s, instance_uuid(inst));
    }
    protocol_reply(req, json_pack("{ss}", "instanceUuid", instance_uuid(inst)));
}

typedef int (*instance_op_fn)(instance_t *inst, char **err);

/*
 * Runs op on each instance of data.instanceUuids and replies once per
 * instance, as MCSManager does: {instanceUuid, instances: [...so far]} or
 * status 500 with {instanceUuid, nickname, err}. kill skips unknown ids
 * without a reply.
 */
static void run_batch(protocol_request_t *req, const json_t *data,
                      instance_op_fn op, int skip_unknown)
{
    protocol_t *proto = req->session->proto;
    const json_t *uuids = json_object_get(data, "instanceUuids");
    int quiet = json_truthy(json_object_get(data, "disableResponse"));
    json_t *instances;
    const json_t *v;
    size_t i;

    if (!json_is_array(uuids)) {
        reply_error_text(req, "The instanceUuids parameter must be an array");
        return;
    }
    instances = json_array();
    json_array_foreach(uuids, i, v)
    {
        instance_t *inst = registry_get(proto->registry, json_string_value(v));
        json_t *entry = json_pack("{sO}", "instanceUuid", v);
        char *err = NULL;

        if (inst != NULL)
            json_object_set_new(entry, "nickname",
                                json_string(instance_nickname(inst)));
        json_array_append_new(instances, entry);
        if (inst == NULL) {
            if (!skip_unknown && !quiet)
                protocol_send(req, 500,
                              error_object(v, NULL,
                                           "The target instance "
                                           "does not exist!"));
            continue;
        }
        if (op(inst, &err) == 0) {
            if (!quiet)
                protocol_send(req, 200,
                              json_pack("{sO so}", "instanceUuid", v,
                                        "instances", json_copy(instances)));
        } else {
            log_info("instance %s: %s failed: %s", instance_uuid(inst),
                     req->event, err ? err : "unknown error");
            if (!quiet)
                protocol_send(req, 500,
                              error_object(v, instance_nickname(inst),
                                           err ? err : "unknown error"));
        }
        free(err);
    }
    json_decref(instances);
    protocol_end(req);
}

static void handle_open(protocol_request_t *req, const json_t *data, void *user)
{
    run_batch(req, data, instance_start, 0);
}

static void handle_stop(protocol_request_t *req, const json_t *data, void *user)
{
    run_batch(req, data, instance_stop, 0);
}

static void handle_restart(protocol_request_t *req, const json_t *data,
                           void *user)
{
    run_batch(req, data, instance_restart, 0);
}

static void handle_kill(protocol_request_t *req, const json_t *data, void *user)
{
    run_batch(req, data, instance_kill, 1);
}

static void handle_command(protocol_request_t *req, const json_t *data,
                           void *user)
{
    instance_t *inst = request_instance(req, data);
    const json_t *uuid = json_object_get(data, "instanceUuid");
    const json_t *command = json_object_get(data, "command");
    int quiet = json_truthy(json_object_get(data, "disableResponse"));
    char *text = NULL, *err = NULL;
    int rc;

    if (inst == NULL)
        return;
    if (json_is_string(command))
        text = xstrdup(json_string_value(command));
    else if (json_is_number(command) || json_is_boolean(command))
        text = json_dumps(command, JSON_ENCODE_ANY);
    rc = instance_command(inst, text != NULL ? text : "", &err);
    free(text);
    if (quiet)
        protocol_end(req);
    else if (rc < 0)
        protocol_reply_error(
            req, error_object(uuid, NULL, err ? err : "unknown error"));
    else
        protocol_reply(req, json_pack("{sO}", "instanceUuid", uuid));
    free(err);
}

/*
 * Reads the `size` of outputlog: bytes as a number or a numeric string,
 * with an optional "kb" or "mb" suffix. Returns 0 (everything) when
 * absent or invalid.
 */
static size_t outputlog_size(const json_t *v)
{
    const char *s;
    char *end;
    double d;

    if (json_is_number(v)) {
        d = json_number_value(v);
        return d >= 1 && d < (double)SIZE_MAX ? (size_t)d : 0;
    }
    if (!json_is_string(v))
        return 0;
    s = json_string_value(v);
    d = strtod(s, &end);
    if (end == s || d < 1)
        return 0;
    while (isspace((unsigned char)*end))
        end++;
    if (strcasecmp(end, "kb") == 0)
        d *= 1024;
    else if (strcasecmp(end, "mb") == 0)
        d *= 1024 * 1024;
    else if (*end != '\0')
        return 0;
    return d < (double)SIZE_MAX ? (size_t)d : 0;
}

static void handle_outputlog(protocol_request_t *req, const json_t *data,
                             void *user)
{
    instance_t *inst = request_instance(req, data);
    size_t max = outputlog_size(json_object_get(data, "size")), len = 0;
    json_t *jtext;
    char *text;

    if (inst == NULL)
        return;
    text = instance_outputlog(inst, max, &len);
    jtext = json_stringn(text != NULL ? text : "", len);
    free(text);
    protocol_reply(req, jtext != NULL ? jtext : json_string(""));
}

static const struct {
    const char *event;
    protocol_handler_fn fn;
} builtin_handlers[] = {
    {"auth", handle_auth},
    {"info/overview", handle_info_overview},
    {"info/setting", handle_info_setting},
    {"passport/register", handle_passport_register},
    {"stream/auth", handle_stream_auth},
    {"stream/detail", handle_stream_detail},
    {"stream/input", handle_stream_input},
    {"stream/write", handle_stream_write},
    {"stream/resize", handle_stream_resize},
    {"instance/select", handle_select},
    {"instance/overview", handle_overview},
    {"instance/section", handle_section},
    {"instance/detail", handle_detail},
    {"instance/new", handle_new},
    {"instance/update", handle_update},
    {"instance/delete", handle_delete},
    {"instance/forward", handle_forward},
    {"instance/open", handle_open},
    {"instance/stop", handle_stop},
    {"instance/restart", handle_restart},
    {"instance/kill", handle_kill},
    {"instance/command", handle_command},
    {"instance/outputlog", handle_outputlog},
};

protocol_t *protocol_new(uv_loop_t *loop, dconfig_t *cfg, sysinfo_t *sysinfo)
{
    protocol_t *proto = xcalloc(1, sizeof(*proto));
    size_t i;

    proto->loop = loop;
    proto->cfg = cfg;
    proto->sysinfo = sysinfo;
    for (i = 0; i < ARRAY_SIZE(builtin_handlers); i++)
        protocol_register(proto, builtin_handlers[i].event,
                          builtin_handlers[i].fn, proto);
    return proto;
}

void protocol_set_registry(protocol_t *proto, registry_t *registry)
{
    proto->registry = registry;
}

void protocol_free(protocol_t *proto)
{
    size_t i;

    if (proto == NULL)
        return;
    while (proto->sessions != NULL)
        session_close(proto->sessions);
    for (i = 0; i < proto->nhandlers; i++)
        free(proto->handlers[i].event);
    free(proto->handlers);
    for (i = 0; i < proto->npassports; i++) {
        free(proto->passports[i].name);
        free(proto->passports[i].password);
        json_decref(proto->passports[i].parameter);
    }
    free(proto->passports);
    free(proto);
}
