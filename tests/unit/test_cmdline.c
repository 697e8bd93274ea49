#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "core/util.h"
#include "daemon/cmdline.h"

struct split_case {
    const char *command;
    int argc;
    const char *argv[6];
};

/*
 * MCSManager's rule: only a fully double-quoted token loses its quotes.
 * Single quotes group as in sh (Hearth's addition).
 */
static const struct split_case split_cases[] = {
    {"java -jar server.jar", 3, {"java", "-jar", "server.jar"}},
    {"  java   -jar  x  ", 3, {"java", "-jar", "x"}},
    {"bash -c \"while read l; do echo got:$l; done\"",
     3,
     {"bash", "-c", "while read l; do echo got:$l; done"}},
    {"sh -c 'echo hi'", 3, {"sh", "-c", "echo hi"}},
    {"sh -c 'printf \"\\304\\n\"; sleep 1'",
     3,
     {"sh", "-c", "printf \"\\304\\n\"; sleep 1"}},
    {"a'b c'd", 1, {"ab cd"}},
    {"echo ''", 2, {"echo", ""}},
    {"echo '\"x\"'", 2, {"echo", "\"x\""}},
    {"echo \"it's\"", 2, {"echo", "it's"}},
    {"java -Dname=\"a b\" -jar x",
     4,
     {"java", "-Dname=\"a b\"", "-jar", "x"}},
    {"echo \"\"", 2, {"echo", ""}},
    {"echo {quotes}hi{quotes}", 2, {"echo", "\"hi\""}},
    {"echo \"a {quotes} b\"", 2, {"echo", "a \" b"}},
    {"tab\tseparated", 1, {"tab\tseparated"}},
    {"single", 1, {"single"}},
};

static void split_table(void **state)
{
    size_t i;
    int j;

    for (i = 0; i < ARRAY_SIZE(split_cases); i++) {
        const struct split_case *c = &split_cases[i];
        cmdline_argv_t argv;
        char *err = NULL;
        int rc = cmdline_split(c->command, &argv, &err);

        print_message("case %zu: %s\n", i, c->command);
        assert_int_equal(rc, 0);
        assert_null(err);
        assert_int_equal(argv.argc, c->argc);
        for (j = 0; j < c->argc; j++)
            assert_string_equal(argv.argv[j], c->argv[j]);
        assert_null(argv.argv[argv.argc]);
        cmdline_argv_clear(&argv);
    }
}

static void split_unmatched_quote(void **state)
{
    cmdline_argv_t argv;
    char *err = NULL;

    assert_int_equal(cmdline_split("echo \"abc", &argv, &err), -EINVAL);
    assert_non_null(err);
    assert_non_null(strstr(err, "unmatched double quote"));
    assert_int_equal(argv.argc, 0);
    assert_null(argv.argv);
    free(err);
    err = NULL;
    assert_int_equal(cmdline_split("echo it's", &argv, &err), -EINVAL);
    assert_non_null(strstr(err, "unmatched single quote"));
    free(err);
}

static void split_empty(void **state)
{
    cmdline_argv_t argv;
    char *err = NULL;

    assert_int_equal(cmdline_split("", &argv, &err), -ENOENT);
    assert_non_null(strstr(err, "empty"));
    free(err);
    err = NULL;
    assert_int_equal(cmdline_split("    ", &argv, &err), -ENOENT);
    assert_non_null(err);
    free(err);
    assert_int_equal(cmdline_split("   ", &argv, NULL), -ENOENT);
}

static void expand_placeholders(void **state)
{
    static const cmdline_var_t vars[] = {
        {"mcsm_workspace", "/srv/a b"},
        {"mcsm_port1", "10010"},
        {"mcsm_port10", "10019"},
    };
    char *out;

    out = cmdline_expand("cd {MCSM_Workspace} --port {mcsm_port1} "
                         "{mcsm_port10} {unknown} {mcsm_port1",
                         vars, ARRAY_SIZE(vars));
    assert_string_equal(out, "cd /srv/a b --port 10010 10019 {unknown} "
                             "{mcsm_port1");
    free(out);

    out = cmdline_expand("", vars, ARRAY_SIZE(vars));
    assert_string_equal(out, "");
    free(out);

    /* The expansion is not applied again to inserted text. */
    {
        static const cmdline_var_t self[] = {{"a", "{a}{a}"}};

        out = cmdline_expand("{a}", self, 1);
        assert_string_equal(out, "{a}{a}");
        free(out);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(split_table),
        cmocka_unit_test(split_unmatched_quote),
        cmocka_unit_test(split_empty),
        cmocka_unit_test(expand_placeholders),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
