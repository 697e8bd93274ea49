#ifndef HEARTH_DAEMON_CMDLINE_H
#define HEARTH_DAEMON_CMDLINE_H

#include <stddef.h>

/*
 * Start-command splitting without a shell. MCSManager's rule: tokens are
 * separated by spaces; a double-quoted segment may contain spaces; the
 * double quotes are removed only when they enclose the whole token; an
 * unmatched quote is an error; the literal text {quotes} inside a token
 * becomes a double quote after splitting.
 *
 * Hearth adds one rule: a single-quoted segment groups as in sh and loses
 * its quotes, so sh -c 'a; b' is three arguments. MCSManager splits it at
 * every space. Placeholders
 * ({mcsm_...}) are expanded before splitting by the caller.
 */

/* Argument vector produced by cmdline_split: argv[argc] is NULL. */
typedef struct cmdline_argv {
    int argc;
    char **argv;
} cmdline_argv_t;

/*
 * Splits command into *out. Returns 0, -EINVAL for an unmatched quote or
 * -ENOENT when the command has no token. On error *err (if err is not NULL)
 * receives a message naming the problem (caller frees); *out is left
 * empty. Release a successful result with cmdline_argv_clear.
 */
int cmdline_split(const char *command, cmdline_argv_t *out, char **err);

/* Frees the strings of argv and resets it to empty. */
void cmdline_argv_clear(cmdline_argv_t *argv);

/* A placeholder name (without braces, lower case) and its value. */
typedef struct cmdline_var {
    const char *name;
    const char *value;
} cmdline_var_t;

/*
 * Returns a new string (caller frees) in which every "{name}" of vars,
 * matched case-insensitively, is replaced by its value. Unknown
 * placeholders are kept as they are.
 */
char *cmdline_expand(const char *text, const cmdline_var_t *vars, size_t n);

#endif
