#include "panel/api_internal.h"

#include <ctype.h>
#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "core/log.h"
#include "core/text.h"
#include "core/util.h"

/* Route levels and flags: {level, token, speed_limit, instance_guard}. The
 * table reads best as one route per line or two, so the formatter keeps
 * out of it. */
/* clang-format off */
#define LV_ANY ACCESS_LEVEL_ANY
#define LV_USER 1
#define LV_ADMIN ACCESS_LEVEL_ADMIN

/* Admin routes with the token check, as most of MCSManager's. */
#define A_T {LV_ADMIN, 1, 1, 0}
/* User routes with the token check and the per-session rate limit. */
#define U_T_R8 {LV_USER, 1, 1, 0}
/* Instance routes: ownership guard first, then user level with token. */
#define IA_U_T_R8 {LV_USER, 1, 1, 1}

/*
 * The route table, from MCSManager 10.18.2's routers. Order matters only
 * for the Allow header of a wrong method (methods in table order) and for
 * speed: the polled node list comes first.
 */
static const api_route_t api_routes[] = {
    {"GET", "/service/remote_services_list", 0, A_T, {NULL}, {NULL},
     api__service_list},

    /* login_router */
    {"POST", "/auth/login", 0, {LV_ANY, 0, 1, 0}, {NULL},
     {"username", "password", NULL}, api__auth_login},
    {"GET", "/auth/logout", 0, {LV_ANY, 0, 0, 0}, {NULL}, {NULL},
     api__auth_logout},
    {NULL, "/auth/login_info", 0, {LV_ANY, 0, 0, 0}, {NULL}, {NULL},
     api__auth_login_info},
    {NULL, "/auth/status", 0, {LV_ANY, 0, 0, 0}, {NULL}, {NULL},
     api__auth_status},
    /* MCSManager's source requires the token here, but the real panel
     * accepted an install without X-Requested-With, so no token check. */
    {NULL, "/auth/install", 0, {LV_ANY, 0, 1, 0}, {NULL},
     {"username", "password", NULL}, api__auth_install},

    /* general_user_router */
    {"GET", "/auth/token", 0, {LV_USER, 0, 0, 0}, {NULL}, {NULL},
     api__auth_token},
    {"GET", "/auth", 0, {LV_USER, 0, 0, 0}, {NULL}, {NULL}, api__auth_info},
    {"PUT", "/auth/update", 0, U_T_R8, {NULL}, {"passWord", NULL},
     api__auth_update},
    {"PUT", "/auth/api", 0, U_T_R8, {NULL}, {"enable:boolean", NULL},
     api__auth_api_key},

    /* manage_user_router and user_overview_router */
    {"POST", "/auth", 0, A_T, {NULL},
     {"username", "password", "permission:number", NULL}, api__auth_create},
    {"PUT", "/auth", 0, A_T, {NULL}, {"uuid", "config:object", NULL},
     api__auth_edit},
    {"DELETE", "/auth", 0, A_T, {NULL}, {NULL}, api__auth_delete},
    {"GET", "/auth/search", 0, A_T, {"page:number", "page_size:number", NULL},
     {NULL}, api__auth_search},
    {"GET", "/auth/overview", 0, A_T, {NULL}, {NULL}, api__auth_overview},

    /* overview_router and settings_router */
    {"GET", "/overview", 0, {LV_ADMIN, 0, 1, 0}, {NULL}, {NULL},
     api__overview},
    {"GET", "/overview/setting", 0, A_T, {NULL}, {NULL},
     api__overview_setting_get},
    {"PUT", "/overview/setting", 0, A_T, {NULL}, {NULL},
     api__overview_setting_put},
    {"PUT", "/overview/install", 1, {LV_ANY, 0, 0, 0}, {NULL}, {NULL},
     api__overview_install},

    /* daemon_router */
    {"GET", "/service/remote_services", 0, A_T, {NULL}, {NULL},
     api__service_full},
    {"GET", "/service/remote_services_system", 0, A_T, {NULL}, {NULL},
     api__service_system},
    {"GET", "/service/remote_service_instances", 0, A_T,
     {"daemonId", "page:number", "page_size:number", NULL}, {NULL},
     api__service_instances},
    {"POST", "/service/remote_service", 0, A_T, {NULL},
     {"apiKey", "port:number", "ip", "remarks", NULL}, api__service_add},
    {"PUT", "/service/remote_service", 0, A_T, {"uuid", NULL}, {NULL},
     api__service_edit},
    {"DELETE", "/service/remote_service", 0, A_T, {"uuid", NULL}, {NULL},
     api__service_remove},
    {"GET", "/service/link_remote_service", 0, A_T, {"uuid", NULL}, {NULL},
     api__service_link},

    /* instance_admin_router */
    {"GET", "/instance", 0, U_T_R8, {"daemonId", "uuid", NULL}, {NULL},
     api__instance_detail},
    {"POST", "/instance", 0, A_T, {"daemonId", NULL}, {NULL},
     api__instance_create},
    {"PUT", "/instance", 0, A_T, {"daemonId", "uuid", NULL}, {NULL},
     api__instance_update},
    {"DELETE", "/instance", 0, A_T, {"daemonId", NULL},
     {"uuids:array", "deleteFile:boolean", NULL}, api__instance_delete},

    /* instance_operate_router */
    {NULL, "/protected_instance/open", 0, IA_U_T_R8, {"daemonId", "uuid", NULL},
     {NULL}, api__instance_open},
    {NULL, "/protected_instance/stop", 0, IA_U_T_R8, {"daemonId", "uuid", NULL},
     {NULL}, api__instance_stop},
    {NULL, "/protected_instance/restart", 0, IA_U_T_R8,
     {"daemonId", "uuid", NULL}, {NULL}, api__instance_restart},
    {NULL, "/protected_instance/kill", 0, IA_U_T_R8, {"daemonId", "uuid", NULL},
     {NULL}, api__instance_kill},
    {NULL, "/protected_instance/command", 0, IA_U_T_R8,
     {"daemonId", "uuid", "command", NULL}, {NULL}, api__instance_command},
    {"GET", "/protected_instance/outputlog", 0, {LV_USER, 1, 0, 1},
     {"daemonId", "uuid", NULL}, {NULL}, api__instance_outputlog},
    {"POST", "/protected_instance/stream_channel", 0, IA_U_T_R8,
     {"daemonId", "uuid", NULL}, {NULL}, api__instance_stream_channel},
};
/* clang-format on */

