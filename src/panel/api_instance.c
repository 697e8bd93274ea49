/*
 * The /api/instance routes (instance detail and administration) and the
 * /api/protected_instance routes (power actions, console commands, log),
 * all forwarded to the daemon named by ?daemonId.
 */
#include "panel/api_internal.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

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

static void api__on_power_reply(int status, json_t *data, const char *error,
                                void *ctx)
{
    api_call_t *call = ctx;

    if (status == 200)
        api__done_json(call, 200, data != NULL ? json_incref(data) : NULL);
    else
        api__done_error(call, 500, error != NULL ? error : "request failed");
}

/* Starting can take longer than the request timeout. MCSManager then
 * responds {} with 200 and lets the client poll the status. */
static void api__on_open_reply(int status, json_t *data, const char *error,
                               void *ctx)
{
    if (status == -ETIMEDOUT)
        api__done_json(ctx, 200, json_object());
    else
        api__on_power_reply(status, data, error, ctx);
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
    api__power(call, "instance/stop", api__on_power_reply);
}

void api__instance_restart(api_call_t *call)
{
    api__power(call, "instance/restart", api__on_power_reply);
}

void api__instance_kill(api_call_t *call)
{
    api__power(call, "instance/kill", api__on_power_reply);
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
