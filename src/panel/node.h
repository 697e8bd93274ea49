#ifndef HEARTH_PANEL_NODE_H
#define HEARTH_PANEL_NODE_H

#include <stddef.h>

#include <jansson.h>
#include <uv.h>

/*
 * The panel's link to one daemon: a Socket.IO client (net/sioc.h) that
 * authenticates with the daemon key and carries MCSManager's request
 * packets.
 *
 * Protocol (as MCSManager's panel speaks it): on every connect the node
 * emits "auth" with {uuid, data: <daemon key>}. A reply on "auth" with data
 * true makes the node available; false logs "key validation denied" and the
 * node stays unavailable until it reconnects. A request is emitted as
 * {uuid, data}, where uuid is a uuid v4 with dashes followed by the ms
 * timestamp, and the reply is the packet on the same event with the same
 * uuid: {uuid, status, event, data}.
 *
 * Reconnects: the Socket.IO client retries with its own backoff, and every
 * 60 s a node that is not available reconnects from scratch, as
 * MCSManager's panel does.
 *
 * All calls and callbacks happen on the loop thread.
 */

typedef struct node node_t;

/* Default request timeout of MCSManager's panel. */
#define NODE_TIMEOUT_MS 6000

/*
 * Completion of node_request, called exactly once, from the loop and never
 * from inside node_request itself.
 *  status 200:        success; data is the reply's data (borrowed, valid
 *                     during the call, may be NULL), error is NULL.
 *  other status > 0:  the daemon failed the request; error is data.err if
 *                     present, else data as text (a string as is, other
 *                     JSON encoded); data is the reply's data.
 *  status < 0:        no reply; data is NULL and error says why:
 *                     -ETIMEDOUT  "request timeout (daemon <ip>:<port>)"
 *                     -ENOTCONN   the node is not available
 *                     -ECONNRESET the connection dropped while waiting
 *                     -ECANCELED  the node was freed or reconnected
 * error is borrowed and valid during the call.
 */
typedef void (*node_request_cb)(int status, json_t *data, const char *error,
                                void *ctx);

/*
 * A packet pushed by the daemon that matches no pending request (for
 * example instance/stdout or a reply that arrived after its timeout).
 * packet is the whole borrowed packet object, or whatever the daemon sent.
 */
typedef void (*node_event_cb)(node_t *node, const char *event, json_t *packet,
                              void *data);

/*
 * The node became available (1: the daemon accepted the key) or stopped
 * being available (0: disconnected or key denied).
 */
typedef void (*node_status_cb)(node_t *node, int available, void *data);

/*
 * Creates a node and starts connecting at once. ip is a host name, an
 * address, or a URL starting with ws:// (the scheme is dropped). wss:// is
 * not supported yet, so such a node logs an error and stays unavailable.
 * prefix is the path before /socket.io ("" or NULL for none; a trailing
 * slash is removed). key is the daemon key. All strings are copied.
 */
node_t *node_new(uv_loop_t *loop, const char *uuid, const char *ip, int port,
                 const char *prefix, const char *key);
/*
 * Disconnects and frees the node. Pending requests complete with
 * -ECANCELED before this returns; their callbacks must not call into this
 * node. Safe inside this node's callbacks (memory is released on a later
 * loop turn). NULL is accepted.
 */
void node_free(node_t *node);

/* 1 when connected and authenticated, else 0. */
int node_available(const node_t *node);
/* Getters; the strings stay valid until the matching setter or node_free. */
const char *node_uuid(const node_t *node);
const char *node_ip(const node_t *node);
int node_port(const node_t *node);
const char *node_prefix(const node_t *node);
const char *node_remarks(const node_t *node);

/* Sets the free-text remarks (copied). */
void node_set_remarks(node_t *node, const char *remarks);
/*
 * Changes the address and key. Like MCSManager's PUT remote_service, this
 * does not reconnect: the new values apply at the next node_reconnect or
 * 60 s retry. NULL arguments keep the current value.
 */
void node_set_address(node_t *node, const char *ip, int port,
                      const char *prefix, const char *key);
/*
 * Sets the panel language sent to the daemon as info/setting {language}
 * right after each successful auth, as MCSManager does. NULL sends none.
 */
void node_set_language(node_t *node, const char *language);

/*
 * Drops the current connection (pending requests fail with -ECANCELED) and
 * connects again now with the current address and key.
 */
void node_reconnect(node_t *node);

/*
 * Sends event with data (borrowed; NULL sends null) and calls cb with the
 * reply, or with an error after timeout_ms (<= 0 means NODE_TIMEOUT_MS).
 * When the node is not available cb is called with -ENOTCONN on a later
 * loop turn. cb is never called before node_request returns.
 */
void node_request(node_t *node, const char *event, json_t *data,
                  int timeout_ms, node_request_cb cb, void *ctx);
/*
 * Sends event with {uuid, data} without waiting for a reply. Returns 0, or
 * -ENOTCONN when the node is not available.
 */
int node_emit(node_t *node, const char *event, json_t *data);

/* Sets the hook for daemon packets that match no pending request (NULL
 * removes it). */
void node_on_event(node_t *node, node_event_cb cb, void *data);
/* Sets the hook for availability changes (NULL removes it). */
void node_on_status(node_t *node, node_status_cb cb, void *data);

/* Number of requests waiting for a reply. */
size_t node_pending_count(const node_t *node);

/*
 * A registry of nodes by uuid, owning them. Optional: the panel may as well
 * keep nodes in its own table. Lookups are linear, which suits the handful
 * of daemons a panel drives.
 */
typedef struct node_registry node_registry_t;

node_registry_t *node_registry_new(void);
/* Frees the registry and every node in it. NULL is accepted. */
void node_registry_free(node_registry_t *registry);
/* Adds node (the registry takes ownership). Returns 0, or -EEXIST if a node
 * with that uuid is registered (node is not taken then). */
int node_registry_add(node_registry_t *registry, node_t *node);
/* Returns the node with this uuid (borrowed), or NULL. */
node_t *node_registry_find(const node_registry_t *registry, const char *uuid);
/* Removes and frees the node with this uuid. Returns 0 or -ENOENT. */
int node_registry_remove(node_registry_t *registry, const char *uuid);
/* Number of nodes, and the node at index i (insertion order, borrowed). */
size_t node_registry_count(const node_registry_t *registry);
node_t *node_registry_at(const node_registry_t *registry, size_t i);

#endif
