#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>
#include <uv.h>

#include "core/fsutil.h"
#include "core/util.h"
#include "daemon/output.h"

struct fixture {
    uv_loop_t loop;
    char *dir;
    char *log_path;
    char *live;      /* everything the listener received */
    size_t live_len;
    int live_calls;
};

static int setup(void **state)
{
    struct fixture *f = xcalloc(1, sizeof(*f));
    char tmpl[] = "/tmp/hearth-output-XXXXXX";

    if (mkdtemp(tmpl) == NULL)
        return -1;
    f->dir = xstrdup(tmpl);
    f->log_path = xasprintf("%s/logs/test.log", f->dir);
    f->live = xstrdup("");
    uv_loop_init(&f->loop);
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    struct fixture *f = *state;

    /* Every handle must be closed, or uv_loop_close reports UV_EBUSY. */
    uv_run(&f->loop, UV_RUN_DEFAULT);
    assert_int_equal(uv_loop_close(&f->loop), 0);
    fs_remove_tree(f->dir);
    free(f->dir);
    free(f->log_path);
    free(f->live);
    free(f);
    return 0;
}

static void listener(const char *text, size_t len, void *data)
{
    struct fixture *f = data;

    f->live = xrealloc(f->live, f->live_len + len + 1);
    memcpy(f->live + f->live_len, text, len);
    f->live_len += len;
    f->live[f->live_len] = '\0';
    f->live_calls++;
}

/* Runs the loop until *flag is nonzero or timeout_ms passed. */
static void run_until(struct fixture *f, const int *flag, int timeout_ms)
{
    int64_t end = util_now_ms() + timeout_ms;

    while (!*flag && util_now_ms() < end) {
        uv_run(&f->loop, UV_RUN_NOWAIT);
        usleep(2000);
    }
}

static void run_for(struct fixture *f, int ms)
{
    int never = 0;

    run_until(f, &never, ms);
}

static char *history(output_t *out)
{
    return output_history(out, 0, NULL);
}

static void decode_gbk_split_across_reads(void **state)
{
    struct fixture *f = *state;
    output_t *out = output_new(&f->loop, NULL, "gbk", NULL, NULL);
    char *text;

    /* "你好" in GBK, the first character split after its first byte. */
    output_feed(out, "\xc4", 1);
    output_feed(out, "\xe3\xba\xc3\n", 4);
    text = history(out);
    assert_string_equal(text, "你好\n");
    free(text);
    output_free(out);
}

static void decode_gbk_byte_by_byte(void **state)
{
    struct fixture *f = *state;
    output_t *out = output_new(&f->loop, NULL, "GBK", NULL, NULL);
    const char *bytes = "a\xc4\xe3\xba\xc3z\n";
    char *text;
    size_t i;

    for (i = 0; i < strlen(bytes); i++)
        output_feed(out, bytes + i, 1);
    text = history(out);
    assert_string_equal(text, "a你好z\n");
    free(text);
    output_free(out);
}

static void decode_utf8_split_mid_character(void **state)
{
    struct fixture *f = *state;
    output_t *out = output_new(&f->loop, NULL, "utf8", NULL, NULL);
    char *text;

    output_feed(out, "\xe4\xbd", 2);
    output_feed(out, "\xa0\xe5\xa5\xbd\n", 5);
    text = history(out);
    assert_string_equal(text, "你好\n");
    free(text);

    /* Four-byte character fed one byte at a time. */
    output_feed(out, "\xf0", 1);
    output_feed(out, "\x9f", 1);
    output_feed(out, "\x98", 1);
    output_feed(out, "\x80!", 2);
    text = history(out);
    assert_string_equal(text, "你好\n\xf0\x9f\x98\x80!");
    free(text);
    output_free(out);
}

/* stderr bytes between two halves of a stdout character break neither. */
static void decode_streams_split_separately(void **state)
{
    struct fixture *f = *state;
    output_t *out = output_new(&f->loop, NULL, "gbk", NULL, NULL);
    char *text;

    output_feed_stream(out, OUTPUT_STDOUT, "\xc4", 1);
    output_feed_stream(out, OUTPUT_STDERR, "\xba", 1);
    output_feed_stream(out, OUTPUT_STDOUT, "\xe3\n", 2);
    output_feed_stream(out, OUTPUT_STDERR, "\xc3\n", 2);
    text = history(out);
    assert_string_equal(text, "你\n好\n");
    free(text);
    output_free(out);
}

