#include "panel/store.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <sodium.h>
#include <sqlite3.h>

#include "core/fsutil.h"
#include "core/ident.h"
#include "core/log.h"
#include "core/util.h"
#include "panel/password.h"

/* ---- schema ---- */

/*
 * Migrations, applied in order: migration i moves the schema from
 * user_version i to i + 1. Append new steps; never edit a released one.
 *
 * users.id orders users by registration, as MCSManager lists them in file
 * order. api_key_hash is the hex SHA-256 of the key, NULL when there is
 * none; UNIQUE makes a key identify exactly one user. grants.pos keeps the
 * order in which an admin listed the instances.
 */
static const char *const store_migrations[] = {
    "CREATE TABLE users ("
    " id INTEGER PRIMARY KEY,"
    " uuid TEXT NOT NULL UNIQUE,"
    " user_name TEXT NOT NULL UNIQUE,"
    " password_hash TEXT NOT NULL,"
    " password_type INTEGER NOT NULL,"
    " permission INTEGER NOT NULL,"
    " register_time INTEGER NOT NULL,"
    " login_time INTEGER NOT NULL,"
    " is_init INTEGER NOT NULL DEFAULT 0,"
    " open_2fa INTEGER NOT NULL DEFAULT 0,"
    " secret TEXT NOT NULL DEFAULT '',"
    " sso_sub TEXT NOT NULL DEFAULT '',"
    " sso_bound INTEGER NOT NULL DEFAULT 0,"
    " api_key_hash TEXT UNIQUE);"
    "CREATE TABLE grants ("
    " user_uuid TEXT NOT NULL,"
    " daemon_id TEXT NOT NULL,"
    " instance_uuid TEXT NOT NULL,"
    " pos INTEGER NOT NULL,"
    " PRIMARY KEY (user_uuid, daemon_id, instance_uuid)) WITHOUT ROWID;"
    "CREATE INDEX grants_instance ON grants (instance_uuid);"
    "CREATE TABLE settings ("
    " id INTEGER PRIMARY KEY CHECK (id = 1),"
    " doc TEXT NOT NULL);"
    "CREATE TABLE nodes ("
    " id INTEGER PRIMARY KEY,"
    " uuid TEXT NOT NULL UNIQUE,"
    " ip TEXT NOT NULL,"
    " port INTEGER NOT NULL,"
    " prefix TEXT NOT NULL,"
    " remarks TEXT NOT NULL,"
    " api_key TEXT NOT NULL,"
    " remote_mappings TEXT NOT NULL);",
};

#define USER_COLUMNS                                                        \
    "uuid, user_name, password_hash, password_type, permission,"           \
    " register_time, login_time, is_init, open_2fa, secret, sso_sub,"      \
    " sso_bound, api_key_hash IS NOT NULL"

#define USER_FILTER                                                         \
    " WHERE (?1 IS NULL OR instr(user_name, ?1) > 0)"                      \
    " AND (?2 IS NULL OR permission = ?2)"

#define NODE_COLUMNS                                                        \
    "uuid, ip, port, prefix, remarks, api_key, remote_mappings"

/* Statements prepared once and kept on the store. */
enum store_stmt {
    ST_BEGIN,
    ST_COMMIT,
    ST_ROLLBACK,
    ST_USER_BY_UUID,
    ST_USER_BY_NAME,
    ST_USER_BY_KEY,
    ST_USER_INSERT,
    ST_USER_UPDATE,
    ST_USER_DELETE,
    ST_USER_COUNT,
    ST_USER_SEARCH_COUNT,
    ST_USER_SEARCH,
    ST_USER_LIST,
    ST_USER_SET_KEY,
    ST_USER_ID_BY_UUID,
    ST_USER_ID_BY_NAME,
    ST_USER_UUID_BY_KEY,
    ST_USER_IMPORT_UPDATE,
    ST_GRANTS_GET,
    ST_GRANTS_DELETE_USER,
    ST_GRANT_INSERT,
    ST_GRANT_CHECK,
    ST_GRANTS_REMOVE,
    ST_GRANTS_REMOVE_ANY,
    ST_SETTINGS_LOAD,
    ST_SETTINGS_SAVE,
    ST_NODE_INSERT,
    ST_NODE_UPDATE,
    ST_NODE_DELETE,
    ST_NODE_GET,
    ST_NODE_LIST,
    ST_NODE_EXISTS,
    ST_COUNT
};

static const char *const store_sql[ST_COUNT] = {
    [ST_BEGIN] = "BEGIN IMMEDIATE",
    [ST_COMMIT] = "COMMIT",
    [ST_ROLLBACK] = "ROLLBACK",
    [ST_USER_BY_UUID] = "SELECT " USER_COLUMNS " FROM users WHERE uuid = ?1",
    [ST_USER_BY_NAME] =
        "SELECT " USER_COLUMNS " FROM users WHERE user_name = ?1",
    [ST_USER_BY_KEY] =
        "SELECT " USER_COLUMNS " FROM users WHERE api_key_hash = ?1",
    [ST_USER_INSERT] =
        "INSERT INTO users (uuid, user_name, password_hash, password_type,"
        " permission, register_time, login_time, is_init, open_2fa, secret,"
        " sso_sub, sso_bound, api_key_hash)"
        " VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13)",
    [ST_USER_UPDATE] =
        "UPDATE users SET user_name = ?2, password_hash = ?3,"
        " password_type = ?4, permission = ?5, register_time = ?6,"
        " login_time = ?7, is_init = ?8, open_2fa = ?9, secret = ?10,"
        " sso_sub = ?11, sso_bound = ?12 WHERE uuid = ?1",
    [ST_USER_DELETE] = "DELETE FROM users WHERE uuid = ?1",
    [ST_USER_COUNT] = "SELECT count(*) FROM users",
    [ST_USER_SEARCH_COUNT] = "SELECT count(*) FROM users" USER_FILTER,
    [ST_USER_SEARCH] = "SELECT " USER_COLUMNS " FROM users" USER_FILTER
                       " ORDER BY id LIMIT ?3 OFFSET ?4",
    [ST_USER_LIST] = "SELECT " USER_COLUMNS " FROM users ORDER BY id",
    [ST_USER_SET_KEY] = "UPDATE users SET api_key_hash = ?2 WHERE uuid = ?1",
    [ST_USER_ID_BY_UUID] = "SELECT id FROM users WHERE uuid = ?1",
    [ST_USER_ID_BY_NAME] = "SELECT uuid FROM users WHERE user_name = ?1",
    [ST_USER_UUID_BY_KEY] = "SELECT uuid FROM users WHERE api_key_hash = ?1",
    [ST_USER_IMPORT_UPDATE] =
        "UPDATE users SET user_name = ?2, password_hash = ?3,"
        " password_type = ?4, permission = ?5, register_time = ?6,"
        " login_time = ?7, is_init = ?8, open_2fa = ?9, secret = ?10,"
        " sso_sub = ?11, sso_bound = ?12, api_key_hash = ?13"
        " WHERE uuid = ?1",
    [ST_GRANTS_GET] = "SELECT instance_uuid, daemon_id FROM grants"
                      " WHERE user_uuid = ?1 ORDER BY pos",
    [ST_GRANTS_DELETE_USER] = "DELETE FROM grants WHERE user_uuid = ?1",
    [ST_GRANT_INSERT] =
        "INSERT OR IGNORE INTO grants (user_uuid, daemon_id, instance_uuid,"
        " pos) VALUES (?1, ?2, ?3, ?4)",
    [ST_GRANT_CHECK] = "SELECT 1 FROM grants WHERE user_uuid = ?1"
                       " AND daemon_id = ?2 AND instance_uuid = ?3",
    [ST_GRANTS_REMOVE] =
        "DELETE FROM grants WHERE instance_uuid = ?1 AND daemon_id = ?2",
    [ST_GRANTS_REMOVE_ANY] = "DELETE FROM grants WHERE instance_uuid = ?1",
    [ST_SETTINGS_LOAD] = "SELECT doc FROM settings WHERE id = 1",
    [ST_SETTINGS_SAVE] =
        "INSERT OR REPLACE INTO settings (id, doc) VALUES (1, ?1)",
    [ST_NODE_INSERT] =
        "INSERT INTO nodes (" NODE_COLUMNS ")"
        " VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
    [ST_NODE_UPDATE] =
        "UPDATE nodes SET ip = ?2, port = ?3, prefix = ?4, remarks = ?5,"
        " api_key = ?6, remote_mappings = ?7 WHERE uuid = ?1",
    [ST_NODE_DELETE] = "DELETE FROM nodes WHERE uuid = ?1",
    [ST_NODE_GET] = "SELECT " NODE_COLUMNS " FROM nodes WHERE uuid = ?1",
    [ST_NODE_LIST] = "SELECT " NODE_COLUMNS " FROM nodes ORDER BY id",
    [ST_NODE_EXISTS] = "SELECT 1 FROM nodes WHERE uuid = ?1",
};

