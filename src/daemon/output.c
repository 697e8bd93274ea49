#include "daemon/output.h"

#include <errno.h>
#include <fcntl.h>
#include <iconv.h>
#include <libgen.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include "core/fsutil.h"
#include "core/log.h"
#include "core/text.h"
#include "core/util.h"

/* UTF-8 encoding of U+FFFD REPLACEMENT CHARACTER. */
#define REPLACEMENT "\xef\xbf\xbd"
/* Maximum length of an incomplete sequence carried to the next read. */
#define CARRY_MAX 8
/* Size of the iconv output buffer per conversion round. */
#define DECODE_CHUNK 16384
/*
 * Bytes searched for the end of the partial first line when the history
 * has dropped older text in the middle of a line. Console lines are far
 * shorter, and a longer fragment is kept, cut only at a character boundary.
 */
#define PARTIAL_LINE_MAX 4096

/* Text waiting for one destination, bounded by max. */
struct pending {
    char *data;
    size_t len;
    size_t cap;
    size_t max;
    int dropped; /* text was dropped since the last delivery */
};

/* Steps of the asynchronous file work; only one runs at a time. */
enum fs_step {
    FS_IDLE,
    FS_LOAD_OPEN,
    FS_LOAD_STAT,
    FS_LOAD_READ,
    FS_LOAD_CLOSE,
    FS_LOG_OPEN,
    FS_LOG_STAT,
    FS_LOG_TRUNCATE,
    FS_LOG_WRITE,
    FS_LOG_CLOSE,
    FS_UNLINK,
};

/* Decoder state: cd is (iconv_t)-1 for the built-in UTF-8 validator. */
struct decoder {
    iconv_t cd;
    char carry[CARRY_MAX];
    size_t carry_len;
};

struct output {
    uv_loop_t *loop;
    char *log_path;

    /* One decoder per process stream, so that a character split across
     * two reads of stdout survives stderr bytes arriving in between. */
    struct decoder dec[OUTPUT_STREAMS];
    char *encoding;

    /* History ring: hist_len bytes starting at hist_head, wrapping. */
    char *hist;
    size_t hist_head;
    size_t hist_len;
    /* The ring dropped older text, and the last byte dropped was not a
     * line feed, so the oldest line kept is a fragment. */
    int hist_mid_line;

    output_listener_fn listener;
    void *listener_data;
    struct pending live;
    uv_timer_t live_timer;

    struct pending log;
    uv_timer_t log_timer;
    int log_loaded;   /* the tail of the old file has been read */
    int log_discard;  /* instance deleted: write nothing, unlink the file */
    int log_failed;   /* the last write failed (logged once) */

    /* The one file request in flight (see enum fs_step). */
    uv_fs_t fs_req;
    enum fs_step fs_step;
    uv_file fs_fd;
    char *fs_buf;      /* bytes being read or written */
    size_t fs_buf_len;
    int64_t fs_offset; /* offset of the tail read in the old file */

    int closing;
    int handles_open;
};

static void output__fs_next(output_t *out);
static void output__log_flush(output_t *out);
static void output__live_timer_cb(uv_timer_t *timer);
static void output__log_timer_cb(uv_timer_t *timer);

/* --- pending buffers ---------------------------------------------------- */

/*
 * Appends text, dropping the oldest half of what is pending when the cap
 * would be exceeded: dropping in halves keeps the cost per byte constant
 * during a flood instead of moving the whole buffer on every read. The cut
 * never splits a character or an escape sequence (text_cut_start).
 */
static void pending_push(struct pending *p, const char *text, size_t len)
{
    if (len >= p->max / 2) {
        size_t skip = len - p->max / 2;

        skip = text_cut_start(text, len, skip);
        text += skip;
        len -= skip;
        p->len = 0;
        p->dropped = 1;
    } else if (p->len + len > p->max) {
        size_t cut = text_cut_start(p->data, p->len, p->len / 2);

        memmove(p->data, p->data + cut, p->len - cut);
        p->len -= cut;
        p->dropped = 1;
    }
    if (p->len + len > p->cap) {
        p->cap = p->len + len > 4096 ? (p->len + len) * 2 : 8192;
        if (p->cap > p->max)
            p->cap = p->max;
        p->data = xrealloc(p->data, p->cap);
    }
    memcpy(p->data + p->len, text, len);
    p->len += len;
}

/*
 * Moves the pending text (with the drop notice in front when needed) into
 * a new buffer for delivery and empties p. Returns NULL when nothing is
 * pending.
 */
