#ifndef HEARTH_PANEL_REPLY_H
#define HEARTH_PANEL_REPLY_H

#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

#include "net/http.h"

/*
 * The envelope of every /api response, as MCSManager's panel sends it:
 * {"status":N,"data":...,"time":<ms since the epoch>}, with the HTTP status
 * equal to N.
 *
 * MCSManager's Content-Type depends on how its handler produced the data,
 * not on the data: a string set as the body goes out as text/plain, while
 * objects, arrays, booleans and thrown errors (whose message is a string)
 * go out as application/json. Clients are expected to parse every body as
 * JSON, but the functions below reproduce the header anyway.
 */

/* The MCSManager panel version that Hearth reports (X-Version header). */
#define REPLY_MCSM_VERSION "10.18.2"

#ifndef HEARTH_VERSION
#define HEARTH_VERSION "0.1.0"
#endif

enum reply_type {
    REPLY_TEXT, /* text/plain; charset=utf-8 */
    REPLY_JSON  /* application/json; charset=utf-8 */
};

/* Returns the Content-Type header value for a reply type. */
const char *reply_content_type(enum reply_type type);

/*
 * Formats the envelope around data_json (already JSON-encoded, len bytes)
 * into a new NUL-terminated string that the caller frees; *out_len gets
 * its length.
 */
char *reply_format(int status, const char *data_json, size_t len,
                   int64_t time_ms, size_t *out_len);

/*
 * Appends text as a JSON string literal (quotes included) to a growing
 * buffer, escaping as JavaScript's JSON.stringify does. Invalid UTF-8 bytes
 * become U+FFFD so that the output is always valid JSON. *buf is
 * reallocated as needed; *len and *cap track it.
 */
void reply_append_string(char **buf, size_t *len, size_t *cap, const char *text,
                         size_t text_len);

/* Sends the envelope around data_json (JSON text) and releases req. */
void reply_raw(http_request_t *req, int status, enum reply_type type,
               const char *data_json, size_t len);
/*
 * Sends data (borrowed; NULL means null) and releases req. The type is
 * REPLY_TEXT for a JSON string and for null, else REPLY_JSON.
 */
void reply_json(http_request_t *req, int status, const json_t *data);
/* Sends text as a string body with Content-Type text/plain. */
void reply_text(http_request_t *req, int status, const char *text);
/*
 * Sends message as a string with Content-Type application/json, the way
 * MCSManager reports an error thrown by a handler or by the daemon.
 */
void reply_error(http_request_t *req, int status, const char *message);
/* Sends status 404 with data "[404] Not Found" (text/plain). */
void reply_not_found(http_request_t *req);

#endif
