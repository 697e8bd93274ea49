#ifndef HEARTH_DAEMON_OUTPUT_H
#define HEARTH_DAEMON_OUTPUT_H

#include <stddef.h>

#include <uv.h>

/*
 * The console output of one instance: process bytes decoded from the
 * output encoding to UTF-8, and the daemon's own "[INFO] ..." lines, in
 * one stream. The stream goes to three places:
 *
 *  - a history ring with the newest OUTPUT_HISTORY_MAX bytes (replay for
 *    new viewers and outputlog), read out from a clean start (see
 *    output_history);
 *  - the log file, appended with uv_fs_* requests in batches every
 *    OUTPUT_LOG_FLUSH_MS and restarted empty when it has grown beyond
 *    OUTPUT_LOG_FILE_MAX;
 *  - a listener, called with the text produced since the previous call at
 *    most every OUTPUT_LIVE_FLUSH_MS.
 *
 * When more text arrives between two listener calls (or two log writes)
 * than OUTPUT_LIVE_PENDING_MAX (OUTPUT_LOG_PENDING_MAX), the oldest
 * pending text is dropped and the next
 * delivery starts with OUTPUT_DROPPED_NOTICE, so a flood never grows
 * memory. The drop never splits a character or an escape sequence. Decoding never drops bytes: a multibyte sequence split across
 * reads is completed by the next read, and invalid bytes become U+FFFD.
 * ANSI escape sequences pass through unchanged.
 *
 * Everything runs on the loop passed to output_new.
 */

/* Bytes of newest text kept in memory for replay and outputlog. */
#define OUTPUT_HISTORY_MAX (256 * 1024)
/*
 * Text waiting for the listener between two calls, so the live stream
 * carries at most 128 KiB per 50 ms (2.5 MiB/s). MCSManager 4.18 keeps 256
 * chunks of up to 256 characters, about 64 KiB, per 50 ms.
 */
#define OUTPUT_LIVE_PENDING_MAX (128 * 1024)
/* Text waiting for the next log file write. */
#define OUTPUT_LOG_PENDING_MAX (1024 * 1024)
/* Listener batching interval: MCSManager flushes its buffer every 50 ms. */
#define OUTPUT_LIVE_FLUSH_MS 50
/* Log file batching interval, as MCSManager's 500 ms. */
#define OUTPUT_LOG_FLUSH_MS 500
/*
 * Log file size at which the file is restarted empty before the next
 * append. MCSManager uses 512 KiB; Hearth keeps 1 MiB so that a restart
 * loses less, and outputlog is served from the history ring anyway.
 */
#define OUTPUT_LOG_FILE_MAX (1024 * 1024)
/* Inserted (yellow) where pending text had to be dropped. */
#define OUTPUT_DROPPED_NOTICE \
    "\x1b[33m[MCSMANAGER] Output is too fast, some output was dropped " \
    "(output truncated)\x1b[0m\n"

typedef struct output output_t;

/* Receives a batch of UTF-8 text (borrowed, valid during the call only). */
typedef void (*output_listener_fn)(const char *text, size_t len, void *data);

/*
 * Creates the output of one instance. log_path is the log file (created on
 * first write; may be NULL for no file). The existing tail of the log file
 * is loaded asynchronously into the history, in front of anything written
 * meanwhile. encoding is an iconv name ("utf8", "gbk", ...); an unknown
 * name falls back to UTF-8 with a warning in the daemon log. listener may
 * be NULL.
 */
output_t *output_new(uv_loop_t *loop, const char *log_path,
                     const char *encoding, output_listener_fn listener,
                     void *data);

/*
 * Starts closing: text pending for the listener is dropped (the listener is
 * never called again), text pending for the log file is still written
 * asynchronously (unless output_discard_log was called), then the timers
 * are closed and the memory freed. out must not be used afterwards.
 */
void output_free(output_t *out);

/*
 * Drops pending log text and, when output_free runs, removes the log file
 * once no write is in flight (instance deletion).
 */
void output_discard_log(output_t *out);

/*
 * Sets the encoding of process bytes fed from now on. Carried-over bytes of
 * the previous encoding are flushed as U+FFFD first. Returns 0, or -EINVAL
 * if iconv does not know the name (the old encoding stays).
 */
int output_set_encoding(output_t *out, const char *encoding);

/* Process streams with a decoder each. */
enum output_stream { OUTPUT_STDOUT, OUTPUT_STDERR, OUTPUT_STREAMS };

/*
 * Appends raw bytes of one process stream (OUTPUT_STDOUT or OUTPUT_STDERR),
 * decoding them with the current encoding. Each stream carries its own
 * incomplete character over to its next read.
 */
void output_feed_stream(output_t *out, int stream, const char *bytes,
                        size_t len);

/* output_feed_stream() for stdout. */
void output_feed(output_t *out, const char *bytes, size_t len);

/*
 * Ends the current process's byte stream: carried-over bytes of an
 * incomplete character are emitted as U+FFFD.
 */
void output_feed_end(output_t *out);

/* Appends UTF-8 text as it is (already decoded). */
void output_append(output_t *out, const char *text, size_t len);

/*
 * Appends the daemon line "[<level>] <text>\n" ("INFO", "ERROR").
 */
void output_line(output_t *out, const char *level, const char *text);

/*
 * Returns the newest text of the history as a new NUL-terminated string
 * (caller frees), at most max bytes (0 = the whole history). It never
 * starts inside a UTF-8 character or an escape sequence
 * (text_cut_start), and when the history has dropped the beginning of its
 * oldest line, the whole history starts at the next line. *len (if not
 * NULL) receives its length.
 */
char *output_history(const output_t *out, size_t max, size_t *len);

/* Sends pending text to the listener now (without waiting for the timer). */
void output_flush_live(output_t *out);

#endif