/* ---- pure helpers ---- */

const char *api_resolve_daemon_id(const char *daemon_id,
                                  const char *remote_uuid,
                                  const char *daemon_id_alias)
{
    if (daemon_id_alias != NULL && daemon_id_alias[0] != '\0')
        return daemon_id_alias;
    if (remote_uuid != NULL && remote_uuid[0] != '\0')
        return remote_uuid;
    return daemon_id;
}

long long api_outputlog_size(const char *size)
{
    const char *p = size;
    long long n = 0;

    if (size == NULL || *size == '\0')
        return -1;
    while (*p >= '0' && *p <= '9') {
        if (n > (1LL << 40))
            return -1;
        n = n * 10 + (*p++ - '0');
    }
    if (p == size || n == 0)
        return -1;
    if (*p == '\0')
        return n;
    if (strcasecmp(p, "kb") == 0)
        return n * 1024;
    return -1;
}

size_t api_outputlog_tail(const char *text, size_t len, long long size)
{
    size_t off;

    if (size < 0 || (unsigned long long)size >= len)
        return 0;
    off = len - (size_t)size;
    return text_cut_start(text, len, off);
}

/* 1 if name looks like an attempt at the apikey parameter. */
static int api__apikey_lookalike(const char *name, size_t len)
{
    static const char *const forms[] = {"apikey", "api_key",   "api-key",
                                        "key",    "token_key", "x-api-key"};
    size_t i;

    for (i = 0; i < ARRAY_SIZE(forms); i++)
        if (strlen(forms[i]) == len && strncasecmp(name, forms[i], len) == 0)
            return !(len == 6 && strncmp(name, "apikey", 6) == 0);
    return 0;
}

char *api_credentials_hint(const char *query_string, const char *authorization)
{
    const char *p = query_string;

    if (query_string != NULL && strchr(query_string, '?') != NULL)
        return xstrdup(
            "The URL contains a second '?': everything after the first '?' "
            "is one query string, so the text after the second '?' became "
            "part of a parameter value. Separate parameters with '&', as in "
            "?uuid=I&daemonId=D&apikey=KEY.");
    while (p != NULL && *p != '\0') {
        size_t len = strcspn(p, "&");
        size_t name_len = strcspn(p, "=&");

        if (api__apikey_lookalike(p, name_len))
            return xasprintf("Query parameter names are case-sensitive: "
                             "the key is read from 'apikey', not from "
                             "'%.*s'.",
                             (int)(name_len > 32 ? 32 : name_len), p);
        p += len;
        if (*p == '&')
            p++;
    }
    if (authorization != NULL && strncasecmp(authorization, "Bearer ", 7) != 0)
        return xstrdup("The Authorization header must have the form "
                       "'Bearer KEY'.");
    return NULL;
}

void api_format_locale_time(int64_t ms, char out[40])
{
    time_t t = (time_t)(ms / 1000);
    struct tm tm;
    int hour;

    localtime_r(&t, &tm);
    hour = tm.tm_hour % 12 == 0 ? 12 : tm.tm_hour % 12;
    snprintf(out, 40, "%d/%d/%d, %d:%02d:%02d %s", tm.tm_mon + 1, tm.tm_mday,
             tm.tm_year + 1900, hour, tm.tm_min, tm.tm_sec,
             tm.tm_hour < 12 ? "AM" : "PM");
}

/* ---- request data ---- */

const char *api__query(api_call_t *call, const char *name)
{
    if (strcmp(name, "daemonId") == 0)
        return api_resolve_daemon_id(
            http_request_query(call->req, "daemonId"),
            http_request_query(call->req, "remote_uuid"),
            http_request_query(call->req, "daemon_id"));
    return http_request_query(call->req, name);
}

const char *api__param(api_call_t *call, const char *name)
{
    const char *v = api__query(call, name);

    return v != NULL && v[0] != '\0' ? v : NULL;
}

json_t *api__body(api_call_t *call, const char *name)
{
    if (call->body == NULL || !json_is_object(call->body))
        return NULL;
    return json_object_get(call->body, name);
}

