/* Unit tests for the pure helpers of panel/api: query aliases, outputlog
 * size, credential hints and MCSManager's date format. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <cmocka.h>

#include "panel/api.h"

static void test_daemon_id_plain(void **state)
{
    (void)state;
    assert_string_equal(api_resolve_daemon_id("D", NULL, NULL), "D");
    assert_null(api_resolve_daemon_id(NULL, NULL, NULL));
}

static void test_daemon_id_aliases(void **state)
{
    (void)state;
    assert_string_equal(api_resolve_daemon_id(NULL, "R", NULL), "R");
    assert_string_equal(api_resolve_daemon_id(NULL, NULL, "A"), "A");
    /* An alias replaces daemonId, as MCSManager's compatibility layer
     * copies it over; daemon_id is applied last. */
    assert_string_equal(api_resolve_daemon_id("D", "R", NULL), "R");
    assert_string_equal(api_resolve_daemon_id("D", "R", "A"), "A");
    /* Empty aliases are ignored. */
    assert_string_equal(api_resolve_daemon_id("D", "", ""), "D");
}

static void test_outputlog_size(void **state)
{
    (void)state;
    assert_int_equal(api_outputlog_size("20"), 20);
    assert_int_equal(api_outputlog_size("5000"), 5000);
    assert_int_equal(api_outputlog_size("64kb"), 64 * 1024);
    assert_int_equal(api_outputlog_size("64KB"), 64 * 1024);
    assert_int_equal(api_outputlog_size("1Kb"), 1024);
}

static void test_outputlog_size_invalid(void **state)
{
    (void)state;
    assert_int_equal(api_outputlog_size(NULL), -1);
    assert_int_equal(api_outputlog_size(""), -1);
    assert_int_equal(api_outputlog_size("0"), -1);
    assert_int_equal(api_outputlog_size("-5"), -1);
    assert_int_equal(api_outputlog_size("kb"), -1);
    assert_int_equal(api_outputlog_size("12mb"), -1);
    assert_int_equal(api_outputlog_size("1.5"), -1);
    assert_int_equal(api_outputlog_size("99999999999999999999"), -1);
}

static void test_outputlog_tail(void **state)
{
    const char *text = "0123456789";

    (void)state;
    assert_int_equal(api_outputlog_tail(text, 10, 3), 7);
    assert_int_equal(api_outputlog_tail(text, 10, 10), 0);
    assert_int_equal(api_outputlog_tail(text, 10, 50), 0);
    assert_int_equal(api_outputlog_tail(text, 10, -1), 0);
}

static void test_outputlog_tail_utf8(void **state)
{
    /* "a" then three 3-byte characters: the tail never starts inside
     * one. */
    const char *text = "a\xe4\xb8\xad\xe4\xb8\xad\xe4\xb8\xad";
    size_t len = strlen(text);

    (void)state;
    assert_int_equal(api_outputlog_tail(text, len, 3), len - 3);
    assert_int_equal(api_outputlog_tail(text, len, 4), len - 3);
    assert_int_equal(api_outputlog_tail(text, len, 5), len - 3);
    assert_int_equal(api_outputlog_tail(text, len, 6), len - 6);
}

static void test_outputlog_tail_escape(void **state)
{
    /* A tail that would start inside "\x1b[36m" starts after it. */
    const char *text = "a\x1b[36mINFO";
    size_t len = strlen(text);

    (void)state;
    assert_int_equal(api_outputlog_tail(text, len, 8), 6);
    assert_int_equal(api_outputlog_tail(text, len, 6), 6);
    assert_int_equal(api_outputlog_tail(text, len, 9), 1);
}

static void test_hint_second_question_mark(void **state)
{
    char *hint = api_credentials_hint("uuid=I&daemonId=D?apikey=s3cr3t", NULL);

    (void)state;
    assert_non_null(hint);
    assert_non_null(strstr(hint, "second '?'"));
    /* The key itself is never repeated. */
    assert_null(strstr(hint, "s3cr3t"));
    free(hint);
}

static void test_hint_key_spelling(void **state)
{
    char *hint = api_credentials_hint("uuid=I&apiKey=K", NULL);

    (void)state;
    assert_non_null(hint);
    assert_non_null(strstr(hint, "'apiKey'"));
    free(hint);
    hint = api_credentials_hint("api_key=K", NULL);
    assert_non_null(strstr(hint, "'api_key'"));
    free(hint);
}

static void test_hint_authorization(void **state)
{
    char *hint = api_credentials_hint("", "Basic abc");

    (void)state;
    assert_non_null(hint);
    assert_non_null(strstr(hint, "Bearer KEY"));
    free(hint);
}

static void test_hint_none(void **state)
{
    (void)state;
    assert_null(api_credentials_hint("uuid=I&daemonId=D", NULL));
    assert_null(api_credentials_hint("apikey=K", "Bearer K"));
    assert_null(api_credentials_hint("", NULL));
}

static void test_locale_time(void **state)
{
    char out[40];

    (void)state;
    setenv("TZ", "UTC", 1);
    tzset();
    /* 2026-12-04 15:27:40 UTC */
    api_format_locale_time(1796398060000LL, out);
    assert_string_equal(out, "12/4/2026, 3:27:40 PM");
    /* Midnight and noon are 12 in the 12-hour clock. */
    api_format_locale_time(1796342400000LL, out);
    assert_string_equal(out, "12/4/2026, 12:00:00 AM");
    api_format_locale_time(1796385600000LL, out);
    assert_string_equal(out, "12/4/2026, 12:00:00 PM");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_daemon_id_plain),
        cmocka_unit_test(test_daemon_id_aliases),
        cmocka_unit_test(test_outputlog_size),
        cmocka_unit_test(test_outputlog_size_invalid),
        cmocka_unit_test(test_outputlog_tail),
        cmocka_unit_test(test_outputlog_tail_utf8),
        cmocka_unit_test(test_outputlog_tail_escape),
        cmocka_unit_test(test_hint_second_question_mark),
        cmocka_unit_test(test_hint_key_spelling),
        cmocka_unit_test(test_hint_authorization),
        cmocka_unit_test(test_hint_none),
        cmocka_unit_test(test_locale_time),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
