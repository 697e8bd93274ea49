/*
 * The /api/instance routes (instance detail and administration) and the
 * /api/protected_instance routes (power actions, console commands, log),
 * all forwarded to the daemon named by ?daemonId.
 */
#include "panel/api_internal.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/ident.h"
#include "core/log.h"
#include "core/util.h"

/* ---- /api/instance ---- */

void api__instance_detail(api_call_t *call)
{
    const char *daemon_id = api__query(call, "daemonId");
    const char *uuid = api__query(call, "uuid");
    node_t *node;

    /* This route checks ownership inside its handler in MCSManager, so a
     * refusal is a 500 there, not the guard's 403. */
    if (!api__is_admin(call) &&
        !store_grant_check(call->api->store, call->user->uuid, daemon_id,
                           uuid)) {
        access_route_t route = call->route->access;
        access_input_t in = {.route = &route};
        access_user_t caller;
        access_result_t res = {.reason = ACCESS_NO_INSTANCE,
                               .status = 500,
                               .mcsm_text = ACCESS_TEXT_PERMISSION,
                               .user = &caller,
                               .via_key = call->via_key};
        char *msg;

        api__access_user(call->user, &caller);
        msg = access_message(&in, &res, daemon_id, uuid);
        call->api->record.illegal_access++;
        api__done_error(call, 500, msg);
        free(msg);
        return;
    }
    if ((node = api__node_or_fail(call)) == NULL)
        return;
    api__forward(call, node, "instance/detail",
                 json_pack("{s:s}", "instanceUuid", uuid), NODE_TIMEOUT_MS);
}

void api__instance_create(api_call_t *call)
{
    node_t *node = api__node_or_fail(call);
    json_t *config;

    if (node == NULL)
        return;
    config =
        json_is_object(call->body) ? json_incref(call->body) : json_object();
    api__forward(call, node, "instance/new", config, NODE_TIMEOUT_MS);
}

void api__instance_update(api_call_t *call)
{
    node_t *node = api__node_or_fail(call);
    json_t *config;

    if (node == NULL)
        return;
    config =
        json_is_object(call->body) ? json_incref(call->body) : json_object();
    api__forward(call, node, "instance/update",
                 json_pack("{s:s, s:o}", "instanceUuid",
                           api__query(call, "uuid"), "config", config),
                 NODE_TIMEOUT_MS);
}

/* The uuids field: an array, or a JSON text of one (validator rule). */
static json_t *api__uuid_list(api_call_t *call)
{
    json_t *v = api__body(call, "uuids");

    if (json_is_array(v))
        return json_incref(v);
    return json_loads(json_string_value(v), 0, NULL);
}

static void api__on_instance_deleted(int status, json_t *data,
                                     const char *error, void *ctx)
{
    api_call_t *call = ctx;
    json_t *uuids, *v;
    const char **list;
    size_t i, n = 0;

    if (status != 200) {
        api__done_error(call, 500, error != NULL ? error : "delete failed");
        return;
    }
    /* Deleted instances leave every user's grants, as in MCSManager. */
    uuids = api__uuid_list(call);
    list = xcalloc(json_array_size(uuids) + 1, sizeof(*list));
    json_array_foreach(uuids, i, v)
    {
        if (json_is_string(v))
            list[n++] = json_string_value(v);
    }
    if (store_grants_remove_instances(
            call->api->store, api__query(call, "daemonId"), list, n) != 0)
        log_warn("delete instances: removing their grants failed");
    free(list);
    json_decref(uuids);
    api__done_json(call, 200, data != NULL ? json_incref(data) : NULL);
}

void api__instance_delete(api_call_t *call)
{
    node_t *node = api__node_or_fail(call);
    int delete_file = api__bool_value(api__body(call, "deleteFile"));
    json_t *data;

    if (node == NULL)
        return;
    data = json_pack("{s:o, s:b}", "instanceUuids", api__uuid_list(call),
                     "deleteFile", delete_file == 1);
    node_request(node, "instance/delete", data, NODE_TIMEOUT_MS,
                 api__on_instance_deleted, call);
    json_decref(data);
}

/* ---- /api/protected_instance ---- */

/* Starting can take longer than the request timeout. MCSManager then
 * responds {} with 200 and lets the client poll the status. */
static void api__on_open_reply(int status, json_t *data, const char *error,
                               void *ctx)
{
    if (status == -ETIMEDOUT)
        api__done_json(ctx, 200, json_object());
    else
        api__on_node_reply(status, data, error, ctx);
}

static void api__power(api_call_t *call, const char *event, node_request_cb cb)
{
    node_t *node = api__node_or_fail(call);
    json_t *data;

    if (node == NULL)
        return;
    data = json_pack("{s:[s]}", "instanceUuids", api__query(call, "uuid"));
    node_request(node, event, data, NODE_TIMEOUT_MS, cb, call);
    json_decref(data);
}

void api__instance_open(api_call_t *call)
{
    api__power(call, "instance/open", api__on_open_reply);
}

void api__instance_stop(api_call_t *call)
{
    api__power(call, "instance/stop", api__on_node_reply);
}

void api__instance_restart(api_call_t *call)
{
    api__power(call, "instance/restart", api__on_node_reply);
}

void api__instance_kill(api_call_t *call)
{
    api__power(call, "instance/kill", api__on_node_reply);
}

void api__instance_command(api_call_t *call)
{
    node_t *node = api__node_or_fail(call);

    if (node == NULL)
        return;
    api__forward(call, node, "instance/command",
                 json_pack("{s:s, s:s}", "instanceUuid",
                           api__query(call, "uuid"), "command",
                           api__query(call, "command")),
                 NODE_TIMEOUT_MS);
}