const char *api__body_string(api_call_t *call, const char *name)
{
    json_t *v = api__body(call, name);
    char buf[64];

    if (json_is_string(v))
        return json_string_value(v);
    if (json_is_integer(v))
        snprintf(buf, sizeof(buf), "%" JSON_INTEGER_FORMAT,
                 json_integer_value(v));
    else if (json_is_real(v))
        snprintf(buf, sizeof(buf), "%.17g", json_real_value(v));
    else
        return NULL;
    /* Keep the text alive as long as the body by replacing the number. */
    json_object_set_new(call->body, name, json_string(buf));
    return json_string_value(json_object_get(call->body, name));
}

int api__bool_value(const json_t *value)
{
    static const char *const yes[] = {"1", "true", "yes", "on"};
    static const char *const no[] = {"0", "false", "no", "off"};
    const char *s;
    size_t i;

    if (json_is_boolean(value))
        return json_is_true(value);
    if (json_is_integer(value) &&
        (json_integer_value(value) == 0 || json_integer_value(value) == 1))
        return (int)json_integer_value(value);
    if (!json_is_string(value))
        return -1;
    s = json_string_value(value);
    for (i = 0; i < ARRAY_SIZE(yes); i++) {
        if (strcasecmp(s, yes[i]) == 0)
            return 1;
        if (strcasecmp(s, no[i]) == 0)
            return 0;
    }
    return -1;
}

static int api__number_text(const char *s, double *out)
{
    char *end;
    double d;

    while (isspace((unsigned char)*s))
        s++;
    if (*s == '\0') {
        *out = 0; /* JavaScript's Number("") */
        return 0;
    }
    errno = 0;
    d = strtod(s, &end);
    while (isspace((unsigned char)*end))
        end++;
    if (*end != '\0' || isnan(d) || isinf(d))
        return -1;
    *out = d;
    return 0;
}

int api__number_value(const json_t *value, double *out)
{
    if (json_is_number(value)) {
        *out = json_number_value(value);
        return 0;
    }
    if (json_is_string(value))
        return api__number_text(json_string_value(value), out);
    return -1;
}

int api__is_admin(const api_call_t *call)
{
    return call->user != NULL && call->user->permission >= LV_ADMIN;
}

void api__access_user(const store_user_t *user, access_user_t *out)
{
    out->uuid = user->uuid;
    out->name = user->user_name;
    out->permission = user->permission;
}

const char *api__masked_key(const store_user_t *user)
{
    return user->has_api_key ? "__MCSM_SECRET_DATA__" : "";
}

/* ---- responses ---- */

void api__call_free(api_call_t *call)
{
    json_decref(call->body);
    store_user_free(call->user);
    free(call);
}

void api__done_raw(api_call_t *call, int status, enum reply_type type,
                   const char *json, size_t len)
{
    reply_raw(call->req, status, type, json, len);
    api__call_free(call);
}

void api__done_json(api_call_t *call, int status, json_t *data)
{
    /* MCSManager turns an empty handler result (null or false) into 500
     * with data null. */
    if (data == NULL || json_is_null(data) || json_is_false(data))
        status = 500;
    reply_json(call->req, status, json_is_false(data) ? NULL : data);
    json_decref(data);
    api__call_free(call);
}

void api__done_text(api_call_t *call, int status, const char *text)
{
    reply_text(call->req, status, text);
    api__call_free(call);
}

void api__done_error(api_call_t *call, int status, const char *message)
{
    reply_error(call->req, status, message);
    api__call_free(call);
}

void api__done_true(api_call_t *call)
{
    api__done_raw(call, 200, REPLY_JSON, "true", 4);
}

void api__set_cookie(api_call_t *call, const session_t *s)
{
    char value[256];

    if (s != NULL)
        snprintf(value, sizeof(value),
                 SESSION_COOKIE "=%s; Path=/; Max-Age=%lld; HttpOnly; "
                                "SameSite=Lax",
                 session_id(s), SESSION_MAX_AGE_MS / 1000);
    else
        snprintf(value, sizeof(value),
                 SESSION_COOKIE "=; Path=/; Max-Age=0; HttpOnly; "
                                "SameSite=Lax");
    http_request_add_header(call->req, "Set-Cookie", value);
}

/* ---- nodes ---- */

json_t *api__node_json(node_t *node)
{
    return json_pack("{s:s, s:s, s:i, s:s, s:b, s:s}", "uuid", node_uuid(node),
                     "ip", node_ip(node), "port", node_port(node), "prefix",
                     node_prefix(node), "available", node_available(node),
                     "remarks", node_remarks(node));
}

void api__nodes_changed(api_t *api)
{
    free(api->nodes_json);
    api->nodes_json = NULL;
    api->nodes_json_len = 0;
}

static void api__on_node_status(node_t *node, int available, void *data)
{
    api_t *api = data;

    log_info("node %s (%s:%d) is %s", node_uuid(node), node_ip(node),
             node_port(node), available ? "available" : "unavailable");
    api__nodes_changed(api);
    if (api->node_hook != NULL)
        api->node_hook(api, node, available, api->node_hook_data);
}

