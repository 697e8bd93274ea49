#ifndef HEARTH_PANEL_API_INTERNAL_H
#define HEARTH_PANEL_API_INTERNAL_H

/*
 * Shared between api.c and the route handler files (api_auth.c,
 * api_service.c, api_instance.c); not part of the API module's interface.
 */

#include <stddef.h>
#include <stdint.h>

#include <jansson.h>
#include <uv.h>

#include "net/http.h"
#include "panel/access.h"
#include "panel/api.h"
#include "panel/node.h"
#include "panel/reply.h"
#include "panel/session.h"
#include "panel/store.h"

/* The daemon version MCSManager 10.18.2 expects (/api/overview). */
#define API_DAEMON_VERSION "4.18.2"

/* MCSManager's text for an unknown daemonId. */
#define API_TEXT_NO_NODE                                                       \
    "Initialization failed, the remote node does not exist!"

/* Samples kept for the charts of /api/overview, one every API_CHART_MS. */
#define API_CHART_SAMPLES 60
#define API_CHART_MS 10000

typedef struct api_call api_call_t;
typedef void (*api_handler_fn)(api_call_t *call);

/*
 * One route. Validator specs are "name" (a string, or anything for body
 * fields) or "name:number", "name:boolean", "name:array", "name:object",
 * checked as MCSManager's validator does: absent, null or "" is missing.
 */
typedef struct api_route {
    const char *method; /* "GET", "POST", "PUT", "DELETE"; NULL: all */
    const char *path;   /* after "/api", without a trailing slash */
    int is_public;      /* no permission middleware at all */
    access_route_t access;
    const char *query[4]; /* required query parameters, NULL-terminated */
    const char *body[5];  /* required body fields, NULL-terminated */
    api_handler_fn handler;
} api_route_t;

/* Counters reported in /api/overview as record. */
typedef struct api_record {
    uint64_t logined;
    uint64_t illegal_access;
    uint64_t ban_ips;
    uint64_t login_failed;
} api_record_t;

typedef struct api_chart_sample {
    double cpu;        /* system CPU use, percent */
    double mem;        /* system memory use, percent */
    uint64_t requests; /* /api requests in the interval */
} api_chart_sample_t;

struct api {
    uv_loop_t *loop;
    store_t *store;
    session_table_t *sessions;
    node_registry_t *nodes;
    int closing;
    size_t jobs; /* password jobs on the thread pool */
    /* Cached data of GET /api/service/remote_services_list; NULL when a
     * node changed since it was built. */
    char *nodes_json;
    size_t nodes_json_len;
    api_record_t record;
    uint64_t requests;
    uv_timer_t chart_timer;
    api_chart_sample_t chart[API_CHART_SAMPLES];
    size_t chart_count, chart_next;
    uint64_t chart_requests_mark;
    uint64_t cpu_busy_mark, cpu_total_mark;
    double process_cpu; /* percent of one CPU over the last interval */
    uint64_t process_cpu_mark_us;
    api_node_hook_fn node_hook;
    void *node_hook_data;
};

struct api_call {
    api_t *api;
    http_request_t *req;
    const api_route_t *route;
    json_t *body;       /* parsed JSON body (object or array) or NULL */
    store_user_t *user; /* the caller (owned), NULL when anonymous */
    int via_key;        /* the caller authenticated with an API key */
    char session_id[SESSION_ID_LEN + 1]; /* "" without a live session */
    int ajax; /* X-Requested-With: XMLHttpRequest was sent */
};

/* ---- request data ---- */

/* Query parameter, with daemonId resolved through its aliases; NULL when
 * absent. */
const char *api__query(api_call_t *call, const char *name);
/* Query parameter, NULL when absent or "". */
const char *api__param(api_call_t *call, const char *name);
/* Body field (borrowed) or NULL when there is no JSON object body. */
json_t *api__body(api_call_t *call, const char *name);
/* Body field as a string as MCSManager's String() coercion gives it for
 * strings and numbers; NULL for absent, null or other types. The result
 * is valid until the call ends. */
const char *api__body_string(api_call_t *call, const char *name);
/* Body field as a boolean per MCSManager's validator: true, 1, "1", "true",
 * "yes", "on" -> 1; false, 0, "0", "false", "no", "off" -> 0; else -1. */
int api__bool_value(const json_t *value);
/* Body field as a number (JSON number or numeric string); 0 on success,
 * -1 if absent or not a number. */
int api__number_value(const json_t *value, double *out);
/* 1 when the caller is an administrator. */
int api__is_admin(const api_call_t *call);

/* ---- responses (each ends the call and frees it) ---- */

void api__done_json(api_call_t *call, int status, json_t *data); /* steals */
void api__done_text(api_call_t *call, int status, const char *text);
void api__done_error(api_call_t *call, int status, const char *message);
void api__done_raw(api_call_t *call, int status, enum reply_type type,
                   const char *json, size_t len);