static void decode_invalid_bytes_replaced(void **state)
{
    struct fixture *f = *state;
    output_t *out = output_new(&f->loop, NULL, "utf-8", NULL, NULL);
    char *text;

    /* GBK bytes read as UTF-8: each invalid byte becomes U+FFFD. */
    output_feed(out, "\xc4\xe3\xba\xc3\n", 5);
    text = history(out);
    assert_string_equal(text, "\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd"
                              "\xef\xbf\xbd\n");
    free(text);
    output_free(out);
}

static void decode_overlong_and_surrogate_rejected(void **state)
{
    struct fixture *f = *state;
    output_t *out = output_new(&f->loop, NULL, "utf8", NULL, NULL);
    char *text;

    output_feed(out, "\xc0\xaf|\xed\xa0\x80|", 7);
    text = history(out);
    assert_string_equal(text, "\xef\xbf\xbd\xef\xbf\xbd|"
                              "\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd|");
    free(text);
    output_free(out);
}

static void decode_incomplete_at_end(void **state)
{
    struct fixture *f = *state;
    output_t *out = output_new(&f->loop, NULL, "gbk", NULL, NULL);
    char *text;

    output_feed(out, "ok\xc4", 3);
    text = history(out);
    assert_string_equal(text, "ok");
    free(text);
    output_feed_end(out);
    text = history(out);
    assert_string_equal(text, "ok\xef\xbf\xbd");
    free(text);
    output_free(out);
}

static void decode_invalid_gbk_replaced(void **state)
{
    struct fixture *f = *state;
    output_t *out = output_new(&f->loop, NULL, "gbk", NULL, NULL);
    char *text;

    output_feed(out, "a\xff" "b\n", 4);
    text = history(out);
    assert_string_equal(text, "a\xef\xbf\xbd" "b\n");
    free(text);
    output_free(out);
}

static void ansi_passes_through(void **state)
{
    struct fixture *f = *state;
    output_t *out = output_new(&f->loop, NULL, "utf8", listener, f);
    const char *in = "\033[36mINFO\033[0m ready\n\033[1;31mERROR\033[m boom\n";
    char *text;

    output_feed(out, in, strlen(in));
    text = history(out);
    assert_string_equal(text, in);
    free(text);
    output_flush_live(out);
    assert_string_equal(f->live, in);
    output_free(out);
}

static void encoding_change_and_unknown(void **state)
{
    struct fixture *f = *state;
    output_t *out = output_new(&f->loop, NULL, "no-such-encoding", NULL,
                               NULL);
    char *text;

    /* Unknown at creation: UTF-8 is used. */
    output_feed(out, "\xe4\xbd\xa0", 3);
    assert_int_equal(output_set_encoding(out, "bogus-x"), -EINVAL);
    assert_int_equal(output_set_encoding(out, "gbk"), 0);
    output_feed(out, "\xc4\xe3", 2);
    text = history(out);
    assert_string_equal(text, "你你");
    free(text);
    output_free(out);
}

static void daemon_lines_in_stream(void **state)
{
    struct fixture *f = *state;
    output_t *out = output_new(&f->loop, NULL, "utf8", NULL, NULL);
    char *text;

    output_feed(out, "a\n", 2);
    output_line(out, "INFO", "The instance has been started...");
    output_feed(out, "b\n", 2);
    text = history(out);
    assert_string_equal(text,
                        "a\n[INFO] The instance has been started...\nb\n");
    free(text);
    output_free(out);
}

static void history_bounded_on_char_boundary(void **state)
{
    struct fixture *f = *state;
    output_t *out = output_new(&f->loop, NULL, "utf8", NULL, NULL);
    size_t len, i;
    char *text;

    /* 'x' then 200,000 two-byte characters: the window starts mid-char. */
    output_append(out, "x", 1);
    for (i = 0; i < 200000; i++)
        output_append(out, "\xc3\xa9", 2);
    output_append(out, "END\n", 4);
    text = output_history(out, 0, &len);
    assert_true(len <= OUTPUT_HISTORY_MAX);
    assert_true(len >= OUTPUT_HISTORY_MAX - 3);
    assert_int_equal((unsigned char)text[0], 0xc3);
    assert_string_equal(text + len - 4, "END\n");
    free(text);

    /* A limit takes the newest bytes, also from a character boundary. */
    text = output_history(out, 7, &len);
    assert_int_equal(len, 6);
    assert_string_equal(text, "\xc3\xa9" "END\n");
    free(text);
    output_free(out);
}