/* ---- settings table ---- */

enum setting_type { SET_INT, SET_BOOL, SET_STRING, SET_API_KEY_MODE };

struct setting_def {
    const char *key;
    enum setting_type type;
    json_int_t number;         /* default of SET_INT and SET_BOOL */
    const char *text;          /* default of SET_STRING */
    const char *const *choices; /* allowed strings, NULL-terminated */
    const char *text_choices;   /* the same in words, for messages */
};

static const char *const sso_types[] = {"oidc", "oauth2", NULL};
static const char *const sso_auth_methods[] = {
    "auto", "client_secret_basic", "client_secret_post", NULL};

/*
 * MCSManager 10.18's SystemConfig in its own key order, so the settings
 * route serialises like MCSManager. httpIp defaults to 127.0.0.1 instead
 * of "" (all interfaces) because Hearth binds to loopback unless configured
 * otherwise.
 */
#define SETTING_INT(key, value) {key, SET_INT, value, NULL, NULL, NULL}
#define SETTING_BOOL(key, value) {key, SET_BOOL, value, NULL, NULL, NULL}
#define SETTING_STRING(key, value) {key, SET_STRING, 0, value, NULL, NULL}

static const struct setting_def setting_defs[] = {
    SETTING_INT("httpPort", 23333),
    SETTING_STRING("httpIp", "127.0.0.1"),
    SETTING_STRING("prefix", ""),
    SETTING_BOOL("reverseProxyMode", 0),
    SETTING_STRING("reverseProxyHeader", "X-Real-IP"),
    SETTING_INT("dataPort", 23334),
    SETTING_INT("forwardType", 1),
    SETTING_BOOL("crossDomain", 0),
    SETTING_BOOL("gzip", 0),
    SETTING_INT("maxCompress", 1),
    SETTING_INT("maxDownload", 10),
    SETTING_INT("zipType", 1),
    SETTING_INT("totpDriftToleranceSteps", 0),
    SETTING_BOOL("loginCheckIp", 1),
    SETTING_STRING("loginInfo", ""),
    SETTING_BOOL("canFileManager", 1),
    SETTING_BOOL("allowUsePreset", 0),
    SETTING_STRING("language", "en_us"),
    SETTING_STRING("presetPackAddr",
                   "https://script.mcsmanager.com/market.json"),
    SETTING_STRING("redisUrl", ""),
    SETTING_BOOL("allowChangeCmd", 0),
    {"enableApiKey", SET_API_KEY_MODE, 0, NULL, NULL, NULL},
    SETTING_BOOL("operationLogEnabled", 1),
    SETTING_INT("operationLogMaxLinesPerFile", 200),
    SETTING_INT("operationLogKeepDays", 30),
    SETTING_INT("operationLogMaxTotalLines", 20000),
    SETTING_BOOL("operationLogRecordLogin", 1),
    SETTING_BOOL("operationLogRecordInstance", 1),
    SETTING_BOOL("operationLogRecordFile", 1),
    SETTING_BOOL("operationLogRecordUser", 1),
    SETTING_BOOL("operationLogRecordSystem", 1),
    SETTING_BOOL("businessMode", 0),
    SETTING_STRING("businessId", ""),
    SETTING_STRING("panelId", ""),
    SETTING_STRING("registerCode", ""),
    SETTING_BOOL("ssoEnabled", 0),
    {"ssoType", SET_STRING, 0, "oidc", sso_types,
     "\"oidc\" or \"oauth2\""},
    SETTING_BOOL("ssoOnlyMode", 0),
    SETTING_BOOL("ssoAutoRedirect", 0),
    SETTING_STRING("ssoProviderName", ""),
    SETTING_STRING("ssoIconUrl", ""),
    SETTING_STRING("ssoIssuer", ""),
    SETTING_STRING("ssoAuthorizeUrl", ""),
    SETTING_STRING("ssoTokenUrl", ""),
    SETTING_STRING("ssoUserinfoUrl", ""),
    SETTING_STRING("ssoUserIdField", "id"),
    SETTING_STRING("ssoScopes", ""),
    SETTING_STRING("ssoClientId", ""),
    SETTING_STRING("ssoClientSecret", ""),
    {"ssoTokenAuthMethod", SET_STRING, 0, "auto", sso_auth_methods,
     "\"auto\", \"client_secret_basic\" or \"client_secret_post\""},
    SETTING_STRING("ssoCallbackUrl", ""),
    SETTING_BOOL("ssl", 0),
    SETTING_STRING("sslPemPath", ""),
    SETTING_STRING("sslKeyPath", ""),
};

struct store {
    sqlite3 *db;
    char *path;
    sqlite3_stmt *stmts[ST_COUNT];
    json_t *settings;        /* in-memory copy of the settings document */
    enum store_api_key_mode api_key_mode;
};

/* ---- statement helpers ---- */

static int store_fail(store_t *store, const char *what)
{
    log_error("store %s: %s: %s", store->path, what,
              sqlite3_errmsg(store->db));
    return -EIO;
}

/*
 * Returns the cached statement id, preparing it on first use, or NULL
 * (logged) if SQLite rejects it.
 */
static sqlite3_stmt *store_stmt(store_t *store, enum store_stmt id)
{
    if (store->stmts[id] == NULL &&
        sqlite3_prepare_v3(store->db, store_sql[id], -1,
                           SQLITE_PREPARE_PERSISTENT, &store->stmts[id],
                           NULL) != SQLITE_OK) {
        store_fail(store, "prepare");
        store->stmts[id] = NULL;
    }
    return store->stmts[id];
}

/* Makes a statement reusable and drops references to bound strings. */
static void store_release(sqlite3_stmt *stmt)
{
    sqlite3_reset(stmt);
    sqlite3_clear_bindings(stmt);
}

static void bind_text(sqlite3_stmt *stmt, int index, const char *text)
{
    if (text == NULL)
        sqlite3_bind_null(stmt, index);
    else
        sqlite3_bind_text(stmt, index, text, -1, SQLITE_STATIC);
}

/*
 * Runs a statement that returns no rows and releases it. Returns 0,
 * -EEXIST on a UNIQUE or PRIMARY KEY conflict, or -EIO (logged).
 */