node_t *api__node_start(api_t *api, const store_node_t *record)
{
    const json_t *lang =
        json_object_get(store_settings(api->store), "language");
    node_t *node = node_new(api->loop, record->uuid, record->ip, record->port,
                            record->prefix, record->api_key);

    node_set_remarks(node, record->remarks);
    if (json_is_string(lang))
        node_set_language(node, json_string_value(lang));
    node_on_status(node, api__on_node_status, api);
    if (node_registry_add(api->nodes, node) != 0) {
        node_free(node);
        return NULL;
    }
    api__nodes_changed(api);
    return node;
}

int api_node_add(api_t *api, const store_node_t *node, char uuid_out[33])
{
    store_node_t *record;
    int rc;

    rc = store_node_add(api->store, node, uuid_out);
    if (rc != 0)
        return rc;
    record = store_node_get(api->store, uuid_out);
    if (record == NULL)
        return -EIO;
    api__node_start(api, record);
    store_node_free(record);
    return 0;
}

node_t *api_node_find(api_t *api, const char *uuid)
{
    if (api->nodes == NULL || uuid == NULL)
        return NULL;
    return node_registry_find(api->nodes, uuid);
}

void api_set_node_hook(api_t *api, api_node_hook_fn fn, void *data)
{
    api->node_hook = fn;
    api->node_hook_data = data;
}

node_t *api__node_or_fail(api_call_t *call)
{
    const char *id = api__query(call, "daemonId");
    node_t *node = api_node_find(call->api, id);
    char clip[72];
    char *text;

    if (node != NULL)
        return node;
    snprintf(clip, sizeof(clip), "%s", id != NULL ? id : "");
    text = xasprintf("%s - no node has the id '%s'. GET "
                     "/api/service/remote_services_list lists the nodes and "
                     "their ids.",
                     API_TEXT_NO_NODE, clip);
    api__done_error(call, 500, text);
    free(text);
    return NULL;
}

void api__clamp_page(int *page, int *page_size)
{
    if (*page < 1)
        *page = 1;
    if (*page_size < 1)
        *page_size = 1;
    if (*page_size > 50)
        *page_size = 50;
}

void api__on_node_reply(int status, json_t *data, const char *error,
                        void *ctx)
{
    api_call_t *call = ctx;

    if (status == 200)
        api__done_json(call, 200, data != NULL ? json_incref(data) : NULL);
    else
        api__done_error(call, 500, error != NULL ? error : "request failed");
}

void api__forward(api_call_t *call, node_t *node, const char *event,
                  json_t *data, int timeout_ms)
{
    node_request(node, event, data, timeout_ms, api__on_node_reply, call);
    json_decref(data);
}

/* ---- fan-out ---- */

struct api_fanout {
    api_call_t *call;
    api_fanout_slot_t *slots;
    size_t count;
    size_t waiting; /* one extra until api__fanout_go */
    api_fanout_fn finish;
    void *user;
};

typedef struct api_fanout_ticket {
    api_fanout_t *fanout;
    size_t index;
} api_fanout_ticket_t;

api_fanout_t *api__fanout_new(api_call_t *call, size_t count,
                              api_fanout_fn finish, void *user)
{
    api_fanout_t *f = xcalloc(1, sizeof(*f));

    f->call = call;
    f->count = count;
    f->slots = xcalloc(count ? count : 1, sizeof(*f->slots));
    f->waiting = count + 1;
    f->finish = finish;
    f->user = user;
    return f;
}

static void api__fanout_done_one(api_fanout_t *f)
{
    size_t i;

    if (--f->waiting > 0)
        return;
    /* A node removed while the requests were pending is gone from memory
     * too, so finish only gets the nodes that still exist. */
    for (i = 0; i < f->count; i++)
        f->slots[i].node = api_node_find(f->call->api, f->slots[i].node_uuid);
    f->finish(f->call, f->slots, f->count, f->user);
    for (i = 0; i < f->count; i++)
        json_decref(f->slots[i].data);
    free(f->slots);
    free(f);
}

static void api__on_fanout_reply(int status, json_t *data, const char *error,
                                 void *ctx)
{
    api_fanout_ticket_t *t = ctx;
    api_fanout_t *f = t->fanout;
    api_fanout_slot_t *slot = &f->slots[t->index];

    slot->status = status;
    if (status == 200 && data != NULL)
        slot->data = json_incref(data);
    free(t);
    api__fanout_done_one(f);
}

void api__fanout_send(api_fanout_t *fanout, size_t i, node_t *node,
                      const char *event, json_t *data, int timeout_ms,
                      void *slot_user)
{
    api_fanout_ticket_t *t;

    fanout->slots[i].user = slot_user;
    if (node != NULL)
        snprintf(fanout->slots[i].node_uuid, sizeof(fanout->slots[i].node_uuid),
                 "%s", node_uuid(node));
    if (node == NULL) {
        fanout->slots[i].status = -ENOTCONN;
        json_decref(data);
        api__fanout_done_one(fanout);
        return;
    }
    t = xmalloc(sizeof(*t));
    t->fanout = fanout;
    t->index = i;
    node_request(node, event, data, timeout_ms, api__on_fanout_reply, t);
    json_decref(data);
}

void api__fanout_go(api_fanout_t *fanout)
{
    api__fanout_done_one(fanout);
}

/* ---- the request pipeline ---- */

