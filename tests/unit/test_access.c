/* Unit tests for panel/access: MCSManager's permission algorithm, the
 * instance-ownership guard and the refusal messages. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "panel/access.h"

#define KEY "0123456789abcdef0123456789abcdef"

static const access_route_t admin_route = {ACCESS_LEVEL_ADMIN, 1, 1, 0};
static const access_route_t user_route = {1, 1, 1, 0};
static const access_route_t user_no_token = {1, 0, 0, 0};
static const access_route_t any_route = {ACCESS_LEVEL_ANY, 0, 1, 0};
static const access_route_t instance_route = {1, 1, 1, 1};

static const access_user_t admin = {"a0000000000000000000000000000000", "admin",
                                    10};
static const access_user_t alice = {"b0000000000000000000000000000000", "alice",
                                    1};
static const access_user_t banned = {"c0000000000000000000000000000000",
                                     "mallory", -1};

static access_input_t key_input(const access_route_t *route,
                                const access_user_t *user)
{
    access_input_t in;

    memset(&in, 0, sizeof(in));
    in.route = route;
    in.method = "GET";
    in.path = "/api/test";
    in.key = KEY;
    in.key_source = ACCESS_KEY_QUERY;
    in.key_mode = ACCESS_KEYS_ON;
    in.key_user = user;
    return in;
}

static access_input_t session_input(const access_route_t *route,
                                    const access_user_t *user)
{
    access_input_t in;

    memset(&in, 0, sizeof(in));
    in.route = route;
    in.method = "GET";
    in.path = "/api/test";
    in.cookie_sent = 1;
    in.session_token = "token-1";
    in.session_user = user;
    in.ajax = 1;
    in.query_token = "token-1";
    return in;
}

static access_input_t anonymous_input(const access_route_t *route)
{
    access_input_t in;

    memset(&in, 0, sizeof(in));
    in.route = route;
    in.method = "GET";
    in.path = "/api/test";
    return in;
}

/* Checks a refusal: status, MCSManager's text first, the key never
 * echoed, and the explanation containing `needle`. */
static void assert_refusal(const access_input_t *in, const access_result_t *r,
                           int status, const char *mcsm, const char *needle)
{
    char *msg = access_message(in, r, "D", "I");

    assert_int_equal(r->status, status);
    assert_string_equal(r->mcsm_text, mcsm);
    assert_true(strncmp(msg, mcsm, strlen(mcsm)) == 0);
    assert_true(strlen(msg) > strlen(mcsm) + 10);
    assert_null(strstr(msg, KEY));
    if (needle != NULL && strstr(msg, needle) == NULL)
        fail_msg("message %s lacks %s", msg, needle);
    free(msg);
}

static void test_key_wellformed(void **state)
{
    (void)state;
    assert_true(access_key_wellformed(KEY));
    assert_true(access_key_wellformed("A-b_9"));
    assert_false(access_key_wellformed(""));
    assert_false(access_key_wellformed(NULL));
    assert_false(access_key_wellformed("abc.def"));
    assert_false(access_key_wellformed("abc$%def"));
    assert_false(access_key_wellformed("bad!key"));
    assert_false(access_key_wellformed("k?apikey=x"));
}

static void test_admin_key_allowed(void **state)
{
    access_input_t in = key_input(&admin_route, &admin);
    access_result_t r;

    (void)state;
    assert_int_equal(access_check(&in, &r), ACCESS_OK);
    assert_ptr_equal(r.user, &admin);
    assert_int_equal(r.via_key, 1);
}

static void test_key_skips_token_check(void **state)
{
    access_input_t in = key_input(&user_route, &alice);
    access_result_t r;

    (void)state;
    in.ajax = 0;
    in.query_token = NULL;
    assert_int_equal(access_check(&in, &r), ACCESS_OK);
}