static int store_exec_stmt(store_t *store, sqlite3_stmt *stmt,
                           const char *what)
{
    int rc = sqlite3_step(stmt);
    int ret = 0;

    if (rc != SQLITE_DONE && rc != SQLITE_ROW) {
        if (rc == SQLITE_CONSTRAINT)
            ret = -EEXIST;
        else
            ret = store_fail(store, what);
    }
    store_release(stmt);
    return ret;
}

static int store_exec_id(store_t *store, enum store_stmt id)
{
    sqlite3_stmt *stmt = store_stmt(store, id);

    if (stmt == NULL)
        return -EIO;
    return store_exec_stmt(store, stmt, store_sql[id]);
}

static int store_begin(store_t *store)
{
    return store_exec_id(store, ST_BEGIN);
}

/* Commits when ret is 0, else rolls back; returns ret or the commit
 * error. */
static int store_end(store_t *store, int ret)
{
    if (ret == 0) {
        ret = store_exec_id(store, ST_COMMIT);
        if (ret == 0)
            return 0;
    }
    store_exec_id(store, ST_ROLLBACK);
    return ret;
}

/* Runs a query whose bindings are set and returns whether it found a row
 * (1), none (0), or failed (-EIO). Releases the statement. */
static int store_exists(store_t *store, sqlite3_stmt *stmt)
{
    int rc = sqlite3_step(stmt);

    store_release(stmt);
    if (rc == SQLITE_ROW)
        return 1;
    if (rc == SQLITE_DONE)
        return 0;
    return store_fail(store, "query");
}

static char *column_text(sqlite3_stmt *stmt, int col)
{
    const unsigned char *text = sqlite3_column_text(stmt, col);

    return xstrdup(text != NULL ? (const char *)text : "");
}

/* ---- API key digests ---- */

/* Writes the hex SHA-256 of key to out. */
static void api_key_digest(const char *key, char out[65])
{
    unsigned char digest[crypto_hash_sha256_BYTES];

    crypto_hash_sha256(digest, (const unsigned char *)key, strlen(key));
    sodium_bin2hex(out, 65, digest, sizeof(digest));
}

/* ---- settings ---- */

static json_t *setting_default(const struct setting_def *def)
{
    switch (def->type) {
    case SET_INT:
        return json_integer(def->number);
    case SET_BOOL:
    case SET_API_KEY_MODE:
        return json_boolean(def->number);
    case SET_STRING:
    default:
        return json_string(def->text);
    }
}

static json_t *settings_defaults(void)
{
    json_t *doc = json_object();
    size_t i;

    for (i = 0; i < ARRAY_SIZE(setting_defs); i++)
        json_object_set_new(doc, setting_defs[i].key,
                            setting_default(&setting_defs[i]));
    return doc;
}

/* Returns NULL if value suits def, else the expected type in words. */
static const char *setting_check(const struct setting_def *def,
                                 const json_t *value)
{
    size_t i;

    switch (def->type) {
    case SET_INT:
        return json_is_integer(value) ? NULL : "an integer";
    case SET_BOOL:
        return json_is_boolean(value) ? NULL : "true or false";
    case SET_API_KEY_MODE:
        if (json_is_boolean(value) ||
            (json_is_string(value) &&
             strcmp(json_string_value(value), "ONLY_ADMIN") == 0))
            return NULL;
        return "true, false or \"ONLY_ADMIN\"";
    case SET_STRING:
    default:
        if (!json_is_string(value))
            return "a string";
        if (def->choices == NULL)
            return NULL;
        for (i = 0; def->choices[i] != NULL; i++)
            if (strcmp(json_string_value(value), def->choices[i]) == 0)
                return NULL;
        return def->text_choices;
    }
}

static enum store_api_key_mode api_key_mode_of(const json_t *settings)
{
    const json_t *v = json_object_get(settings, "enableApiKey");

    if (json_is_true(v))
        return STORE_API_KEY_ON;
    if (json_is_string(v) && strcmp(json_string_value(v), "ONLY_ADMIN") == 0)
        return STORE_API_KEY_ONLY_ADMIN;
    return STORE_API_KEY_OFF;
}

/*
 * Merges the known keys of patch into a copy of base and returns it (new
 * reference). In strict mode a value of the wrong type fails the whole
 * merge: NULL is returned and *error set. Otherwise such a value is skipped
 * with a warning, as MCSManager keeps its defaults for what it cannot use.
 */
static json_t *settings_merge(const json_t *base, json_t *patch, int strict,
                              char **error)
{
    json_t *doc = json_deep_copy(base);
    size_t i;

    for (i = 0; i < ARRAY_SIZE(setting_defs); i++) {
        const struct setting_def *def = &setting_defs[i];
        json_t *value = json_object_get(patch, def->key);
        const char *expected;

        if (value == NULL)
            continue;
        expected = setting_check(def, value);
        if (expected == NULL) {
            json_object_set(doc, def->key, value);
            continue;
        }
        if (strict) {
            if (error != NULL)
                *error = xasprintf("invalid setting \"%s\": must be %s",
                                   def->key, expected);
            json_decref(doc);
            return NULL;
        }
        log_warn("store: ignoring setting \"%s\": must be %s", def->key,
                 expected);
    }
    return doc;
}

static int settings_save(store_t *store, const json_t *doc)
{
    sqlite3_stmt *stmt = store_stmt(store, ST_SETTINGS_SAVE);
    char *text;
    int ret;

    if (stmt == NULL)
        return -EIO;
    text = json_dumps(doc, JSON_COMPACT);
    bind_text(stmt, 1, text);
    ret = store_exec_stmt(store, stmt, "save settings");
    free(text);
    return ret;
}

/* Replaces the in-memory settings (takes the reference of doc). */
static void settings_install(store_t *store, json_t *doc)
{
    json_decref(store->settings);
    store->settings = doc;
    store->api_key_mode = api_key_mode_of(doc);
}

/* Gives a document without panelId a new uuid v4, as MCSManager does. */
static void settings_ensure_panel_id(json_t *doc)
{
    const char *id = json_string_value(json_object_get(doc, "panelId"));
    char uuid[37];

    if (id != NULL && id[0] != '\0')
        return;
    ident_uuid36(uuid);
    json_object_set_new(doc, "panelId", json_string(uuid));
}

static int settings_load(store_t *store)
{
    sqlite3_stmt *stmt = store_stmt(store, ST_SETTINGS_LOAD);
    json_t *defaults = settings_defaults();
    json_t *stored = NULL, *doc;
    json_error_t jerr;
    int rc, ret = 0;

    if (stmt == NULL) {
        json_decref(defaults);
        return -EIO;
    }
    rc = sqlite3_step(stmt);
    if (rc == SQLITE_ROW) {
        stored = json_loads((const char *)sqlite3_column_text(stmt, 0), 0,
                            &jerr);
        if (stored == NULL)
            log_warn("store %s: settings unreadable (%s), using defaults",
                     store->path, jerr.text);
    } else if (rc != SQLITE_DONE) {
        ret = store_fail(store, "load settings");
    }
    store_release(stmt);
    if (ret != 0) {
        json_decref(defaults);
        return ret;
    }

    doc = settings_merge(defaults, stored, 0, NULL);
    json_decref(defaults);
    json_decref(stored);
    if (rc != SQLITE_ROW ||
        json_string_value(json_object_get(doc, "panelId"))[0] == '\0') {
        settings_ensure_panel_id(doc);
        ret = settings_save(store, doc);
    }
    settings_install(store, doc);
    return ret;
}

const json_t *store_settings(const store_t *store)
{
    return store->settings;
}

enum store_api_key_mode store_settings_api_key_mode(const store_t *store)
{
    return store->api_key_mode;
}