/* Finds the route for method + path (path after "/api", trailing slash
 * removed). Sets *path_known when some route has that path. */
static const api_route_t *api__match(const char *method, const char *path,
                                     size_t len, int *path_known)
{
    size_t i;

    *path_known = 0;
    if (strcmp(method, "HEAD") == 0)
        method = "GET";
    for (i = 0; i < ARRAY_SIZE(api_routes); i++) {
        const api_route_t *r = &api_routes[i];

        if (strlen(r->path) != len || memcmp(r->path, path, len) != 0)
            continue;
        *path_known = 1;
        if (r->method == NULL || strcmp(r->method, method) == 0)
            return r;
    }
    return NULL;
}

/* MCSManager's router responds to a known path with a wrong method with 405
 * and an empty body, which its envelope layer turns into 500 with data null. */
static void api__method_not_allowed(http_request_t *req, const char *path,
                                    size_t len)
{
    char allow[128] = "";
    size_t i;

    for (i = 0; i < ARRAY_SIZE(api_routes); i++) {
        const api_route_t *r = &api_routes[i];

        if (r->method == NULL || strlen(r->path) != len ||
            memcmp(r->path, path, len) != 0)
            continue;
        if (strcmp(r->method, "GET") == 0)
            strcat(allow, allow[0] ? ", HEAD, GET" : "HEAD, GET");
        else {
            if (allow[0])
                strcat(allow, ", ");
            strcat(allow, r->method);
        }
    }
    http_request_add_header(req, "Allow", allow);
    reply_raw(req, 500, REPLY_TEXT, "null", 4);
}

/* Credentials and identities looked up for one request. */
typedef struct api_credentials {
    const char *key;
    enum access_key_source key_source;
    store_user_t *key_user;
    store_user_t *session_user;
    session_t *session;
    int cookie_sent;
    access_user_t key_access, session_access;
} api_credentials_t;

static const char *api__trim(const char *s, char *buf, size_t size)
{
    size_t len;

    while (*s == ' ' || *s == '\t')
        s++;
    len = strlen(s);
    while (len > 0 && (s[len - 1] == ' ' || s[len - 1] == '\t'))
        len--;
    if (len >= size)
        return s; /* too long to be a key; judged as sent */
    memcpy(buf, s, len);
    buf[len] = '\0';
    return buf;
}

static void api__read_credentials(api_call_t *call, api_credentials_t *c,
                                  char *keybuf, size_t keysize)
{
    api_t *api = call->api;
    http_request_t *req = call->req;
    const char *v, *cookie;

    memset(c, 0, sizeof(*c));
    if ((v = http_request_header(req, "x-request-api-key")) != NULL &&
        *v != '\0') {
        c->key = v;
        c->key_source = ACCESS_KEY_HEADER;
    } else if ((v = http_request_query(req, "apikey")) != NULL && *v != '\0') {
        c->key = v;
        c->key_source = ACCESS_KEY_QUERY;
    } else if ((v = http_request_header(req, "authorization")) != NULL &&
               strncasecmp(v, "Bearer ", 7) == 0) {
        c->key = v + 7;
        c->key_source = ACCESS_KEY_BEARER;
    }
    if (c->key != NULL) {
        c->key = api__trim(c->key, keybuf, keysize);
        if (c->key[0] == '\0') {
            c->key = NULL;
            c->key_source = ACCESS_KEY_NONE;
        }
    }
    if (c->key != NULL && access_key_wellformed(c->key)) {
        c->key_user = store_user_find_by_api_key(api->store, c->key);
        if (c->key_user != NULL)
            api__access_user(c->key_user, &c->key_access);
    }

    cookie = http_request_cookie(req, SESSION_COOKIE);
    c->cookie_sent = cookie != NULL;
    if (cookie != NULL)
        c->session = session_find(api->sessions, cookie, util_now_ms());
    if (c->session != NULL) {
        snprintf(call->session_id, sizeof(call->session_id), "%s",
                 session_id(c->session));
        c->session_user =
            store_user_get(api->store, session_user_uuid(c->session));
        if (c->session_user != NULL)
            api__access_user(c->session_user, &c->session_access);
    }
    v = http_request_header(req, "x-requested-with");
    call->ajax = v != NULL && strcasecmp(v, "xmlhttprequest") == 0;
}

static void api__fill_input(api_call_t *call, const api_credentials_t *c,
                            access_input_t *in)
{
    memset(in, 0, sizeof(*in));
    in->route = &call->route->access;
    in->method = http_request_method(call->req);
    in->path = http_request_path(call->req);
    in->key = c->key;
    in->key_source = c->key_source;
    in->key_mode =
        (enum access_key_mode)store_settings_api_key_mode(call->api->store);
    in->key_user = c->key_user != NULL ? &c->key_access : NULL;
    in->cookie_sent = c->cookie_sent;
    in->session_token = c->session != NULL ? session_token(c->session) : NULL;
    in->session_user = c->session_user != NULL ? &c->session_access : NULL;
    in->ajax = call->ajax;
    in->query_token = http_request_query(call->req, "token");
}

