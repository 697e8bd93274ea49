#ifndef HEARTH_PANEL_ACCESS_H
#define HEARTH_PANEL_ACCESS_H

#include <limits.h>

/*
 * Authentication and authorization decisions of the panel: MCSManager's
 * permission middleware and its instance-ownership guard, as pure
 * functions over what the caller has already looked up (the key's user,
 * the session, the grant). Nothing here touches the network or the store.
 *
 * Every refusal keeps MCSManager's status code and MCSManager's text as the
 * first part of the message, so that scripts matching that text still
 * work, and then states which rule failed and how to fix it. Messages never
 * contain the API key or the session token.
 */

/* Route level "anyone, logged in or not" (MCSManager's level null). */
#define ACCESS_LEVEL_ANY INT_MIN
/* Permission of an administrator (MCSManager's ROLE.ADMIN). */
#define ACCESS_LEVEL_ADMIN 10

/* MCSManager's refusal texts, which every message starts with. */
#define ACCESS_TEXT_PERMISSION "Insufficient Permissions"
#define ACCESS_TEXT_TOKEN "Token validation failed, access denied"
#define ACCESS_TEXT_AJAX                                                       \
    "Unable to find the request header: x-requested-with: xmlhttprequest"
#define ACCESS_TEXT_KEY "Incorrect key"
#define ACCESS_TEXT_KEY_DISABLED "API key creation feature is not enabled"
#define ACCESS_TEXT_INSTANCE                                                   \
    "[Forbidden] [Middleware] Incorrect parameters or unauthorized access "    \
    "to the instance."

/* Per-route configuration, MCSManager's {level, token, speedLimit}. */
typedef struct access_route {
    int level;          /* ACCESS_LEVEL_ANY, 1 (user) or 10 (admin) */
    int token;          /* session requests need X-Requested-With + ?token= */
    int speed_limit;    /* the per-session rate limit applies (if level < 10) */
    int instance_guard; /* ownership of ?daemonId + ?uuid is checked first */
} access_route_t;

/* The identity of a caller, borrowed from a store record. */
typedef struct access_user {
    const char *uuid;
    const char *name;
    int permission;
} access_user_t;

/* Source of the API key of a request. */
enum access_key_source {
    ACCESS_KEY_NONE,
    ACCESS_KEY_QUERY,  /* ?apikey= */
    ACCESS_KEY_HEADER, /* X-Request-Api-Key */
    ACCESS_KEY_BEARER  /* Authorization: Bearer (a Hearth addition) */
};

/* The panel setting enableApiKey (same values as store_api_key_mode). */
enum access_key_mode {
    ACCESS_KEYS_OFF = 0,
    ACCESS_KEYS_ON = 1,
    ACCESS_KEYS_ONLY_ADMIN = 2
};

/* Everything the decision depends on; pointers are borrowed. */
typedef struct access_input {
    const access_route_t *route;
    const char *method; /* for messages: "GET" */
    const char *path;   /* for messages: "/api/overview" */
    /* API key: NULL or "" when the request has none. */
    const char *key;
    enum access_key_source key_source;
    enum access_key_mode key_mode;
    /* The user holding the key; NULL when no user does, or when the key is
     * malformed (the caller need not look those up). */
    const access_user_t *key_user;
    /* Session: cookie_sent is 1 if the request carried a session cookie.
     * session_token is NULL when that cookie names no live session, and
     * session_user is NULL when there is no session or its user is gone. */
    int cookie_sent;
    const char *session_token;
    const access_user_t *session_user;
    int ajax;                /* X-Requested-With: XMLHttpRequest */
    const char *query_token; /* ?token=, NULL when absent */
    /* Optional sentence about a likely mistake in the URL, appended when
     * no credentials were found or the key is malformed. */
    const char *hint;
} access_input_t;

enum access_reason {
    ACCESS_OK,
    ACCESS_NO_CREDENTIALS,    /* neither an API key nor a session cookie */
    ACCESS_SESSION_EXPIRED,   /* cookie names no live session */
    ACCESS_SESSION_USER_GONE, /* the session's user was deleted */
    ACCESS_AJAX_MISSING,      /* session request without X-Requested-With */
    ACCESS_TOKEN_MISSING,     /* session request without ?token= */
    ACCESS_TOKEN_WRONG,       /* ?token= is not the session's token */
    ACCESS_KEYS_DISABLED,     /* enableApiKey is false */
    ACCESS_KEYS_ADMIN_ONLY,   /* enableApiKey is "ONLY_ADMIN", user is not */
    ACCESS_KEY_MALFORMED,     /* characters outside [A-Za-z0-9_-] */
    ACCESS_KEY_UNKNOWN,       /* no user has the key */
    ACCESS_USER_BANNED,       /* permission below 0 */
    ACCESS_LEVEL_TOO_LOW,     /* permission below the route's level */
    ACCESS_INSTANCE_PARAMS,   /* instance route without daemonId or uuid */
    ACCESS_NO_INSTANCE        /* user was not granted that instance */
};

typedef struct access_result {
    enum access_reason reason;
    int status;            /* 0 when allowed, else the HTTP status (403) */
    const char *mcsm_text; /* MCSManager's refusal text, NULL when allowed */
    /* The caller's identity: the key's user on the key path, else the
     * session's user; NULL for anonymous callers. Set even on refusals. */
    const access_user_t *user;
    int via_key; /* 1 when the identity came from an API key */
} access_result_t;

/* Returns 1 if key is non-empty and only contains [A-Za-z0-9_-]. */
int access_key_wellformed(const char *key);

/*
 * Applies MCSManager's permission algorithm (API key path, then token and
 * X-Requested-With check, then level check) and fills out. Returns
 * out->reason, ACCESS_OK when the request may proceed.
 */
enum access_reason access_check(const access_input_t *in, access_result_t *out);

/*
 * MCSManager's instance-ownership guard, which runs before the permission
 * check on the /api/protected_instance/ routes. An administrator passes and
 * anyone else needs a grant of exactly (daemon_id, instance_uuid), so owns
 * is the result of that grant lookup for the caller. On refusal the reason is
 * the permission check's reason when that check fails too (no key, unknown
 * key...), else the missing parameters or the missing grant. Returns
 * out->reason.
 */
enum access_reason access_check_instance(const access_input_t *in,
                                         const char *daemon_id,
                                         const char *instance_uuid, int owns,
                                         access_result_t *out);

/*
 * Builds the refusal message for a result of access_check or
 * access_check_instance: MCSManager's text, " - ", then what failed and how
 * to fix it. daemon_id and instance_uuid are only used for
 * ACCESS_NO_INSTANCE (may be NULL otherwise). Returns a new string that
 * the caller frees.
 */
char *access_message(const access_input_t *in, const access_result_t *result,
                     const char *daemon_id, const char *instance_uuid);

#endif