static char *pending_take(struct pending *p, size_t *len)
{
    size_t notice = p->dropped ? strlen(OUTPUT_DROPPED_NOTICE) : 0;
    char *text;

    if (p->len == 0 && notice == 0)
        return NULL;
    text = xmalloc(notice + p->len + 1);
    memcpy(text, OUTPUT_DROPPED_NOTICE, notice);
    if (p->len > 0)
        memcpy(text + notice, p->data, p->len);
    *len = notice + p->len;
    text[*len] = '\0';
    p->len = 0;
    p->dropped = 0;
    /* Release a buffer grown by a flood instead of keeping 1 MiB. */
    if (p->cap > 65536) {
        free(p->data);
        p->data = NULL;
        p->cap = 0;
    }
    return text;
}

static void pending_clear(struct pending *p)
{
    free(p->data);
    p->data = NULL;
    p->len = p->cap = 0;
    p->dropped = 0;
}

/* --- history ring ------------------------------------------------------- */

static void history_push(output_t *out, const char *text, size_t len)
{
    size_t tail, first, last;

    if (out->hist_len + len > OUTPUT_HISTORY_MAX) {
        /* Look at the last byte to be dropped before it is overwritten. */
        last = out->hist_len + len - OUTPUT_HISTORY_MAX - 1;
        out->hist_mid_line =
            (last < out->hist_len
                 ? out->hist[(out->hist_head + last) % OUTPUT_HISTORY_MAX]
                 : text[last - out->hist_len]) != '\n';
    }
    if (len >= OUTPUT_HISTORY_MAX) {
        memcpy(out->hist, text + len - OUTPUT_HISTORY_MAX,
               OUTPUT_HISTORY_MAX);
        out->hist_head = 0;
        out->hist_len = OUTPUT_HISTORY_MAX;
        return;
    }
    tail = (out->hist_head + out->hist_len) % OUTPUT_HISTORY_MAX;
    first = OUTPUT_HISTORY_MAX - tail;
    if (first > len)
        first = len;
    memcpy(out->hist + tail, text, first);
    memcpy(out->hist, text + first, len - first);
    out->hist_len += len;
    if (out->hist_len > OUTPUT_HISTORY_MAX) {
        size_t over = out->hist_len - OUTPUT_HISTORY_MAX;

        out->hist_head = (out->hist_head + over) % OUTPUT_HISTORY_MAX;
        out->hist_len = OUTPUT_HISTORY_MAX;
    }
}

/* Copies the last n bytes of the ring into dst. */
static void history_copy(const output_t *out, char *dst, size_t n)
{
    size_t start = (out->hist_head + out->hist_len - n) % OUTPUT_HISTORY_MAX;
    size_t first = OUTPUT_HISTORY_MAX - start;

    if (first > n)
        first = n;
    memcpy(dst, out->hist + start, first);
    memcpy(dst + first, out->hist, n - first);
}

/*
 * Returns where the copy of the whole ring may start: after the fragment
 * of a line whose beginning was dropped, else at the first character.
 */
static size_t history_whole_start(const output_t *out, const char *text,
                                  size_t n)
{
    const char *nl;

    if (out->hist_mid_line) {
        nl = memchr(text, '\n', n < PARTIAL_LINE_MAX ? n : PARTIAL_LINE_MAX);
        if (nl != NULL)
            return (size_t)(nl - text) + 1;
    }
    return text_cut_start(text, n, 0);
}

char *output_history(const output_t *out, size_t max, size_t *len)
{
    size_t n = out->hist_len, context = 0, skip;
    char *text;

    if (max > 0 && max < n) {
        /* Copy some older bytes too, so that a cut inside an escape
         * sequence that began before the window is recognised. */
        context = n - max < TEXT_ESCAPE_LOOKBACK ? n - max
                                                  : TEXT_ESCAPE_LOOKBACK;
        n = max + context;
    }
    text = xmalloc(n + 1);
    history_copy(out, text, n);
    if (n == out->hist_len && context == 0)
        skip = history_whole_start(out, text, n);
    else
        skip = text_cut_start(text, n, context);
    memmove(text, text + skip, n - skip);
    n -= skip;
    text[n] = '\0';
    if (len != NULL)
        *len = n;
    return text;
}

/* --- the stream --------------------------------------------------------- */