/* Responds to a rejected request with MCSManager's text and the reason. */
static void api__refuse(api_call_t *call, access_input_t *in,
                        const access_result_t *res, const char *daemon_id,
                        const char *uuid)
{
    char *hint = NULL, *msg;

    if (res->reason == ACCESS_NO_CREDENTIALS ||
        res->reason == ACCESS_KEY_MALFORMED ||
        res->reason == ACCESS_KEY_UNKNOWN)
        hint = api_credentials_hint(
            http_request_query_string(call->req),
            http_request_header(call->req, "authorization"));
    /* A panel started on its own has no users until the first install. */
    if (res->reason == ACCESS_NO_CREDENTIALS &&
        store_user_count(call->api->store) == 0) {
        char *with_install = xasprintf(
            "%s%sNo user exists yet: create the administrator with "
            "POST /api/auth/install {\"username\", \"password\"} and the "
            "header X-Requested-With: XMLHttpRequest.",
            hint ? hint : "", hint ? " " : "");

        free(hint);
        hint = with_install;
    }
    in->hint = hint;
    msg = access_message(in, res, daemon_id, uuid);
    call->api->record.illegal_access++;
    log_debug("rejected %s %s: access reason %d", in->method, in->path,
              (int)res->reason);
    api__done_text(call, res->status, msg);
    free(msg);
    free(hint);
}


/*
 * Reads an application/x-www-form-urlencoded body into an object of
 * strings, as MCSManager's body parser does. Pairs whose name or value is
 * not valid UTF-8 are left out.
 */
static json_t *api__parse_form(const char *body, size_t len)
{
    json_t *form = json_object();
    size_t pos = 0;

    while (pos < len) {
        const char *pair = body + pos;
        const char *amp = memchr(pair, '&', len - pos);
        size_t pair_len = amp ? (size_t)(amp - pair) : len - pos;
        const char *eq = memchr(pair, '=', pair_len);
        size_t name_len = eq ? (size_t)(eq - pair) : pair_len;
        char *name, *value;
        json_t *v;

        if (name_len > 0) {
            name = http_url_decode(pair, name_len, 1);
            value = eq ? http_url_decode(eq + 1, pair_len - name_len - 1, 1)
                       : xstrdup("");
            v = json_string(value);
            /* The first value of a repeated name wins, as for the query. */
            if (v != NULL && json_object_get(form, name) == NULL)
                json_object_set_new(form, name, v);
            else
                json_decref(v);
            free(name);
            free(value);
        }
        pos += pair_len + 1;
    }
    return form;
}

/*
 * Parses a JSON body whatever its Content-Type, as long as it looks like
 * JSON. A form body becomes an object of strings, and a multipart body is
 * left alone. Returns 0, or -1 after responding 400.
 */
static int api__parse_body(api_call_t *call)
{
    const char *ctype = http_request_header(call->req, "content-type");
    size_t len, i;
    const char *body = http_request_body(call->req, &len);
    json_error_t err;
    char *msg;

    for (i = 0; i < len && isspace((unsigned char)body[i]); i++)
        ;
    if (i == len)
        return 0;
    if (ctype != NULL &&
        strncasecmp(ctype, "application/x-www-form-urlencoded", 33) == 0 &&
        body[i] != '{' && body[i] != '[') {
        call->body = api__parse_form(body, len);
        return 0;
    }
    if (ctype != NULL && strncasecmp(ctype, "multipart/", 10) == 0)
        return 0;
    call->body = json_loadb(body, len, JSON_DECODE_ANY, &err);
    if (call->body != NULL &&
        (json_is_object(call->body) || json_is_array(call->body)))
        return 0;
    json_decref(call->body);
    call->body = NULL;
    if (err.text[0] == '\0')
        snprintf(err.text, sizeof(err.text), "%s",
                 "expected a JSON object or array");
    msg = xasprintf("Invalid JSON in the request body: %s (line %d, column "
                    "%d). Nothing was changed; send a JSON object (or "
                    "array) with Content-Type: application/json.",
                    err.text, err.line, err.column);
    api__done_text(call, 400, msg);
    free(msg);
    return -1;
}

/* Checks one validator spec against a value; returns the failure suffix
 * ("is required!", "is not a number"...) or NULL. */
static const char *api__check_spec(const char *type, const json_t *value,
                                   const char *text)
{
    double d;
    json_t *parsed;
    int ok;

    if (text != NULL) {
        if (text[0] == '\0')
            return "is required!";
    } else if (value == NULL || json_is_null(value) ||
               (json_is_string(value) && json_string_length(value) == 0)) {
        return "is required!";
    }
    if (type == NULL)
        return NULL;
    if (strcmp(type, "number") == 0) {
        ok = text != NULL ? api__number_text(text, &d) == 0
                          : api__number_value(value, &d) == 0;
        return ok ? NULL : "is not a number";
    }
    if (strcmp(type, "boolean") == 0) {
        json_t *s = text != NULL ? json_string(text) : NULL;

        ok = api__bool_value(s != NULL ? s : value) >= 0;
        json_decref(s);
        return ok ? NULL : "is not a boolean";
    }
    if (strcmp(type, "array") == 0) {
        if (text == NULL && json_is_array(value))
            return NULL;
        if (text == NULL && !json_is_string(value))
            return "is not an array";
        parsed =
            json_loads(text != NULL ? text : json_string_value(value), 0, NULL);
        ok = json_is_array(parsed);
        json_decref(parsed);
        return ok ? NULL : "is not an array";
    }
    if (strcmp(type, "object") == 0)
        return text == NULL && json_is_object(value) ? NULL
                                                     : "is not an object";
    return NULL;
}

