#ifndef HEARTH_NET_WSC_H
#define HEARTH_NET_WSC_H

#include <stddef.h>
#include <stdint.h>

#include <uv.h>

/*
 * WebSocket client (RFC 6455) over plain TCP on the caller's loop: name
 * resolution, connect (each resolved address in turn), the HTTP/1.1
 * upgrade, then frames through wslay. No TLS and no extensions.
 */

typedef struct wsc wsc_t;

typedef struct wsc_callbacks {
    /* Called when the upgrade succeeds; wsc_send() works from then on. */
    void (*on_open)(wsc_t *ws, void *data);
    /* A whole text (binary 0) or binary (binary 1) message arrived; msg is
     * borrowed for the duration of the call. */
    void (*on_message)(wsc_t *ws, const uint8_t *msg, size_t len,
                       int binary, void *data);
    /* Called at most once, and never after wsc_free(), when the connection
     * fails or ends. reason is human-readable ("connection refused"). The
     * owner must still call wsc_free(). */
    void (*on_close)(wsc_t *ws, const char *reason, void *data);
} wsc_callbacks_t;

/* Largest upgrade response header accepted; a real one is a few hundred
 * bytes, so more means the port is not a WebSocket server. */
#define WSC_MAX_HEADER 16384
/* Length of a Sec-WebSocket-Accept value (base64 of a SHA-1 digest). */
#define WSC_ACCEPT_LEN 28

/*
 * Starts connecting to ws://host:port<path>. path starts with '/' and may
 * carry a query string. Messages longer than max_message bytes close the
 * connection with status 1009. Every callback runs from the loop, never
 * from inside this call. Returns 0 and stores the client in *out, or a
 * negative errno (nothing allocated) when the resolver cannot start.
 */
int wsc_connect(uv_loop_t *loop, const char *host, int port,
                const char *path, size_t max_message,
                const wsc_callbacks_t *callbacks, void *data, wsc_t **out);
/*
 * Sends a close frame when the connection is open (best effort: the TCP
 * connection is closed right after), stops every callback and releases
 * the client once its handles have closed. Safe inside its callbacks.
 */
void wsc_free(wsc_t *ws);
/* Queues one text message (copied). Returns 0, or -ENOTCONN when the
 * connection is not open, or another negative errno from the socket. */
int wsc_send(wsc_t *ws, const char *text, size_t len);

/* Computes the Sec-WebSocket-Accept value for key into out (NUL ended). */
void wsc_accept_key(const char *key, char out[WSC_ACCEPT_LEN + 1]);
/*
 * Builds the HTTP/1.1 upgrade request for path on host:port (an IPv6
 * literal gets brackets in the Host header). Returns a string the caller
 * frees.
 */
char *wsc_build_request(const char *host, int port, const char *path,
                        const char *key);
/*
 * Checks the server's response to an upgrade request sent with key. Returns
 * 1 and the header length (through the blank line) in *header_len when the
 * response is a valid 101, 0 when the header block is not complete yet, or
 * -1 with a message in err (err_size bytes) when the upgrade failed.
 */
int wsc_parse_response(const char *buf, size_t len, const char *key,
                       size_t *header_len, char *err, size_t err_size);

#endif