int store_settings_update(store_t *store, json_t *patch, char **error)
{
    json_t *doc;
    int ret;

    if (error != NULL)
        *error = NULL;
    if (!json_is_object(patch)) {
        if (error != NULL)
            *error = xstrdup("invalid settings: must be a JSON object");
        return -EINVAL;
    }
    doc = settings_merge(store->settings, patch, 1, error);
    if (doc == NULL)
        return -EINVAL;
    settings_ensure_panel_id(doc);
    ret = settings_save(store, doc);
    if (ret != 0) {
        json_decref(doc);
        return ret;
    }
    settings_install(store, doc);
    return 0;
}

/* ---- open and migrate ---- */

static int store_migrate(store_t *store)
{
    sqlite3_stmt *stmt;
    int version = 0, target = (int)ARRAY_SIZE(store_migrations);
    char *errmsg = NULL;

    if (sqlite3_prepare_v2(store->db, "PRAGMA user_version", -1, &stmt,
                           NULL) != SQLITE_OK)
        return store_fail(store, "read user_version");
    if (sqlite3_step(stmt) == SQLITE_ROW)
        version = sqlite3_column_int(stmt, 0);
    sqlite3_finalize(stmt);

    if (version > target) {
        log_error("store %s: schema version %d is newer than this Hearth "
                  "(%d); upgrade Hearth or restore a backup",
                  store->path, version, target);
        return -EPROTO;
    }
    for (; version < target; version++) {
        char *sql = xasprintf("BEGIN IMMEDIATE; %s PRAGMA user_version = %d;"
                              " COMMIT;",
                              store_migrations[version], version + 1);
        int rc = sqlite3_exec(store->db, sql, NULL, NULL, &errmsg);

        free(sql);
        if (rc != SQLITE_OK) {
            log_error("store %s: migration to schema %d failed: %s",
                      store->path, version + 1,
                      errmsg != NULL ? errmsg : sqlite3_errstr(rc));
            sqlite3_free(errmsg);
            sqlite3_exec(store->db, "ROLLBACK", NULL, NULL, NULL);
            return -EIO;
        }
        log_info("store %s: schema migrated to version %d", store->path,
                 version + 1);
    }
    return 0;
}

/*
 * Creates the database file with mode 0600 before SQLite opens it, because
 * it contains password hashes and daemon keys; SQLite gives its -wal and -shm
 * files the same mode.
 */
static int store_create_file(const char *path)
{
    int fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0600);

    if (fd < 0)
        return -errno;
    close(fd);
    return 0;
}

static int store_configure(store_t *store)
{
    static const char pragmas[] =
        /* WAL lets readers proceed while a write commits. */
        "PRAGMA journal_mode = WAL;"
        /* Writes are rare (user and node edits), so pay for durability
         * against power loss as well. */
        "PRAGMA synchronous = FULL;"
        "PRAGMA foreign_keys = OFF;";
    char *errmsg = NULL;

    /* Another process (an import run from the CLI) may hold the lock. */
    sqlite3_busy_timeout(store->db, 5000);
    if (sqlite3_exec(store->db, pragmas, NULL, NULL, &errmsg) != SQLITE_OK) {
        log_error("store %s: setting PRAGMAs failed: %s", store->path,
                  errmsg != NULL ? errmsg : "unknown error");
        sqlite3_free(errmsg);
        return -EIO;
    }
    return 0;
}

store_t *store_new(const char *data_dir)
{
    store_t *store = xcalloc(1, sizeof(*store));
    int rc;

    if (sodium_init() < 0) {
        log_error("store: libsodium initialisation failed");
        goto fail;
    }
    rc = fs_mkdir_p(data_dir);
    if (rc != 0) {
        log_error("store: cannot create data folder %s: %s", data_dir,
                  strerror(-rc));
        goto fail;
    }
    store->path = xasprintf("%s/hearth.db", data_dir);
    rc = store_create_file(store->path);
    if (rc != 0) {
        log_error("store: cannot create %s: %s", store->path, strerror(-rc));
        goto fail;
    }
    rc = sqlite3_open_v2(store->path, &store->db,
                         SQLITE_OPEN_READWRITE | SQLITE_OPEN_NOMUTEX, NULL);
    if (rc != SQLITE_OK) {
        log_error("store: cannot open %s: %s", store->path,
                  store->db != NULL ? sqlite3_errmsg(store->db)
                                    : sqlite3_errstr(rc));
        goto fail;
    }
    if (store_configure(store) != 0 || store_migrate(store) != 0 ||
        settings_load(store) != 0)
        goto fail;
    return store;

fail:
    store_free(store);
    return NULL;
}

void store_free(store_t *store)
{
    size_t i;

    if (store == NULL)
        return;
    for (i = 0; i < ST_COUNT; i++)
        sqlite3_finalize(store->stmts[i]);
    if (store->db != NULL)
        sqlite3_close(store->db);
    json_decref(store->settings);
    free(store->path);
    free(store);
}

/* ---- users ---- */

static store_user_t *user_from_row(sqlite3_stmt *stmt)
{
    store_user_t *user = xcalloc(1, sizeof(*user));
    const unsigned char *uuid = sqlite3_column_text(stmt, 0);

    snprintf(user->uuid, sizeof(user->uuid), "%s",
             uuid != NULL ? (const char *)uuid : "");
    user->user_name = column_text(stmt, 1);
    user->password_hash = column_text(stmt, 2);
    user->password_type = sqlite3_column_int(stmt, 3);
    user->permission = sqlite3_column_int(stmt, 4);
    user->register_time = sqlite3_column_int64(stmt, 5);
    user->login_time = sqlite3_column_int64(stmt, 6);
    user->is_init = sqlite3_column_int(stmt, 7);
    user->open_2fa = sqlite3_column_int(stmt, 8);
    user->secret = column_text(stmt, 9);
    user->sso_sub = column_text(stmt, 10);
    user->sso_bound = sqlite3_column_int(stmt, 11);
    user->has_api_key = sqlite3_column_int(stmt, 12);
    return user;
}

/* Runs a user query with its key bound to parameter 1 and returns the row
 * as a record, or NULL. */
static store_user_t *user_query(store_t *store, enum store_stmt id,
                                const char *key)
{
    sqlite3_stmt *stmt = store_stmt(store, id);
    store_user_t *user = NULL;
    int rc;

    if (stmt == NULL || key == NULL)
        return NULL;
    bind_text(stmt, 1, key);
    rc = sqlite3_step(stmt);
    if (rc == SQLITE_ROW)
        user = user_from_row(stmt);
    else if (rc != SQLITE_DONE)
        store_fail(store, "find user");
    store_release(stmt);
    return user;
}

store_user_t *store_user_get(store_t *store, const char *uuid)
{
    return user_query(store, ST_USER_BY_UUID, uuid);
}

store_user_t *store_user_find_by_name(store_t *store, const char *user_name)
{
    return user_query(store, ST_USER_BY_NAME, user_name);
}

store_user_t *store_user_find_by_api_key(store_t *store, const char *key)
{
    char digest[65];

    if (key == NULL || key[0] == '\0')
        return NULL;
    api_key_digest(key, digest);
    return user_query(store, ST_USER_BY_KEY, digest);
}

void store_user_free(store_user_t *user)
{
    if (user == NULL)
        return;
    free(user->user_name);
    if (user->password_hash != NULL) {
        sodium_memzero(user->password_hash, strlen(user->password_hash));
        free(user->password_hash);
    }
    if (user->secret != NULL) {
        sodium_memzero(user->secret, strlen(user->secret));
        free(user->secret);
    }
    free(user->sso_sub);
    free(user);
}