/* Runs the route's validators. Returns 0, or -1 after responding 400. */
static int api__validate(api_call_t *call)
{
    const api_route_t *r = call->route;
    const char *const *specs[2] = {r->query, r->body};
    int side;

    for (side = 0; side < 2; side++) {
        const char *const *s;

        for (s = specs[side]; *s != NULL; s++) {
            char name[40];
            const char *colon = strchr(*s, ':');
            const char *type = colon ? colon + 1 : NULL;
            const char *fail;
            char *msg;

            snprintf(name, sizeof(name), "%.*s",
                     (int)(colon ? (size_t)(colon - *s) : strlen(*s)), *s);
            if (side == 0) {
                const char *v = api__query(call, name);

                fail = api__check_spec(type, NULL, v != NULL ? v : "");
            } else {
                fail = api__check_spec(type, api__body(call, name), NULL);
            }
            if (fail == NULL)
                continue;
            msg = xasprintf("Validator failed: \"%s\" %s", name, fail);
            api__done_text(call, 400, msg);
            free(msg);
            return -1;
        }
    }
    return 0;
}

/* Keeps the identity that the decision used and frees the other one. */
static void api__adopt_identity(api_call_t *call, api_credentials_t *c,
                                int via_key)
{
    if (via_key) {
        call->user = c->key_user;
        c->key_user = NULL;
    } else {
        call->user = c->session_user;
        c->session_user = NULL;
    }
    call->via_key = via_key;
    store_user_free(c->key_user);
    store_user_free(c->session_user);
    c->key_user = c->session_user = NULL;
}

/* Runs the checks in MCSManager's order. Returns 0 when the handler may
 * run, or -1 after the response was sent. */
static int api__authorize(api_call_t *call, api_credentials_t *c)
{
    const api_route_t *r = call->route;
    access_input_t in;
    access_result_t res;

    api__fill_input(call, c, &in);
    if (r->access.instance_guard) {
        const char *daemon_id = api__param(call, "daemonId");
        const char *uuid = api__param(call, "uuid");
        const access_user_t *who =
            in.key != NULL ? in.key_user : in.session_user;
        const store_user_t *rec =
            in.key != NULL ? c->key_user : c->session_user;
        int owns = 0;

        if (who != NULL && who->permission < LV_ADMIN && daemon_id != NULL &&
            uuid != NULL)
            owns =
                store_grant_check(call->api->store, rec->uuid, daemon_id, uuid);
        if (access_check_instance(&in, daemon_id, uuid, owns, &res) !=
            ACCESS_OK) {
            api__refuse(call, &in, &res, daemon_id, uuid);
            return -1;
        }
    }
    if (c->session != NULL && r->access.speed_limit &&
        r->access.level < LV_ADMIN &&
        !session_rate_allow(c->session, util_now_ms())) {
        api__done_text(call, 500,
                       "Too many requests, please try again later - a "
                       "session may make 8 requests per second on this "
                       "route. Wait a second, or use an API key, which is "
                       "not rate-limited.");
        return -1;
    }
    if (access_check(&in, &res) != ACCESS_OK) {
        api__refuse(call, &in, &res, NULL, NULL);
        return -1;
    }
    api__adopt_identity(call, c, res.via_key);
    return 0;
}

static void api__run(api_call_t *call)
{
    api_credentials_t c;
    char keybuf[256];
    int rc = 0;

    api__read_credentials(call, &c, keybuf, sizeof(keybuf));
    if (call->route->is_public)
        api__adopt_identity(call, &c, 0);
    else
        rc = api__authorize(call, &c);
    if (rc != 0) {
        store_user_free(c.key_user);
        store_user_free(c.session_user);
        return;
    }
    if (api__parse_body(call) != 0 || api__validate(call) != 0)
        return;
    call->route->handler(call);
}

/*
 * With the crossDomain setting, every response allows any origin, as in
 * MCSManager; X-Request-Api-Key is allowed too so that browsers can send
 * a key. Returns 1 when cross-origin requests are allowed.
 */
static int api__add_cors(api_t *api, http_request_t *req)
{
    const json_t *on =
        json_object_get(store_settings(api->store), "crossDomain");

    if (!json_is_true(on))
        return 0;
    http_request_add_header(req, "Access-Control-Allow-Origin", "*");
    http_request_add_header(req, "Access-Control-Allow-Methods",
                            "PUT, POST, GET, DELETE, OPTIONS");
    http_request_add_header(req, "Access-Control-Allow-Headers",
                            "Content-Type, Content-Length, Authorization, "
                            "Accept, X-Requested-With, X-Request-Api-Key");
    return 1;
}

