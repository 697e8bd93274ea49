/* Unit tests for panel/session: the session table, the per-session rate
 * limit and the per-IP login ban. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "panel/session.h"

#define NOW 1796398060000LL
#define USER_A "a0000000000000000000000000000000"
#define USER_B "b0000000000000000000000000000000"

static int is_hex(const char *s, size_t n)
{
    size_t i;

    for (i = 0; i < n; i++)
        if (!((s[i] >= '0' && s[i] <= '9') || (s[i] >= 'a' && s[i] <= 'f')))
            return 0;
    return 1;
}

static void test_create_and_find(void **state)
{
    session_table_t *t = session_table_new();
    session_t *s = session_create(t, USER_A, NOW);

    (void)state;
    assert_int_equal(strlen(session_id(s)), SESSION_ID_LEN);
    assert_true(is_hex(session_id(s), SESSION_ID_LEN));
    assert_string_equal(session_user_uuid(s), USER_A);
    assert_ptr_equal(session_find(t, session_id(s), NOW + 1000), s);
    assert_int_equal(session_count(t), 1);
    session_table_free(t);
}

static void test_token_format(void **state)
{
    session_table_t *t = session_table_new();
    session_t *s = session_create(t, USER_A, NOW);
    const char *token = session_token(s);

    (void)state;
    /* MCSManager's token: 32 hex characters and the 13-digit ms time. */
    assert_int_equal(strlen(token), SESSION_TOKEN_LEN);
    assert_true(is_hex(token, 32));
    assert_string_equal(token + 32, "1796398060000");
    session_table_free(t);
}

static void test_unknown_id(void **state)
{
    session_table_t *t = session_table_new();
    char id[SESSION_ID_LEN + 1];

    (void)state;
    session_create(t, USER_A, NOW);
    memset(id, '0', SESSION_ID_LEN);
    id[SESSION_ID_LEN] = '\0';
    assert_null(session_find(t, id, NOW));
    assert_null(session_find(t, "short", NOW));
    assert_null(session_find(t, NULL, NOW));
    session_table_free(t);
}

static void test_expiry(void **state)
{
    session_table_t *t = session_table_new();
    session_t *s = session_create(t, USER_A, NOW);
    char id[SESSION_ID_LEN + 1];

    (void)state;
    strcpy(id, session_id(s));
    assert_non_null(session_find(t, id, NOW + SESSION_MAX_AGE_MS - 1));
    assert_null(session_find(t, id, NOW + SESSION_MAX_AGE_MS));
    assert_int_equal(session_count(t), 0);
    session_table_free(t);
}

static void test_destroy_and_drop_user(void **state)
{
    session_table_t *t = session_table_new();
    session_t *a1 = session_create(t, USER_A, NOW);
    session_t *b = session_create(t, USER_B, NOW);
    char b_id[SESSION_ID_LEN + 1];

    (void)state;
    session_create(t, USER_A, NOW);
    strcpy(b_id, session_id(b));
    session_destroy(t, a1);
    assert_int_equal(session_count(t), 2);
    assert_int_equal(session_drop_user(t, USER_A), 1);
    assert_int_equal(session_count(t), 1);
    assert_non_null(session_find(t, b_id, NOW));
    session_table_free(t);
}

static void test_cap_drops_oldest(void **state)
{
    session_table_t *t = session_table_new();
    session_t *first = session_create(t, USER_A, NOW);
    char first_id[SESSION_ID_LEN + 1];
    int i;

    (void)state;
    strcpy(first_id, session_id(first));
    for (i = 1; i < SESSION_MAX_COUNT; i++)
        session_create(t, USER_B, NOW);
    assert_int_equal(session_count(t), SESSION_MAX_COUNT);
    session_create(t, USER_B, NOW);
    assert_int_equal(session_count(t), SESSION_MAX_COUNT);
    assert_null(session_find(t, first_id, NOW));
    session_table_free(t);
}

static void test_rate_limit_window(void **state)
{
    session_table_t *t = session_table_new();
    session_t *s = session_create(t, USER_A, NOW);
    int i;

    (void)state;
    for (i = 0; i < SESSION_RATE_MAX; i++)
        assert_true(session_rate_allow(s, NOW + i));
    /* The 9th request inside the window is refused. */
    assert_false(session_rate_allow(s, NOW + 10));
    assert_false(session_rate_allow(s, NOW + SESSION_RATE_WINDOW_MS - 1));
    /* The window rolls: the first request has left it. */
    assert_true(session_rate_allow(s, NOW + SESSION_RATE_WINDOW_MS));
    assert_false(session_rate_allow(s, NOW + SESSION_RATE_WINDOW_MS));
    session_table_free(t);
}

