#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include <cmocka.h>
#include <errno.h>
#include <sqlite3.h>

#include "core/fsutil.h"
#include "core/util.h"
#include "panel/password.h"
#include "panel/store.h"

/*
 * An MCSManager 10.18.2 panel data folder as a real panel wrote it (users
 * admin/AdminPass123 and user1/UserPass1234, one node), written out by
 * write_mcsm_fixture().
 */
static const char user_admin_json[] =
    "{\n"
    "    \"uuid\": \"90fd968a0d70491fa46890b78d5c8a10\",\n"
    "    \"userName\": \"admin\",\n"
    "    \"passWord\": \""
    "$2a$10$dkv6BqR5jCde6E483.RVn.cEMu0YEjWSmigf66l0YVVUiWZ6Kiz6e\",\n"
    "    \"passWordType\": 1,\n"
    "    \"salt\": \"\",\n"
    "    \"permission\": 10,\n"
    "    \"registerTime\": \"12/4/2026, 3:27:40 PM\",\n"
    "    \"loginTime\": \"12/4/2026, 3:27:40 PM\",\n"
    "    \"instances\": [],\n"
    "    \"apiKey\": \"1276f80e7e6940728620a04a5e358636\",\n"
    "    \"isInit\": false,\n"
    "    \"secret\": \"\",\n"
    "    \"open2FA\": false,\n"
    "    \"ssoSub\": \"\",\n"
    "    \"ssoBound\": false\n"
    "}";

static const char user_user1_json[] =
    "{\n"
    "    \"uuid\": \"d307cf028359407db280535e261059b0\",\n"
    "    \"userName\": \"user1\",\n"
    "    \"passWord\": \""
    "$2a$10$wFdzcp1.gbgHCwj4nk0LCe1yyRbGCXdGnSEN8PrFPfYP17uttVEDW\",\n"
    "    \"passWordType\": 1,\n"
    "    \"salt\": \"\",\n"
    "    \"permission\": 1,\n"
    "    \"registerTime\": \"12/4/2026, 3:27:40 PM\",\n"
    "    \"loginTime\": \"12/4/2026, 3:27:40 PM\",\n"
    "    \"instances\": [\n"
    "        {\n"
    "            \"instanceUuid\": \"a1719aa23a85441abe39c610a6481a17\",\n"
    "            \"daemonId\": \"3665b7a4c1f24224884d154b2549a3bb\"\n"
    "        }\n"
    "    ],\n"
    "    \"apiKey\": \"9e16958aa03647668a4c4d5d454c62ab\",\n"
    "    \"isInit\": false,\n"
    "    \"secret\": \"\",\n"
    "    \"open2FA\": false,\n"
    "    \"ssoSub\": \"\",\n"
    "    \"ssoBound\": false\n"
    "}";

static const char node_local_json[] =
    "{\n"
    "    \"ip\": \"localhost\",\n"
    "    \"port\": 24444,\n"
    "    \"prefix\": \"\",\n"
    "    \"remarks\": \"\",\n"
    "    \"apiKey\": \"e1caa9eb4adf6e7e2d5a4b6a25945ab3ecfffc1299f463\",\n"
    "    \"remoteMappings\": [],\n"
    "    \"connectOpts\": {\n"
    "        \"multiplex\": false,\n"
    "        \"reconnectionDelayMax\": 5000,\n"
    "        \"timeout\": 10000,\n"
    "        \"reconnection\": true,\n"
    "        \"reconnectionAttempts\": 10,\n"
    "        \"rejectUnauthorized\": false\n"
    "    }\n"
    "}";

