#include "panel/session.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <sodium.h>

#include "core/ident.h"
#include "core/util.h"

#define SESSION_BUCKETS 1024
/* Cap on remembered login addresses; the least recently seen unbanned
 * address is forgotten first. */
#define SESSION_MAX_ADDRESSES 4096

struct session {
    char id[SESSION_ID_LEN + 1];
    char token[SESSION_TOKEN_LEN + 1];
    char user_uuid[33];
    int64_t expires_ms;
    /* Times of the last allowed requests, a ring of SESSION_RATE_MAX. */
    int64_t recent[SESSION_RATE_MAX];
    unsigned recent_next;
    struct session *bucket_next;
    /* Creation order, which is also expiry order. */
    struct session *older, *newer;
};

typedef struct session_address {
    char ip[64];
    int attempts;
    int64_t banned_until; /* 0 when not banned */
    int64_t last_seen;
} session_address_t;

struct session_table {
    session_t *buckets[SESSION_BUCKETS];
    session_t *oldest, *newest;
    size_t count;
    session_address_t *addresses;
    size_t address_count;
};

static unsigned session__hash(const char *id)
{
    unsigned h = 2166136261u;

    while (*id)
        h = (h ^ (unsigned char)*id++) * 16777619u;
    return h % SESSION_BUCKETS;
}

session_table_t *session_table_new(void)
{
    return xcalloc(1, sizeof(session_table_t));
}

void session_table_free(session_table_t *table)
{
    session_t *s, *next;

    if (table == NULL)
        return;
    for (s = table->oldest; s != NULL; s = next) {
        next = s->newer;
        free(s);
    }
    free(table->addresses);
    free(table);
}

static void session__unlink(session_table_t *table, session_t *session)
{
    session_t **p = &table->buckets[session__hash(session->id)];

    while (*p != session)
        p = &(*p)->bucket_next;
    *p = session->bucket_next;
    if (session->older != NULL)
        session->older->newer = session->newer;
    else
        table->oldest = session->newer;
    if (session->newer != NULL)
        session->newer->older = session->older;
    else
        table->newest = session->older;
    table->count--;
}

void session_destroy(session_table_t *table, session_t *session)
{
    session__unlink(table, session);
    sodium_memzero(session, sizeof(*session));
    free(session);
}

/* Drops sessions past their expiry; they sit at the old end of the list. */
static void session__sweep(session_table_t *table, int64_t now_ms)
{
    while (table->oldest != NULL && table->oldest->expires_ms <= now_ms)
        session_destroy(table, table->oldest);
}

session_t *session_create(session_table_t *table, const char *user_uuid,
                          int64_t now_ms)
{
    session_t *s = xcalloc(1, sizeof(*s));
    unsigned h;

    session__sweep(table, now_ms);
    if (table->count >= SESSION_MAX_COUNT)
        session_destroy(table, table->oldest);
    ident_hex(s->id, SESSION_ID_LEN);
    ident_uuid32(s->token);
    snprintf(s->token + 32, sizeof(s->token) - 32, "%013" PRId64, now_ms);
    snprintf(s->user_uuid, sizeof(s->user_uuid), "%s", user_uuid);
    s->expires_ms = now_ms + SESSION_MAX_AGE_MS;
    h = session__hash(s->id);
    s->bucket_next = table->buckets[h];
    table->buckets[h] = s;
    s->older = table->newest;
    if (table->newest != NULL)
        table->newest->newer = s;
    else
        table->oldest = s;
    table->newest = s;
    table->count++;
    return s;
}

session_t *session_find(session_table_t *table, const char *id, int64_t now_ms)
{
    session_t *s;

    if (id == NULL || strlen(id) != SESSION_ID_LEN)
        return NULL;
    for (s = table->buckets[session__hash(id)]; s != NULL; s = s->bucket_next) {
        if (!util_secure_equal(s->id, id))
            continue;
        if (s->expires_ms <= now_ms) {
            session_destroy(table, s);
            return NULL;
        }
        return s;
    }
    return NULL;
}

