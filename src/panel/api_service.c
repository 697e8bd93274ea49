/*
 * The /api/service routes (nodes) and the /api/overview routes (panel
 * overview and settings).
 */
#include "panel/api_internal.h"

#include <errno.h>
#include <pwd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/utsname.h>
#include <unistd.h>

#include "core/log.h"
#include "core/util.h"

/* ---- node list (the hot path) ---- */

static void api__build_nodes_json(api_t *api)
{
    json_t *list = json_array();
    size_t i, n = node_registry_count(api->nodes);

    for (i = 0; i < n; i++)
        json_array_append_new(list,
                              api__node_json(node_registry_at(api->nodes, i)));
    api->nodes_json = json_dumps(list, JSON_COMPACT);
    api->nodes_json_len = strlen(api->nodes_json);
    json_decref(list);
}

void api__service_list(api_call_t *call)
{
    api_t *api = call->api;

    /* Scripts poll this route, so the data is built once per node change
     * and then copied, with no store access beyond the caller's key. */
    if (api->nodes_json == NULL)
        api__build_nodes_json(api);
    api__done_raw(call, 200, REPLY_JSON, api->nodes_json, api->nodes_json_len);
}

/* Sends event to every node; finish gets one slot per node, in order. */
static void api__each_node(api_call_t *call, const char *event,
                           api_fanout_fn finish)
{
    size_t i, n = node_registry_count(call->api->nodes);
    api_fanout_t *f = api__fanout_new(call, n, finish, NULL);

    for (i = 0; i < n; i++)
        api__fanout_send(f, i, node_registry_at(call->api->nodes, i), event,
                         NULL, NODE_TIMEOUT_MS, NULL);
    api__fanout_go(f);
}

static void api__on_full_fanout(api_call_t *call, api_fanout_slot_t *slots,
                                size_t count, void *user)
{
    json_t *list = json_array();
    size_t i;

    for (i = 0; i < count; i++) {
        json_t *entry;

        if (slots[i].node == NULL)
            continue;
        entry = api__node_json(slots[i].node);

        json_object_set_new(entry, "instances",
                            slots[i].status == 200 &&
                                    json_is_array(slots[i].data)
                                ? json_incref(slots[i].data)
                                : json_array());
        json_array_append_new(list, entry);
    }
    api__done_json(call, 200, list);
}

void api__service_full(api_call_t *call)
{
    api__each_node(call, "instance/overview", api__on_full_fanout);
}

static void api__on_system_fanout(api_call_t *call, api_fanout_slot_t *slots,
                                  size_t count, void *user)
{
    json_t *list = json_array();
    size_t i;

    /* Unreachable daemons are left out, as MCSManager does. */
    for (i = 0; i < count; i++)
        if (slots[i].status == 200 && slots[i].data != NULL)
            json_array_append(list, slots[i].data);
    api__done_json(call, 200, list);
}

void api__service_system(api_call_t *call)
{
    api__each_node(call, "info/overview", api__on_system_fanout);
}

void api__service_instances(api_call_t *call)
{
    node_t *node = api__node_or_fail(call);
    const char *name = api__query(call, "instance_name");
    const char *status = api__query(call, "status");
    const char *tag_text = api__param(call, "tag");
    int page = atoi(api__query(call, "page"));
    int page_size = atoi(api__query(call, "page_size"));
    json_t *tags;

    if (node == NULL)
        return;
    api__clamp_page(&page, &page_size);
    if (tag_text == NULL) {
        tags = json_array();
    } else {
        tags = json_loads(tag_text, 0, NULL);
        if (!json_is_array(tags)) {
            json_decref(tags);
            api__done_text(call, 400,
                           "Validator failed: \"tag\" must be a "
                           "JSON array of tag strings, as in "
                           "tag=[\"survival\"]");
            return;
        }
    }
    api__forward(call, node, "instance/select",
                 json_pack("{s:i, s:i, s:{s:s, s:s, s:o}}", "page", page,
                           "pageSize", page_size, "condition", "instanceName",
                           name != NULL ? name : "", "status",
                           status != NULL ? status : "", "tag", tags),
                 NODE_TIMEOUT_MS);
}

/* ---- adding, editing and removing nodes ---- */