void api_handle(http_request_t *req, void *data)
{
    api_t *api = data;
    const char *path = http_request_path(req);
    const api_route_t *route;
    api_call_t *call;
    size_t len;
    int known;

    api->requests++;
    if (strncmp(path, "/api", 4) != 0 || (path[4] != '/' && path[4] != '\0')) {
        /* No web UI is served yet: everything else is MCSManager's 404. */
        reply_not_found(req);
        return;
    }
    if (api__add_cors(api, req) &&
        strcmp(http_request_method(req), "OPTIONS") == 0) {
        /* A preflight needs a 2xx response and no body. */
        http_respond(req, 204, NULL, "", 0);
        return;
    }
    path += 4;
    len = strlen(path);
    if (len > 0 && path[len - 1] == '/')
        len--;
    route = api__match(http_request_method(req), path, len, &known);
    if (route == NULL) {
        if (known)
            api__method_not_allowed(req, path, len);
        else
            reply_not_found(req);
        return;
    }
    if (api->closing) {
        reply_text(req, 503,
                   "The panel is shutting down; retry when it is "
                   "back.");
        return;
    }
    call = xcalloc(1, sizeof(*call));
    call->api = api;
    call->req = req;
    call->route = route;
    api__run(call);
}

/* ---- charts and life cycle ---- */

/* Reads the busy and total jiffies of all CPUs from /proc/stat. */
static int api__read_cpu(uint64_t *busy, uint64_t *total)
{
    unsigned long long v[8] = {0};
    FILE *f = fopen("/proc/stat", "r");
    int n;

    if (f == NULL)
        return -1;
    n = fscanf(f, "cpu %llu %llu %llu %llu %llu %llu %llu %llu", &v[0], &v[1],
               &v[2], &v[3], &v[4], &v[5], &v[6], &v[7]);
    fclose(f);
    if (n < 4)
        return -1;
    *total = v[0] + v[1] + v[2] + v[3] + v[4] + v[5] + v[6] + v[7];
    *busy = *total - v[3] - v[4]; /* minus idle and iowait */
    return 0;
}

static void api__on_chart_tick(uv_timer_t *timer)
{
    api_t *api = timer->data;
    api_chart_sample_t *s = &api->chart[api->chart_next];
    uint64_t busy = 0, total = 0, mem_total, cpu_us;
    uv_rusage_t ru;

    memset(s, 0, sizeof(*s));
    if (api__read_cpu(&busy, &total) == 0 && total > api->cpu_total_mark) {
        s->cpu = 100.0 * (double)(busy - api->cpu_busy_mark) /
                 (double)(total - api->cpu_total_mark);
        api->cpu_busy_mark = busy;
        api->cpu_total_mark = total;
    }
    mem_total = uv_get_total_memory();
    if (mem_total > 0)
        s->mem = 100.0 * (double)(mem_total - uv_get_free_memory()) /
                 (double)mem_total;
    s->requests = api->requests - api->chart_requests_mark;
    api->chart_requests_mark = api->requests;
    if (uv_getrusage(&ru) == 0) {
        cpu_us = (uint64_t)ru.ru_utime.tv_sec * 1000000 + ru.ru_utime.tv_usec +
                 (uint64_t)ru.ru_stime.tv_sec * 1000000 + ru.ru_stime.tv_usec;
        api->process_cpu = 100.0 * (double)(cpu_us - api->process_cpu_mark_us) /
                           (API_CHART_MS * 1000.0);
        api->process_cpu_mark_us = cpu_us;
    }
    api->chart_next = (api->chart_next + 1) % API_CHART_SAMPLES;
    if (api->chart_count < API_CHART_SAMPLES)
        api->chart_count++;
}

api_t *api_new(uv_loop_t *loop, store_t *store)
{
    api_t *api = xcalloc(1, sizeof(*api));
    store_node_t **records = NULL;
    size_t count = 0, i;

    api->loop = loop;
    api->store = store;
    api->sessions = session_table_new();
    api->nodes = node_registry_new();
    if (store_node_list(store, &records, &count) != 0) {
        log_error("cannot start the API: reading the nodes from the store "
                  "failed");
        session_table_free(api->sessions);
        node_registry_free(api->nodes);
        free(api);
        return NULL;
    }
    for (i = 0; i < count; i++)
        api__node_start(api, records[i]);
    store_node_list_free(records, count);
    api__read_cpu(&api->cpu_busy_mark, &api->cpu_total_mark);
    uv_timer_init(loop, &api->chart_timer);
    api->chart_timer.data = api;
    uv_timer_start(&api->chart_timer, api__on_chart_tick, API_CHART_MS,
                   API_CHART_MS);
    return api;
}

void api_close(api_t *api)
{
    node_registry_t *nodes;

    if (api == NULL || api->closing)
        return;
    api->closing = 1;
    uv_close((uv_handle_t *)&api->chart_timer, NULL);
    /* Freeing the nodes fails their pending requests, whose callbacks
     * respond to the waiting HTTP requests; api->nodes is NULL by then so no
     * handler can reach a node being freed. */
    nodes = api->nodes;
    api->nodes = NULL;
    node_registry_free(nodes);
    api__nodes_changed(api);
}

void api_free(api_t *api)
{
    if (api == NULL)
        return;
    if (!api->closing) {
        /* Without api_close the timer is still open: callers must close
         * first so the loop can finish the handle. */
        log_error("api_free called before api_close");
        node_registry_free(api->nodes);
    }
    session_table_free(api->sessions);
    free(api->nodes_json);
    free(api);
}

size_t api_jobs_pending(const api_t *api)
{
    return api->jobs;
}