size_t session_drop_user(session_table_t *table, const char *user_uuid)
{
    session_t *s, *next;
    size_t n = 0;

    for (s = table->oldest; s != NULL; s = next) {
        next = s->newer;
        if (strcmp(s->user_uuid, user_uuid) == 0) {
            session_destroy(table, s);
            n++;
        }
    }
    return n;
}

size_t session_count(const session_table_t *table)
{
    return table->count;
}

const char *session_id(const session_t *session)
{
    return session->id;
}

const char *session_token(const session_t *session)
{
    return session->token;
}

const char *session_user_uuid(const session_t *session)
{
    return session->user_uuid;
}

int64_t session_expires_ms(const session_t *session)
{
    return session->expires_ms;
}

int session_rate_allow(session_t *session, int64_t now_ms)
{
    /* The slot to overwrite contains the oldest of the last allowed
     * requests. If it is inside the window, the window is full. Zero means
     * the slot is unused. */
    int64_t oldest = session->recent[session->recent_next];

    if (oldest != 0 && now_ms - oldest < SESSION_RATE_WINDOW_MS)
        return 0;
    session->recent[session->recent_next] = now_ms;
    session->recent_next = (session->recent_next + 1) % SESSION_RATE_MAX;
    return 1;
}

static session_address_t *session__address(session_table_t *table,
                                           const char *ip, int create,
                                           int64_t now_ms)
{
    session_address_t *a;
    size_t i, victim = SIZE_MAX;

    for (i = 0; i < table->address_count; i++) {
        if (strcmp(table->addresses[i].ip, ip) == 0)
            return &table->addresses[i];
    }
    if (!create)
        return NULL;
    if (table->address_count >= SESSION_MAX_ADDRESSES) {
        for (i = 0; i < table->address_count; i++) {
            a = &table->addresses[i];
            if (a->banned_until == 0 &&
                (victim == SIZE_MAX ||
                 a->last_seen < table->addresses[victim].last_seen))
                victim = i;
        }
        /* Every remembered address is banned: keep the bans and drop the
         * oldest entry anyway, so memory stays bounded. */
        if (victim == SIZE_MAX)
            victim = 0;
        a = &table->addresses[victim];
    } else {
        if (table->address_count % 64 == 0)
            table->addresses =
                xrealloc(table->addresses, (table->address_count + 64) *
                                               sizeof(session_address_t));
        a = &table->addresses[table->address_count++];
    }
    memset(a, 0, sizeof(*a));
    snprintf(a->ip, sizeof(a->ip), "%s", ip);
    return a;
}

static void session__forget_address(session_table_t *table,
                                    session_address_t *a)
{
    size_t i = (size_t)(a - table->addresses);

    table->addresses[i] = table->addresses[--table->address_count];
}

enum session_login_verdict session_login_attempt(session_table_t *table,
                                                 const char *ip, int64_t now_ms)
{
    session_address_t *a = session__address(table, ip, 1, now_ms);

    a->last_seen = now_ms;
    if (a->banned_until != 0 && a->banned_until <= now_ms) {
        /* The ban is over: the address starts again from zero. */
        a->banned_until = 0;
        a->attempts = 0;
    }
    if (a->banned_until != 0)
        return SESSION_LOGIN_BANNED;
    /* MCSManager compares the count before adding this attempt, so the
     * first attempt rejected is the one after MAX_FAILURES + 1 failures. */
    if (a->attempts > SESSION_LOGIN_MAX_FAILURES) {
        a->banned_until = now_ms + SESSION_BAN_MS;
        return SESSION_LOGIN_BANNED_NOW;
    }
    a->attempts++;
    return SESSION_LOGIN_ALLOWED;
}

void session_login_succeeded(session_table_t *table, const char *ip)
{
    session_address_t *a = session__address(table, ip, 0, 0);

    if (a != NULL)
        session__forget_address(table, a);
}