/* Binds the fields shared by insert and update (parameters 1..12). */
static void bind_user(sqlite3_stmt *stmt, const store_user_t *user)
{
    bind_text(stmt, 1, user->uuid);
    bind_text(stmt, 2, user->user_name);
    bind_text(stmt, 3, user->password_hash != NULL ? user->password_hash
                                                   : "");
    sqlite3_bind_int(stmt, 4, user->password_type);
    sqlite3_bind_int(stmt, 5, user->permission);
    sqlite3_bind_int64(stmt, 6, user->register_time);
    sqlite3_bind_int64(stmt, 7, user->login_time);
    sqlite3_bind_int(stmt, 8, user->is_init ? 1 : 0);
    sqlite3_bind_int(stmt, 9, user->open_2fa ? 1 : 0);
    bind_text(stmt, 10, user->secret != NULL ? user->secret : "");
    bind_text(stmt, 11, user->sso_sub != NULL ? user->sso_sub : "");
    sqlite3_bind_int(stmt, 12, user->sso_bound ? 1 : 0);
}

/* Inserts a full record; key_digest may be NULL. */
static int user_insert(store_t *store, const store_user_t *user,
                       const char *key_digest)
{
    sqlite3_stmt *stmt = store_stmt(store, ST_USER_INSERT);

    if (stmt == NULL)
        return -EIO;
    bind_user(stmt, user);
    bind_text(stmt, 13, key_digest);
    return store_exec_stmt(store, stmt, "insert user");
}

int store_user_create(store_t *store, const char *user_name,
                      const char *password_hash, int password_type,
                      int permission, char uuid_out[33])
{
    store_user_t user;
    int ret;

    if (user_name == NULL || user_name[0] == '\0' || password_hash == NULL)
        return -EINVAL;
    memset(&user, 0, sizeof(user));
    ident_uuid32(user.uuid);
    user.user_name = (char *)user_name;
    user.password_hash = (char *)password_hash;
    user.password_type = password_type;
    user.permission = permission;
    user.register_time = user.login_time = util_now_ms();
    ret = user_insert(store, &user, NULL);
    if (ret == 0 && uuid_out != NULL)
        memcpy(uuid_out, user.uuid, 33);
    return ret;
}

int store_user_update(store_t *store, const store_user_t *user)
{
    sqlite3_stmt *stmt = store_stmt(store, ST_USER_UPDATE);
    int ret;

    if (user->user_name == NULL || user->user_name[0] == '\0')
        return -EINVAL;
    if (stmt == NULL)
        return -EIO;
    bind_user(stmt, user);
    ret = store_exec_stmt(store, stmt, "update user");
    if (ret == 0 && sqlite3_changes(store->db) == 0)
        ret = -ENOENT;
    return ret;
}

static int user_delete_grants(store_t *store, const char *uuid)
{
    sqlite3_stmt *stmt = store_stmt(store, ST_GRANTS_DELETE_USER);

    if (stmt == NULL)
        return -EIO;
    bind_text(stmt, 1, uuid);
    return store_exec_stmt(store, stmt, "delete grants");
}

int store_user_delete(store_t *store, const char *uuid)
{
    sqlite3_stmt *stmt;
    int ret;

    ret = store_begin(store);
    if (ret != 0)
        return ret;
    stmt = store_stmt(store, ST_USER_DELETE);
    if (stmt == NULL) {
        ret = -EIO;
    } else {
        bind_text(stmt, 1, uuid);
        ret = store_exec_stmt(store, stmt, "delete user");
        if (ret == 0 && sqlite3_changes(store->db) == 0)
            ret = -ENOENT;
    }
    if (ret == 0)
        ret = user_delete_grants(store, uuid);
    return store_end(store, ret);
}

int store_user_count(store_t *store)
{
    sqlite3_stmt *stmt = store_stmt(store, ST_USER_COUNT);
    int count = 0;

    if (stmt == NULL)
        return 0;
    if (sqlite3_step(stmt) == SQLITE_ROW)
        count = sqlite3_column_int(stmt, 0);
    else
        store_fail(store, "count users");
    store_release(stmt);
    return count;
}

/* Appends every row of a user query to out->users. */
static int user_collect(store_t *store, sqlite3_stmt *stmt,
                        store_user_page_t *out)
{
    size_t capacity = 0;
    int rc;

    while ((rc = sqlite3_step(stmt)) == SQLITE_ROW) {
        if (out->count == capacity) {
            capacity = capacity != 0 ? capacity * 2 : 16;
            out->users = xrealloc(out->users,
                                  capacity * sizeof(*out->users));
        }
        out->users[out->count++] = user_from_row(stmt);
    }
    store_release(stmt);
    if (rc != SQLITE_DONE) {
        store_user_page_clear(out);
        return store_fail(store, "list users");
    }
    return 0;
}

static void bind_user_filter(sqlite3_stmt *stmt, const char *name_part,
                             const int *role)
{
    bind_text(stmt, 1, name_part != NULL && name_part[0] != '\0' ? name_part
                                                                 : NULL);
    if (role != NULL)
        sqlite3_bind_int(stmt, 2, *role);
    else
        sqlite3_bind_null(stmt, 2);
}

int store_user_search(store_t *store, const char *name_part, const int *role,
                      int page, int page_size, store_user_page_t *out)
{
    sqlite3_stmt *count_stmt, *stmt;
    int rc;

    memset(out, 0, sizeof(*out));
    if (page < 1 || page_size < 1 || page_size > 50)
        return -EINVAL;
    count_stmt = store_stmt(store, ST_USER_SEARCH_COUNT);
    stmt = store_stmt(store, ST_USER_SEARCH);
    if (count_stmt == NULL || stmt == NULL)
        return -EIO;

    bind_user_filter(count_stmt, name_part, role);
    rc = sqlite3_step(count_stmt);
    if (rc == SQLITE_ROW)
        out->total = sqlite3_column_int(count_stmt, 0);
    store_release(count_stmt);
    if (rc != SQLITE_ROW)
        return store_fail(store, "count users");

    out->page = page;
    out->page_size = page_size;
    out->max_page = (out->total + page_size - 1) / page_size;
    bind_user_filter(stmt, name_part, role);
    sqlite3_bind_int(stmt, 3, page_size);
    sqlite3_bind_int64(stmt, 4, (sqlite3_int64)(page - 1) * page_size);
    rc = user_collect(store, stmt, out);
    if (rc == 0)
        return 0;
    memset(out, 0, sizeof(*out));
    return rc;
}

int store_user_list(store_t *store, store_user_page_t *out)
{
    sqlite3_stmt *stmt = store_stmt(store, ST_USER_LIST);
    int ret;

    memset(out, 0, sizeof(*out));
    if (stmt == NULL)
        return -EIO;
    ret = user_collect(store, stmt, out);
    if (ret != 0)
        return ret;
    out->page = 1;
    out->total = out->page_size = (int)out->count;
    out->max_page = out->count > 0 ? 1 : 0;
    return 0;
}

void store_user_page_clear(store_user_page_t *page)
{
    size_t i;

    for (i = 0; i < page->count; i++)
        store_user_free(page->users[i]);
    free(page->users);
    memset(page, 0, sizeof(*page));
}

/* Stores digest (NULL clears) as the user's key. */
static int user_set_key_digest(store_t *store, const char *uuid,
                               const char *digest)
{
    sqlite3_stmt *stmt = store_stmt(store, ST_USER_SET_KEY);
    int ret;

    if (stmt == NULL)
        return -EIO;
    bind_text(stmt, 1, uuid);
    bind_text(stmt, 2, digest);
    ret = store_exec_stmt(store, stmt, "set api key");
    if (ret == 0 && sqlite3_changes(store->db) == 0)
        ret = -ENOENT;
    return ret;
}

