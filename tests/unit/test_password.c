#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <crypt.h>
#include <uv.h>

#include "panel/password.h"

/* Hashes an MCSManager 10.18 panel wrote for the recorded users. */
#define ADMIN_BCRYPT                                                        \
    "$2a$10$dkv6BqR5jCde6E483.RVn.cEMu0YEjWSmigf66l0YVVUiWZ6Kiz6e"
#define USER1_BCRYPT                                                        \
    "$2a$10$wFdzcp1.gbgHCwj4nk0LCe1yyRbGCXdGnSEN8PrFPfYP17uttVEDW"

static void argon2id_round_trip(void **state)
{
    char hash[PASSWORD_HASH_MAX];

    assert_int_equal(password_hash("AdminPass123", hash), 0);
    assert_true(strncmp(hash, "$argon2id$", 10) == 0);
    assert_non_null(strstr(hash, "m=19456,t=2,p=1"));
    assert_int_equal(password_verify("AdminPass123", hash,
                                     PASSWORD_ARGON2ID), 1);
    assert_int_equal(password_verify("AdminPass124", hash,
                                     PASSWORD_ARGON2ID), 0);
    assert_int_equal(password_verify("", hash, PASSWORD_ARGON2ID), 0);
    /* The same string claimed as another type never matches. */
    assert_int_equal(password_verify("AdminPass123", hash, PASSWORD_BCRYPT),
                     0);
    assert_int_equal(password_needs_rehash(hash, PASSWORD_ARGON2ID), 0);
}

static void argon2id_salts_differ(void **state)
{
    char a[PASSWORD_HASH_MAX], b[PASSWORD_HASH_MAX];

    assert_int_equal(password_hash("SamePass123", a), 0);
    assert_int_equal(password_hash("SamePass123", b), 0);
    assert_string_not_equal(a, b);
}

static void bcrypt_mcsm_hashes(void **state)
{
    assert_int_equal(password_verify("AdminPass123", ADMIN_BCRYPT,
                                     PASSWORD_BCRYPT), 1);
    assert_int_equal(password_verify("UserPass1234", USER1_BCRYPT,
                                     PASSWORD_BCRYPT), 1);
    assert_int_equal(password_verify("UserPass1234", ADMIN_BCRYPT,
                                     PASSWORD_BCRYPT), 0);
    assert_int_equal(password_verify("adminpass123", ADMIN_BCRYPT,
                                     PASSWORD_BCRYPT), 0);
    assert_int_equal(password_needs_rehash(ADMIN_BCRYPT, PASSWORD_BCRYPT),
                     1);
}

static void bcrypt_2b_and_2y(void **state)
{
    char setting[CRYPT_GENSALT_OUTPUT_SIZE];
    struct crypt_data cd;
    char hash[128];

    assert_non_null(crypt_gensalt_rn("$2b$", 4, NULL, 0, setting,
                                     sizeof(setting)));
    memset(&cd, 0, sizeof(cd));
    assert_non_null(crypt_rn("Secret1234x", setting, &cd, sizeof(cd)));
    strcpy(hash, cd.output);
    assert_true(strncmp(hash, "$2b$04$", 7) == 0);
    assert_int_equal(password_verify("Secret1234x", hash, PASSWORD_BCRYPT),
                     1);
    assert_int_equal(password_verify("Secret1234y", hash, PASSWORD_BCRYPT),
                     0);
    /* $2y$ (PHP) is the same algorithm for these passwords. */
    hash[2] = 'y';
    assert_int_equal(password_verify("Secret1234x", hash, PASSWORD_BCRYPT),
                     1);
}

static void bcrypt_rejects_other_schemes(void **state)
{
    /* A SHA-512 crypt string must not pass as MCSManager's type 1. */
    struct crypt_data cd;

    memset(&cd, 0, sizeof(cd));
    assert_non_null(crypt_rn("Secret1234x", "$6$saltsalt$", &cd,
                             sizeof(cd)));
    assert_int_equal(password_verify("Secret1234x", cd.output,
                                     PASSWORD_BCRYPT), 0);
    assert_int_equal(password_verify("x", "$2a$10$short", PASSWORD_BCRYPT),
                     0);
}

static void md5_legacy(void **state)
{
    /* md5("password") */
    const char *lower = "5f4dcc3b5aa765d61d8327deb882cf99";
    const char *upper = "5F4DCC3B5AA765D61D8327DEB882CF99";

    assert_int_equal(password_verify("password", lower, PASSWORD_MD5), 1);
    assert_int_equal(password_verify("password", upper, PASSWORD_MD5), 1);
    assert_int_equal(password_verify("Password", lower, PASSWORD_MD5), 0);
    assert_int_equal(password_verify("password", "5f4dcc3b", PASSWORD_MD5),
                     0);
    assert_int_equal(password_needs_rehash(lower, PASSWORD_MD5), 1);
}

