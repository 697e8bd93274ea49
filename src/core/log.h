#ifndef HEARTH_CORE_LOG_H
#define HEARTH_CORE_LOG_H

#include <stddef.h>

enum log_level { LOG_DEBUG, LOG_INFO, LOG_WARN, LOG_ERROR };

/*
 * Logging to stderr: one line each, "2026-12-04T16:36:05.123Z LEVEL role:
 * message". The role ("daemon", "panel", "up") is set once per process.
 * Messages below the configured level (default INFO, or HEARTH_LOG_LEVEL=
 * debug|info|warn|error) are dropped.
 */
void log_init(const char *role);
void log_write(enum log_level level, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

/*
 * Copies untrusted text into out (size > 4), escaping control bytes and
 * quotes and truncating with "..." so that a log line stays one line.
 * Returns out.
 */
char *log_escape(char *out, size_t size, const char *text, size_t len);

#define log_debug(...) log_write(LOG_DEBUG, __VA_ARGS__)
#define log_info(...) log_write(LOG_INFO, __VA_ARGS__)
#define log_warn(...) log_write(LOG_WARN, __VA_ARGS__)
#define log_error(...) log_write(LOG_ERROR, __VA_ARGS__)

#endif