static const char config_json[] =
    "{\n"
    "    \"httpPort\": 23333,\n"
    "    \"httpIp\": \"127.0.0.1\",\n"
    "    \"prefix\": \"\",\n"
    "    \"reverseProxyMode\": false,\n"
    "    \"reverseProxyHeader\": \"X-Real-IP\",\n"
    "    \"dataPort\": 23334,\n"
    "    \"forwardType\": 1,\n"
    "    \"crossDomain\": false,\n"
    "    \"gzip\": false,\n"
    "    \"maxCompress\": 1,\n"
    "    \"maxDownload\": 10,\n"
    "    \"zipType\": 1,\n"
    "    \"totpDriftToleranceSteps\": 0,\n"
    "    \"loginCheckIp\": true,\n"
    "    \"loginInfo\": \"\",\n"
    "    \"canFileManager\": true,\n"
    "    \"allowUsePreset\": false,\n"
    "    \"language\": \"en_us\",\n"
    "    \"presetPackAddr\": \"https://script.mcsmanager.com/market.json\",\n"
    "    \"redisUrl\": \"\",\n"
    "    \"allowChangeCmd\": false,\n"
    "    \"enableApiKey\": true,\n"
    "    \"operationLogEnabled\": true,\n"
    "    \"operationLogMaxLinesPerFile\": 200,\n"
    "    \"operationLogKeepDays\": 30,\n"
    "    \"operationLogMaxTotalLines\": 20000,\n"
    "    \"operationLogRecordLogin\": true,\n"
    "    \"operationLogRecordInstance\": true,\n"
    "    \"operationLogRecordFile\": true,\n"
    "    \"operationLogRecordUser\": true,\n"
    "    \"operationLogRecordSystem\": true,\n"
    "    \"businessMode\": false,\n"
    "    \"businessId\": \"\",\n"
    "    \"panelId\": \"1a08e33d-ee3c-4f38-bcba-bb38e4ada458\",\n"
    "    \"registerCode\": \"\",\n"
    "    \"ssoEnabled\": false,\n"
    "    \"ssoType\": \"oidc\",\n"
    "    \"ssoOnlyMode\": false,\n"
    "    \"ssoAutoRedirect\": false,\n"
    "    \"ssoProviderName\": \"\",\n"
    "    \"ssoIconUrl\": \"\",\n"
    "    \"ssoIssuer\": \"\",\n"
    "    \"ssoAuthorizeUrl\": \"\",\n"
    "    \"ssoTokenUrl\": \"\",\n"
    "    \"ssoUserinfoUrl\": \"\",\n"
    "    \"ssoUserIdField\": \"id\",\n"
    "    \"ssoScopes\": \"\",\n"
    "    \"ssoClientId\": \"\",\n"
    "    \"ssoClientSecret\": \"\",\n"
    "    \"ssoTokenAuthMethod\": \"auto\",\n"
    "    \"ssoCallbackUrl\": \"\",\n"
    "    \"ssl\": false,\n"
    "    \"sslPemPath\": \"\",\n"
    "    \"sslKeyPath\": \"\"\n"
    "}";

static void write_file(const char *dir, const char *name,
                       const char *text)
{
    char *path = xasprintf("%s/%s", dir, name);

    assert_int_equal(fs_write_atomic(path, text, strlen(text)), 0);
    free(path);
}

/* Writes the MCSManager panel data folder into a new folder under /tmp
 * whose name is written to dir. */
static void write_mcsm_fixture(char dir[64])
{
    char *sub;

    strcpy(dir, "/tmp/hearth-test-mcsm-XXXXXX");
    assert_non_null(mkdtemp(dir));
    sub = xasprintf("%s/User", dir);
    assert_int_equal(fs_mkdir_p(sub), 0);
    free(sub);
    sub = xasprintf("%s/RemoteServiceConfig", dir);
    assert_int_equal(fs_mkdir_p(sub), 0);
    free(sub);
    sub = xasprintf("%s/SystemConfig", dir);
    assert_int_equal(fs_mkdir_p(sub), 0);
    free(sub);
    write_file(dir, "User/90fd968a0d70491fa46890b78d5c8a10.json",
               user_admin_json);
    write_file(dir, "User/d307cf028359407db280535e261059b0.json",
               user_user1_json);
    write_file(dir, "RemoteServiceConfig/3665b7a4c1f24224884d154b2549a3bb.json",
               node_local_json);
    write_file(dir, "SystemConfig/config.json", config_json);
}

struct fixture {
    char dir[64];
    store_t *store;
};

static int setup(void **state)
{
    struct fixture *f = calloc(1, sizeof(*f));

    strcpy(f->dir, "/tmp/hearth-test-store-XXXXXX");
    if (mkdtemp(f->dir) == NULL)
        return -1;
    f->store = store_new(f->dir);
    if (f->store == NULL)
        return -1;
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    struct fixture *f = *state;

    store_free(f->store);
    fs_remove_tree(f->dir);
    free(f);
    return 0;
}

static void reopen(struct fixture *f)
{
    store_free(f->store);
    f->store = store_new(f->dir);
    assert_non_null(f->store);
}

/* Runs a one-value query on the database file behind the store. */
static sqlite3_int64 db_value(struct fixture *f, const char *sql,
                              const char *param)
{
    char path[128];
    sqlite3 *db;
    sqlite3_stmt *stmt;
    sqlite3_int64 value = -1;

    snprintf(path, sizeof(path), "%s/hearth.db", f->dir);
    assert_int_equal(sqlite3_open(path, &db), SQLITE_OK);
    assert_int_equal(sqlite3_prepare_v2(db, sql, -1, &stmt, NULL),
                     SQLITE_OK);
    if (param != NULL)
        sqlite3_bind_text(stmt, 1, param, -1, SQLITE_STATIC);
    if (sqlite3_step(stmt) == SQLITE_ROW)
        value = sqlite3_column_int64(stmt, 0);
    sqlite3_finalize(stmt);
    sqlite3_close(db);
    return value;
}

static const char *setting_str(store_t *store, const char *key)
{
    return json_string_value(json_object_get(store_settings(store), key));
}

/* ---- schema ---- */

