#ifndef HEARTH_PANEL_STORE_H
#define HEARTH_PANEL_STORE_H

#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

/*
 * The panel's persistent state in one SQLite database, <data_dir>/hearth.db
 * (WAL journal): users, per-user instance grants, panel settings and nodes
 * (daemons). The schema is created and migrated in code on open, keyed by
 * PRAGMA user_version. Every change that touches more than one row runs in
 * one transaction.
 *
 * A store is used from one thread only (the panel's loop thread). Lookups
 * on the request path (API key, grants, settings) use prepared statements
 * cached on the store, and settings are served from an in-memory copy.
 *
 * Errors: functions returning int return 0 or a negative errno: -ENOENT (no
 * such record), -EEXIST (unique name or key taken), -EINVAL (bad argument),
 * -EIO (SQLite failed; the SQLite message is logged). Functions returning a
 * pointer return NULL when the record is missing or on -EIO (logged).
 *
 * Difference from MCSManager: API keys are stored as SHA-256 digests, never
 * in clear, so a key can be shown only once, when it is created or set.
 * MCSManager never shows a stored key again either (it masks it as
 * "__MCSM_SECRET_DATA__"), so no client can tell the difference.
 */

typedef struct store store_t;

/* Permission levels of MCSManager; any negative value means banned. */
enum store_permission {
    STORE_PERM_BANNED = -1,
    STORE_PERM_GUEST = 0,
    STORE_PERM_USER = 1,
    STORE_PERM_ADMIN = 10
};

/* The panel setting enableApiKey: false, true or "ONLY_ADMIN". */
enum store_api_key_mode {
    STORE_API_KEY_OFF = 0,
    STORE_API_KEY_ON = 1,
    STORE_API_KEY_ONLY_ADMIN = 2
};

/*
 * A user record, MCSManager's field names in the comments. Records returned
 * by the store are owned by the caller and freed with store_user_free. The
 * strings are heap copies (never NULL, possibly ""), so the caller may
 * replace them with xstrdup'ed strings before store_user_update.
 */
typedef struct store_user {
    char uuid[33];         /* uuid: 32 lowercase hex */
    char *user_name;       /* userName: unique, compared exactly */
    char *password_hash;   /* passWord */
    int password_type;     /* passWordType: enum password_type */
    int permission;        /* permission: enum store_permission */
    int64_t register_time; /* registerTime, ms since the epoch */
    int64_t login_time;    /* loginTime, ms since the epoch */
    int is_init;           /* isInit */
    int open_2fa;          /* open2FA */
    char *secret;          /* secret: TOTP base32 secret, "" if none */
    char *sso_sub;         /* ssoSub */
    int sso_bound;         /* ssoBound */
    int has_api_key;       /* apiKey != "": the key itself is not stored */
} store_user_t;

/* One page of users, as GET /api/auth/search returns them. */
typedef struct store_user_page {
    int page;            /* page as requested (>= 1) */
    int page_size;       /* 1..50 */
    int max_page;        /* ceil(total / page_size): 0 when total is 0 */
    int total;           /* users matching the filter */
    size_t count;        /* entries in users (<= page_size) */
    store_user_t **users;
} store_user_page_t;

/*
 * A node (remote daemon) record. The daemon key is stored in clear because
 * the panel must send it to the daemon. Records returned by the store are
 * owned by the caller (store_node_free).
 */
typedef struct store_node {
    char uuid[33];           /* 32 lowercase hex */
    char *ip;                /* host name, address, or ws:// / wss:// URL */
    int port;                /* 24444 by default */
    char *prefix;            /* path prefix before /socket.io, may be "" */
    char *remarks;
    char *api_key;           /* the daemon key (apiKey) */
    json_t *remote_mappings; /* remoteMappings: a JSON array, owned */
} store_node_t;

/* ---- life cycle ---- */

/*
 * Opens (creating if needed) <data_dir>/hearth.db, creating data_dir too,
 * migrates the schema and loads the settings, generating panelId on first
 * start. Returns NULL on failure, which is logged with the reason.
 */