static void test_keys_disabled(void **state)
{
    access_input_t in = key_input(&admin_route, &admin);
    access_result_t r;

    (void)state;
    in.key_mode = ACCESS_KEYS_OFF;
    assert_int_equal(access_check(&in, &r), ACCESS_KEYS_DISABLED);
    assert_refusal(&in, &r, 403, ACCESS_TEXT_KEY_DISABLED,
                   "PUT /api/overview/setting {\"enableApiKey\":true}");
}

static void test_keys_disabled_before_format(void **state)
{
    access_input_t in = key_input(&admin_route, NULL);
    access_result_t r;

    (void)state;
    in.key = "bad.key";
    in.key_mode = ACCESS_KEYS_OFF;
    assert_int_equal(access_check(&in, &r), ACCESS_KEYS_DISABLED);
}

static void test_malformed_key(void **state)
{
    access_input_t in = key_input(&admin_route, NULL);
    access_result_t r;

    (void)state;
    in.key = "bad!key";
    in.key_source = ACCESS_KEY_HEADER;
    assert_int_equal(access_check(&in, &r), ACCESS_KEY_MALFORMED);
    assert_refusal(&in, &r, 403, ACCESS_TEXT_KEY, "X-Request-Api-Key");
}

static void test_unknown_key(void **state)
{
    access_input_t in = key_input(&admin_route, NULL);
    access_result_t r;

    (void)state;
    in.key_source = ACCESS_KEY_BEARER;
    assert_int_equal(access_check(&in, &r), ACCESS_KEY_UNKNOWN);
    assert_refusal(&in, &r, 403, ACCESS_TEXT_KEY, "Authorization: Bearer");
}

static void test_only_admin_mode(void **state)
{
    access_input_t in = key_input(&user_route, &alice);
    access_result_t r;

    (void)state;
    in.key_mode = ACCESS_KEYS_ONLY_ADMIN;
    assert_int_equal(access_check(&in, &r), ACCESS_KEYS_ADMIN_ONLY);
    assert_refusal(&in, &r, 403, ACCESS_TEXT_KEY_DISABLED, "ONLY_ADMIN");
    in = key_input(&user_route, &admin);
    in.key_mode = ACCESS_KEYS_ONLY_ADMIN;
    assert_int_equal(access_check(&in, &r), ACCESS_OK);
}

static void test_user_key_on_admin_route(void **state)
{
    access_input_t in = key_input(&admin_route, &alice);
    access_result_t r;

    (void)state;
    assert_int_equal(access_check(&in, &r), ACCESS_LEVEL_TOO_LOW);
    /* The text names what is missing, not a wrong key. */
    assert_refusal(&in, &r, 403, ACCESS_TEXT_KEY,
                   "insufficient permission: GET /api/test needs an "
                   "administrator");
}

static void test_banned_key_user(void **state)
{
    access_input_t in = key_input(&any_route, &banned);
    access_result_t r;

    (void)state;
    assert_int_equal(access_check(&in, &r), ACCESS_USER_BANNED);
    assert_refusal(&in, &r, 403, ACCESS_TEXT_KEY, "banned");
}

static void test_session_allowed(void **state)
{
    access_input_t in = session_input(&user_route, &alice);
    access_result_t r;

    (void)state;
    assert_int_equal(access_check(&in, &r), ACCESS_OK);
    assert_ptr_equal(r.user, &alice);
    assert_int_equal(r.via_key, 0);
}

static void test_session_without_ajax(void **state)
{
    access_input_t in = session_input(&user_route, &alice);
    access_result_t r;

    (void)state;
    in.ajax = 0;
    assert_int_equal(access_check(&in, &r), ACCESS_AJAX_MISSING);
    assert_refusal(&in, &r, 403, ACCESS_TEXT_AJAX,
                   "X-Requested-With: XMLHttpRequest");
}

static void test_session_token_missing(void **state)
{
    access_input_t in = session_input(&user_route, &alice);
    access_result_t r;

    (void)state;
    in.query_token = NULL;
    assert_int_equal(access_check(&in, &r), ACCESS_TOKEN_MISSING);
    assert_refusal(&in, &r, 403, ACCESS_TEXT_TOKEN, "is missing");
}