int store_user_new_api_key(store_t *store, const char *uuid,
                           char key_out[33])
{
    char key[33], digest[65];
    int ret;

    ident_uuid32(key);
    api_key_digest(key, digest);
    ret = user_set_key_digest(store, uuid, digest);
    if (ret == 0)
        memcpy(key_out, key, sizeof(key));
    sodium_memzero(key, sizeof(key));
    return ret;
}

int store_user_set_api_key(store_t *store, const char *uuid, const char *key)
{
    char digest[65];

    if (key == NULL || key[0] == '\0')
        return user_set_key_digest(store, uuid, NULL);
    api_key_digest(key, digest);
    return user_set_key_digest(store, uuid, digest);
}

/* ---- grants ---- */

json_t *store_grants_get(store_t *store, const char *user_uuid)
{
    sqlite3_stmt *stmt = store_stmt(store, ST_GRANTS_GET);
    json_t *list = json_array();
    int rc;

    if (stmt == NULL)
        return list;
    bind_text(stmt, 1, user_uuid);
    while ((rc = sqlite3_step(stmt)) == SQLITE_ROW) {
        json_t *grant = json_object();

        json_object_set_new(grant, "instanceUuid",
                            json_string((const char *)
                                            sqlite3_column_text(stmt, 0)));
        json_object_set_new(grant, "daemonId",
                            json_string((const char *)
                                            sqlite3_column_text(stmt, 1)));
        json_array_append_new(list, grant);
    }
    if (rc != SQLITE_DONE)
        store_fail(store, "read grants");
    store_release(stmt);
    return list;
}

/* Returns 1 if instances is an array of well-formed grant objects. */
static int grants_valid(json_t *instances)
{
    size_t i;
    json_t *item;

    if (!json_is_array(instances))
        return 0;
    json_array_foreach(instances, i, item) {
        const char *daemon_id =
            json_string_value(json_object_get(item, "daemonId"));
        const char *instance_uuid =
            json_string_value(json_object_get(item, "instanceUuid"));

        if (daemon_id == NULL || daemon_id[0] == '\0' ||
            instance_uuid == NULL || instance_uuid[0] == '\0')
            return 0;
    }
    return 1;
}

/* Replaces the grants of a user; runs inside the caller's transaction. */
static int grants_replace(store_t *store, const char *user_uuid,
                          json_t *instances)
{
    sqlite3_stmt *stmt;
    size_t i;
    json_t *item;
    int ret = user_delete_grants(store, user_uuid);

    if (ret != 0)
        return ret;
    stmt = store_stmt(store, ST_GRANT_INSERT);
    if (stmt == NULL)
        return -EIO;
    json_array_foreach(instances, i, item) {
        bind_text(stmt, 1, user_uuid);
        bind_text(stmt, 2,
                  json_string_value(json_object_get(item, "daemonId")));
        bind_text(stmt, 3,
                  json_string_value(json_object_get(item, "instanceUuid")));
        sqlite3_bind_int64(stmt, 4, (sqlite3_int64)i);
        ret = store_exec_stmt(store, stmt, "insert grant");
        if (ret != 0)
            return ret;
    }
    return 0;
}

static int user_exists(store_t *store, const char *uuid)
{
    sqlite3_stmt *stmt = store_stmt(store, ST_USER_ID_BY_UUID);

    if (stmt == NULL)
        return -EIO;
    bind_text(stmt, 1, uuid);
    return store_exists(store, stmt);
}

int store_grants_set(store_t *store, const char *user_uuid,
                     json_t *instances)
{
    int ret;

    if (!grants_valid(instances))
        return -EINVAL;
    ret = store_begin(store);
    if (ret != 0)
        return ret;
    ret = user_exists(store, user_uuid);
    if (ret == 0)
        ret = -ENOENT;
    else if (ret == 1)
        ret = grants_replace(store, user_uuid, instances);
    return store_end(store, ret);
}

int store_grant_check(store_t *store, const char *user_uuid,
                      const char *daemon_id, const char *instance_uuid)
{
    sqlite3_stmt *stmt = store_stmt(store, ST_GRANT_CHECK);

    if (stmt == NULL || user_uuid == NULL || daemon_id == NULL ||
        instance_uuid == NULL)
        return 0;
    bind_text(stmt, 1, user_uuid);
    bind_text(stmt, 2, daemon_id);
    bind_text(stmt, 3, instance_uuid);
    return store_exists(store, stmt) == 1;
}

int store_grants_remove_instances(store_t *store, const char *daemon_id,
                                  const char *const *instance_uuids,
                                  size_t count)
{
    enum store_stmt id = daemon_id != NULL ? ST_GRANTS_REMOVE
                                           : ST_GRANTS_REMOVE_ANY;
    sqlite3_stmt *stmt = store_stmt(store, id);
    size_t i;
    int ret;

    if (stmt == NULL)
        return -EIO;
    ret = store_begin(store);
    if (ret != 0)
        return ret;
    for (i = 0; ret == 0 && i < count; i++) {
        bind_text(stmt, 1, instance_uuids[i]);
        if (daemon_id != NULL)
            bind_text(stmt, 2, daemon_id);
        ret = store_exec_stmt(store, stmt, "remove grants");
    }
    return store_end(store, ret);
}

/* ---- nodes ---- */

static store_node_t *node_from_row(sqlite3_stmt *stmt)
{
    store_node_t *node = xcalloc(1, sizeof(*node));
    const unsigned char *uuid = sqlite3_column_text(stmt, 0);
    const unsigned char *mappings = sqlite3_column_text(stmt, 6);

    snprintf(node->uuid, sizeof(node->uuid), "%s",
             uuid != NULL ? (const char *)uuid : "");
    node->ip = column_text(stmt, 1);
    node->port = sqlite3_column_int(stmt, 2);
    node->prefix = column_text(stmt, 3);
    node->remarks = column_text(stmt, 4);
    node->api_key = column_text(stmt, 5);
    node->remote_mappings =
        mappings != NULL ? json_loads((const char *)mappings, 0, NULL) : NULL;
    if (!json_is_array(node->remote_mappings)) {
        json_decref(node->remote_mappings);
        node->remote_mappings = json_array();
    }
    return node;
}

/* Binds parameters 1..7 of a node insert or update. The returned text of
 * remote_mappings must be freed after the statement ran. */
static char *bind_node(sqlite3_stmt *stmt, const store_node_t *node)
{
    char *mappings = json_is_array(node->remote_mappings)
                         ? json_dumps(node->remote_mappings, JSON_COMPACT)
                         : xstrdup("[]");

    bind_text(stmt, 1, node->uuid);
    bind_text(stmt, 2, node->ip != NULL ? node->ip : "");
    sqlite3_bind_int(stmt, 3, node->port);
    bind_text(stmt, 4, node->prefix != NULL ? node->prefix : "");
    bind_text(stmt, 5, node->remarks != NULL ? node->remarks : "");
    bind_text(stmt, 6, node->api_key != NULL ? node->api_key : "");
    bind_text(stmt, 7, mappings);
    return mappings;
}

/* Runs a node insert or update statement for node. */
static int node_write(store_t *store, enum store_stmt id,
                      const store_node_t *node)
{
    sqlite3_stmt *stmt;
    char *mappings;
    int ret;

    if (node->port < 1 || node->port > 65535)
        return -EINVAL;
    stmt = store_stmt(store, id);
    if (stmt == NULL)
        return -EIO;
    mappings = bind_node(stmt, node);
    ret = store_exec_stmt(store, stmt, "write node");
    free(mappings);
    if (ret == 0 && id == ST_NODE_UPDATE && sqlite3_changes(store->db) == 0)
        ret = -ENOENT;
    return ret;
}