store_t *store_new(const char *data_dir);
/* Closes the database and frees the store. NULL is accepted. */
void store_free(store_t *store);

/* ---- users ---- */

/*
 * Creates a user with a new uuid, registerTime = loginTime = now and every
 * other field empty/false. password_hash is an already computed hash of
 * type password_type. Writes the uuid to uuid_out when it is not NULL.
 * Returns 0, -EEXIST if user_name is taken, -EINVAL if it is empty or
 * password_hash is NULL.
 */
int store_user_create(store_t *store, const char *user_name,
                      const char *password_hash, int password_type,
                      int permission, char uuid_out[33]);
/* Returns the user with this uuid (caller frees), or NULL. */
store_user_t *store_user_get(store_t *store, const char *uuid);
/* Returns the user with exactly this userName (caller frees), or NULL. */
store_user_t *store_user_find_by_name(store_t *store, const char *user_name);
/*
 * Returns the user holding this API key (caller frees), or NULL. The key is
 * hashed and looked up by an index, so this costs one SHA-256 and one
 * indexed read. "" never matches.
 */
store_user_t *store_user_find_by_api_key(store_t *store, const char *key);
/*
 * Writes every field of user except uuid, has_api_key and the grants to the
 * record with user->uuid. Returns 0, -ENOENT, -EEXIST if the new userName
 * belongs to another user, -EINVAL if it is empty.
 */
int store_user_update(store_t *store, const store_user_t *user);
/*
 * Deletes the user and its grants in one transaction. Returns 0 or -ENOENT.
 */
int store_user_delete(store_t *store, const char *uuid);
/* Frees a user record. NULL is accepted. */
void store_user_free(store_user_t *user);

/* Returns the number of users (0 means the panel is not installed yet). */
int store_user_count(store_t *store);

/*
 * Fills out with page `page` (>= 1) of the users whose userName contains
 * name_part (case-sensitive substring; NULL or "" for all), filtered to
 * permission == *role when role is not NULL, ordered by registration.
 * page_size must be 1..50 and page >= 1 (the caller clamps or rejects
 * them). A page past the end has count 0. Returns 0, -EINVAL or -EIO; on
 * success release out with store_user_page_clear.
 */
int store_user_search(store_t *store, const char *name_part, const int *role,
                      int page, int page_size, store_user_page_t *out);
/*
 * Fills out with every user, ordered by registration (page 1, page_size =
 * total = count, max_page 1, or 0 when empty). Returns 0 or -EIO.
 */
int store_user_list(store_t *store, store_user_page_t *out);
/* Frees the users in a page and zeroes it. */
void store_user_page_clear(store_user_page_t *page);

/*
 * Gives the user a new random API key (uuid v4 without dashes, 32 hex, as
 * MCSManager's), replacing any previous one, and writes it to key_out.
 * This is the only time the key text is available. Returns 0 or -ENOENT.
 */
int store_user_new_api_key(store_t *store, const char *uuid,
                           char key_out[33]);
/*
 * Sets the user's API key to key as given (an admin's PUT /api/auth
 * config.apiKey), or clears it when key is NULL or "". Returns 0, -ENOENT,
 * or -EEXIST when another user already has that key, since a key must
 * identify exactly one user.
 */
int store_user_set_api_key(store_t *store, const char *uuid, const char *key);

/* ---- instance grants ---- */

/*
 * Returns the user's grants as a new JSON array of {"instanceUuid",
 * "daemonId"} objects in the order they were set (MCSManager's `instances`
 * field); an empty array for an unknown user. Caller decrefs.
 */
json_t *store_grants_get(store_t *store, const char *user_uuid);
/*
 * Replaces the user's whole grant list with instances, a borrowed JSON array
 * of objects with non-empty string "daemonId" and "instanceUuid". Other
 * keys are ignored and duplicates are kept once. Returns 0, -ENOENT for an
 * unknown user, -EINVAL (nothing changed) if any element is malformed.
 */