static void history_wrapped_starts_whole_line(void **state)
{
    struct fixture *f = *state;
    output_t *out = output_new(&f->loop, NULL, "utf8", NULL, NULL);
    const char *line = "\x1b[1;31mred\x1b[0m \x1b[36mcyan\x1b[0m line\n";
    size_t line_len = strlen(line), len, i;
    char *text;

    /* Two stray bytes shift the lines, so the oldest byte kept falls
     * inside a line and, usually, inside one of its sequences. */
    output_append(out, "ab", 2);
    for (i = 0; i < OUTPUT_HISTORY_MAX / line_len + 10; i++)
        output_append(out, line, line_len);
    text = output_history(out, 0, &len);
    assert_true(len <= OUTPUT_HISTORY_MAX);
    assert_int_equal(len % line_len, 0);
    assert_memory_equal(text, line, line_len);
    free(text);
    output_free(out);
}

static void history_limit_skips_split_sequence(void **state)
{
    struct fixture *f = *state;
    output_t *out = output_new(&f->loop, NULL, "utf8", NULL, NULL);
    size_t len;
    char *text;

    output_append(out, "abc\x1b[36mINFO", 12);
    /* The last 7 bytes are "36mINFO": the cut moves past the "m". */
    text = output_history(out, 7, &len);
    assert_int_equal(len, 4);
    assert_string_equal(text, "INFO");
    free(text);
    output_free(out);
}

static void live_batched(void **state)
{
    struct fixture *f = *state;
    output_t *out = output_new(&f->loop, NULL, "utf8", listener, f);

    output_feed(out, "one\n", 4);
    output_feed(out, "two\n", 4);
    output_line(out, "INFO", "three");
    assert_int_equal(f->live_calls, 0);
    run_until(f, &f->live_calls, 2000);
    assert_int_equal(f->live_calls, 1);
    assert_string_equal(f->live, "one\ntwo\n[INFO] three\n");
    output_free(out);
}

static void live_flood_drops_oldest_with_notice(void **state)
{
    struct fixture *f = *state;
    output_t *out = output_new(&f->loop, NULL, "utf8", listener, f);
    char chunk[4096];
    size_t i;

    memset(chunk, 'a', sizeof(chunk) - 1);
    chunk[sizeof(chunk) - 1] = '\n';
    /* 4 MiB before the listener runs: far more than it keeps. */
    for (i = 0; i < 1024; i++)
        output_feed(out, chunk, sizeof(chunk));
    output_feed(out, "END\n", 4);
    run_until(f, &f->live_calls, 2000);
    assert_int_equal(f->live_calls, 1);
    assert_true(f->live_len <= OUTPUT_LIVE_PENDING_MAX +
                                   strlen(OUTPUT_DROPPED_NOTICE));
    assert_memory_equal(f->live, OUTPUT_DROPPED_NOTICE,
                        strlen(OUTPUT_DROPPED_NOTICE));
    assert_string_equal(f->live + f->live_len - 4, "END\n");
    assert_non_null(strstr(f->live, "output truncated"));
    output_free(out);
}

static void live_flood_drop_keeps_sequences(void **state)
{
    struct fixture *f = *state;
    output_t *out = output_new(&f->loop, NULL, "utf8", listener, f);
    char chunk[4096];
    size_t notice = strlen(OUTPUT_DROPPED_NOTICE), i;

    /* Nothing but 7-byte sequences, so a clean cut starts at an ESC. */
    for (i = 0; i + 7 <= sizeof(chunk); i += 7)
        memcpy(chunk + i, "\x1b[1;31m", 7);
    for (i = 0; i < 1024; i++)
        output_feed(out, chunk, sizeof(chunk) - sizeof(chunk) % 7);
    run_until(f, &f->live_calls, 2000);
    assert_int_equal(f->live_calls, 1);
    assert_memory_equal(f->live, OUTPUT_DROPPED_NOTICE, notice);
    assert_int_equal(f->live[notice], '\x1b');
    assert_int_equal((f->live_len - notice) % 7, 0);
    output_free(out);
}

static void log_file_appended(void **state)
{
    struct fixture *f = *state;
    output_t *out = output_new(&f->loop, f->log_path, "utf8", NULL, NULL);
    char *content;

    output_feed(out, "line1\n", 6);
    output_line(out, "INFO", "hello");
    run_for(f, OUTPUT_LOG_FLUSH_MS + 300);
    content = fs_read_all(f->log_path, NULL);
    assert_non_null(content);
    assert_string_equal(content, "line1\n[INFO] hello\n");
    free(content);

    /* Text pending at output_free is still written. */
    output_feed(out, "last\n", 5);
    output_free(out);
    uv_run(&f->loop, UV_RUN_DEFAULT);
    content = fs_read_all(f->log_path, NULL);
    assert_string_equal(content, "line1\n[INFO] hello\nlast\n");
    free(content);
}