static void fresh_db_migrated(void **state)
{
    struct fixture *f = *state;
    char path[128];
    struct stat st;
    const char *panel_id;
    char saved_id[64];

    assert_int_equal(db_value(f, "PRAGMA user_version", NULL), 1);
    assert_int_equal(db_value(f, "SELECT count(*) FROM sqlite_master WHERE"
                                 " type = 'table' AND name IN ('users',"
                                 " 'grants', 'settings', 'nodes')",
                              NULL),
                     4);
    assert_int_equal(store_user_count(f->store), 0);

    snprintf(path, sizeof(path), "%s/hearth.db", f->dir);
    assert_int_equal(stat(path, &st), 0);
    assert_int_equal(st.st_mode & 0777, 0600);

    /* panelId is generated once and survives a reopen. */
    panel_id = setting_str(f->store, "panelId");
    assert_non_null(panel_id);
    assert_int_equal(strlen(panel_id), 36);
    strcpy(saved_id, panel_id);
    reopen(f);
    assert_int_equal(db_value(f, "PRAGMA user_version", NULL), 1);
    assert_string_equal(setting_str(f->store, "panelId"), saved_id);
}

static void journal_is_wal(void **state)
{
    struct fixture *f = *state;
    char path[128];
    sqlite3 *db;
    sqlite3_stmt *stmt;

    snprintf(path, sizeof(path), "%s/hearth.db", f->dir);
    assert_int_equal(sqlite3_open(path, &db), SQLITE_OK);
    assert_int_equal(sqlite3_prepare_v2(db, "PRAGMA journal_mode", -1,
                                        &stmt, NULL), SQLITE_OK);
    assert_int_equal(sqlite3_step(stmt), SQLITE_ROW);
    assert_string_equal((const char *)sqlite3_column_text(stmt, 0), "wal");
    sqlite3_finalize(stmt);
    sqlite3_close(db);
}

static void newer_schema_rejected(void **state)
{
    struct fixture *f = *state;
    char path[128];
    sqlite3 *db;

    store_free(f->store);
    f->store = NULL;
    snprintf(path, sizeof(path), "%s/hearth.db", f->dir);
    assert_int_equal(sqlite3_open(path, &db), SQLITE_OK);
    assert_int_equal(sqlite3_exec(db, "PRAGMA user_version = 99", NULL,
                                  NULL, NULL), SQLITE_OK);
    sqlite3_close(db);
    assert_null(store_new(f->dir));
}

/* ---- users ---- */

static void user_create_and_find(void **state)
{
    struct fixture *f = *state;
    char uuid[33];
    store_user_t *u;
    int64_t before = util_now_ms();

    assert_int_equal(store_user_create(f->store, "alice", "$argon2id$x",
                                       PASSWORD_ARGON2ID, STORE_PERM_ADMIN,
                                       uuid), 0);
    assert_int_equal(strlen(uuid), 32);
    assert_int_equal(store_user_count(f->store), 1);
    assert_int_equal(store_user_create(f->store, "alice", "h", 2, 1, NULL),
                     -EEXIST);
    assert_int_equal(store_user_create(f->store, "", "h", 2, 1, NULL),
                     -EINVAL);
    assert_int_equal(store_user_count(f->store), 1);

    u = store_user_get(f->store, uuid);
    assert_non_null(u);
    assert_string_equal(u->uuid, uuid);
    assert_string_equal(u->user_name, "alice");
    assert_string_equal(u->password_hash, "$argon2id$x");
    assert_int_equal(u->password_type, PASSWORD_ARGON2ID);
    assert_int_equal(u->permission, STORE_PERM_ADMIN);
    assert_true(u->register_time >= before);
    assert_int_equal(u->login_time, u->register_time);
    assert_int_equal(u->is_init, 0);
    assert_int_equal(u->open_2fa, 0);
    assert_string_equal(u->secret, "");
    assert_int_equal(u->has_api_key, 0);
    store_user_free(u);

    u = store_user_find_by_name(f->store, "alice");
    assert_non_null(u);
    assert_string_equal(u->uuid, uuid);
    store_user_free(u);
    /* Names match exactly, as MCSManager compares them. */
    assert_null(store_user_find_by_name(f->store, "Alice"));
    assert_null(store_user_find_by_name(f->store, "alic"));
    assert_null(store_user_get(f->store, "0123456789abcdef0123456789abcdef"));
}