static void api__on_outputlog(int status, json_t *data, const char *error,
                              void *ctx)
{
    api_call_t *call = ctx;
    long long size = api_outputlog_size(api__query(call, "size"));
    char *buf = NULL;
    size_t len = 0, cap = 0, off;
    const char *text;

    if (status != 200) {
        api__done_error(call, 500, error != NULL ? error : "request failed");
        return;
    }
    if (!json_is_string(data)) {
        api__done_json(call, 200, data != NULL ? json_incref(data) : NULL);
        return;
    }
    text = json_string_value(data);
    off = api_outputlog_tail(text, json_string_length(data), size);
    reply_append_string(&buf, &len, &cap, text + off,
                        json_string_length(data) - off);
    api__done_raw(call, 200, REPLY_TEXT, buf, len);
    free(buf);
}

void api__instance_outputlog(api_call_t *call)
{
    node_t *node = api__node_or_fail(call);
    json_t *data;

    if (node == NULL)
        return;
    data = json_pack("{s:s}", "instanceUuid", api__query(call, "uuid"));
    node_request(node, "instance/outputlog", data, NODE_TIMEOUT_MS,
                 api__on_outputlog, call);
    json_decref(data);
}

/* ---- stream channel: a terminal passport for the browser ---- */

struct api_stream_channel {
    api_call_t *call;
    json_t *answer; /* {password, addr, prefix, remoteMappings} */
};

/* "ip:port" of a remoteMappings side, as MCSManager builds it. */
static json_t *api__mapping_addr(const json_t *side)
{
    const json_t *ip = json_object_get(side, "ip");
    const json_t *port = json_object_get(side, "port");
    const json_t *prefix = json_object_get(side, "prefix");
    char *addr;
    json_t *out;

    if (json_is_integer(port))
        addr = xasprintf("%s:%" JSON_INTEGER_FORMAT,
                         json_is_string(ip) ? json_string_value(ip) : "",
                         json_integer_value(port));
    else
        addr = xasprintf("%s:%s",
                         json_is_string(ip) ? json_string_value(ip) : "",
                         json_is_string(port) ? json_string_value(port) : "");
    out = json_pack("{s:s, s:s}", "addr", addr, "prefix",
                    json_is_string(prefix) ? json_string_value(prefix) : "");
    free(addr);
    return out;
}

/*
 * Converts the stored remoteMappings ({from:{ip, port, prefix}, to:{...}})
 * to the form of passport replies ({from:{addr, prefix}, to:{...}}), where
 * addr is "ip:port". Entries that are not objects are left out.
 */
static json_t *api__passport_mappings(const json_t *stored)
{
    json_t *out = json_array();
    const json_t *entry;
    size_t i;

    json_array_foreach(stored, i, entry)
    {
        if (!json_is_object(entry))
            continue;
        json_array_append_new(
            out, json_pack("{s:o, s:o}", "from",
                           api__mapping_addr(json_object_get(entry, "from")),
                           "to",
                           api__mapping_addr(json_object_get(entry, "to"))));
    }
    return out;
}

static void api__on_stream_passport(int status, json_t *data,
                                    const char *error, void *ctx)
{
    struct api_stream_channel *sc = ctx;

    (void)data;
    if (status == 200)
        api__done_json(sc->call, 200, sc->answer);
    else {
        char *message = xasprintf("Registering the terminal passport on the "
                                  "daemon failed: %s",
                                  error != NULL ? error : "no reason given");

        json_decref(sc->answer);
        api__done_error(sc->call, 500, message);
        free(message);
    }
    free(sc);
}

/*
 * Registers a reusable stream_channel passport for the instance on its
 * daemon. The browser then connects to the daemon's Socket.IO itself and
 * sends stream/auth with the password. The daemon keeps the passport for
 * one hour.
 */
void api__instance_stream_channel(api_call_t *call)
{
    node_t *node = api__node_or_fail(call);
    store_node_t *rec;
    struct api_stream_channel *sc;
    char password[SESSION_TOKEN_LEN + 1];
    const char *prefix;
    char *addr;
    json_t *data;

    if (node == NULL)
        return;
    /* The address comes from the stored record, which an edit changes at
     * once, as MCSManager takes it from its node config. */
    rec = store_node_get(call->api->store, node_uuid(node));
    prefix = rec != NULL ? rec->prefix : node_prefix(node);
    ident_uuid32(password);
    snprintf(password + 32, sizeof(password) - 32, "%013" PRId64,
             util_now_ms());
    addr = xasprintf("%s:%d", rec != NULL ? rec->ip : node_ip(node),
                     rec != NULL ? rec->port : node_port(node));
    sc = xcalloc(1, sizeof(*sc));
    sc->call = call;
    sc->answer = json_pack(
        "{s:s, s:s, s:s, s:o}", "password", password, "addr", addr, "prefix",
        prefix != NULL ? prefix : "", "remoteMappings",
        api__passport_mappings(rec != NULL ? rec->remote_mappings : NULL));
    free(addr);
    store_node_free(rec);
    data = json_pack("{s:s, s:s, s:{s:s}}", "name", "stream_channel",
                     "password", password, "parameter", "instanceUuid",
                     api__query(call, "uuid"));
    node_request(node, "passport/register", data, NODE_TIMEOUT_MS,
                 api__on_stream_passport, sc);
    json_decref(data);
}
