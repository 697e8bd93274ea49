#ifndef HEARTH_CORE_UTIL_H
#define HEARTH_CORE_UTIL_H

#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

/*
 * Memory wrappers. Every allocation in Hearth goes through these: on
 * exhaustion they log the requested size and abort, so callers never test
 * for NULL.
 */
void *xmalloc(size_t size);
void *xcalloc(size_t count, size_t size);
void *xrealloc(void *ptr, size_t size);
char *xstrdup(const char *s);
char *xstrndup(const char *s, size_t n);
/* Formats into a new string that the caller frees. */
char *xasprintf(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/* xasprintf() with a va_list. */
char *xvasprintf(const char *fmt, va_list ap)
    __attribute__((format(printf, 1, 0)));

/* Milliseconds since the Unix epoch (wall clock). */
int64_t util_now_ms(void);

/* Compares two byte strings in time independent of where they differ. */
int util_secure_equal(const char *a, const char *b);

#define ARRAY_SIZE(a) (sizeof(a) / sizeof((a)[0]))

#endif
