/* Unit tests for panel/reply: the envelope and JSON string escaping. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <jansson.h>

#include "panel/reply.h"

static char *escape(const char *text, size_t len)
{
    char *buf = NULL;
    size_t n = 0, cap = 0;

    reply_append_string(&buf, &n, &cap, text, len);
    assert_int_equal(strlen(buf), n);
    return buf;
}

static void test_envelope_format(void **state)
{
    size_t len;
    char *text =
        reply_format(403, "\"Incorrect key\"", 15, 1796398117002LL, &len);

    (void)state;
    assert_string_equal(text, "{\"status\":403,\"data\":\"Incorrect key\","
                              "\"time\":1796398117002}");
    assert_int_equal(len, strlen(text));
    free(text);
}

static void test_envelope_null(void **state)
{
    size_t len;
    char *text = reply_format(500, "null", 4, 1, &len);

    (void)state;
    assert_string_equal(text, "{\"status\":500,\"data\":null,\"time\":1}");
    free(text);
}

static void test_content_types(void **state)
{
    (void)state;
    assert_string_equal(reply_content_type(REPLY_TEXT),
                        "text/plain; charset=utf-8");
    assert_string_equal(reply_content_type(REPLY_JSON),
                        "application/json; charset=utf-8");
}

static void test_escape_plain(void **state)
{
    char *s = escape("[404] Not Found", 15);

    (void)state;
    assert_string_equal(s, "\"[404] Not Found\"");
    free(s);
}

static void test_escape_specials(void **state)
{
    const char *text = "a\"b\\c\nd\te\r\b\f/";
    char *s = escape(text, strlen(text));

    (void)state;
    /* JSON.stringify leaves '/' alone. */
    assert_string_equal(s, "\"a\\\"b\\\\c\\nd\\te\\r\\b\\f/\"");
    free(s);
}

static void test_escape_control_and_nul(void **state)
{
    char *s = escape("x\001y\0z\037", 6);

    (void)state;
    assert_string_equal(s, "\"x\\u0001y\\u0000z\\u001f\"");
    free(s);
}

static void test_escape_utf8_kept(void **state)
{
    const char *text = "h\xc3\xa9llo \xe4\xb8\xad \xf0\x9f\x98\x80";
    char *s = escape(text, strlen(text));

    (void)state;
    assert_string_equal(s + 1, "h\xc3\xa9llo \xe4\xb8\xad \xf0\x9f\x98\x80\"");
    free(s);
}

static void test_escape_invalid_utf8(void **state)
{
    /* A stray continuation byte, a truncated sequence, an overlong form
     * and an encoded surrogate. */
    const char text[] = "a\x80"
                        "b\xe4\xb8"
                        "c\xc0\xaf"
                        "d\xed\xa0\x80";
    char *s = escape(text, sizeof(text) - 1);
    json_t *parsed;

    (void)state;
    parsed = json_loads(s, JSON_DECODE_ANY, NULL);
    assert_non_null(parsed);
    assert_true(json_is_string(parsed));
    assert_non_null(strstr(s, "a\\ufffdb"));
    json_decref(parsed);
    free(s);
}

static void test_escape_round_trip(void **state)
{
    char raw[256];
    char *s;
    json_t *parsed;
    int i;

    (void)state;
    for (i = 0; i < 128; i++)
        raw[i] = (char)(i + 1 < 128 ? i + 1 : 'x');
    s = escape(raw, 127);
    parsed = json_loads(s, JSON_DECODE_ANY, NULL);
    assert_non_null(parsed);
    assert_int_equal(json_string_length(parsed), 127);
    assert_memory_equal(json_string_value(parsed), raw, 127);
    json_decref(parsed);
    free(s);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_envelope_format),
        cmocka_unit_test(test_envelope_null),
        cmocka_unit_test(test_content_types),
        cmocka_unit_test(test_escape_plain),
        cmocka_unit_test(test_escape_specials),
        cmocka_unit_test(test_escape_control_and_nul),
        cmocka_unit_test(test_escape_utf8_kept),
        cmocka_unit_test(test_escape_invalid_utf8),
        cmocka_unit_test(test_escape_round_trip),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
