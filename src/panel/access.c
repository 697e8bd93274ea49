#include "panel/access.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/util.h"

int access_key_wellformed(const char *key)
{
    const char *p;

    if (key == NULL || *key == '\0')
        return 0;
    for (p = key; *p; p++) {
        char c = *p;

        if (!((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') ||
              (c >= '0' && c <= '9') || c == '_' || c == '-'))
            return 0;
    }
    return 1;
}

static int access__has_key(const access_input_t *in)
{
    return in->key != NULL && in->key[0] != '\0';
}

static enum access_reason access__refuse(access_result_t *out,
                                         enum access_reason reason,
                                         const char *mcsm_text)
{
    out->reason = reason;
    out->status = 403;
    out->mcsm_text = mcsm_text;
    return reason;
}

/* The reason to give when a session was needed: none sent, a dead one, or
 * live_reason when the session itself is fine. */
static enum access_reason access__session_reason(const access_input_t *in,
                                                 enum access_reason live)
{
    if (in->session_token == NULL)
        return in->cookie_sent ? ACCESS_SESSION_EXPIRED : ACCESS_NO_CREDENTIALS;
    return live;
}

static int access__tokens_match(const char *sent, const char *expected)
{
    /* MCSManager compares with !==: an absent ?token= matches a request
     * without a session, whose token is undefined too. */
    if (sent == NULL || expected == NULL)
        return sent == expected;
    return util_secure_equal(sent, expected);
}

static enum access_reason access__check_key(const access_input_t *in,
                                            access_result_t *out)
{
    const access_user_t *user = in->key_user;
    int level = in->route->level == ACCESS_LEVEL_ANY ? 0 : in->route->level;

    out->via_key = 1;
    out->user = user;
    if (in->key_mode == ACCESS_KEYS_OFF)
        return access__refuse(out, ACCESS_KEYS_DISABLED,
                              ACCESS_TEXT_KEY_DISABLED);
    if (!access_key_wellformed(in->key))
        return access__refuse(out, ACCESS_KEY_MALFORMED, ACCESS_TEXT_KEY);
    if (user == NULL)
        return access__refuse(out, ACCESS_KEY_UNKNOWN, ACCESS_TEXT_KEY);
    if (in->key_mode == ACCESS_KEYS_ONLY_ADMIN &&
        user->permission < ACCESS_LEVEL_ADMIN)
        return access__refuse(out, ACCESS_KEYS_ADMIN_ONLY,
                              ACCESS_TEXT_KEY_DISABLED);
    if (user->permission >= level)
        return ACCESS_OK;
    return access__refuse(
        out, user->permission < 0 ? ACCESS_USER_BANNED : ACCESS_LEVEL_TOO_LOW,
        ACCESS_TEXT_KEY);
}

enum access_reason access_check(const access_input_t *in, access_result_t *out)
{
    const access_user_t *user = in->session_user;
    enum access_reason reason;

    memset(out, 0, sizeof(*out));
    if (access__has_key(in))
        return access__check_key(in, out);

    out->user = user;
    if (in->route->token) {
        if (!in->ajax)
            return access__refuse(
                out, access__session_reason(in, ACCESS_AJAX_MISSING),
                ACCESS_TEXT_AJAX);
        if (!access__tokens_match(in->query_token, in->session_token)) {
            reason = in->query_token == NULL ? ACCESS_TOKEN_MISSING
                                             : ACCESS_TOKEN_WRONG;
            return access__refuse(out, access__session_reason(in, reason),
                                  ACCESS_TEXT_TOKEN);
        }
    }
    if (in->route->level == ACCESS_LEVEL_ANY)
        return ACCESS_OK;
    if (user == NULL)
        return access__refuse(
            out, access__session_reason(in, ACCESS_SESSION_USER_GONE),
            ACCESS_TEXT_PERMISSION);
    if (user->permission < 0)
        return access__refuse(out, ACCESS_USER_BANNED, ACCESS_TEXT_PERMISSION);
    if (user->permission >= in->route->level)
        return ACCESS_OK;
    return access__refuse(out, ACCESS_LEVEL_TOO_LOW, ACCESS_TEXT_PERMISSION);
}

enum access_reason access_check_instance(const access_input_t *in,
                                         const char *daemon_id,
                                         const char *instance_uuid, int owns,
                                         access_result_t *out)
{
    const access_user_t *who;
    access_result_t perm;

    memset(out, 0, sizeof(*out));
    out->via_key = access__has_key(in);
    who = out->via_key ? in->key_user : in->session_user;
    out->user = who;
    if (who != NULL && (who->permission >= ACCESS_LEVEL_ADMIN || owns))
        return ACCESS_OK;

    /* Say why, starting from the most basic failure: without a valid
     * identity, a missing grant is not the caller's real problem. */
    if (access_check(in, &perm) != ACCESS_OK)
        return access__refuse(out, perm.reason, ACCESS_TEXT_INSTANCE);
    if (daemon_id == NULL || daemon_id[0] == '\0' || instance_uuid == NULL ||
        instance_uuid[0] == '\0')
        return access__refuse(out, ACCESS_INSTANCE_PARAMS,
                              ACCESS_TEXT_INSTANCE);
    return access__refuse(out, ACCESS_NO_INSTANCE, ACCESS_TEXT_INSTANCE);
}

/* ---- messages ---- */

static const char *access__source(enum access_key_source source)
{
    switch (source) {
    case ACCESS_KEY_HEADER:
        return "the header X-Request-Api-Key";
    case ACCESS_KEY_BEARER:
        return "the header Authorization: Bearer";
    default:
        return "the query parameter apikey";
    }
}

static const char *access__level_words(int level)
{
    if (level >= ACCESS_LEVEL_ADMIN)
        return "an administrator (permission 10)";
    if (level == ACCESS_LEVEL_ANY || level <= 0)
        return "a user who is not banned (permission 0 or higher)";
    return "a logged-in user (permission 1 or higher)";
}

/* "the API key belongs to user 'x' (permission 1)" or the session form. */
static char *access__who(const access_result_t *r)
{
    const char *name = r->user != NULL ? r->user->name : "?";
    int permission = r->user != NULL ? r->user->permission : 0;

    if (r->via_key)
        return xasprintf("the API key belongs to user '%s' (permission %d)",
                         name, permission);
    return xasprintf("this session is logged in as user '%s' "
                     "(permission %d)",
                     name, permission);
}

/* Shortens untrusted identifiers echoed back in a message. */
static const char *access__clip(const char *s, char *buf, size_t size)
{
    if (s == NULL)
        return "";
    if (strlen(s) < size)
        return s;
    snprintf(buf, size, "%.*s...", (int)size - 4, s);
    return buf;
}

static char *access__explain(const access_input_t *in, const access_result_t *r,
                             const char *daemon_id, const char *instance_uuid)
{
    char dbuf[72], ibuf[72];
    char *who, *text;

    switch (r->reason) {
    case ACCESS_NO_CREDENTIALS:
        return xstrdup(
            "no API key or session was found in this request. Send an API "
            "key as the query parameter apikey=KEY, as the header "
            "X-Request-Api-Key: KEY or as the header Authorization: Bearer "
            "KEY, or log in with POST /api/auth/login and send the session "
            "cookie with X-Requested-With: XMLHttpRequest and ?token=TOKEN.");
    case ACCESS_SESSION_EXPIRED:
        return xstrdup(
            "the session cookie names no live session: sessions end 24 hours "
            "after login, at logout and when the panel restarts. Log in "
            "again with POST /api/auth/login, or use an API key.");
    case ACCESS_SESSION_USER_GONE:
        return xstrdup("the user of this session has been deleted. Log in "
                       "again as an existing user.");
    case ACCESS_AJAX_MISSING:
        return xstrdup(
            "requests authenticated by a session cookie must send the header "
            "X-Requested-With: XMLHttpRequest together with ?token=TOKEN "
            "(the token that POST /api/auth/login returned). Scripts can "
            "use an API key instead, which needs neither.");
    case ACCESS_TOKEN_MISSING:
        return xstrdup(
            "the query parameter token is missing. Requests authenticated by "
            "a session cookie must send ?token=TOKEN with the token that POST "
            "/api/auth/login or GET /api/auth/token returned.");
    case ACCESS_TOKEN_WRONG:
        return xstrdup(
            "the query parameter token does not match this session. Send the "
            "token of this session's login (GET /api/auth/token returns it "
            "again); every login issues a new token.");
    case ACCESS_KEYS_DISABLED:
        return xstrdup(
            "API keys are disabled on this panel. An administrator can "
            "enable them with PUT /api/overview/setting "
            "{\"enableApiKey\":true}.");
    case ACCESS_KEYS_ADMIN_ONLY:
        who = access__who(r);
        text = xasprintf(
            "API keys are enabled for administrators only (enableApiKey is "
            "\"ONLY_ADMIN\") and %s. An administrator can enable every "
            "user's key with PUT /api/overview/setting "
            "{\"enableApiKey\":true}.",
            who);
        free(who);
        return text;
    case ACCESS_KEY_MALFORMED:
        return xasprintf(
            "the API key sent in %s contains characters other than A-Z, "
            "a-z, 0-9, '_' and '-', so it cannot be a key. Check that the "
            "whole key was copied and that query parameters are separated "
            "by '&'.",
            access__source(in->key_source));
    case ACCESS_KEY_UNKNOWN:
        return xasprintf(
            "no user has the API key sent in %s. Check that the whole key "
            "was copied; a key stops working when its user creates a new one "
            "with PUT /api/auth/api.",
            access__source(in->key_source));
    case ACCESS_USER_BANNED:
        who = access__who(r);
        text = xasprintf("the user is banned: %s. An administrator can "
                         "change the permission with PUT /api/auth.",
                         who);
        free(who);
        return text;
    case ACCESS_LEVEL_TOO_LOW:
        who = access__who(r);
        text = xasprintf(
            "insufficient permission: %s %s needs %s, and %s. Use the "
            "credentials of such a user; ordinary users control their "
            "granted instances through /api/protected_instance/* and read "
            "their own profile with GET /api/auth/.",
            in->method, in->path, access__level_words(in->route->level), who);
        free(who);
        return text;
    case ACCESS_INSTANCE_PARAMS:
        return xstrdup("the query parameters daemonId (or its aliases "
                       "remote_uuid and daemon_id) and uuid name the "
                       "instance and are both required.");
    case ACCESS_NO_INSTANCE:
        return xasprintf(
            "user '%s' has no access to instance %s on node %s. An "
            "administrator can grant it with PUT /api/auth {\"uuid\":"
            "\"%s\",\"config\":{\"instances\":[...,{\"instanceUuid\":\"%s\","
            "\"daemonId\":\"%s\"}]}}, which replaces the user's whole list.",
            r->user != NULL ? r->user->name : "?",
            access__clip(instance_uuid, ibuf, sizeof(ibuf)),
            access__clip(daemon_id, dbuf, sizeof(dbuf)),
            r->user != NULL ? r->user->uuid : "USER_UUID",
            access__clip(instance_uuid, ibuf, sizeof(ibuf)),
            access__clip(daemon_id, dbuf, sizeof(dbuf)));
    case ACCESS_OK:
        break;
    }
    return xstrdup("access granted.");
}

char *access_message(const access_input_t *in, const access_result_t *result,
                     const char *daemon_id, const char *instance_uuid)
{
    char *explain = access__explain(in, result, daemon_id, instance_uuid);
    const char *hint = "";
    char *text;

    if (in->hint != NULL && (result->reason == ACCESS_NO_CREDENTIALS ||
                             result->reason == ACCESS_KEY_MALFORMED ||
                             result->reason == ACCESS_KEY_UNKNOWN))
        hint = in->hint;
    text = xasprintf("%s - %s%s%s", result->mcsm_text ? result->mcsm_text : "",
                     explain, hint[0] ? " " : "", hint);
    free(explain);
    return text;
}