int store_grants_set(store_t *store, const char *user_uuid,
                     json_t *instances);
/*
 * Returns 1 if the user was granted that instance on that daemon, else 0
 * (also on database errors). Does not treat admins specially: the caller
 * checks the permission first. One cached indexed read.
 */
int store_grant_check(store_t *store, const char *user_uuid,
                      const char *daemon_id, const char *instance_uuid);
/*
 * Removes the grants of the given instances from every user, in one
 * transaction (used when instances are deleted). daemon_id NULL matches any
 * daemon. Returns 0 or -EIO.
 */
int store_grants_remove_instances(store_t *store, const char *daemon_id,
                                  const char *const *instance_uuids,
                                  size_t count);

/* ---- settings (MCSManager's SystemConfig) ---- */

/*
 * Returns the settings object with every SystemConfig field (stored values
 * over the defaults). Borrowed: valid until the next store_settings_update
 * or store_free; callers must not modify it. Never touches SQLite.
 */
const json_t *store_settings(const store_t *store);
/* Returns the enableApiKey setting, read from the in-memory copy. */
enum store_api_key_mode store_settings_api_key_mode(const store_t *store);
/*
 * Merges the known SystemConfig keys of patch (borrowed object) into the
 * settings and saves them; unknown keys are ignored. A value of the wrong
 * type rejects the whole patch: returns -EINVAL and, if error is not NULL,
 * sets *error to a message naming the key and the expected type (caller
 * frees). Integers must be JSON integers, booleans JSON booleans, strings
 * JSON strings; enableApiKey takes true, false or "ONLY_ADMIN". Returns 0
 * or -EIO otherwise.
 */
int store_settings_update(store_t *store, json_t *patch, char **error);

/* ---- nodes ---- */

/*
 * Stores a node. When node->uuid is "" a new uuid is generated; in both
 * cases the uuid used is written to uuid_out if not NULL. NULL strings are
 * stored as "" and a NULL remote_mappings as []. Returns 0, -EEXIST if the
 * uuid is taken, -EINVAL if the port is outside 1..65535.
 */
int store_node_add(store_t *store, const store_node_t *node,
                   char uuid_out[33]);
/* Overwrites the node with node->uuid. Returns 0, -ENOENT or -EINVAL. */
int store_node_update(store_t *store, const store_node_t *node);
/* Deletes the node (grants naming it are kept, as MCSManager keeps them).
 * Returns 0 or -ENOENT. */
int store_node_remove(store_t *store, const char *uuid);
/* Returns the node with this uuid (caller frees), or NULL. */
store_node_t *store_node_get(store_t *store, const char *uuid);
/*
 * Sets *out to a new array of every node in insertion order and *count to
 * its length (0 with *out NULL when there is none). Returns 0 or -EIO.
 * Release with store_node_list_free.
 */
int store_node_list(store_t *store, store_node_t ***out, size_t *count);
/* Frees a node record. NULL is accepted. */
void store_node_free(store_node_t *node);
/* Frees an array returned by store_node_list. */
void store_node_list_free(store_node_t **nodes, size_t count);

/* ---- MCSManager import ---- */

/*
 * Imports an MCSManager panel data folder (the one holding User/,
 * RemoteServiceConfig/ and SystemConfig/config.json) in one transaction.
 * Users keep their uuid, bcrypt or MD5 hash and type, their locale date
 * strings become ms timestamps (read as local time), their API key is
 * hashed and their instances become grants. Nodes keep their uuid and key.
 * Settings are merged as store_settings_update does. A record whose uuid
 * exists already is replaced; a user whose userName belongs to another
 * uuid is skipped with a warning. Unreadable or corrupt files are skipped
 * with a warning, as MCSManager treats them as missing. Returns 0, -ENOENT
 * if the folder does not exist, or -EIO (nothing imported).
 */
int store_import_mcsm(store_t *store, const char *panel_data_dir);

#endif
