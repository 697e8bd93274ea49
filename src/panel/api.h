#ifndef HEARTH_PANEL_API_H
#define HEARTH_PANEL_API_H

#include <stddef.h>
#include <stdint.h>

#include <uv.h>

#include "net/http.h"
#include "panel/node.h"
#include "panel/store.h"

/*
 * The panel's HTTP API: MCSManager's /api routes with its envelope, status
 * codes, query aliases, permission rules and texts. Requests are served from
 * the store or forwarded to daemons through nodes. api.c contains the route
 * table and the request pipeline: route match, credentials, rate limit,
 * ownership guard, permission, body, validators, handler. The handlers are
 * in api_auth.c, api_service.c and api_instance.c.
 */

typedef struct api api_t;

/* Called when a node becomes available (1) or unavailable (0). */
typedef void (*api_node_hook_fn)(api_t *api, node_t *node, int available,
                                 void *data);

/*
 * Creates the API over store (borrowed; must outlive the API) and starts a
 * node for every node in the store. Returns NULL if the nodes cannot be
 * read (logged).
 */
api_t *api_new(uv_loop_t *loop, store_t *store);
/*
 * Frees the API, its sessions and its nodes. Call after api_close() once
 * the loop has run dry (no password job may still be pending). NULL is
 * accepted.
 */
void api_free(api_t *api);
/*
 * Starts shutting down: new requests get 503, and nodes are freed, so
 * their pending requests fail and get error responses. The API's timers
 * close.
 */
void api_close(api_t *api);

/* The http_handler_fn of the panel's server; data is the api_t. */
void api_handle(http_request_t *req, void *data);

/* Password jobs still running on the thread pool. */
size_t api_jobs_pending(const api_t *api);

/*
 * Stores node (its uuid may be "" for a new one), starts it and writes its
 * uuid to uuid_out. Returns 0 or a negative errno from store_node_add.
 */
int api_node_add(api_t *api, const store_node_t *node, char uuid_out[33]);
/* Returns the node with this uuid (borrowed) or NULL. */
node_t *api_node_find(api_t *api, const char *uuid);
/* Sets the hook called on node availability changes (NULL removes it). */
void api_set_node_hook(api_t *api, api_node_hook_fn fn, void *data);

/* ---- pure helpers, exported for the unit tests ---- */

/*
 * Returns the node id of a request from its query parameters daemonId,
 * remote_uuid and daemon_id (any may be NULL). Like MCSManager's
 * compatibility layer for version 9 clients, a non-empty alias replaces
 * daemonId, daemon_id taking precedence over remote_uuid.
 */
const char *api_resolve_daemon_id(const char *daemon_id,
                                  const char *remote_uuid,
                                  const char *daemon_id_alias);

/*
 * Parses the outputlog size parameter: "N" is N bytes, "Nkb" (any case) is
 * N * 1024 bytes. Returns the byte count, or -1 when size is NULL, empty,
 * zero or not of that form (the whole log is returned then).
 */
long long api_outputlog_size(const char *size);

/*
 * Returns the offset in text (len bytes) where the last `size` bytes start,
 * moved forward past a UTF-8 character or an escape sequence that the cut
 * would split (text_cut_start); 0 when size < 0 or the text is shorter.
 */
size_t api_outputlog_tail(const char *text, size_t len, long long size);

/*
 * Looks for common mistakes in how a request passes its API key and returns
 * a sentence about the first one found, or NULL. The mistakes are a second
 * '?' in the URL, a query parameter spelled like apikey but not exactly
 * apikey, and an Authorization header without "Bearer ". query_string is the
 * raw query; authorization is the Authorization header or NULL. The caller
 * frees.
 */
char *api_credentials_hint(const char *query_string, const char *authorization);

/*
 * Formats ms (since the epoch) in local time as JavaScript's
 * Date.toLocaleString() does in the en-US locale, which MCSManager stores
 * and returns: "12/4/2026, 3:27:40 PM". out must hold 40 bytes.
 */
void api_format_locale_time(int64_t ms, char out[40]);

#endif
