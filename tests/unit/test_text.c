/* Unit tests for core/text: cut points that split no character or escape
 * sequence. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "core/text.h"

static size_t cut(const char *text, size_t pos)
{
    return text_cut_start(text, strlen(text), pos);
}

static void test_plain_text_unchanged(void **state)
{
    size_t pos;

    (void)state;
    for (pos = 0; pos <= 5; pos++)
        assert_int_equal(cut("hello", pos), pos);
}

static void test_past_end(void **state)
{
    (void)state;
    assert_int_equal(cut("abc", 7), 3);
}

static void test_utf8_continuation_skipped(void **state)
{
    /* "a" then U+4F60 (3 bytes) then "b". */
    const char *text = "a\xe4\xbd\xa0"
                       "b";

    (void)state;
    assert_int_equal(cut(text, 1), 1);
    assert_int_equal(cut(text, 2), 4);
    assert_int_equal(cut(text, 3), 4);
}

static void test_csi_cut_moves_past(void **state)
{
    /* ESC [ 3 6 m at 0..4, then "INFO". */
    const char *text = "\x1b[36mINFO";
    size_t pos;

    (void)state;
    assert_int_equal(cut(text, 0), 0);
    for (pos = 1; pos <= 4; pos++)
        assert_int_equal(cut(text, pos), 5);
    assert_int_equal(cut(text, 5), 5);
    assert_int_equal(cut(text, 6), 6);
}

static void test_csi_with_parameters(void **state)
{
    const char *text = "x\x1b[1;31mERROR";

    (void)state;
    assert_int_equal(cut(text, 3), 8);
    assert_int_equal(cut(text, 5), 8);
    assert_int_equal(cut(text, 8), 8);
}

static void test_csi_after_sequence_end(void **state)
{
    /* A cut after a finished sequence stays where it is. */
    const char *text = "\x1b[0m ready";

    (void)state;
    assert_int_equal(cut(text, 4), 4);
    assert_int_equal(cut(text, 6), 6);
}

static void test_open_sequence_at_end(void **state)
{
    const char *text = "ok\x1b[1;3";

    (void)state;
    assert_int_equal(cut(text, 4), strlen(text));
}

static void test_malformed_csi_ends_early(void **state)
{
    /* A line feed inside a CSI ends it, so the line feed is kept. */
    const char *text = "\x1b[3\nnext";

    (void)state;
    assert_int_equal(cut(text, 2), 3);
}

static void test_two_byte_escape(void **state)
{
    /* ESC 7 (save cursor). */
    const char *text = "\x1b"
                       "7abc";

    (void)state;
    assert_int_equal(cut(text, 1), 2);
    assert_int_equal(cut(text, 2), 2);
}

static void test_osc_title(void **state)
{
    /* OSC 0 ; title BEL, then the same ended by ESC backslash. */
    const char *bel = "\x1b]0;server\x07text";
    const char *st = "\x1b]0;server\x1b\\text";

    (void)state;
    assert_int_equal(cut(bel, 5), 11);
    assert_int_equal(cut(st, 5), 12);
    assert_int_equal(cut(st, 11), 12);
}

static void test_escape_beyond_lookback(void **state)
{
    char text[TEXT_ESCAPE_LOOKBACK + 16];

    (void)state;
    /* An OSC string longer than the lookback is not recognised. */
    memset(text, 'a', sizeof(text) - 1);
    text[sizeof(text) - 1] = '\0';
    text[0] = '\x1b';
    text[1] = ']';
    assert_int_equal(cut(text, TEXT_ESCAPE_LOOKBACK + 8),
                     TEXT_ESCAPE_LOOKBACK + 8);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_plain_text_unchanged),
        cmocka_unit_test(test_past_end),
        cmocka_unit_test(test_utf8_continuation_skipped),
        cmocka_unit_test(test_csi_cut_moves_past),
        cmocka_unit_test(test_csi_with_parameters),
        cmocka_unit_test(test_csi_after_sequence_end),
        cmocka_unit_test(test_open_sequence_at_end),
        cmocka_unit_test(test_malformed_csi_ends_early),
        cmocka_unit_test(test_two_byte_escape),
        cmocka_unit_test(test_osc_title),
        cmocka_unit_test(test_escape_beyond_lookback),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