void output_append(output_t *out, const char *text, size_t len)
{
    if (len == 0 || out->closing)
        return;
    history_push(out, text, len);
    if (out->listener != NULL) {
        pending_push(&out->live, text, len);
        if (!uv_is_active((uv_handle_t *)&out->live_timer))
            uv_timer_start(&out->live_timer, output__live_timer_cb,
                           OUTPUT_LIVE_FLUSH_MS, 0);
    }
    if (out->log_path != NULL && !out->log_discard) {
        pending_push(&out->log, text, len);
        if (!uv_is_active((uv_handle_t *)&out->log_timer))
            uv_timer_start(&out->log_timer, output__log_timer_cb,
                           OUTPUT_LOG_FLUSH_MS, 0);
    }
}

void output_line(output_t *out, const char *level, const char *text)
{
    char *line = xasprintf("[%s] %s\n", level, text);

    output_append(out, line, strlen(line));
    free(line);
}

void output_flush_live(output_t *out)
{
    output_listener_fn listener = out->listener;
    size_t len = 0;
    char *text;

    uv_timer_stop(&out->live_timer);
    text = pending_take(&out->live, &len);
    if (text == NULL)
        return;
    if (listener != NULL)
        listener(text, len, out->listener_data);
    free(text);
}

static void output__live_timer_cb(uv_timer_t *timer)
{
    output_flush_live(timer->data);
}

/* --- decoding ----------------------------------------------------------- */

/* Length of a UTF-8 sequence from its first byte, 0 when invalid. */
static int utf8_seq_len(unsigned char c)
{
    if (c < 0x80)
        return 1;
    if (c >= 0xc2 && c <= 0xdf)
        return 2;
    if (c >= 0xe0 && c <= 0xef)
        return 3;
    if (c >= 0xf0 && c <= 0xf4)
        return 4;
    return 0;
}

/*
 * Returns 1 if s[0..n) is a valid sequence of length n, 0 if invalid, -1
 * if it is a valid prefix that needs more bytes (only when avail < n).
 * Overlong forms, surrogates and code points above U+10FFFF are invalid.
 */
static int utf8_check(const unsigned char *s, int n, size_t avail)
{
    int i;

    for (i = 1; i < n; i++) {
        if ((size_t)i >= avail)
            return -1;
        if ((s[i] & 0xc0) != 0x80)
            return 0;
        if (i == 1) {
            if (s[0] == 0xe0 && s[1] < 0xa0)
                return 0;
            if (s[0] == 0xed && s[1] > 0x9f)
                return 0;
            if (s[0] == 0xf0 && s[1] < 0x90)
                return 0;
            if (s[0] == 0xf4 && s[1] > 0x8f)
                return 0;
        }
    }
    return 1;
}

/*
 * Validates UTF-8 input: valid runs are appended as they are, each invalid
 * byte becomes U+FFFD, and an incomplete sequence at the end is kept in
 * the carry for the next read.
 */
static void decode_utf8(output_t *out, struct decoder *dec,
                        const char *bytes, size_t len)
{
    const unsigned char *s = (const unsigned char *)bytes;
    size_t i = 0, run = 0;
    int ok;

    while (i < len) {
        int n;

        if (s[i] < 0x80) {
            i++;
            continue;
        }
        n = utf8_seq_len(s[i]);
        ok = n == 0 ? 0 : utf8_check(s + i, n, len - i);
        if (ok == 1) {
            i += (size_t)n;
            continue;
        }
        output_append(out, bytes + run, i - run);
        if (ok == -1) {
            memcpy(dec->carry, bytes + i, len - i);
            dec->carry_len = len - i;
            return;
        }
        output_append(out, REPLACEMENT, 3);
        i++;
        run = i;
    }
    output_append(out, bytes + run, i - run);
}

/* Converts with iconv; see decode_utf8 for the handling of bad input. */
static void decode_iconv(output_t *out, struct decoder *dec,
                         const char *bytes, size_t len)
{
    char buf[DECODE_CHUNK];
    char *in = (char *)bytes;
    size_t in_left = len;

    while (in_left > 0) {
        char *dst = buf;
        size_t dst_left = sizeof(buf);
        size_t rc = iconv(dec->cd, &in, &in_left, &dst, &dst_left);
        int err = rc == (size_t)-1 ? errno : 0;

        output_append(out, buf, sizeof(buf) - dst_left);
        if (err == 0 || err == E2BIG)
            continue;
        if (err == EINVAL && in_left < CARRY_MAX) {
            memcpy(dec->carry, in, in_left);
            dec->carry_len = in_left;
            return;
        }
        /* EILSEQ, or an "incomplete" tail too long to be one character. */
        output_append(out, REPLACEMENT, 3);
        in++;
        in_left--;
    }
}