static void test_session_token_wrong(void **state)
{
    access_input_t in = session_input(&user_route, &alice);
    access_result_t r;

    (void)state;
    in.query_token = "token-2";
    assert_int_equal(access_check(&in, &r), ACCESS_TOKEN_WRONG);
    assert_refusal(&in, &r, 403, ACCESS_TEXT_TOKEN, "does not match");
}

static void test_session_expired(void **state)
{
    access_input_t in = session_input(&user_route, NULL);
    access_result_t r;

    (void)state;
    in.session_token = NULL;
    assert_int_equal(access_check(&in, &r), ACCESS_SESSION_EXPIRED);
    assert_refusal(&in, &r, 403, ACCESS_TEXT_TOKEN, "Log in again");
}

static void test_session_user_deleted(void **state)
{
    access_input_t in = session_input(&user_route, NULL);
    access_result_t r;

    (void)state;
    assert_int_equal(access_check(&in, &r), ACCESS_SESSION_USER_GONE);
    assert_refusal(&in, &r, 403, ACCESS_TEXT_PERMISSION, "deleted");
}

static void test_session_level_too_low(void **state)
{
    access_input_t in = session_input(&admin_route, &alice);
    access_result_t r;

    (void)state;
    assert_int_equal(access_check(&in, &r), ACCESS_LEVEL_TOO_LOW);
    assert_refusal(&in, &r, 403, ACCESS_TEXT_PERMISSION,
                   "logged in as user 'alice'");
}

static void test_session_banned(void **state)
{
    access_input_t in = session_input(&user_route, &banned);
    access_result_t r;

    (void)state;
    assert_int_equal(access_check(&in, &r), ACCESS_USER_BANNED);
}

static void test_anonymous_no_credentials(void **state)
{
    access_input_t in = anonymous_input(&user_no_token);
    access_result_t r;

    (void)state;
    assert_int_equal(access_check(&in, &r), ACCESS_NO_CREDENTIALS);
    assert_refusal(&in, &r, 403, ACCESS_TEXT_PERMISSION,
                   "no API key or session was found");
}

static void test_anonymous_token_route(void **state)
{
    access_input_t in = anonymous_input(&admin_route);
    access_result_t r;

    (void)state;
    /* MCSManager checks the header first... */
    assert_int_equal(access_check(&in, &r), ACCESS_NO_CREDENTIALS);
    assert_string_equal(r.mcsm_text, ACCESS_TEXT_AJAX);
    /* ...and an absent token matches an absent session. */
    in.ajax = 1;
    assert_int_equal(access_check(&in, &r), ACCESS_NO_CREDENTIALS);
    assert_string_equal(r.mcsm_text, ACCESS_TEXT_PERMISSION);
    in.query_token = "stale";
    assert_int_equal(access_check(&in, &r), ACCESS_NO_CREDENTIALS);
    assert_string_equal(r.mcsm_text, ACCESS_TEXT_TOKEN);
}

static void test_anonymous_public_route(void **state)
{
    access_input_t in = anonymous_input(&any_route);
    access_result_t r;

    (void)state;
    assert_int_equal(access_check(&in, &r), ACCESS_OK);
    assert_null(r.user);
}

static void test_hint_appended(void **state)
{
    access_input_t in = anonymous_input(&user_no_token);
    access_result_t r;
    char *msg;

    (void)state;
    in.hint = "The URL contains a second '?'.";
    access_check(&in, &r);
    msg = access_message(&in, &r, NULL, NULL);
    assert_non_null(strstr(msg, "second '?'"));
    free(msg);
}

static void test_instance_admin_passes(void **state)
{
    access_input_t in = key_input(&instance_route, &admin);
    access_result_t r;

    (void)state;
    assert_int_equal(access_check_instance(&in, "D", "I", 0, &r), ACCESS_OK);
}

static void test_instance_owner_passes(void **state)
{
    access_input_t in = key_input(&instance_route, &alice);
    access_result_t r;

    (void)state;
    assert_int_equal(access_check_instance(&in, "D", "I", 1, &r), ACCESS_OK);
}