static void user_update_and_delete(void **state)
{
    struct fixture *f = *state;
    char a[33], b[33];
    store_user_t *u;

    assert_int_equal(store_user_create(f->store, "alice", "h1", 2, 1, a), 0);
    assert_int_equal(store_user_create(f->store, "bob", "h2", 2, 1, b), 0);

    u = store_user_get(f->store, a);
    free(u->user_name);
    u->user_name = strdup("alice2");
    free(u->secret);
    u->secret = strdup("JBSWY3DPEHPK3PXP");
    u->open_2fa = 1;
    u->is_init = 1;
    u->permission = STORE_PERM_BANNED;
    u->login_time = 1234;
    assert_int_equal(store_user_update(f->store, u), 0);
    store_user_free(u);

    u = store_user_get(f->store, a);
    assert_string_equal(u->user_name, "alice2");
    assert_string_equal(u->secret, "JBSWY3DPEHPK3PXP");
    assert_int_equal(u->open_2fa, 1);
    assert_int_equal(u->is_init, 1);
    assert_int_equal(u->permission, STORE_PERM_BANNED);
    assert_int_equal(u->login_time, 1234);

    /* Renaming onto another user's name fails and changes nothing. */
    free(u->user_name);
    u->user_name = strdup("bob");
    assert_int_equal(store_user_update(f->store, u), -EEXIST);
    free(u->user_name);
    u->user_name = strdup("");
    assert_int_equal(store_user_update(f->store, u), -EINVAL);
    strcpy(u->uuid, "ffffffffffffffffffffffffffffffff");
    free(u->user_name);
    u->user_name = strdup("carol");
    assert_int_equal(store_user_update(f->store, u), -ENOENT);
    store_user_free(u);
    u = store_user_get(f->store, a);
    assert_string_equal(u->user_name, "alice2");
    store_user_free(u);

    assert_int_equal(store_user_delete(f->store, a), 0);
    assert_int_equal(store_user_delete(f->store, a), -ENOENT);
    assert_null(store_user_get(f->store, a));
    assert_int_equal(store_user_count(f->store), 1);
}

/* ---- API keys ---- */

static void api_key_hashed_lookup(void **state)
{
    struct fixture *f = *state;
    char a[33], b[33], key[33], key2[33];
    store_user_t *u;

    assert_int_equal(store_user_create(f->store, "alice", "h", 2, 10, a), 0);
    assert_int_equal(store_user_create(f->store, "bob", "h", 2, 1, b), 0);
    assert_int_equal(store_user_new_api_key(f->store, a, key), 0);
    assert_int_equal(strlen(key), 32);
    assert_int_equal(strspn(key, "0123456789abcdef"), 32);

    u = store_user_find_by_api_key(f->store, key);
    assert_non_null(u);
    assert_string_equal(u->uuid, a);
    assert_int_equal(u->has_api_key, 1);
    store_user_free(u);

    /* Only the SHA-256 digest is on disk. */
    assert_int_equal(db_value(f, "SELECT count(*) FROM users WHERE"
                                 " api_key_hash = ?1", key), 0);
    assert_int_equal(db_value(f, "SELECT length(api_key_hash) FROM users"
                                 " WHERE uuid = ?1", a), 64);
    assert_int_equal(db_value(f, "SELECT count(*) FROM users WHERE"
                                 " instr(api_key_hash, ?1) > 0", key), 0);

    assert_null(store_user_find_by_api_key(f->store, ""));
    assert_null(store_user_find_by_api_key(f->store, NULL));
    assert_null(store_user_find_by_api_key(f->store, "nope"));

    /* Regenerating replaces the old key. */
    assert_int_equal(store_user_new_api_key(f->store, a, key2), 0);
    assert_string_not_equal(key, key2);
    assert_null(store_user_find_by_api_key(f->store, key));
    u = store_user_find_by_api_key(f->store, key2);
    assert_non_null(u);
    store_user_free(u);

    /* An admin-chosen key; a key cannot belong to two users. */
    assert_int_equal(store_user_set_api_key(f->store, b, "my-own-key"), 0);
    u = store_user_find_by_api_key(f->store, "my-own-key");
    assert_non_null(u);
    assert_string_equal(u->uuid, b);
    store_user_free(u);
    assert_int_equal(store_user_set_api_key(f->store, a, "my-own-key"),
                     -EEXIST);
    assert_int_equal(store_user_set_api_key(f->store, b, "my-own-key"), 0);
    assert_int_equal(store_user_set_api_key(f->store, b, NULL), 0);
    assert_null(store_user_find_by_api_key(f->store, "my-own-key"));
    u = store_user_get(f->store, b);
    assert_int_equal(u->has_api_key, 0);
    store_user_free(u);

    assert_int_equal(store_user_new_api_key(f->store,
                                            "ffffffffffffffffffffffffffffffff",
                                            key),
                     -ENOENT);
    assert_int_equal(store_user_set_api_key(f->store,
                                            "ffffffffffffffffffffffffffffffff",
                                            "k"),
                     -ENOENT);

    /* Deleting the user makes the key useless. */
    assert_int_equal(store_user_delete(f->store, a), 0);
    assert_null(store_user_find_by_api_key(f->store, key2));
}

/* ---- search ---- */

static void make_users(store_t *store, int n)
{
    char name[32];
    int i;

    for (i = 0; i < n; i++) {
        snprintf(name, sizeof(name), "user%02d", i);
        assert_int_equal(store_user_create(store, name, "h", 2,
                                           i % 2 ? STORE_PERM_USER
                                                 : STORE_PERM_GUEST,
                                           NULL), 0);
    }
}