static void decode(output_t *out, struct decoder *dec, const char *bytes,
                   size_t len)
{
    if (dec->cd == (iconv_t)-1)
        decode_utf8(out, dec, bytes, len);
    else
        decode_iconv(out, dec, bytes, len);
}

void output_feed_stream(output_t *out, int stream, const char *bytes,
                        size_t len)
{
    struct decoder *dec = &out->dec[stream == OUTPUT_STDERR];

    /*
     * A character split across two reads: decode the carried bytes joined
     * with the first few bytes of this read. The decoder leaves in the
     * carry whatever end of the joined bytes it could not consume yet.
     */
    if (dec->carry_len > 0 && len > 0) {
        char joined[CARRY_MAX * 2];
        size_t before = dec->carry_len;
        size_t take = len < CARRY_MAX ? len : CARRY_MAX;

        memcpy(joined, dec->carry, before);
        memcpy(joined + before, bytes, take);
        dec->carry_len = 0;
        decode(out, dec, joined, before + take);
        if (dec->carry_len >= take)
            return; /* still incomplete: all of this read is carried */
        /* The carried tail lies inside this read: decode it from there. */
        bytes += take - dec->carry_len;
        len -= take - dec->carry_len;
        dec->carry_len = 0;
    }
    if (len > 0)
        decode(out, dec, bytes, len);
}

void output_feed(output_t *out, const char *bytes, size_t len)
{
    output_feed_stream(out, OUTPUT_STDOUT, bytes, len);
}

void output_feed_end(output_t *out)
{
    size_t i;

    for (i = 0; i < OUTPUT_STREAMS; i++) {
        struct decoder *dec = &out->dec[i];

        if (dec->carry_len > 0)
            output_append(out, REPLACEMENT, 3);
        dec->carry_len = 0;
        if (dec->cd != (iconv_t)-1)
            iconv(dec->cd, NULL, NULL, NULL, NULL);
    }
}

static int output__is_utf8(const char *name)
{
    return strcasecmp(name, "utf8") == 0 || strcasecmp(name, "utf-8") == 0;
}

int output_set_encoding(output_t *out, const char *encoding)
{
    iconv_t cd[OUTPUT_STREAMS];
    size_t i;

    if (out->encoding != NULL && strcasecmp(out->encoding, encoding) == 0)
        return 0;
    for (i = 0; i < OUTPUT_STREAMS; i++) {
        cd[i] = (iconv_t)-1;
        if (output__is_utf8(encoding))
            continue;
        cd[i] = iconv_open("UTF-8", encoding);
        if (cd[i] == (iconv_t)-1) {
            while (i-- > 0)
                iconv_close(cd[i]);
            return -EINVAL;
        }
    }
    output_feed_end(out);
    for (i = 0; i < OUTPUT_STREAMS; i++) {
        if (out->dec[i].cd != (iconv_t)-1)
            iconv_close(out->dec[i].cd);
        out->dec[i].cd = cd[i];
    }
    free(out->encoding);
    out->encoding = xstrdup(encoding);
    return 0;
}

/* --- log file ----------------------------------------------------------- */

static void output__maybe_free(output_t *out)
{
    size_t i;

    if (!out->closing || out->handles_open > 0 || out->fs_step != FS_IDLE)
        return;
    for (i = 0; i < OUTPUT_STREAMS; i++)
        if (out->dec[i].cd != (iconv_t)-1)
            iconv_close(out->dec[i].cd);
    pending_clear(&out->live);
    pending_clear(&out->log);
    free(out->encoding);
    free(out->hist);
    free(out->log_path);
    free(out);
}

/* Merges the old log's tail (fs_buf) in front of the current history. */
static void output__seed_history(output_t *out)
{
    size_t cur_len = out->hist_len, start = 0;
    char *cur = xmalloc(cur_len + 1);
    const char *nl;

    history_copy(out, cur, cur_len);
    /* A tail read from the middle of the file starts mid-line: skip it. */
    if (out->fs_offset > 0) {
        nl = memchr(out->fs_buf, '\n', out->fs_buf_len);
        start = nl != NULL ? (size_t)(nl - out->fs_buf) + 1 : out->fs_buf_len;
    }
    out->hist_head = 0;
    out->hist_len = 0;
    out->hist_mid_line = 0;
    history_push(out, out->fs_buf + start, out->fs_buf_len - start);
    history_push(out, cur, cur_len);
    free(cur);
}