void api__service_add(api_call_t *call)
{
    store_node_t rec;
    double port = 0;
    char uuid[33];
    int rc;

    memset(&rec, 0, sizeof(rec));
    api__number_value(api__body(call, "port"), &port);
    rec.ip = (char *)api__body_string(call, "ip");
    rec.port = (int)port;
    rec.prefix = (char *)api__body_string(call, "prefix");
    rec.remarks = (char *)api__body_string(call, "remarks");
    rec.api_key = (char *)api__body_string(call, "apiKey");
    if (rec.port < 1 || rec.port > 65535 || port != (double)rec.port) {
        api__done_text(call, 400,
                       "Validator failed: \"port\" must be an "
                       "integer from 1 to 65535");
        return;
    }
    rc = api_node_add(call->api, &rec, uuid);
    if (rc != 0) {
        api__done_error(call, 500,
                        "Add node failed: the store rejected the "
                        "record (see the panel log)");
        return;
    }
    log_info("node %s (%s:%d) added by user %s", uuid, rec.ip, rec.port,
             call->user->uuid);
    api__done_text(call, 200, uuid);
}

static node_t *api__node_by_query_uuid(api_call_t *call)
{
    node_t *node = api_node_find(call->api, api__query(call, "uuid"));

    if (node == NULL)
        api__done_error(call, 500,
                        API_TEXT_NO_NODE " - no node has this uuid. GET "
                                         "/api/service/remote_services_list "
                                         "lists the nodes.");
    return node;
}

/* Replaces a string field of a node record when value is a non-empty
 * string (MCSManager only applies truthy values). */
static void api__node_field(char **field, const json_t *value)
{
    if (json_is_string(value) && json_string_length(value) > 0) {
        free(*field);
        *field = xstrdup(json_string_value(value));
    }
}

static void api__service_edit_apply(api_call_t *call)
{
    api_t *api = call->api;
    const char *uuid = api__query(call, "uuid");
    node_t *node = api_node_find(api, uuid);
    store_node_t *rec = store_node_get(api->store, uuid);
    json_t *mappings = api__body(call, "remoteMappings");
    const char *prefix = api__body_string(call, "prefix");
    double port;

    if (node == NULL || rec == NULL) {
        store_node_free(rec);
        api__done_error(call, 500, API_TEXT_NO_NODE);
        return;
    }
    api__node_field(&rec->ip, api__body(call, "ip"));
    api__node_field(&rec->api_key, api__body(call, "apiKey"));
    api__node_field(&rec->remarks, api__body(call, "remarks"));
    if (api__number_value(api__body(call, "port"), &port) == 0 && port != 0)
        rec->port = (int)port;
    free(rec->prefix);
    rec->prefix = xstrdup(prefix != NULL ? prefix : "");
    json_decref(rec->remote_mappings);
    rec->remote_mappings =
        json_is_array(mappings) ? json_incref(mappings) : json_array();
    if (store_node_update(api->store, rec) != 0) {
        store_node_free(rec);
        api__done_error(call, 500,
                        "Edit node failed: the store rejected the "
                        "change (see the panel log)");
        return;
    }
    /* Like MCSManager, the new address applies at the next reconnect
     * (GET /api/service/link_remote_service). */
    node_set_address(node, rec->ip, rec->port, rec->prefix, rec->api_key);
    node_set_remarks(node, rec->remarks);
    api__nodes_changed(api);
    store_node_free(rec);
    api__done_true(call);
}

static void api__on_node_setting(int status, json_t *data, const char *error,
                                 void *ctx)
{
    api_call_t *call = ctx;
    char *msg;

    if (status == 200) {
        api__service_edit_apply(call);
        return;
    }
    msg = xasprintf("Edit node failed: the daemon rejected info/setting: %s",
                    error != NULL ? error : "no reason given");
    api__done_error(call, 500, msg);
    free(msg);
}

void api__service_edit(api_call_t *call)
{
    node_t *node = api__node_by_query_uuid(call);
    json_t *setting = api__body(call, "setting");
    json_t *daemon_port = api__body(call, "daemonPort");
    json_t *data;

    if (node == NULL)
        return;
    if (!node_available(node) ||
        (!json_is_object(setting) && daemon_port == NULL)) {
        api__service_edit_apply(call);
        return;
    }
    /* The daemon's own settings go first, as in MCSManager. */
    data = json_is_object(setting) ? json_deep_copy(setting) : json_object();
    if (daemon_port != NULL)
        json_object_set(data, "port", daemon_port);
    node_request(node, "info/setting", data, NODE_TIMEOUT_MS,
                 api__on_node_setting, call);
    json_decref(data);
}