static void search_paging(void **state)
{
    struct fixture *f = *state;
    store_user_page_t page;

    assert_int_equal(store_user_create(f->store, "admin", "h", 2, 10, NULL),
                     0);
    make_users(f->store, 23);

    assert_int_equal(store_user_search(f->store, NULL, NULL, 1, 10, &page),
                     0);
    assert_int_equal(page.total, 24);
    assert_int_equal(page.max_page, 3);
    assert_int_equal(page.page, 1);
    assert_int_equal(page.page_size, 10);
    assert_int_equal(page.count, 10);
    assert_string_equal(page.users[0]->user_name, "admin");
    assert_string_equal(page.users[9]->user_name, "user08");
    store_user_page_clear(&page);
    assert_null(page.users);

    assert_int_equal(store_user_search(f->store, "", NULL, 3, 10, &page), 0);
    assert_int_equal(page.count, 4);
    assert_string_equal(page.users[3]->user_name, "user22");
    store_user_page_clear(&page);

    /* Past the end: an empty page, same totals. */
    assert_int_equal(store_user_search(f->store, NULL, NULL, 9, 10, &page),
                     0);
    assert_int_equal(page.count, 0);
    assert_int_equal(page.total, 24);
    assert_int_equal(page.max_page, 3);
    store_user_page_clear(&page);

    /* Substring, case-sensitive. */
    assert_int_equal(store_user_search(f->store, "er1", NULL, 1, 50, &page),
                     0);
    assert_int_equal(page.total, 10);
    store_user_page_clear(&page);
    assert_int_equal(store_user_search(f->store, "USER", NULL, 1, 50, &page),
                     0);
    assert_int_equal(page.total, 0);
    assert_int_equal(page.max_page, 0);
    store_user_page_clear(&page);
    /* LIKE wildcards have no meaning here. */
    assert_int_equal(store_user_search(f->store, "user%", NULL, 1, 50,
                                       &page), 0);
    assert_int_equal(page.total, 0);
    store_user_page_clear(&page);

    /* Role filter, alone and combined. */
    {
        int role = STORE_PERM_USER, admin = STORE_PERM_ADMIN;

        assert_int_equal(store_user_search(f->store, NULL, &role, 1, 50,
                                           &page), 0);
        assert_int_equal(page.total, 11);
        store_user_page_clear(&page);
        assert_int_equal(store_user_search(f->store, "user0", &role, 1, 50,
                                           &page), 0);
        assert_int_equal(page.total, 5);
        store_user_page_clear(&page);
        assert_int_equal(store_user_search(f->store, NULL, &admin, 1, 50,
                                           &page), 0);
        assert_int_equal(page.total, 1);
        assert_string_equal(page.users[0]->user_name, "admin");
        store_user_page_clear(&page);
    }

    assert_int_equal(store_user_search(f->store, NULL, NULL, 0, 10, &page),
                     -EINVAL);
    assert_int_equal(store_user_search(f->store, NULL, NULL, 1, 0, &page),
                     -EINVAL);
    assert_int_equal(store_user_search(f->store, NULL, NULL, 1, 51, &page),
                     -EINVAL);

    assert_int_equal(store_user_list(f->store, &page), 0);
    assert_int_equal(page.count, 24);
    assert_int_equal(page.total, 24);
    store_user_page_clear(&page);
}

/* ---- grants ---- */

#define D1 "3665b7a4c1f24224884d154b2549a3bb"
#define D2 "8f04e035cfd1450db146fc02176e462d"
#define I1 "a1719aa23a85441abe39c610a6481a17"
#define I2 "348e162bc7e541eb9236832dfe484c0a"