static void verify_malformed_inputs(void **state)
{
    assert_int_equal(password_verify("a", "", PASSWORD_ARGON2ID), 0);
    assert_int_equal(password_verify("a", NULL, PASSWORD_ARGON2ID), 0);
    assert_int_equal(password_verify(NULL, ADMIN_BCRYPT, PASSWORD_BCRYPT), 0);
    assert_int_equal(password_verify("a", "garbage", PASSWORD_ARGON2ID), 0);
    assert_int_equal(password_verify("AdminPass123", ADMIN_BCRYPT, 7), 0);
}

static void policy_cases(void **state)
{
    static const struct {
        const char *password;
        int ok;
    } cases[] = {
        {"AdminPass123", 1},
        {"Abcdefg12", 1},                             /* 9: minimum */
        {"Abcdefg1", 0},                              /* 8 */
        {"Abcdefghijklmnopqrstuvwxyz0123456789", 1},  /* 36: maximum */
        {"Abcdefghijklmnopqrstuvwxyz01234567890", 0}, /* 37 */
        {"abcdefgh123", 0},                           /* no uppercase */
        {"ABCDEFGH123", 0},                           /* no lowercase */
        {"Abcdefghijk", 0},                           /* no digit */
        {"", 0},
        /* U+1F600 is two UTF-16 code units, as JavaScript counts. */
        {"Abcdef1\xf0\x9f\x98\x80", 1},
        {"Abcdef1\xc3\xa9", 0},                       /* 8 code units */
    };
    size_t i;

    for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        const char *err = password_policy_error(cases[i].password);

        if (cases[i].ok) {
            assert_null(err);
        } else {
            assert_non_null(err);
            assert_true(strncmp(err, "Invalid Password Format. ", 25) == 0);
        }
    }
    assert_non_null(password_policy_error(NULL));
}

struct async_result {
    int calls;
    int status;
    char hash[PASSWORD_HASH_MAX];
    int match;
    int has_new_hash;
};

static void on_hashed(int status, const char *hash, void *data)
{
    struct async_result *r = data;

    r->calls++;
    r->status = status;
    if (hash != NULL)
        strcpy(r->hash, hash);
}

static void on_verified(int match, const char *new_hash, void *data)
{
    struct async_result *r = data;

    r->calls++;
    r->match = match;
    r->has_new_hash = new_hash != NULL;
    if (new_hash != NULL)
        strcpy(r->hash, new_hash);
}

static void async_hash_and_verify(void **state)
{
    uv_loop_t loop;
    struct async_result hashed = {0}, good = {0}, bad = {0};

    uv_loop_init(&loop);
    assert_int_equal(password_hash_async(&loop, "AsyncPass123", on_hashed,
                                         &hashed), 0);
    /* Never completes before the loop runs. */
    assert_int_equal(hashed.calls, 0);
    uv_run(&loop, UV_RUN_DEFAULT);
    assert_int_equal(hashed.calls, 1);
    assert_int_equal(hashed.status, 0);

    assert_int_equal(password_verify_async(&loop, "AsyncPass123",
                                           hashed.hash, PASSWORD_ARGON2ID,
                                           on_verified, &good), 0);
    assert_int_equal(password_verify_async(&loop, "AsyncPass124",
                                           hashed.hash, PASSWORD_ARGON2ID,
                                           on_verified, &bad), 0);
    uv_run(&loop, UV_RUN_DEFAULT);
    assert_int_equal(good.calls, 1);
    assert_int_equal(good.match, 1);
    assert_int_equal(good.has_new_hash, 0);
    assert_int_equal(bad.calls, 1);
    assert_int_equal(bad.match, 0);
    assert_int_equal(bad.has_new_hash, 0);
    assert_int_equal(uv_loop_close(&loop), 0);
}

static void async_verify_rehashes_bcrypt(void **state)
{
    uv_loop_t loop;
    struct async_result r = {0}, wrong = {0};

    uv_loop_init(&loop);
    assert_int_equal(password_verify_async(&loop, "AdminPass123",
                                           ADMIN_BCRYPT, PASSWORD_BCRYPT,
                                           on_verified, &r), 0);
    assert_int_equal(password_verify_async(&loop, "WrongPass123",
                                           ADMIN_BCRYPT, PASSWORD_BCRYPT,
                                           on_verified, &wrong), 0);
    uv_run(&loop, UV_RUN_DEFAULT);
    assert_int_equal(r.match, 1);
    assert_int_equal(r.has_new_hash, 1);
    assert_int_equal(password_verify("AdminPass123", r.hash,
                                     PASSWORD_ARGON2ID), 1);
    assert_int_equal(wrong.match, 0);
    assert_int_equal(wrong.has_new_hash, 0);
    assert_int_equal(uv_loop_close(&loop), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(argon2id_round_trip),
        cmocka_unit_test(argon2id_salts_differ),
        cmocka_unit_test(bcrypt_mcsm_hashes),
        cmocka_unit_test(bcrypt_2b_and_2y),
        cmocka_unit_test(bcrypt_rejects_other_schemes),
        cmocka_unit_test(md5_legacy),
        cmocka_unit_test(verify_malformed_inputs),
        cmocka_unit_test(policy_cases),
        cmocka_unit_test(async_hash_and_verify),
        cmocka_unit_test(async_verify_rehashes_bcrypt),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