void api__service_remove(api_call_t *call)
{
    api_t *api = call->api;
    const char *uuid = api__query(call, "uuid");

    if (api__node_by_query_uuid(call) == NULL)
        return;
    node_registry_remove(api->nodes, uuid);
    store_node_remove(api->store, uuid);
    api__nodes_changed(api);
    log_info("node %s removed by user %s", uuid, call->user->uuid);
    api__done_true(call);
}

void api__service_link(api_call_t *call)
{
    node_t *node = api__node_by_query_uuid(call);

    if (node == NULL)
        return;
    node_reconnect(node);
    api__done_true(call);
}

/* ---- overview ---- */

static json_t *api__system_json(api_t *api)
{
    struct passwd *pw = getpwuid(getuid());
    struct utsname un;
    double load[3];
    double uptime = 0;
    char host[256] = "";
    const api_chart_sample_t *last = NULL;

    uname(&un);
    uv_loadavg(load);
    uv_uptime(&uptime);
    gethostname(host, sizeof(host) - 1);
    if (api->chart_count > 0)
        last = &api->chart[(api->chart_next + API_CHART_SAMPLES - 1) %
                           API_CHART_SAMPLES];
    return json_pack(
        "{s:{s:i, s:i, s:s, s:s, s:s}, s:I, s:I, s:I, s:s, s:s, s:s, s:s, "
        "s:[f, f, f], s:s, s:s, s:f, s:f}",
        "user", "uid", (int)getuid(), "gid", (int)getgid(), "username",
        pw != NULL ? pw->pw_name : "", "homedir", pw != NULL ? pw->pw_dir : "",
        "shell", pw != NULL ? pw->pw_shell : "", "time",
        (json_int_t)util_now_ms(), "totalmem",
        (json_int_t)uv_get_total_memory(), "freemem",
        (json_int_t)uv_get_free_memory(), "type", un.sysname, "version",
        un.version, "node", "Hearth " HEARTH_VERSION, "hostname", host,
        "loadavg", load[0], load[1], load[2], "platform", "linux", "release",
        un.release, "uptime", uptime, "cpu",
        last != NULL ? last->cpu / 100.0 : 0.0);
}

static json_t *api__chart_json(api_t *api)
{
    json_t *system = json_array(), *request = json_array();
    size_t i;

    for (i = 0; i < api->chart_count; i++) {
        size_t at =
            (api->chart_next + API_CHART_SAMPLES - api->chart_count + i) %
            API_CHART_SAMPLES;
        const api_chart_sample_t *s = &api->chart[at];

        json_array_append_new(system,
                              json_pack("{s:f, s:f}", "cpu",
                                        (double)(long)(s->cpu * 10) / 10, "mem",
                                        (double)(long)(s->mem * 10) / 10));
        /* NOTE: instance counts are not sampled yet; they stay 0. */
        json_array_append_new(request, json_pack("{s:I, s:i, s:i}", "value",
                                                 (json_int_t)s->requests,
                                                 "totalInstance", 0,
                                                 "runningInstance", 0));
    }
    return json_pack("{s:o, s:o}", "system", system, "request", request);
}

static void api__on_overview_fanout(api_call_t *call, api_fanout_slot_t *slots,
                                    size_t count, void *user)
{
    api_t *api = call->api;
    json_t *remote = json_array();
    char cwd[4096] = "";
    int available = 0, total = 0;
    size_t i, rss = 0;

    for (i = 0; i < count; i++) {
        node_t *node = slots[i].node;
        store_node_t *rec;
        json_t *entry, *identity;

        if (node == NULL)
            continue;
        rec = store_node_get(api->store, node_uuid(node));
        entry = slots[i].status == 200 && json_is_object(slots[i].data)
                    ? json_deep_copy(slots[i].data)
                    : json_object();
        identity = api__node_json(node);
        total++;
        available += node_available(node);
        json_object_update(entry, identity);
        json_decref(identity);
        json_object_set_new(entry, "remoteMappings",
                            rec != NULL && rec->remote_mappings != NULL
                                ? json_incref(rec->remote_mappings)
                                : json_array());
        store_node_free(rec);
        json_array_append_new(remote, entry);
    }
    if (getcwd(cwd, sizeof(cwd)) == NULL)
        cwd[0] = '\0';
    uv_resident_set_memory(&rss);
    api__done_json(
        call, 200,
        json_pack("{s:s, s:s, s:{s:f, s:I, s:s}, s:{s:I, s:I, s:I, s:I}, "
                  "s:o, s:o, s:{s:i, s:i}, s:o}",
                  "version", REPLY_MCSM_VERSION, "specifiedDaemonVersion",
                  API_DAEMON_VERSION, "process", "cpu", api->process_cpu,
                  "memory", (json_int_t)rss, "cwd", cwd, "record", "logined",
                  (json_int_t)api->record.logined, "illegalAccess",
                  (json_int_t)api->record.illegal_access, "banips",
                  (json_int_t)api->record.ban_ips, "loginFailed",
                  (json_int_t)api->record.login_failed, "system",
                  api__system_json(api), "chart", api__chart_json(api),
                  "remoteCount", "available", available, "total", total,
                  "remote", remote));
}