static void grants_replace_check_remove(void **state)
{
    struct fixture *f = *state;
    char a[33], b[33];
    json_t *list, *got;

    assert_int_equal(store_user_create(f->store, "alice", "h", 2, 1, a), 0);
    assert_int_equal(store_user_create(f->store, "bob", "h", 2, 1, b), 0);

    list = json_pack("[{s:s,s:s},{s:s,s:s},{s:s,s:s}]", "instanceUuid", I2,
                     "daemonId", D1, "instanceUuid", I1, "daemonId", D1,
                     "instanceUuid", I1, "daemonId", D2);
    assert_int_equal(store_grants_set(f->store, a, list), 0);
    assert_int_equal(store_grants_set(f->store, b, list), 0);
    json_decref(list);

    got = store_grants_get(f->store, a);
    assert_int_equal(json_array_size(got), 3);
    /* Order as given, MCSManager's field names. */
    assert_string_equal(json_string_value(json_object_get(
                            json_array_get(got, 0), "instanceUuid")), I2);
    assert_string_equal(json_string_value(json_object_get(
                            json_array_get(got, 0), "daemonId")), D1);
    json_decref(got);

    assert_int_equal(store_grant_check(f->store, a, D1, I1), 1);
    assert_int_equal(store_grant_check(f->store, a, D2, I1), 1);
    assert_int_equal(store_grant_check(f->store, a, D2, I2), 0);
    assert_int_equal(store_grant_check(f->store, a, D1, "x"), 0);
    assert_int_equal(store_grant_check(f->store, a, NULL, I1), 0);

    /* A malformed element rejects the whole list. */
    list = json_pack("[{s:s,s:s},{s:s,s:s}]", "instanceUuid", I1, "daemonId",
                     D1, "instanceUuid", "", "daemonId", D1);
    assert_int_equal(store_grants_set(f->store, a, list), -EINVAL);
    json_decref(list);
    list = json_pack("[{s:s,s:i}]", "instanceUuid", I1, "daemonId", 5);
    assert_int_equal(store_grants_set(f->store, a, list), -EINVAL);
    json_decref(list);
    list = json_object();
    assert_int_equal(store_grants_set(f->store, a, list), -EINVAL);
    json_decref(list);
    assert_int_equal(store_grant_check(f->store, a, D1, I1), 1);

    list = json_array();
    assert_int_equal(store_grants_set(f->store,
                                      "ffffffffffffffffffffffffffffffff",
                                      list), -ENOENT);
    json_decref(list);

    /* Replace: the new list is the whole list. */
    list = json_pack("[{s:s,s:s,s:s}]", "instanceUuid", I2, "daemonId", D2,
                     "extra", "ignored");
    assert_int_equal(store_grants_set(f->store, a, list), 0);
    json_decref(list);
    assert_int_equal(store_grant_check(f->store, a, D1, I1), 0);
    assert_int_equal(store_grant_check(f->store, a, D2, I2), 1);

    /* Instance deletion removes grants from every user. */
    {
        const char *gone[] = {I1};

        assert_int_equal(store_grants_remove_instances(f->store, D1, gone, 1),
                         0);
        assert_int_equal(store_grant_check(f->store, b, D1, I1), 0);
        assert_int_equal(store_grant_check(f->store, b, D2, I1), 1);
        assert_int_equal(store_grants_remove_instances(f->store, NULL, gone,
                                                       1), 0);
        assert_int_equal(store_grant_check(f->store, b, D2, I1), 0);
        assert_int_equal(store_grant_check(f->store, b, D1, I2), 1);
    }

    /* Deleting a user deletes its grants. */
    assert_int_equal(store_user_delete(f->store, b), 0);
    assert_int_equal(db_value(f, "SELECT count(*) FROM grants WHERE"
                                 " user_uuid = ?1", b), 0);
    got = store_grants_get(f->store, b);
    assert_int_equal(json_array_size(got), 0);
    json_decref(got);
}

/* ---- settings ---- */

static void settings_defaults_and_merge(void **state)
{
    struct fixture *f = *state;
    const json_t *s = store_settings(f->store);
    json_t *patch;
    char *error = NULL;

    assert_int_equal(json_object_size(s), 54);
    assert_int_equal(json_integer_value(json_object_get(s, "httpPort")),
                     23333);
    assert_true(json_is_false(json_object_get(s, "enableApiKey")));
    assert_true(json_is_true(json_object_get(s, "canFileManager")));
    assert_string_equal(setting_str(f->store, "language"), "en_us");
    assert_string_equal(setting_str(f->store, "ssoType"), "oidc");
    assert_int_equal(store_settings_api_key_mode(f->store),
                     STORE_API_KEY_OFF);

    patch = json_pack("{s:b, s:s, s:i, s:s}", "enableApiKey", 1, "language",
                      "zh_cn", "maxDownload", 3, "unknownKey", "x");
    assert_int_equal(store_settings_update(f->store, patch, &error), 0);
    assert_null(error);
    json_decref(patch);
    assert_int_equal(store_settings_api_key_mode(f->store), STORE_API_KEY_ON);
    s = store_settings(f->store);
    assert_string_equal(setting_str(f->store, "language"), "zh_cn");
    assert_int_equal(json_integer_value(json_object_get(s, "maxDownload")),
                     3);
    assert_null(json_object_get(s, "unknownKey"));
    assert_int_equal(json_object_size(s), 54);

    patch = json_pack("{s:s}", "enableApiKey", "ONLY_ADMIN");
    assert_int_equal(store_settings_update(f->store, patch, NULL), 0);
    json_decref(patch);
    assert_int_equal(store_settings_api_key_mode(f->store),
                     STORE_API_KEY_ONLY_ADMIN);

    /* A wrong type rejects the whole patch. */
    patch = json_pack("{s:s, s:s}", "language", "de_de", "httpPort", "80");
    assert_int_equal(store_settings_update(f->store, patch, &error),
                     -EINVAL);
    assert_non_null(error);
    assert_non_null(strstr(error, "httpPort"));
    assert_non_null(strstr(error, "integer"));
    free(error);
    json_decref(patch);
    assert_string_equal(setting_str(f->store, "language"), "zh_cn");

    {
        static const char *bad[] = {
            "{\"enableApiKey\": \"yes\"}", "{\"enableApiKey\": 1}",
            "{\"gzip\": 0}", "{\"loginInfo\": null}",
            "{\"ssoType\": \"saml\"}", "{\"maxCompress\": 1.5}",
            "{\"ssoTokenAuthMethod\": \"none\"}",
        };
        size_t i;

        for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
            patch = json_loads(bad[i], 0, NULL);
            assert_non_null(patch);
            error = NULL;
            assert_int_equal(store_settings_update(f->store, patch, &error),
                             -EINVAL);
            assert_non_null(error);
            free(error);
            json_decref(patch);
        }
    }
    patch = json_array();
    assert_int_equal(store_settings_update(f->store, patch, NULL), -EINVAL);
    json_decref(patch);
    assert_int_equal(store_settings_api_key_mode(f->store),
                     STORE_API_KEY_ONLY_ADMIN);

    /* Saved to the database. */
    reopen(f);
    assert_string_equal(setting_str(f->store, "language"), "zh_cn");
    assert_int_equal(store_settings_api_key_mode(f->store),
                     STORE_API_KEY_ONLY_ADMIN);
}

