#include "core/log.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

static const char *log_role = "hearth";
static enum log_level log_min = LOG_INFO;

void log_init(const char *role)
{
    const char *env = getenv("HEARTH_LOG_LEVEL");

    log_role = role;
    if (env == NULL)
        return;
    if (strcasecmp(env, "debug") == 0)
        log_min = LOG_DEBUG;
    else if (strcasecmp(env, "warn") == 0)
        log_min = LOG_WARN;
    else if (strcasecmp(env, "error") == 0)
        log_min = LOG_ERROR;
}

void log_write(enum log_level level, const char *fmt, ...)
{
    static const char *names[] = {"DEBUG", "INFO", "WARN", "ERROR"};
    char stamp[32], line[2048];
    struct timespec ts;
    struct tm tm;
    va_list ap;

    if (level < log_min)
        return;
    clock_gettime(CLOCK_REALTIME, &ts);
    gmtime_r(&ts.tv_sec, &tm);
    strftime(stamp, sizeof(stamp), "%Y-%m-%dT%H:%M:%S", &tm);
    va_start(ap, fmt);
    vsnprintf(line, sizeof(line), fmt, ap);
    va_end(ap);
    /* One fprintf call so that lines of two processes sharing a terminal
     * do not interleave mid-line. */
    fprintf(stderr, "%s.%03ldZ %s %s: %s\n", stamp, ts.tv_nsec / 1000000,
            names[level], log_role, line);
}

char *log_escape(char *out, size_t size, const char *text, size_t len)
{
    size_t o = 0, i;

    for (i = 0; i < len; i++) {
        unsigned char c = (unsigned char)text[i];

        if (o + 8 >= size) {
            memcpy(out + o, "...", 3);
            o += 3;
            break;
        }
        if (c < 0x20 || c == 0x7f || c == '"' || c == '\\')
            o += (size_t)snprintf(out + o, size - o, "\\x%02x", c);
        else
            out[o++] = (char)c;
    }
    out[o] = '\0';
    return out;
}