void api__overview(api_call_t *call)
{
    api__each_node(call, "info/overview", api__on_overview_fanout);
}

/* ---- settings ---- */

void api__overview_setting_get(api_call_t *call)
{
    json_t *settings = json_deep_copy(store_settings(call->api->store));

    json_object_set_new(settings, "ssoClientSecret", json_string(""));
    api__done_json(call, 200, settings);
}

/* Sends the panel language to every node, as MCSManager does when the
 * setting changes. */
static void api__propagate_language(api_t *api)
{
    const json_t *lang =
        json_object_get(store_settings(api->store), "language");
    size_t i, n = node_registry_count(api->nodes);
    json_t *data;

    if (!json_is_string(lang))
        return;
    data = json_pack("{s:s}", "language", json_string_value(lang));
    for (i = 0; i < n; i++) {
        node_t *node = node_registry_at(api->nodes, i);

        node_set_language(node, json_string_value(lang));
        if (node_available(node))
            node_emit(node, "info/setting", data);
    }
    json_decref(data);
}

void api__overview_setting_put(api_call_t *call)
{
    json_t *patch = call->body;
    const char *key;
    json_t *value, *secret;
    char *err = NULL;
    void *tmp;
    int rc;

    if (!json_is_object(patch)) {
        api__done_text(call, 400,
                       "Validator failed: the body must be a JSON "
                       "object of settings, as in "
                       "{\"enableApiKey\":true}");
        return;
    }
    /* MCSManager copies only present, non-null keys, and keeps the SSO
     * client secret when an empty one is sent. */
    json_object_foreach_safe(patch, tmp, key, value)
    {
        if (json_is_null(value))
            json_object_del(patch, key);
    }
    secret = json_object_get(patch, "ssoClientSecret");
    if (json_is_string(secret) && json_string_length(secret) == 0)
        json_object_del(patch, "ssoClientSecret");
    rc = store_settings_update(call->api->store, patch, &err);
    if (rc == -EINVAL) {
        char *msg = xasprintf("Validator failed: %s. Nothing was changed.",
                              err != NULL ? err : "invalid setting");

        api__done_text(call, 400, msg);
        free(msg);
        free(err);
        return;
    }
    free(err);
    if (rc != 0) {
        api__done_error(call, 500,
                        "Save settings failed: the store could "
                        "not write them (see the panel log)");
        return;
    }
    if (json_object_get(patch, "language") != NULL)
        api__propagate_language(call->api);
    log_info("settings changed by user %s", call->user->uuid);
    api__done_text(call, 200, "OK");
}

void api__overview_install(api_call_t *call)
{
    json_t *lang = api__body(call, "language");
    json_t *patch;
    int rc;

    if (store_user_count(call->api->store) > 0) {
        api__done_error(call, 500,
                        "Set language failed: the panel is "
                        "installed already; administrators "
                        "change it with PUT /api/overview/setting");
        return;
    }
    if (!json_is_string(lang)) {
        api__done_text(call, 200, "OK");
        return;
    }
    patch = json_pack("{s:O}", "language", lang);
    rc = store_settings_update(call->api->store, patch, NULL);
    json_decref(patch);
    if (rc != 0) {
        api__done_error(call, 500,
                        "Set language failed: the store rejected "
                        "the value");
        return;
    }
    api__propagate_language(call->api);
    api__done_text(call, 200, "OK");
}