static void settings_key_order(void **state)
{
    struct fixture *f = *state;
    char *text = json_dumps(store_settings(f->store), JSON_COMPACT);

    /* Serialised in MCSManager's key order. */
    assert_true(strncmp(text, "{\"httpPort\":23333,\"httpIp\":", 27) == 0);
    assert_non_null(strstr(text, "\"ssl\":false,\"sslPemPath\":\"\","
                                 "\"sslKeyPath\":\"\"}"));
    free(text);
}

/* ---- nodes ---- */

static void node_crud(void **state)
{
    struct fixture *f = *state;
    store_node_t node, *got, **list;
    char uuid[33], uuid2[33];
    size_t count;

    memset(&node, 0, sizeof(node));
    node.ip = "127.0.0.1";
    node.port = 24444;
    node.remarks = "local";
    node.api_key = "e1caa9eb4adf6e7e2d5a4b6a25945ab3ecfffc1299f463";
    assert_int_equal(store_node_add(f->store, &node, uuid), 0);
    assert_int_equal(strlen(uuid), 32);

    got = store_node_get(f->store, uuid);
    assert_non_null(got);
    assert_string_equal(got->ip, "127.0.0.1");
    assert_int_equal(got->port, 24444);
    assert_string_equal(got->prefix, "");
    assert_string_equal(got->remarks, "local");
    assert_string_equal(got->api_key, node.api_key);
    assert_true(json_is_array(got->remote_mappings));
    assert_int_equal(json_array_size(got->remote_mappings), 0);

    /* Update every field. */
    free(got->ip);
    got->ip = strdup("ws://daemon.example");
    got->port = 24445;
    free(got->prefix);
    got->prefix = strdup("/node");
    json_array_append_new(got->remote_mappings,
                          json_pack("{s:s,s:s}", "from", "a", "to", "b"));
    assert_int_equal(store_node_update(f->store, got), 0);
    store_node_free(got);
    got = store_node_get(f->store, uuid);
    assert_string_equal(got->ip, "ws://daemon.example");
    assert_int_equal(got->port, 24445);
    assert_string_equal(got->prefix, "/node");
    assert_int_equal(json_array_size(got->remote_mappings), 1);

    got->port = 0;
    assert_int_equal(store_node_update(f->store, got), -EINVAL);
    got->port = 70000;
    assert_int_equal(store_node_add(f->store, got, NULL), -EINVAL);
    got->port = 1;
    assert_int_equal(store_node_add(f->store, got, NULL), -EEXIST);
    strcpy(got->uuid, "ffffffffffffffffffffffffffffffff");
    assert_int_equal(store_node_update(f->store, got), -ENOENT);
    store_node_free(got);

    /* A given uuid is kept. */
    memset(&node, 0, sizeof(node));
    strcpy(node.uuid, "00112233445566778899aabbccddeeff");
    node.port = 24444;
    assert_int_equal(store_node_add(f->store, &node, uuid2), 0);
    assert_string_equal(uuid2, "00112233445566778899aabbccddeeff");

    assert_int_equal(store_node_list(f->store, &list, &count), 0);
    assert_int_equal(count, 2);
    assert_string_equal(list[0]->uuid, uuid);
    assert_string_equal(list[1]->uuid, uuid2);
    assert_string_equal(list[1]->ip, "");
    store_node_list_free(list, count);

    assert_int_equal(store_node_remove(f->store, uuid), 0);
    assert_int_equal(store_node_remove(f->store, uuid), -ENOENT);
    assert_null(store_node_get(f->store, uuid));
    assert_int_equal(store_node_remove(f->store, uuid2), 0);
    assert_int_equal(store_node_list(f->store, &list, &count), 0);
    assert_int_equal(count, 0);
    assert_null(list);
}

/* ---- MCSManager import ---- */

static int64_t local_ms(int y, int mo, int d, int h, int mi, int s)
{
    struct tm tm;

    memset(&tm, 0, sizeof(tm));
    tm.tm_year = y - 1900;
    tm.tm_mon = mo - 1;
    tm.tm_mday = d;
    tm.tm_hour = h;
    tm.tm_min = mi;
    tm.tm_sec = s;
    tm.tm_isdst = -1;
    return (int64_t)mktime(&tm) * 1000;
}

