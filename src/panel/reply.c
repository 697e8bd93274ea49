#include "panel/reply.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/util.h"

const char *reply_content_type(enum reply_type type)
{
    if (type == REPLY_TEXT)
        return "text/plain; charset=utf-8";
    return "application/json; charset=utf-8";
}

char *reply_format(int status, const char *data_json, size_t len,
                   int64_t time_ms, size_t *out_len)
{
    char head[32], tail[40];
    int head_len, tail_len;
    char *out;

    head_len = snprintf(head, sizeof(head), "{\"status\":%d,\"data\":", status);
    tail_len = snprintf(tail, sizeof(tail), ",\"time\":%" PRId64 "}", time_ms);
    out = xmalloc((size_t)head_len + len + (size_t)tail_len + 1);
    memcpy(out, head, (size_t)head_len);
    memcpy(out + head_len, data_json, len);
    memcpy(out + head_len + len, tail, (size_t)tail_len + 1);
    *out_len = (size_t)head_len + len + (size_t)tail_len;
    return out;
}

static void reply__reserve(char **buf, size_t *len, size_t *cap, size_t more)
{
    if (*len + more + 1 <= *cap)
        return;
    while (*len + more + 1 > *cap)
        *cap = *cap ? *cap * 2 : 64;
    *buf = xrealloc(*buf, *cap);
}

/* Length of the valid UTF-8 sequence at s (1-4), or 0 if it is invalid. */
static size_t reply__utf8_len(const unsigned char *s, size_t avail)
{
    size_t n, i;
    uint32_t cp;

    if (s[0] < 0x80)
        return 1;
    if (s[0] >= 0xc2 && s[0] <= 0xdf)
        n = 2, cp = s[0] & 0x1f;
    else if (s[0] >= 0xe0 && s[0] <= 0xef)
        n = 3, cp = s[0] & 0x0f;
    else if (s[0] >= 0xf0 && s[0] <= 0xf4)
        n = 4, cp = s[0] & 0x07;
    else
        return 0;
    if (n > avail)
        return 0;
    for (i = 1; i < n; i++) {
        if ((s[i] & 0xc0) != 0x80)
            return 0;
        cp = (cp << 6) | (s[i] & 0x3f);
    }
    /* Overlong forms, UTF-16 surrogates and values past U+10FFFF. */
    if ((n == 3 && cp < 0x800) || (n == 4 && cp < 0x10000) ||
        (cp >= 0xd800 && cp <= 0xdfff) || cp > 0x10ffff)
        return 0;
    return n;
}

void reply_append_string(char **buf, size_t *len, size_t *cap, const char *text,
                         size_t text_len)
{
    static const char hex[] = "0123456789abcdef";
    const unsigned char *s = (const unsigned char *)text;
    size_t i = 0, n;

    reply__reserve(buf, len, cap, text_len + 2);
    (*buf)[(*len)++] = '"';
    while (i < text_len) {
        unsigned char c = s[i];

        reply__reserve(buf, len, cap, 8);
        if (c == '"' || c == '\\') {
            (*buf)[(*len)++] = '\\';
            (*buf)[(*len)++] = (char)c;
            i++;
        } else if (c < 0x20) {
            const char *esc = NULL;

            switch (c) {
            case '\b':
                esc = "\\b";
                break;
            case '\f':
                esc = "\\f";
                break;
            case '\n':
                esc = "\\n";
                break;
            case '\r':
                esc = "\\r";
                break;
            case '\t':
                esc = "\\t";
                break;
            }
            if (esc != NULL) {
                memcpy(*buf + *len, esc, 2);
                *len += 2;
            } else {
                memcpy(*buf + *len, "\\u00", 4);
                (*buf)[*len + 4] = hex[c >> 4];
                (*buf)[*len + 5] = hex[c & 15];
                *len += 6;
            }
            i++;
        } else if ((n = reply__utf8_len(s + i, text_len - i)) > 0) {
            memcpy(*buf + *len, s + i, n);
            *len += n;
            i += n;
        } else {
            memcpy(*buf + *len, "\\ufffd", 6);
            *len += 6;
            i++;
        }
    }
    reply__reserve(buf, len, cap, 1);
    (*buf)[(*len)++] = '"';
    (*buf)[*len] = '\0';
}

void reply_raw(http_request_t *req, int status, enum reply_type type,
               const char *data_json, size_t len)
{
    char stack[2048];
    char head[32], tail[40];
    int head_len, tail_len;
    size_t total;
    char *out;

    /* The hot routes send small bodies, so keep them off the heap. */
    head_len = snprintf(head, sizeof(head), "{\"status\":%d,\"data\":", status);
    tail_len =
        snprintf(tail, sizeof(tail), ",\"time\":%" PRId64 "}", util_now_ms());
    total = (size_t)head_len + len + (size_t)tail_len;
    out = total < sizeof(stack) ? stack : xmalloc(total + 1);
    memcpy(out, head, (size_t)head_len);
    memcpy(out + head_len, data_json, len);
    memcpy(out + head_len + len, tail, (size_t)tail_len);
    http_respond(req, status, reply_content_type(type), out, total);
    if (out != stack)
        free(out);
}

void reply_json(http_request_t *req, int status, const json_t *data)
{
    enum reply_type type;
    char *text;

    if (data == NULL || json_is_null(data)) {
        reply_raw(req, status, REPLY_TEXT, "null", 4);
        return;
    }
    type = json_is_string(data) ? REPLY_TEXT : REPLY_JSON;
    text = json_dumps(data, JSON_COMPACT | JSON_ENCODE_ANY);
    if (text == NULL) {
        /* Only reachable with a NaN or infinite real, which the handlers
         * never build. Respond as MCSManager does for an empty body. */
        reply_raw(req, 500, REPLY_TEXT, "null", 4);
        return;
    }
    reply_raw(req, status, type, text, strlen(text));
    free(text);
}

static void reply__string(http_request_t *req, int status, enum reply_type type,
                          const char *text)
{
    char *buf = NULL;
    size_t len = 0, cap = 0;

    reply_append_string(&buf, &len, &cap, text, strlen(text));
    reply_raw(req, status, type, buf, len);
    free(buf);
}

void reply_text(http_request_t *req, int status, const char *text)
{
    reply__string(req, status, REPLY_TEXT, text);
}

void reply_error(http_request_t *req, int status, const char *message)
{
    reply__string(req, status, REPLY_JSON, message);
}

void reply_not_found(http_request_t *req)
{
    static const char data[] = "\"[404] Not Found\"";

    reply_raw(req, 404, REPLY_TEXT, data, sizeof(data) - 1);
}