static void test_rate_limit_spread(void **state)
{
    session_table_t *t = session_table_new();
    session_t *s = session_create(t, USER_A, NOW);
    int i;

    (void)state;
    /* Seven requests per second never hit the limit. */
    for (i = 0; i < 100; i++)
        assert_true(session_rate_allow(s, NOW + i * 143));
    session_table_free(t);
}

static void test_login_ban(void **state)
{
    session_table_t *t = session_table_new();
    int i;

    (void)state;
    /* As MCSManager: eleven failures pass, the twelfth attempt is
     * refused. */
    for (i = 0; i < SESSION_LOGIN_MAX_FAILURES + 1; i++)
        assert_int_equal(session_login_attempt(t, "10.0.0.1", NOW + i),
                         SESSION_LOGIN_ALLOWED);
    assert_int_equal(session_login_attempt(t, "10.0.0.1", NOW + 20),
                     SESSION_LOGIN_BANNED_NOW);
    assert_int_equal(session_login_attempt(t, "10.0.0.1", NOW + 30),
                     SESSION_LOGIN_BANNED);
    /* Another address is not affected. */
    assert_int_equal(session_login_attempt(t, "10.0.0.2", NOW + 30),
                     SESSION_LOGIN_ALLOWED);
    session_table_free(t);
}

static void test_login_ban_expires(void **state)
{
    session_table_t *t = session_table_new();
    int i;

    (void)state;
    for (i = 0; i < SESSION_LOGIN_MAX_FAILURES + 1; i++)
        session_login_attempt(t, "10.0.0.1", NOW);
    assert_int_equal(session_login_attempt(t, "10.0.0.1", NOW),
                     SESSION_LOGIN_BANNED_NOW);
    assert_int_equal(
        session_login_attempt(t, "10.0.0.1", NOW + SESSION_BAN_MS - 1),
        SESSION_LOGIN_BANNED);
    assert_int_equal(session_login_attempt(t, "10.0.0.1", NOW + SESSION_BAN_MS),
                     SESSION_LOGIN_ALLOWED);
    session_table_free(t);
}

static void test_login_success_resets(void **state)
{
    session_table_t *t = session_table_new();
    int i;

    (void)state;
    for (i = 0; i < SESSION_LOGIN_MAX_FAILURES; i++)
        session_login_attempt(t, "10.0.0.1", NOW);
    session_login_succeeded(t, "10.0.0.1");
    for (i = 0; i < SESSION_LOGIN_MAX_FAILURES + 1; i++)
        assert_int_equal(session_login_attempt(t, "10.0.0.1", NOW),
                         SESSION_LOGIN_ALLOWED);
    session_table_free(t);
}

static void test_login_addresses_bounded(void **state)
{
    session_table_t *t = session_table_new();
    char ip[32];
    int i;

    (void)state;
    /* Far more addresses than remembered: no growth without bound and
     * no crash; the banned address keeps its ban. */
    for (i = 0; i < SESSION_LOGIN_MAX_FAILURES + 2; i++)
        session_login_attempt(t, "10.9.9.9", NOW);
    for (i = 0; i < 10000; i++) {
        snprintf(ip, sizeof(ip), "10.%d.%d.%d", i >> 16, (i >> 8) & 255,
                 i & 255);
        assert_int_equal(session_login_attempt(t, ip, NOW + i),
                         SESSION_LOGIN_ALLOWED);
    }
    assert_int_equal(session_login_attempt(t, "10.9.9.9", NOW + 20000),
                     SESSION_LOGIN_BANNED);
    session_table_free(t);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_create_and_find),
        cmocka_unit_test(test_token_format),
        cmocka_unit_test(test_unknown_id),
        cmocka_unit_test(test_expiry),
        cmocka_unit_test(test_destroy_and_drop_user),
        cmocka_unit_test(test_cap_drops_oldest),
        cmocka_unit_test(test_rate_limit_window),
        cmocka_unit_test(test_rate_limit_spread),
        cmocka_unit_test(test_login_ban),
        cmocka_unit_test(test_login_ban_expires),
        cmocka_unit_test(test_login_success_resets),
        cmocka_unit_test(test_login_addresses_bounded),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