static void output__log_failure(output_t *out, const char *op, ssize_t rc)
{
    if (out->log_failed)
        return;
    out->log_failed = 1;
    log_warn("output: %s(\"%s\") failed: %s (further failures of this log "
             "are not reported until a write succeeds)",
             op, out->log_path, uv_strerror((int)rc));
}

static void output__fs_done(output_t *out)
{
    out->fs_step = FS_IDLE;
    free(out->fs_buf);
    out->fs_buf = NULL;
    out->fs_buf_len = 0;
    out->fs_fd = -1;
    if (out->closing) {
        output__log_flush(out);
        output__maybe_free(out);
    } else if (out->log.len > 0 || out->log.dropped) {
        if (!uv_is_active((uv_handle_t *)&out->log_timer))
            uv_timer_start(&out->log_timer, output__log_timer_cb,
                           OUTPUT_LOG_FLUSH_MS, 0);
    }
}

static void output__fs_cb(uv_fs_t *req)
{
    output_t *out = req->data;
    ssize_t rc = req->result;

    uv_fs_req_cleanup(req);
    switch (out->fs_step) {
    case FS_LOAD_OPEN:
        if (rc < 0) {
            if (rc != UV_ENOENT)
                output__log_failure(out, "open", rc);
            out->log_loaded = 1;
            output__fs_done(out);
            return;
        }
        out->fs_fd = (uv_file)rc;
        break;
    case FS_LOAD_STAT:
        if (rc >= 0) {
            int64_t size = (int64_t)req->statbuf.st_size;
            int64_t n = size < OUTPUT_HISTORY_MAX ? size : OUTPUT_HISTORY_MAX;

            out->fs_offset = size - n;
            out->fs_buf = xmalloc((size_t)n + 1);
            out->fs_buf_len = (size_t)n;
        }
        break;
    case FS_LOAD_READ:
        if (rc >= 0 && (size_t)rc <= out->fs_buf_len) {
            out->fs_buf_len = (size_t)rc;
            output__seed_history(out);
        }
        break;
    case FS_LOG_OPEN:
        if (rc < 0) {
            output__log_failure(out, "open", rc);
            output__fs_done(out);
            return;
        }
        out->fs_fd = (uv_file)rc;
        break;
    case FS_LOG_STAT:
        if (rc < 0 || req->statbuf.st_size < OUTPUT_LOG_FILE_MAX)
            out->fs_step = FS_LOG_TRUNCATE; /* skip the truncation */
        break;
    case FS_LOG_WRITE:
        if (rc >= 0 && (size_t)rc < out->fs_buf_len) {
            /* A short write: write the rest. */
            memmove(out->fs_buf, out->fs_buf + rc, out->fs_buf_len - rc);
            out->fs_buf_len -= (size_t)rc;
            if (rc > 0) {
                output__fs_next(out);
                return;
            }
        }
        if (rc <= 0)
            output__log_failure(out, "write", rc < 0 ? rc : UV_EIO);
        else
            out->log_failed = 0;
        break;
    case FS_LOAD_CLOSE:
        out->log_loaded = 1;
        output__fs_done(out);
        return;
    case FS_LOG_CLOSE:
    case FS_UNLINK:
        output__fs_done(out);
        return;
    default:
        break;
    }
    out->fs_step++;
    output__fs_next(out);
}