int store_node_add(store_t *store, const store_node_t *node,
                   char uuid_out[33])
{
    store_node_t copy = *node;
    int ret;

    if (copy.uuid[0] == '\0')
        ident_uuid32(copy.uuid);
    ret = node_write(store, ST_NODE_INSERT, &copy);
    if (ret == 0 && uuid_out != NULL)
        memcpy(uuid_out, copy.uuid, 33);
    return ret;
}

int store_node_update(store_t *store, const store_node_t *node)
{
    return node_write(store, ST_NODE_UPDATE, node);
}

int store_node_remove(store_t *store, const char *uuid)
{
    sqlite3_stmt *stmt = store_stmt(store, ST_NODE_DELETE);
    int ret;

    if (stmt == NULL)
        return -EIO;
    bind_text(stmt, 1, uuid);
    ret = store_exec_stmt(store, stmt, "delete node");
    if (ret == 0 && sqlite3_changes(store->db) == 0)
        ret = -ENOENT;
    return ret;
}

store_node_t *store_node_get(store_t *store, const char *uuid)
{
    sqlite3_stmt *stmt = store_stmt(store, ST_NODE_GET);
    store_node_t *node = NULL;
    int rc;

    if (stmt == NULL || uuid == NULL)
        return NULL;
    bind_text(stmt, 1, uuid);
    rc = sqlite3_step(stmt);
    if (rc == SQLITE_ROW)
        node = node_from_row(stmt);
    else if (rc != SQLITE_DONE)
        store_fail(store, "find node");
    store_release(stmt);
    return node;
}

int store_node_list(store_t *store, store_node_t ***out, size_t *count)
{
    sqlite3_stmt *stmt = store_stmt(store, ST_NODE_LIST);
    store_node_t **nodes = NULL;
    size_t n = 0, capacity = 0;
    int rc;

    *out = NULL;
    *count = 0;
    if (stmt == NULL)
        return -EIO;
    while ((rc = sqlite3_step(stmt)) == SQLITE_ROW) {
        if (n == capacity) {
            capacity = capacity != 0 ? capacity * 2 : 8;
            nodes = xrealloc(nodes, capacity * sizeof(*nodes));
        }
        nodes[n++] = node_from_row(stmt);
    }
    store_release(stmt);
    if (rc != SQLITE_DONE) {
        store_node_list_free(nodes, n);
        return store_fail(store, "list nodes");
    }
    *out = nodes;
    *count = n;
    return 0;
}

void store_node_free(store_node_t *node)
{
    if (node == NULL)
        return;
    free(node->ip);
    free(node->prefix);
    free(node->remarks);
    if (node->api_key != NULL) {
        sodium_memzero(node->api_key, strlen(node->api_key));
        free(node->api_key);
    }
    json_decref(node->remote_mappings);
    free(node);
}

void store_node_list_free(store_node_t **nodes, size_t count)
{
    size_t i;

    for (i = 0; i < count; i++)
        store_node_free(nodes[i]);
    free(nodes);
}

/* ---- MCSManager import ---- */

/*
 * Parses MCSManager's Date.toLocaleString() output as local time: en-US
 * "12/4/2026, 3:27:40 PM" and the Y/M/D 24-hour form of Chinese locales
 * ("2026/12/4 15:27:40"). Returns ms since the epoch, or 0 if unreadable.
 */
static int64_t parse_locale_time(const char *text)
{
    struct tm tm;
    int a, b, c, hour, min, sec;
    char ampm[3] = "";
    time_t t;

    if (text == NULL)
        return 0;
    memset(&tm, 0, sizeof(tm));
    if (sscanf(text, "%d/%d/%d, %d:%d:%d %2s", &a, &b, &c, &hour, &min,
               &sec, ampm) == 7) {
        /* en-US: month/day/year with a 12-hour clock. */
        if (hour == 12)
            hour = 0;
        if (ampm[0] == 'P' || ampm[0] == 'p')
            hour += 12;
        tm.tm_mon = a - 1;
        tm.tm_mday = b;
        tm.tm_year = c - 1900;
    } else if (sscanf(text, "%d/%d/%d %d:%d:%d", &a, &b, &c, &hour, &min,
                      &sec) == 6 &&
               a > 31) {
        tm.tm_year = a - 1900;
        tm.tm_mon = b - 1;
        tm.tm_mday = c;
    } else {
        return 0;
    }
    tm.tm_hour = hour;
    tm.tm_min = min;
    tm.tm_sec = sec;
    tm.tm_isdst = -1;
    t = mktime(&tm);
    return t == (time_t)-1 ? 0 : (int64_t)t * 1000;
}

/* Returns 1 if name is safe as MCSManager's identifier-as-file-name. */
static int import_id_valid(const char *id)
{
    return id != NULL && id[0] != '\0' && strchr(id, '/') == NULL &&
           strchr(id, '\\') == NULL && strstr(id, "..") == NULL &&
           strlen(id) < 33;
}

static const char *json_str_or(json_t *obj, const char *key,
                               const char *fallback)
{
    const char *s = json_string_value(json_object_get(obj, key));

    return s != NULL ? s : fallback;
}

/* Reads one JSON object file; returns NULL (warned) when unreadable. */
static json_t *import_read(const char *path)
{
    json_error_t jerr;
    json_t *doc = json_load_file(path, 0, &jerr);

    if (!json_is_object(doc)) {
        log_warn("store import: skipping %s: %s", path,
                 doc == NULL ? jerr.text : "not a JSON object");
        json_decref(doc);
        return NULL;
    }
    return doc;
}

/* Fills a user record from an MCSManager User/<uuid>.json document. The
 * strings point into doc. */
static int import_user_fields(json_t *doc, store_user_t *user)
{
    const char *uuid = json_str_or(doc, "uuid", NULL);
    json_t *type;

    memset(user, 0, sizeof(*user));
    if (!import_id_valid(uuid))
        return -EINVAL;
    snprintf(user->uuid, sizeof(user->uuid), "%s", uuid);
    user->user_name = (char *)json_str_or(doc, "userName", "");
    user->password_hash = (char *)json_str_or(doc, "passWord", "");
    type = json_object_get(doc, "passWordType");
    if (json_is_integer(type))
        user->password_type = (int)json_integer_value(type);
    else
        user->password_type = strncmp(user->password_hash, "$2", 2) == 0
                                  ? PASSWORD_BCRYPT
                                  : PASSWORD_MD5;
    user->permission =
        (int)json_integer_value(json_object_get(doc, "permission"));
    user->register_time =
        parse_locale_time(json_str_or(doc, "registerTime", NULL));
    user->login_time = parse_locale_time(json_str_or(doc, "loginTime", NULL));
    user->is_init = json_is_true(json_object_get(doc, "isInit"));
    user->open_2fa = json_is_true(json_object_get(doc, "open2FA"));
    user->secret = (char *)json_str_or(doc, "secret", "");
    user->sso_sub = (char *)json_str_or(doc, "ssoSub", "");
    user->sso_bound = json_is_true(json_object_get(doc, "ssoBound"));
    return user->user_name[0] != '\0' ? 0 : -EINVAL;
}

/* Returns the digest of the document's apiKey, or NULL if it has none or
 * another user already has it. */
static const char *import_key_digest(store_t *store, json_t *doc,
                                     const char *uuid, char digest[65])
{
    const char *key = json_str_or(doc, "apiKey", "");
    sqlite3_stmt *stmt;
    const char *owner = NULL;
    int taken = 0;

    if (key[0] == '\0')
        return NULL;
    api_key_digest(key, digest);
    stmt = store_stmt(store, ST_USER_UUID_BY_KEY);
    if (stmt == NULL)
        return NULL;
    bind_text(stmt, 1, digest);
    if (sqlite3_step(stmt) == SQLITE_ROW) {
        owner = (const char *)sqlite3_column_text(stmt, 0);
        taken = owner != NULL && strcmp(owner, uuid) != 0;
    }
    store_release(stmt);
    if (!taken)
        return digest;
    log_warn("store import: user %s: API key already belongs to another "
             "user; imported without a key",
             uuid);
    return NULL;
}