static void import_fixture(void **state)
{
    struct fixture *f = *state;
    store_user_t *admin, *user1, *u;
    store_node_t *node;
    json_t *grants;
    char src[64];

    write_mcsm_fixture(src);
    assert_int_equal(store_import_mcsm(f->store, src), 0);
    assert_int_equal(store_user_count(f->store), 2);

    admin = store_user_find_by_name(f->store, "admin");
    assert_non_null(admin);
    assert_string_equal(admin->uuid, "90fd968a0d70491fa46890b78d5c8a10");
    assert_int_equal(admin->permission, STORE_PERM_ADMIN);
    assert_int_equal(admin->password_type, PASSWORD_BCRYPT);
    assert_true(strncmp(admin->password_hash, "$2a$10$", 7) == 0);
    assert_int_equal(password_verify("AdminPass123", admin->password_hash,
                                     admin->password_type), 1);
    assert_int_equal(password_verify("UserPass1234", admin->password_hash,
                                     admin->password_type), 0);
    /* "12/4/2026, 3:27:40 PM" read as local time. */
    assert_int_equal(admin->register_time,
                     local_ms(2026, 12, 4, 15, 27, 40));
    assert_int_equal(admin->has_api_key, 1);

    user1 = store_user_get(f->store, "d307cf028359407db280535e261059b0");
    assert_non_null(user1);
    assert_string_equal(user1->user_name, "user1");
    assert_int_equal(user1->permission, STORE_PERM_USER);
    assert_int_equal(password_verify("UserPass1234", user1->password_hash,
                                     user1->password_type), 1);

    /* Keys carried over, looked up by digest. */
    u = store_user_find_by_api_key(f->store,
                                   "1276f80e7e6940728620a04a5e358636");
    assert_non_null(u);
    assert_string_equal(u->uuid, admin->uuid);
    store_user_free(u);
    u = store_user_find_by_api_key(f->store,
                                   "9e16958aa03647668a4c4d5d454c62ab");
    assert_non_null(u);
    assert_string_equal(u->uuid, user1->uuid);
    store_user_free(u);

    grants = store_grants_get(f->store, user1->uuid);
    assert_int_equal(json_array_size(grants), 1);
    json_decref(grants);
    assert_int_equal(store_grant_check(f->store, user1->uuid, D1, I1), 1);
    assert_int_equal(store_grant_check(f->store, user1->uuid, D1, I2), 0);

    node = store_node_get(f->store, D1);
    assert_non_null(node);
    assert_string_equal(node->ip, "localhost");
    assert_int_equal(node->port, 24444);
    assert_string_equal(node->api_key,
                        "e1caa9eb4adf6e7e2d5a4b6a25945ab3ecfffc1299f463");
    store_node_free(node);

    assert_int_equal(store_settings_api_key_mode(f->store), STORE_API_KEY_ON);
    assert_string_equal(setting_str(f->store, "panelId"),
                        "1a08e33d-ee3c-4f38-bcba-bb38e4ada458");

    /* Importing again replaces, never duplicates. */
    assert_int_equal(store_import_mcsm(f->store, src), 0);
    assert_int_equal(store_user_count(f->store), 2);
    assert_int_equal(db_value(f, "SELECT count(*) FROM nodes", NULL), 1);
    assert_int_equal(db_value(f, "SELECT count(*) FROM grants", NULL), 1);

    store_user_free(admin);
    store_user_free(user1);
    fs_remove_tree(src);
}

static void import_skips_conflicts_and_junk(void **state)
{
    struct fixture *f = *state;
    char src[64];
    char other[33];
    store_user_t *u;

    /* A local "admin" with another uuid wins over the imported one. */
    assert_int_equal(store_user_create(f->store, "admin", "h", 2, 10, other),
                     0);
    write_mcsm_fixture(src);
    write_file(src, "User/broken.json", "{ not json");
    write_file(src, "User/noname.json", "{\"uuid\": \"abc\"}");
    write_file(src, "RemoteServiceConfig/bad.json", "[1, 2]");

    assert_int_equal(store_import_mcsm(f->store, src), 0);
    assert_int_equal(store_user_count(f->store), 2);
    u = store_user_find_by_name(f->store, "admin");
    assert_string_equal(u->uuid, other);
    store_user_free(u);
    assert_null(store_user_get(f->store, "90fd968a0d70491fa46890b78d5c8a10"));
    u = store_user_find_by_name(f->store, "user1");
    assert_non_null(u);
    store_user_free(u);

    assert_int_equal(store_import_mcsm(f->store, "/nonexistent/panel/data"),
                     -ENOENT);
    fs_remove_tree(src);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(fresh_db_migrated, setup, teardown),
        cmocka_unit_test_setup_teardown(journal_is_wal, setup, teardown),
        cmocka_unit_test_setup_teardown(newer_schema_rejected, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(user_create_and_find, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(user_update_and_delete, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(api_key_hashed_lookup, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(search_paging, setup, teardown),
        cmocka_unit_test_setup_teardown(grants_replace_check_remove, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(settings_defaults_and_merge, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(settings_key_order, setup, teardown),
        cmocka_unit_test_setup_teardown(node_crud, setup, teardown),
        cmocka_unit_test_setup_teardown(import_fixture, setup, teardown),
        cmocka_unit_test_setup_teardown(import_skips_conflicts_and_junk,
                                        setup, teardown),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