/* Issues the request of the current step; see output__fs_cb. */
static void output__fs_next(output_t *out)
{
    uv_fs_t *req = &out->fs_req;
    uv_buf_t buf;
    int rc = 0;

    req->data = out;
    switch (out->fs_step) {
    case FS_LOAD_OPEN:
        rc = uv_fs_open(out->loop, req, out->log_path, O_RDONLY | O_CLOEXEC,
                        0, output__fs_cb);
        break;
    case FS_LOAD_STAT:
    case FS_LOG_STAT:
        rc = uv_fs_fstat(out->loop, req, out->fs_fd, output__fs_cb);
        break;
    case FS_LOAD_READ:
        if (out->fs_buf == NULL) {
            out->fs_step = FS_LOAD_CLOSE;
            output__fs_next(out);
            return;
        }
        buf = uv_buf_init(out->fs_buf, (unsigned int)out->fs_buf_len);
        rc = uv_fs_read(out->loop, req, out->fs_fd, &buf, 1, out->fs_offset,
                        output__fs_cb);
        break;
    case FS_LOAD_CLOSE:
    case FS_LOG_CLOSE:
        rc = uv_fs_close(out->loop, req, out->fs_fd, output__fs_cb);
        break;
    case FS_LOG_OPEN:
        rc = uv_fs_open(out->loop, req, out->log_path,
                        O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644,
                        output__fs_cb);
        break;
    case FS_LOG_TRUNCATE:
        rc = uv_fs_ftruncate(out->loop, req, out->fs_fd, 0, output__fs_cb);
        break;
    case FS_LOG_WRITE:
        buf = uv_buf_init(out->fs_buf, (unsigned int)out->fs_buf_len);
        rc = uv_fs_write(out->loop, req, out->fs_fd, &buf, 1, -1,
                         output__fs_cb);
        break;
    case FS_UNLINK:
        rc = uv_fs_unlink(out->loop, req, out->log_path, output__fs_cb);
        break;
    case FS_IDLE:
        return;
    }
    if (rc < 0) {
        /* Submission itself failed: give up on this round. */
        output__log_failure(out, "submit", rc);
        if (out->fs_fd >= 0)
            close(out->fs_fd);
        if (out->fs_step <= FS_LOAD_CLOSE)
            out->log_loaded = 1;
        output__fs_done(out);
    }
}

/*
 * Starts one append round (open, stat, truncate when too big, write,
 * close) with the pending log text. While a round or the initial tail read
 * runs, it does nothing, and output__fs_done starts the next round later.
 */
static void output__log_flush(output_t *out)
{
    if (out->fs_step != FS_IDLE || out->log_path == NULL)
        return;
    if (out->log_discard) {
        pending_clear(&out->log);
        if (out->closing) {
            out->log_discard = 0; /* unlink once */
            out->fs_step = FS_UNLINK;
            output__fs_next(out);
        }
        return;
    }
    if (!out->log_loaded)
        return;
    out->fs_buf = pending_take(&out->log, &out->fs_buf_len);
    if (out->fs_buf == NULL)
        return;
    out->fs_step = FS_LOG_OPEN;
    output__fs_next(out);
}

static void output__log_timer_cb(uv_timer_t *timer)
{
    output__log_flush(timer->data);
}

void output_discard_log(output_t *out)
{
    out->log_discard = 1;
    pending_clear(&out->log);
    uv_timer_stop(&out->log_timer);
}

/* --- life cycle --------------------------------------------------------- */

output_t *output_new(uv_loop_t *loop, const char *log_path,
                     const char *encoding, output_listener_fn listener,
                     void *data)
{
    output_t *out = xcalloc(1, sizeof(*out));
    size_t i;

    out->loop = loop;
    for (i = 0; i < OUTPUT_STREAMS; i++)
        out->dec[i].cd = (iconv_t)-1;
    out->fs_fd = -1;
    out->hist = xmalloc(OUTPUT_HISTORY_MAX);
    out->listener = listener;
    out->listener_data = data;
    out->live.max = OUTPUT_LIVE_PENDING_MAX;
    out->log.max = OUTPUT_LOG_PENDING_MAX;
    uv_timer_init(loop, &out->live_timer);
    uv_timer_init(loop, &out->log_timer);
    out->live_timer.data = out;
    out->log_timer.data = out;
    out->handles_open = 2;
    if (output_set_encoding(out, encoding) < 0) {
        char safe[64];

        log_warn("output: unknown output encoding \"%s\", decoding as UTF-8",
                 log_escape(safe, sizeof(safe), encoding, strlen(encoding)));
        output_set_encoding(out, "utf8");
    }
    if (log_path == NULL) {
        out->log_loaded = 1;
        return out;
    }
    out->log_path = xstrdup(log_path);
    {
        /* The folder usually exists; creating it is a one-time stat. */
        char *dir = xstrdup(log_path);

        fs_mkdir_p(dirname(dir));
        free(dir);
    }
    out->fs_step = FS_LOAD_OPEN;
    output__fs_next(out);
    return out;
}

static void output__close_cb(uv_handle_t *handle)
{
    output_t *out = handle->data;

    out->handles_open--;
    output__maybe_free(out);
}

void output_free(output_t *out)
{
    if (out == NULL)
        return;
    pending_clear(&out->live);
    out->listener = NULL;
    out->closing = 1;
    uv_close((uv_handle_t *)&out->live_timer, output__close_cb);
    uv_close((uv_handle_t *)&out->log_timer, output__close_cb);
    output__log_flush(out);
}