static void test_instance_not_granted(void **state)
{
    access_input_t in = key_input(&instance_route, &alice);
    access_result_t r;
    char *msg;

    (void)state;
    assert_int_equal(access_check_instance(&in, "D1", "I1", 0, &r),
                     ACCESS_NO_INSTANCE);
    assert_string_equal(r.mcsm_text, ACCESS_TEXT_INSTANCE);
    msg = access_message(&in, &r, "D1", "I1");
    assert_non_null(strstr(msg, "no access to instance I1 on node D1"));
    assert_non_null(strstr(msg, "PUT /api/auth"));
    free(msg);
}

static void test_instance_anonymous(void **state)
{
    access_input_t in = anonymous_input(&instance_route);
    access_result_t r;

    (void)state;
    assert_int_equal(access_check_instance(&in, "D", "I", 0, &r),
                     ACCESS_NO_CREDENTIALS);
    assert_refusal(&in, &r, 403, ACCESS_TEXT_INSTANCE,
                   "no API key or session was found");
}

static void test_instance_malformed_key(void **state)
{
    access_input_t in = key_input(&instance_route, NULL);
    access_result_t r;

    (void)state;
    in.key = "bad!key";
    assert_int_equal(access_check_instance(&in, "D", "I", 0, &r),
                     ACCESS_KEY_MALFORMED);
    assert_refusal(&in, &r, 403, ACCESS_TEXT_INSTANCE, "characters");
}

static void test_instance_missing_params(void **state)
{
    access_input_t in = key_input(&instance_route, &alice);
    access_result_t r;

    (void)state;
    assert_int_equal(access_check_instance(&in, NULL, "I", 0, &r),
                     ACCESS_INSTANCE_PARAMS);
    assert_int_equal(access_check_instance(&in, "D", "", 0, &r),
                     ACCESS_INSTANCE_PARAMS);
}

static void test_instance_message_clips_ids(void **state)
{
    access_input_t in = key_input(&instance_route, &alice);
    access_result_t r;
    char long_id[300];
    char *msg;

    (void)state;
    memset(long_id, 'x', sizeof(long_id) - 1);
    long_id[sizeof(long_id) - 1] = '\0';
    access_check_instance(&in, long_id, "I", 0, &r);
    msg = access_message(&in, &r, long_id, "I");
    assert_null(strstr(msg, long_id));
    assert_true(strlen(msg) < 1000);
    free(msg);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_key_wellformed),
        cmocka_unit_test(test_admin_key_allowed),
        cmocka_unit_test(test_key_skips_token_check),
        cmocka_unit_test(test_keys_disabled),
        cmocka_unit_test(test_keys_disabled_before_format),
        cmocka_unit_test(test_malformed_key),
        cmocka_unit_test(test_unknown_key),
        cmocka_unit_test(test_only_admin_mode),
        cmocka_unit_test(test_user_key_on_admin_route),
        cmocka_unit_test(test_banned_key_user),
        cmocka_unit_test(test_session_allowed),
        cmocka_unit_test(test_session_without_ajax),
        cmocka_unit_test(test_session_token_missing),
        cmocka_unit_test(test_session_token_wrong),
        cmocka_unit_test(test_session_expired),
        cmocka_unit_test(test_session_user_deleted),
        cmocka_unit_test(test_session_level_too_low),
        cmocka_unit_test(test_session_banned),
        cmocka_unit_test(test_anonymous_no_credentials),
        cmocka_unit_test(test_anonymous_token_route),
        cmocka_unit_test(test_anonymous_public_route),
        cmocka_unit_test(test_hint_appended),
        cmocka_unit_test(test_instance_admin_passes),
        cmocka_unit_test(test_instance_owner_passes),
        cmocka_unit_test(test_instance_not_granted),
        cmocka_unit_test(test_instance_anonymous),
        cmocka_unit_test(test_instance_malformed_key),
        cmocka_unit_test(test_instance_missing_params),
        cmocka_unit_test(test_instance_message_clips_ids),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
