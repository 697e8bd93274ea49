#ifndef HEARTH_DAEMON_PROTOCOL_H
#define HEARTH_DAEMON_PROTOCOL_H

#include <stddef.h>

#include <jansson.h>
#include <uv.h>

#include "daemon/config.h"
#include "daemon/instance.h"
#include "daemon/registry.h"
#include "daemon/sysinfo.h"
#include "net/sio.h"

/*
 * MCSManager's daemon protocol over Socket.IO: every event carries one
 * packet, a request {uuid, data} and a reply on the same event
 * {uuid, status: 200 | 500, event, data}.
 *
 * Authorization runs in MCSManager's order before any handler:
 *  1. `auth` is open, and so are the `stream/...` events (checked in 2);
 *     everything else needs a socket authenticated with the daemon key,
 *     or gets {status: 500, event: "error", data: "[IGNORE_LOG]"} on the
 *     event "error".
 *  2. `stream/...` events other than `stream/auth` need a stream session
 *     (a browser terminal authenticated with a stream passport).
 *  3. `instance*` events name an instance in data.instanceUuid, which must
 *     exist, except instance/new (with data), instance/overview,
 *     instance/select, the asynchronous-task events and any request that
 *     carries data.instanceUuids.
 * A socket that has not authenticated within PROTOCOL_AUTH_TIMEOUT_MS is
 * disconnected.
 *
 * Built-in events: auth, info/overview, info/setting, passport/register,
 * instance/select, overview, section, detail, new, update, delete, forward,
 * open, stop, restart, kill, command, outputlog, and stream/auth, detail,
 * input, write, resize. Other modules add events with protocol_register.
 * An event without a handler gets status 500 with a message naming it.
 */

#define PROTOCOL_AUTH_TIMEOUT_MS 6000
/*
 * Bytes queued for one socket beyond which console output to it is
 * skipped (and a notice sent once it drains), so that a slow viewer never
 * grows the daemon's memory or delays the game server.
 */
#define PROTOCOL_PENDING_MAX (4 * 1024 * 1024)
/* Lifetime of a mission passport, as MCSManager's one hour. */
#define PROTOCOL_PASSPORT_TTL_MS (60 * 60 * 1000)
/* Daemon version reported in info/overview: MCSManager panels compare it
 * with the daemon version they expect and warn on a mismatch. */
#define PROTOCOL_DAEMON_VERSION "4.18.2"

typedef struct protocol protocol_t;
typedef struct protocol_request protocol_request_t;

/*
 * Handles one request. data is borrowed for the call (NULL when the packet
 * has none). The handler must end req exactly once, during the call or
 * later, with protocol_reply, protocol_reply_error or protocol_end.
 */
typedef void (*protocol_handler_fn)(protocol_request_t *req, const json_t *data,
                                    void *user);

/*
 * Creates the protocol layer. cfg and sysinfo are borrowed and must
 * outlive it; the registry is attached with protocol_set_registry because
 * the registry's callbacks lead here.
 */
protocol_t *protocol_new(uv_loop_t *loop, dconfig_t *cfg, sysinfo_t *sysinfo);

/* Attaches the instance registry (borrowed). */
void protocol_set_registry(protocol_t *proto, registry_t *registry);

/*
 * Releases the protocol layer. Call after sio_server_free (which
 * disconnects every socket). Requests still held by handlers keep their
 * session memory until they end; their replies are dropped.
 */
void protocol_free(protocol_t *proto);

/* Fills the Socket.IO server callbacks; their data pointer is proto. */
void protocol_sio_callbacks(sio_server_callbacks_t *out);

/* Adds or replaces the handler of event (copied). */
void protocol_register(protocol_t *proto, const char *event,
                       protocol_handler_fn handler, void *user);

/* The event name of req. */
const char *protocol_request_event(const protocol_request_t *req);

/*
 * Sends a packet for req with status (200 or 500) and data (reference
 * stolen; NULL sends null) without ending it, for events that reply
 * once per instance.
 */
void protocol_send(protocol_request_t *req, int status, json_t *data);

/* Sends status 200 with data (stolen) and ends req. */
void protocol_reply(protocol_request_t *req, json_t *data);

/* Sends status 500 with data (stolen) and ends req. */
void protocol_reply_error(protocol_request_t *req, json_t *data);

/* Ends req without a reply. */
void protocol_end(protocol_request_t *req);

/*
 * Pushes {instanceUuid, instanceName} on event (instance/opened,
 * instance/stopped, instance/failure) to every socket subscribed to inst.
 */
void protocol_push_state(protocol_t *proto, instance_t *inst,
                         const char *event);

/* Pushes instance/stdout {instanceUuid, text} to every subscribed socket
 * whose queue is below PROTOCOL_PENDING_MAX. */
void protocol_push_output(protocol_t *proto, instance_t *inst, const char *text,
                          size_t len);

#endif