static void log_file_restarts_over_cap(void **state)
{
    struct fixture *f = *state;
    output_t *out = output_new(&f->loop, f->log_path, "utf8", NULL, NULL);
    char *chunk = xmalloc(65536), *content;
    struct stat st;
    size_t i;

    memset(chunk, 'b', 65536);
    chunk[65535] = '\n';
    /* Two rounds of 640 KiB: the file passes OUTPUT_LOG_FILE_MAX. */
    for (i = 0; i < 10; i++)
        output_append(out, chunk, 65536);
    run_for(f, OUTPUT_LOG_FLUSH_MS + 300);
    for (i = 0; i < 10; i++)
        output_append(out, chunk, 65536);
    run_for(f, OUTPUT_LOG_FLUSH_MS + 300);
    assert_int_equal(stat(f->log_path, &st), 0);
    assert_true(st.st_size >= OUTPUT_LOG_FILE_MAX);

    output_append(out, "tail\n", 5);
    run_for(f, OUTPUT_LOG_FLUSH_MS + 300);
    content = fs_read_all(f->log_path, NULL);
    assert_string_equal(content, "tail\n");
    free(content);
    free(chunk);
    output_free(out);
}

static void history_seeded_from_log(void **state)
{
    struct fixture *f = *state;
    output_t *out;
    char *dir = xasprintf("%s/logs", f->dir), *text;
    const char *old = "old1\nold2\n";

    fs_mkdir_p(dir);
    free(dir);
    assert_int_equal(fs_write_atomic(f->log_path, old, strlen(old)), 0);
    out = output_new(&f->loop, f->log_path, "utf8", NULL, NULL);
    output_feed(out, "new\n", 4);
    run_for(f, OUTPUT_LOG_FLUSH_MS + 300);
    text = history(out);
    assert_string_equal(text, "old1\nold2\nnew\n");
    free(text);
    /* The file got the new text once, after the old. */
    text = fs_read_all(f->log_path, NULL);
    assert_string_equal(text, "old1\nold2\nnew\n");
    free(text);
    output_free(out);
}

static void discard_removes_log(void **state)
{
    struct fixture *f = *state;
    output_t *out = output_new(&f->loop, f->log_path, "utf8", NULL, NULL);
    struct stat st;

    output_feed(out, "x\n", 2);
    run_for(f, OUTPUT_LOG_FLUSH_MS + 300);
    assert_int_equal(stat(f->log_path, &st), 0);
    output_feed(out, "y\n", 2);
    output_discard_log(out);
    output_free(out);
    uv_run(&f->loop, UV_RUN_DEFAULT);
    assert_int_equal(stat(f->log_path, &st), -1);
    assert_int_equal(errno, ENOENT);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(decode_gbk_split_across_reads, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(decode_gbk_byte_by_byte, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(decode_utf8_split_mid_character,
                                        setup, teardown),
        cmocka_unit_test_setup_teardown(decode_invalid_bytes_replaced, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(
            decode_overlong_and_surrogate_rejected, setup, teardown),
        cmocka_unit_test_setup_teardown(decode_incomplete_at_end, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(decode_invalid_gbk_replaced, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(ansi_passes_through, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(encoding_change_and_unknown, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(daemon_lines_in_stream, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(history_bounded_on_char_boundary,
                                        setup, teardown),
        cmocka_unit_test_setup_teardown(live_batched, setup, teardown),
        cmocka_unit_test_setup_teardown(live_flood_drops_oldest_with_notice,
                                        setup, teardown),
        cmocka_unit_test_setup_teardown(history_wrapped_starts_whole_line,
                                        setup, teardown),
        cmocka_unit_test_setup_teardown(history_limit_skips_split_sequence,
                                        setup, teardown),
        cmocka_unit_test_setup_teardown(live_flood_drop_keeps_sequences, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(decode_streams_split_separately,
                                        setup, teardown),
        cmocka_unit_test_setup_teardown(log_file_appended, setup, teardown),
        cmocka_unit_test_setup_teardown(log_file_restarts_over_cap, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(history_seeded_from_log, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(discard_removes_log, setup,
                                        teardown),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
