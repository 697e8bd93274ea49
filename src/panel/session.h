#ifndef HEARTH_PANEL_SESSION_H
#define HEARTH_PANEL_SESSION_H

#include <stddef.h>
#include <stdint.h>

/*
 * Browser sessions of the panel, kept in memory only (as MCSManager's
 * panel, whose sessions all end when it restarts), the per-session request
 * rate limit, and the per-IP login ban.
 *
 * A session exists only once a user has logged in. Its id travels in the
 * cookie SESSION_COOKIE; its token (32 hex + 13-digit ms timestamp, the
 * format of MCSManager) must come back as ?token= on token-checked routes.
 * Sessions last SESSION_MAX_AGE_MS from login and are not extended by use.
 */

typedef struct session_table session_table_t;
typedef struct session session_t;

#define SESSION_COOKIE "hearth_session"
/* Lifetime of a session and of its cookie: 24 hours, as MCSManager. */
#define SESSION_MAX_AGE_MS (24 * 3600 * 1000LL)
/* Cap on live sessions; the oldest is dropped to make room. */
#define SESSION_MAX_COUNT 10000
/* Length of a session id: 64 hex characters (256 random bits). */
#define SESSION_ID_LEN 64
/* Length of a token: 32 hex characters and a 13-digit ms timestamp. */
#define SESSION_TOKEN_LEN 45

/* Rate limit: SESSION_RATE_MAX requests per rolling SESSION_RATE_WINDOW_MS. */
#define SESSION_RATE_MAX 8
#define SESSION_RATE_WINDOW_MS 1000

/*
 * Login ban: once an IP address has made more than
 * SESSION_LOGIN_MAX_FAILURES attempts without a success, its attempts are
 * rejected for SESSION_BAN_MS. As in MCSManager, the 12th attempt in a row
 * is the first one rejected.
 */
#define SESSION_LOGIN_MAX_FAILURES 10
#define SESSION_BAN_MS (10 * 60 * 1000LL)

/* Creates an empty table. */
session_table_t *session_table_new(void);
/* Frees the table and every session in it. NULL is accepted. */
void session_table_free(session_table_t *table);

/*
 * Creates a session for user_uuid with a new random id and token, valid
 * until now_ms + SESSION_MAX_AGE_MS. Returns it (owned by the table).
 */
session_t *session_create(session_table_t *table, const char *user_uuid,
                          int64_t now_ms);
/*
 * Returns the live session with this id, or NULL when the id is unknown or
 * the session expired (an expired session is removed).
 */
session_t *session_find(session_table_t *table, const char *id, int64_t now_ms);
/* Removes and frees one session. */
void session_destroy(session_table_t *table, session_t *session);
/* Removes every session of a user (deleted user, changed password).
 * Returns how many were removed. */
size_t session_drop_user(session_table_t *table, const char *user_uuid);
/* Number of live and not yet swept sessions. */
size_t session_count(const session_table_t *table);

/* Getters; the strings live as long as the session. */
const char *session_id(const session_t *session);
const char *session_token(const session_t *session);
const char *session_user_uuid(const session_t *session);
int64_t session_expires_ms(const session_t *session);

/*
 * Counts one request against the session's rate limit. Returns 1 when it
 * is allowed, 0 when SESSION_RATE_MAX requests were already allowed in the
 * last SESSION_RATE_WINDOW_MS (rejected requests are not counted).
 */
int session_rate_allow(session_t *session, int64_t now_ms);

enum session_login_verdict {
    SESSION_LOGIN_ALLOWED,   /* go on and check the password */
    SESSION_LOGIN_BANNED,    /* the address is banned */
    SESSION_LOGIN_BANNED_NOW /* banned, and this attempt started the ban */
};

/*
 * Records a login attempt from ip and decides whether it may proceed: after
 * more than SESSION_LOGIN_MAX_FAILURES attempts without a success, the
 * address is banned for SESSION_BAN_MS from the first rejected attempt.
 */
enum session_login_verdict
session_login_attempt(session_table_t *table, const char *ip, int64_t now_ms);
/* Forgets the attempts of ip after a successful login. */
void session_login_succeeded(session_table_t *table, const char *ip);

#endif
