#include "daemon/cmdline.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "core/util.h"

static void cmdline__push(cmdline_argv_t *out, char *token)
{
    out->argv = xrealloc(out->argv, sizeof(char *) * (size_t)(out->argc + 2));
    out->argv[out->argc++] = token;
    out->argv[out->argc] = NULL;
}

/* Replaces every "{quotes}" in token by '"', in place. */
static void cmdline__unquote_literal(char *token)
{
    static const char key[] = "{quotes}";
    char *src = token, *dst = token;

    while (*src != '\0') {
        if (strncmp(src, key, sizeof(key) - 1) == 0) {
            *dst++ = '"';
            src += sizeof(key) - 1;
        } else {
            *dst++ = *src++;
        }
    }
    *dst = '\0';
}

/* A token being built: text plus where its double-quote delimiters are. */
struct token {
    char *text;
    size_t len;
    int first_is_dquote; /* text[0] is an opening delimiter */
    int last_is_dquote;  /* text[len - 1] is a closing delimiter */
};

static void token_add(struct token *t, char c, int is_dquote)
{
    t->first_is_dquote = t->len == 0 ? is_dquote : t->first_is_dquote;
    t->last_is_dquote = is_dquote;
    t->text[t->len++] = c;
}

/*
 * Finishes a token: MCSManager removes double quotes only around a whole
 * token, then replaces {quotes}.
 */
static char *token_finish(struct token *t)
{
    const char *start = t->text;
    size_t len = t->len;
    char *out;

    if (len >= 2 && t->first_is_dquote && t->last_is_dquote) {
        start++;
        len -= 2;
    }
    out = xstrndup(start, len);
    cmdline__unquote_literal(out);
    t->len = 0;
    t->first_is_dquote = t->last_is_dquote = 0;
    return out;
}

static char *quote_error(char quote)
{
    if (quote == '"')
        return xstrdup("The start command has an unmatched double quote "
                       "(\"); close the quoted part or write {quotes} for "
                       "a literal double quote");
    return xstrdup("The start command has an unmatched single quote (');"
                   " close the quoted part or put the quote inside double "
                   "quotes");
}

/*
 * The double-quote rule is MCSManager's, so that its start commands keep
 * their meaning: a token ends at a space outside quotes, and the quote
 * characters stay in the token (-Dname="a b" keeps them) unless the whole
 * token is quoted. Hearth adds single quotes as in sh. A '...' segment
 * groups literally, with double quotes and backslashes kept, and loses its
 * single quotes, so that sh -c 'a; b' works. Only the space separates
 * tokens, and tabs are ordinary characters.
 */
int cmdline_split(const char *command, cmdline_argv_t *out, char **err)
{
    struct token t = {xmalloc(strlen(command) + 1), 0, 0, 0};
    const char *p;
    char quote = 0; /* the open quote character, or 0 */
    int in_token = 0;

    out->argc = 0;
    out->argv = NULL;
    for (p = command; *p != '\0'; p++) {
        if (quote == 0 && *p == ' ') {
            if (in_token)
                cmdline__push(out, token_finish(&t));
            in_token = 0;
            continue;
        }
        in_token = 1;
        if (quote == 0 && (*p == '"' || *p == '\'')) {
            quote = *p;
            if (quote == '"')
                token_add(&t, *p, 1);
            continue;
        }
        if (quote != 0 && *p == quote) {
            if (quote == '"')
                token_add(&t, *p, 1);
            quote = 0;
            continue;
        }
        token_add(&t, *p, 0);
    }
    if (in_token && quote == 0)
        cmdline__push(out, token_finish(&t));
    free(t.text);

    if (quote != 0) {
        cmdline_argv_clear(out);
        if (err != NULL)
            *err = quote_error(quote);
        return -EINVAL;
    }
    if (out->argc == 0) {
        if (err != NULL)
            *err = xstrdup("The start command is empty; set the command "
                           "that starts the instance in its settings");
        return -ENOENT;
    }
    return 0;
}

void cmdline_argv_clear(cmdline_argv_t *argv)
{
    int i;

    for (i = 0; i < argv->argc; i++)
        free(argv->argv[i]);
    free(argv->argv);
    argv->argv = NULL;
    argv->argc = 0;
}

static const cmdline_var_t *cmdline__match(const char *p,
                                           const cmdline_var_t *vars,
                                           size_t n, size_t *match_len)
{
    size_t i;

    for (i = 0; i < n; i++) {
        size_t len = strlen(vars[i].name);

        if (strncasecmp(p + 1, vars[i].name, len) == 0 && p[len + 1] == '}') {
            *match_len = len + 2;
            return &vars[i];
        }
    }
    return NULL;
}

char *cmdline_expand(const char *text, const cmdline_var_t *vars, size_t n)
{
    size_t cap = strlen(text) + 1, used = 0;
    char *out = xmalloc(cap);
    const char *p = text;

    while (*p != '\0') {
        const cmdline_var_t *var = NULL;
        const char *piece = p;
        size_t piece_len = 1, match_len = 1;

        if (*p == '{')
            var = cmdline__match(p, vars, n, &match_len);
        if (var != NULL) {
            piece = var->value;
            piece_len = strlen(var->value);
        }
        if (used + piece_len + 1 > cap) {
            cap = (used + piece_len + 1) * 2;
            out = xrealloc(out, cap);
        }
        memcpy(out + used, piece, piece_len);
        used += piece_len;
        p += match_len;
    }
    out[used] = '\0';
    return out;
}