/* Returns 1 if user_name belongs to a user other than uuid, 0 if not,
 * -EIO on failure. */
static int import_name_taken(store_t *store, const char *user_name,
                             const char *uuid)
{
    sqlite3_stmt *stmt = store_stmt(store, ST_USER_ID_BY_NAME);
    int rc, taken = 0;

    if (stmt == NULL)
        return -EIO;
    bind_text(stmt, 1, user_name);
    rc = sqlite3_step(stmt);
    if (rc == SQLITE_ROW)
        taken = strcmp((const char *)sqlite3_column_text(stmt, 0), uuid) != 0;
    store_release(stmt);
    if (rc != SQLITE_ROW && rc != SQLITE_DONE)
        return store_fail(store, "find user name");
    return taken;
}

/* Imports one user document. Returns 0 (imported or skipped) or -EIO. */
static int import_user(store_t *store, json_t *doc, const char *path)
{
    store_user_t user;
    json_t *instances = json_object_get(doc, "instances");
    json_t *grants = json_array();
    char digest_buf[65];
    const char *digest;
    sqlite3_stmt *stmt;
    size_t i;
    json_t *item;
    int ret;

    if (import_user_fields(doc, &user) != 0) {
        log_warn("store import: skipping %s: uuid or userName missing",
                 path);
        json_decref(grants);
        return 0;
    }
    ret = import_name_taken(store, user.user_name, user.uuid);
    if (ret != 0) {
        if (ret == 1) {
            char name[80];

            log_warn("store import: skipping user %s: name \"%s\" is taken",
                     user.uuid,
                     log_escape(name, sizeof(name), user.user_name,
                                strlen(user.user_name)));
            ret = 0;
        }
        json_decref(grants);
        return ret;
    }
    digest = import_key_digest(store, doc, user.uuid, digest_buf);

    /* Keep only well-formed entries; MCSManager's "serviceUuid" of v9
     * data is the old name of daemonId. */
    json_array_foreach(instances, i, item) {
        const char *daemon_id = json_str_or(item, "daemonId",
                                            json_str_or(item, "serviceUuid",
                                                        ""));
        const char *instance_uuid = json_str_or(item, "instanceUuid", "");

        if (daemon_id[0] == '\0' || instance_uuid[0] == '\0')
            continue;
        json_array_append_new(grants,
                              json_pack("{s:s, s:s}", "daemonId", daemon_id,
                                        "instanceUuid", instance_uuid));
    }

    ret = user_exists(store, user.uuid);
    if (ret == 0) {
        ret = user_insert(store, &user, digest);
    } else if (ret == 1) {
        stmt = store_stmt(store, ST_USER_IMPORT_UPDATE);
        if (stmt == NULL) {
            ret = -EIO;
        } else {
            bind_user(stmt, &user);
            bind_text(stmt, 13, digest);
            ret = store_exec_stmt(store, stmt, "import user");
        }
    }
    if (ret == 0)
        ret = grants_replace(store, user.uuid, grants);
    json_decref(grants);
    if (ret == -EEXIST) {
        log_warn("store import: skipping %s: conflicts with a stored user",
                 path);
        ret = 0;
    }
    return ret;
}

/* Imports one RemoteServiceConfig/<uuid>.json document. */
static int import_node(store_t *store, json_t *doc, const char *uuid)
{
    store_node_t node;
    sqlite3_stmt *stmt;
    json_t *port = json_object_get(doc, "port");
    int ret;

    memset(&node, 0, sizeof(node));
    snprintf(node.uuid, sizeof(node.uuid), "%s", uuid);
    node.ip = (char *)json_str_or(doc, "ip", "");
    node.port = json_is_integer(port) ? (int)json_integer_value(port) : 24444;
    node.prefix = (char *)json_str_or(doc, "prefix", "");
    node.remarks = (char *)json_str_or(doc, "remarks", "");
    node.api_key = (char *)json_str_or(doc, "apiKey", "");
    node.remote_mappings = json_object_get(doc, "remoteMappings");

    stmt = store_stmt(store, ST_NODE_EXISTS);
    if (stmt == NULL)
        return -EIO;
    bind_text(stmt, 1, uuid);
    ret = store_exists(store, stmt);
    if (ret < 0)
        return ret;
    ret = node_write(store, ret == 1 ? ST_NODE_UPDATE : ST_NODE_INSERT,
                     &node);
    if (ret == -EINVAL) {
        log_warn("store import: skipping node %s: port %d is invalid", uuid,
                 node.port);
        ret = 0;
    }
    return ret;
}

/* Calls fn for every <id>.json in folder. A missing folder is empty. */
static int import_folder(store_t *store, const char *folder,
                         int (*fn)(store_t *, json_t *, const char *,
                                   const char *))
{
    DIR *dir = opendir(folder);
    struct dirent *entry;
    int ret = 0;

    if (dir == NULL)
        return errno == ENOENT ? 0 : -errno;
    while (ret == 0 && (entry = readdir(dir)) != NULL) {
        size_t len = strlen(entry->d_name);
        char *path, *id;
        json_t *doc;

        if (len <= 5 || strcmp(entry->d_name + len - 5, ".json") != 0)
            continue;
        path = xasprintf("%s/%s", folder, entry->d_name);
        id = xstrndup(entry->d_name, len - 5);
        doc = import_read(path);
        if (doc != NULL)
            ret = fn(store, doc, id, path);
        json_decref(doc);
        free(id);
        free(path);
    }
    closedir(dir);
    return ret;
}

static int import_user_entry(store_t *store, json_t *doc, const char *id,
                             const char *path)
{
    return import_user(store, doc, path);
}

static int import_node_entry(store_t *store, json_t *doc, const char *id,
                             const char *path)
{
    if (!import_id_valid(id)) {
        log_warn("store import: skipping %s: invalid node id", path);
        return 0;
    }
    return import_node(store, doc, id);
}

int store_import_mcsm(store_t *store, const char *panel_data_dir)
{
    struct stat st;
    char *users = xasprintf("%s/User", panel_data_dir);
    char *nodes = xasprintf("%s/RemoteServiceConfig", panel_data_dir);
    char *config = xasprintf("%s/SystemConfig/config.json", panel_data_dir);
    json_t *patch = NULL, *settings = NULL;
    int ret;

    if (stat(panel_data_dir, &st) != 0 || !S_ISDIR(st.st_mode)) {
        ret = -ENOENT;
        goto out;
    }
    if (access(config, F_OK) == 0) {
        patch = import_read(config);
        if (patch != NULL) {
            settings = settings_merge(store->settings, patch, 0, NULL);
            settings_ensure_panel_id(settings);
        }
    }

    ret = store_begin(store);
    if (ret != 0)
        goto out;
    ret = import_folder(store, users, import_user_entry);
    if (ret == 0)
        ret = import_folder(store, nodes, import_node_entry);
    if (ret == 0 && settings != NULL)
        ret = settings_save(store, settings);
    ret = store_end(store, ret);
    if (ret == 0 && settings != NULL) {
        settings_install(store, settings);
        settings = NULL;
    }
    if (ret == 0)
        log_info("store: imported MCSManager data from %s", panel_data_dir);
    else
        log_error("store: import from %s failed: %s", panel_data_dir,
                  strerror(-ret));

out:
    json_decref(patch);
    json_decref(settings);
    free(config);
    free(nodes);
    free(users);
    return ret;
}