void api__done_true(api_call_t *call);
/* Frees the call after its request got a response some other way. */
void api__call_free(api_call_t *call);

/* Adds the session cookie, or a cookie that deletes it when s is NULL. */
void api__set_cookie(api_call_t *call, const session_t *s);

/* ---- nodes ---- */

/*
 * Returns the node named by the daemonId query parameter. Otherwise it
 * responds 500 with MCSManager's "remote node does not exist" text, which
 * ends the call, and returns NULL.
 */
node_t *api__node_or_fail(api_call_t *call);
/* Clamps paging parameters as MCSManager does: page >= 1, page size from
 * 1 to 50. */
void api__clamp_page(int *page, int *page_size);

/*
 * Node reply callback that finishes call: status 200 sends the daemon's
 * data (200), anything else the error text (500).
 */
void api__on_node_reply(int status, json_t *data, const char *error,
                        void *ctx);

/*
 * Sends event with data (stolen) to node and responds to the call with the
 * daemon's reply data unchanged (200), or 500 with the daemon's error.
 */
void api__forward(api_call_t *call, node_t *node, const char *event,
                  json_t *data, int timeout_ms);
/* Node JSON {uuid, ip, port, prefix, available, remarks}. */
json_t *api__node_json(node_t *node);
/* Forgets the cached node list after any node change. */
void api__nodes_changed(api_t *api);
/* Starts a node for a stored record and registers it. Returns the node. */
node_t *api__node_start(api_t *api, const store_node_t *record);

/*
 * One request to each of several nodes, with one response for all of
 * them: finish runs once every request has completed (or immediately when
 * count is 0), then the fan-out is freed. A slot whose node is NULL
 * completes at once with status -ENOTCONN.
 */
typedef struct api_fanout api_fanout_t;
typedef struct api_fanout_slot {
    /* The node, looked up again when the fan-out finishes; NULL when it is
     * unknown or was removed meanwhile. */
    node_t *node;
    char node_uuid[33];
    int status;   /* 200, daemon status, or negative errno */
    json_t *data; /* reply data (owned), NULL on failure */
    void *user;   /* caller's per-slot data */
} api_fanout_slot_t;
typedef void (*api_fanout_fn)(api_call_t *call, api_fanout_slot_t *slots,
                              size_t count, void *user);
api_fanout_t *api__fanout_new(api_call_t *call, size_t count,
                              api_fanout_fn finish, void *user);
/* Sends request i (data stolen). Call for every i, then api__fanout_go. */
void api__fanout_send(api_fanout_t *fanout, size_t i, node_t *node,
                      const char *event, json_t *data, int timeout_ms,
                      void *slot_user);
void api__fanout_go(api_fanout_t *fanout);

/* ---- users ---- */

/* Fills an access_user_t that borrows from a store record. */
void api__access_user(const store_user_t *user, access_user_t *out);
/* "__MCSM_SECRET_DATA__" when the user has an API key, else "". */
const char *api__masked_key(const store_user_t *user);

/* ---- route handlers ---- */

/* api_auth.c */
void api__auth_login(api_call_t *call);
void api__auth_logout(api_call_t *call);
void api__auth_login_info(api_call_t *call);
void api__auth_status(api_call_t *call);
void api__auth_install(api_call_t *call);
void api__auth_token(api_call_t *call);
void api__auth_info(api_call_t *call);
void api__auth_update(api_call_t *call);
void api__auth_api_key(api_call_t *call);
void api__auth_create(api_call_t *call);
void api__auth_edit(api_call_t *call);
void api__auth_delete(api_call_t *call);
void api__auth_search(api_call_t *call);
void api__auth_overview(api_call_t *call);

/* api_service.c */
void api__service_list(api_call_t *call);
void api__service_full(api_call_t *call);
void api__service_system(api_call_t *call);
void api__service_instances(api_call_t *call);
void api__service_add(api_call_t *call);
void api__service_edit(api_call_t *call);
void api__service_remove(api_call_t *call);
void api__service_link(api_call_t *call);
void api__overview(api_call_t *call);
void api__overview_setting_get(api_call_t *call);
void api__overview_setting_put(api_call_t *call);
void api__overview_install(api_call_t *call);

/* api_instance.c */
void api__instance_detail(api_call_t *call);
void api__instance_create(api_call_t *call);
void api__instance_update(api_call_t *call);
void api__instance_delete(api_call_t *call);
void api__instance_open(api_call_t *call);
void api__instance_stop(api_call_t *call);
void api__instance_restart(api_call_t *call);
void api__instance_kill(api_call_t *call);
void api__instance_command(api_call_t *call);
void api__instance_outputlog(api_call_t *call);
void api__instance_stream_channel(api_call_t *call);

#endif
