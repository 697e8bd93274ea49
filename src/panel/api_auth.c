/*
 * The /api/auth routes: login, logout, install, the caller's own profile
 * and API key, and the administrators' user management.
 */
#include "panel/api_internal.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <openssl/evp.h>
#include <sodium.h>
#include <openssl/hmac.h>

#include "core/log.h"
#include "core/util.h"
#include "panel/password.h"

/* MCSManager's texts first, so scripts that compare them keep working. */
#define TEXT_LOGIN_HINT                                                        \
    " - check the user name (case-sensitive) and the password. hearth up "    \
    "prints the administrator's password at the first start and keeps it "    \
    "in its panel data folder as first-run.txt. After 10 failed logins "      \
    "from one address, logins from it are refused for 10 minutes."
#define TEXT_BAD_PASSWORD "Incorrect account or password" TEXT_LOGIN_HINT
#define TEXT_UNKNOWN_USER "Incorrect Username or Password" TEXT_LOGIN_HINT
#define TEXT_BAD_2FA "Two-factor authentication code is incorrect"
#define TEXT_BANNED_IP                                                         \
    "Too many failed attempts! Your IP address, as a result, has been "        \
    "banned for 10 minutes."
#define TEXT_INSTALLED                                                         \
    "Admin account has already been created and cannot be recreated"
#define TEXT_NAME_TAKEN "Username is already in use"

/* ---- small helpers ---- */

static const json_t *api__setting(api_t *api, const char *key)
{
    return json_object_get(store_settings(api->store), key);
}

static int api__setting_true(api_t *api, const char *key)
{
    return json_is_true(api__setting(api, key));
}

/* The client address, from the proxy header when reverseProxyMode is on. */
static void api__client_ip(api_call_t *call, char out[64])
{
    const char *ip = NULL;

    if (api__setting_true(call->api, "reverseProxyMode")) {
        const json_t *h = api__setting(call->api, "reverseProxyHeader");

        if (json_is_string(h))
            ip = http_request_header(call->req, json_string_value(h));
    }
    if (ip == NULL || ip[0] == '\0')
        ip = http_request_peer(call->req);
    snprintf(out, 64, "%s", ip);
}

static json_t *api__time_json(int64_t ms)
{
    char buf[40];

    api_format_locale_time(ms, buf);
    return json_string(buf);
}

/* Counts a started password job. Returns 0, or -1 after responding 500
 * when the job could not be queued. */
static int api__job_started(api_call_t *call, int rc, const char *operation)
{
    char *msg;

    if (rc == 0) {
        call->api->jobs++;
        return 0;
    }
    msg = xasprintf("%s failed: the password work could not be queued (%s)",
                    operation, uv_strerror(rc));
    api__done_error(call, 500, msg);
    free(msg);
    return -1;
}

/* ---- TOTP (RFC 6238: HMAC-SHA-1, 6 digits, 30 s steps) ---- */

static int api__base32_decode(const char *in, unsigned char *out, size_t size)
{
    unsigned buffer = 0;
    int bits = 0;
    size_t n = 0;

    for (; *in; in++) {
        int v;
        char c = *in;

        if (c == '=' || c == ' ' || c == '-')
            continue;
        if (c >= 'a' && c <= 'z')
            c = (char)(c - 'a' + 'A');
        if (c >= 'A' && c <= 'Z')
            v = c - 'A';
        else if (c >= '2' && c <= '7')
            v = c - '2' + 26;
        else
            return -1;
        buffer = (buffer << 5) | (unsigned)v;
        bits += 5;
        if (bits >= 8) {
            if (n >= size)
                return -1;
            out[n++] = (unsigned char)(buffer >> (bits - 8));
            bits -= 8;
        }
    }
    return (int)n;
}

static int api__totp_at(const unsigned char *key, int key_len, int64_t step)
{
    unsigned char msg[8], mac[EVP_MAX_MD_SIZE];
    unsigned mac_len = 0;
    unsigned off, code;
    int i;

    for (i = 7; i >= 0; i--) {
        msg[i] = (unsigned char)(step & 0xff);
        step >>= 8;
    }
    if (HMAC(EVP_sha1(), key, key_len, msg, sizeof(msg), mac, &mac_len) == NULL)
        return -1;
    off = mac[mac_len - 1] & 0x0f;
    code = ((unsigned)(mac[off] & 0x7f) << 24) |
           ((unsigned)mac[off + 1] << 16) | ((unsigned)mac[off + 2] << 8) |
           mac[off + 3];
    return (int)(code % 1000000);
}

/* 1 if code is the TOTP of secret now, within drift steps either way. */
static int api__totp_valid(const char *secret, const char *code, int drift)
{
    unsigned char key[128];
    int key_len = api__base32_decode(secret, key, sizeof(key));
    int64_t step = util_now_ms() / 1000 / 30;
    char want[8];
    int d;

    if (key_len <= 0 || code == NULL || strlen(code) != 6)
        return 0;
    for (d = -drift; d <= drift; d++) {
        int v = api__totp_at(key, key_len, step + d);

        snprintf(want, sizeof(want), "%06d", v);
        if (v >= 0 && util_secure_equal(want, code))
            return 1;
    }
    return 0;
}

/* ---- login, logout, install, status ---- */

typedef struct api_login_job {
    api_call_t *call;
    char ip[64];
    char user_uuid[33];
    char code[16];
    int code_sent;
} api_login_job_t;

static void api__login_succeeded(api_login_job_t *job, store_user_t *user,
                                 const char *new_hash)
{
    api_t *api = job->call->api;
    session_t *s;

    session_login_succeeded(api->sessions, job->ip);
    user->login_time = util_now_ms();
    if (new_hash != NULL) {
        /* Imported MCSManager hashes are replaced by argon2id on the first
         * successful login. */
        free(user->password_hash);
        user->password_hash = xstrdup(new_hash);
        user->password_type = PASSWORD_ARGON2ID;
    }
    if (store_user_update(api->store, user) != 0)
        log_warn("login of user %s: saving the login time failed", user->uuid);
    s = session_create(api->sessions, user->uuid, util_now_ms());
    api->record.logined++;
    log_info("user %s logged in from %s", user->uuid, job->ip);
    api__set_cookie(job->call, s);
    api__done_text(job->call, 200, session_token(s));
}

static void api__on_login_verified(int match, const char *new_hash, void *data)
{
    api_login_job_t *job = data;
    api_t *api = job->call->api;
    store_user_t *user = store_user_get(api->store, job->user_uuid);
    const json_t *drift = api__setting(api, "totpDriftToleranceSteps");

    api->jobs--;
    if (!match || user == NULL) {
        api->record.login_failed++;
        api__done_error(job->call, 500, TEXT_BAD_PASSWORD);
    } else if (user->open_2fa && user->secret[0] != '\0' && !job->code_sent) {
        /* MCSManager's response to a login without a code for a user with
         * two-factor authentication: ask for the code. */
        api__done_text(job->call, 200, "NEED_2FA");
    } else if (user->open_2fa && user->secret[0] != '\0' &&
               !api__totp_valid(user->secret, job->code,
                                json_is_integer(drift)
                                    ? (int)json_integer_value(drift)
                                    : 0)) {
        api->record.login_failed++;
        api__done_error(job->call, 500, TEXT_BAD_2FA);
    } else {
        api__login_succeeded(job, user, new_hash);
    }
    store_user_free(user);
    free(job);
}

void api__auth_login(api_call_t *call)
{
    api_t *api = call->api;
    const char *name = api__body_string(call, "username");
    const char *password = api__body_string(call, "password");
    const char *code = api__body_string(call, "code");
    api_login_job_t *job;
    store_user_t *user;
    char ip[64];
    int rc;

    if (call->session_id[0] != '\0' && call->user != NULL && !call->via_key) {
        api__done_text(call, 200, "Logined");
        return;
    }
    api__client_ip(call, ip);
    if (api__setting(api, "loginCheckIp") == NULL ||
        api__setting_true(api, "loginCheckIp")) {
        enum session_login_verdict v =
            session_login_attempt(api->sessions, ip, util_now_ms());

        if (v == SESSION_LOGIN_BANNED_NOW) {
            api->record.ban_ips++;
            log_warn("login: address %s banned for 10 minutes after too "
                     "many failed attempts",
                     ip);
        }
        if (v != SESSION_LOGIN_ALLOWED) {
            api__done_text(call, 400, TEXT_BANNED_IP);
            return;
        }
    }
    user = store_user_find_by_name(api->store, name);
    if (user == NULL) {
        api->record.login_failed++;
        api__done_error(call, 500, TEXT_UNKNOWN_USER);
        return;
    }
    job = xcalloc(1, sizeof(*job));
    job->call = call;
    snprintf(job->ip, sizeof(job->ip), "%s", ip);
    snprintf(job->user_uuid, sizeof(job->user_uuid), "%s", user->uuid);
    if (code != NULL && code[0] != '\0') {
        job->code_sent = 1;
        snprintf(job->code, sizeof(job->code), "%s", code);
    }
    rc =
        password_verify_async(api->loop, password, user->password_hash,
                              user->password_type, api__on_login_verified, job);
    store_user_free(user);
    if (api__job_started(call, rc, "login") != 0)
        free(job);
}

void api__auth_logout(api_call_t *call)
{
    session_t *s = NULL;

    if (call->session_id[0] != '\0')
        s = session_find(call->api->sessions, call->session_id, util_now_ms());
    if (s != NULL)
        session_destroy(call->api->sessions, s);
    api__set_cookie(call, NULL);
    api__done_true(call);
}

void api__auth_login_info(api_call_t *call)
{
    const json_t *info = api__setting(call->api, "loginInfo");

    api__done_json(
        call, 200,
        json_pack("{s:s}", "loginInfo",
                  json_is_string(info) ? json_string_value(info) : ""));
}

void api__auth_status(api_call_t *call)
{
    static const char *const user_keys[] = {"canFileManager", "allowUsePreset",
                                            "allowChangeCmd", "panelId",
                                            "ssoEnabled"};
    api_t *api = call->api;
    json_t *settings = json_object();
    const json_t *lang = api__setting(api, "language");
    size_t i;

    json_object_set_new(settings, "businessMode",
                        json_boolean(api__setting_true(api, "businessMode")));
    json_object_set_new(
        settings, "businessId",
        json_string(json_is_string(api__setting(api, "businessId"))
                        ? json_string_value(api__setting(api, "businessId"))
                        : ""));
    if (call->user != NULL && call->user->permission >= 1)
        for (i = 0; i < ARRAY_SIZE(user_keys); i++) {
            const json_t *v = api__setting(api, user_keys[i]);

            json_object_set_new(settings, user_keys[i],
                                v != NULL ? json_deep_copy(v) : json_null());
        }
    api__done_json(
        call, 200,
        json_pack("{s:b, s:s, s:o}", "isInstall",
                  store_user_count(api->store) > 0, "language",
                  json_is_string(lang) ? json_string_value(lang) : "en_us",
                  "settings", settings));
}

typedef struct api_install_job {
    api_call_t *call;
    char *user_name;
} api_install_job_t;

static void api__on_install_hashed(int status, const char *hash, void *data)
{
    api_install_job_t *job = data;
    api_call_t *call = job->call;
    api_t *api = call->api;
    char uuid[33];
    session_t *s;

    api->jobs--;
    if (status != 0) {
        api__done_error(call, 500,
                        "Install failed: hashing the password "
                        "ran out of memory");
    } else if (store_user_count(api->store) > 0) {
        /* Another install finished while this password was hashed. */
        api__done_text(call, 400, TEXT_INSTALLED);
    } else if (store_user_create(api->store, job->user_name, hash,
                                 PASSWORD_ARGON2ID, STORE_PERM_ADMIN,
                                 uuid) != 0) {
        api__done_error(call, 500,
                        "Install failed: the administrator could "
                        "not be stored (see the panel log)");
    } else {
        log_info("install: administrator %s created", uuid);
        s = session_create(api->sessions, uuid, util_now_ms());
        api__set_cookie(call, s);
        api__done_true(call);
    }
    free(job->user_name);
    free(job);
}

void api__auth_install(api_call_t *call)
{
    api_t *api = call->api;
    const char *name = api__body_string(call, "username");
    const char *password = api__body_string(call, "password");
    const char *policy;
    api_install_job_t *job;
    int rc;

    if (store_user_count(api->store) > 0) {
        api__done_text(call, 400, TEXT_INSTALLED);
        return;
    }
    if ((policy = password_policy_error(password)) != NULL) {
        api__done_text(call, 400, policy);
        return;
    }
    job = xcalloc(1, sizeof(*job));
    job->call = call;
    job->user_name = xstrdup(name);
    rc = password_hash_async(api->loop, password, api__on_install_hashed, job);
    if (api__job_started(call, rc, "install") != 0) {
        free(job->user_name);
        free(job);
    }
}

/* ---- the caller's own data ---- */

void api__auth_token(api_call_t *call)
{
    session_t *s = NULL;

    if (!call->ajax) {
        api__done_error(call, 500,
                        "The request is not an Ajax request. - send the "
                        "header X-Requested-With: XMLHttpRequest with the "
                        "session cookie.");
        return;
    }
    if (!call->via_key && call->session_id[0] != '\0')
        s = session_find(call->api->sessions, call->session_id, util_now_ms());
    api__done_text(call, 200, s != NULL ? session_token(s) : "");
}

static json_t *api__user_info(api_call_t *call, const store_user_t *u,
                              json_t *instances)
{
    session_t *s = NULL;

    if (!call->via_key && call->session_id[0] != '\0' &&
        strcmp(u->uuid, call->user->uuid) == 0)
        s = session_find(call->api->sessions, call->session_id, util_now_ms());
    return json_pack("{s:s, s:s, s:o, s:o, s:o, s:i, s:s, s:b, s:b, s:s}",
                     "uuid", u->uuid, "userName", u->user_name, "loginTime",
                     api__time_json(u->login_time), "registerTime",
                     api__time_json(u->register_time), "instances", instances,
                     "permission", u->permission, "apiKey", api__masked_key(u),
                     "isInit", u->is_init, "open2FA", u->open_2fa, "token",
                     s != NULL ? session_token(s) : "");
}

/* A value of the daemon's InstanceDetail config, or a default. */
static json_t *api__config_value(const json_t *detail, const char *key,
                                 json_t *fallback)
{
    json_t *v = json_object_get(json_object_get(detail, "config"), key);

    if (v == NULL)
        return fallback;
    json_decref(fallback);
    return json_incref(v);
}

static json_t *api__advanced_entry(node_t *node, const json_t *grant,
                                   const json_t *detail)
{
    json_t *e = json_object();
    char host[300];

    if (node != NULL && detail != NULL) {
        snprintf(host, sizeof(host), "%s:%d", node_ip(node), node_port(node));
        json_object_set_new(e, "hostIp", json_string(host));
        json_object_set_new(e, "remarks", json_string(node_remarks(node)));
    } else {
        json_object_set_new(e, "hostIp", json_string("-- Unknown --"));
        json_object_set_new(e, "remarks", json_string("-- Unknown --"));
    }
    json_object_set(e, "instanceUuid", json_object_get(grant, "instanceUuid"));
    json_object_set(e, "daemonId", json_object_get(grant, "daemonId"));
    if (detail == NULL) {
        json_object_set_new(e, "status", json_integer(-1));
        json_object_set_new(e, "nickname", json_string("-- Unknown --"));
        return e;
    }
    json_object_set_new(e, "status",
                        json_incref(json_object_get(detail, "status")));
    json_object_set_new(e, "nickname",
                        api__config_value(detail, "nickname", json_string("")));
    json_object_set_new(e, "ie", api__config_value(detail, "ie", json_null()));
    json_object_set_new(e, "oe", api__config_value(detail, "oe", json_null()));
    json_object_set_new(e, "endTime",
                        api__config_value(detail, "endTime", json_null()));
    json_object_set_new(e, "lastDatetime",
                        api__config_value(detail, "lastDatetime", json_null()));
    json_object_set_new(e, "stopCommand",
                        api__config_value(detail, "stopCommand", json_null()));
    json_object_set_new(e, "processType",
                        api__config_value(detail, "processType", json_null()));
    json_object_set_new(e, "docker",
                        api__config_value(detail, "docker", json_null()));
    json_object_set(e, "info", json_object_get(detail, "info"));
    return e;
}

/* Finds the instance uuid in a daemon's instance/section reply. */
static const json_t *api__find_detail(const json_t *list, const char *uuid)
{
    size_t i;
    json_t *d;

    json_array_foreach(list, i, d)
    {
        const json_t *id = json_object_get(d, "instanceUuid");

        if (json_is_string(id) && strcmp(json_string_value(id), uuid) == 0)
            return d;
    }
    return NULL;
}

typedef struct api_info_job {
    store_user_t *target;
    json_t *grants;
} api_info_job_t;

static void api__on_info_fanout(api_call_t *call, api_fanout_slot_t *slots,
                                size_t count, void *user)
{
    api_info_job_t *job = user;
    json_t *list = json_array();
    json_t *grant;
    size_t i, j;

    json_array_foreach(job->grants, i, grant)
    {
        const char *daemon =
            json_string_value(json_object_get(grant, "daemonId"));
        const char *uuid =
            json_string_value(json_object_get(grant, "instanceUuid"));
        api_fanout_slot_t *slot = NULL;
        const json_t *detail = NULL;

        for (j = 0; j < count; j++)
            if (strcmp((const char *)slots[j].user, daemon) == 0)
                slot = &slots[j];
        if (slot == NULL || slot->status != 200) {
            json_array_append_new(list, api__advanced_entry(NULL, grant, NULL));
            continue;
        }
        detail = api__find_detail(slot->data, uuid);
        /* An instance the daemon no longer has is left out, as
         * MCSManager does. */
        if (detail != NULL)
            json_array_append_new(
                list, api__advanced_entry(slot->node, grant, detail));
    }
    for (j = 0; j < count; j++)
        free(slots[j].user);
    api__done_json(call, 200, api__user_info(call, job->target, list));
    json_decref(job->grants);
    store_user_free(job->target);
    free(job);
}

/* Sends one instance/section per daemon named in the grants. */
static void api__info_advanced(api_call_t *call, store_user_t *target,
                               json_t *grants)
{
    api_info_job_t *job = xcalloc(1, sizeof(*job));
    json_t *daemons = json_object(); /* daemonId -> [instance uuids] */
    api_fanout_t *f;
    const char *daemon;
    json_t *uuids, *grant;
    size_t i;

    job->target = target;
    job->grants = grants;
    json_array_foreach(grants, i, grant)
    {
        const char *d = json_string_value(json_object_get(grant, "daemonId"));

        if (d == NULL)
            continue;
        if (json_object_get(daemons, d) == NULL)
            json_object_set_new(daemons, d, json_array());
        json_array_append(json_object_get(daemons, d),
                          json_object_get(grant, "instanceUuid"));
    }
    f = api__fanout_new(call, json_object_size(daemons), api__on_info_fanout,
                        job);
    i = 0;
    json_object_foreach(daemons, daemon, uuids)
    {
        api__fanout_send(f, i++, api_node_find(call->api, daemon),
                         "instance/section",
                         json_pack("{s:O}", "instanceUuids", uuids),
                         NODE_TIMEOUT_MS, xstrdup(daemon));
    }
    json_decref(daemons);
    api__fanout_go(f);
}

void api__auth_info(api_call_t *call)
{
    const char *other = api__param(call, "uuid");
    const char *advanced = api__param(call, "advanced");
    store_user_t *target;
    json_t *grants;

    if (!call->ajax) {
        /* MCSManager fills this route only for XMLHttpRequest callers, and
         * others get its 404. */
        api__done_text(call, 404,
                       "[404] Not Found - GET /api/auth/ answers only "
                       "requests that send the header X-Requested-With: "
                       "XMLHttpRequest.");
        return;
    }
    if (other != NULL && api__is_admin(call) &&
        strcmp(other, call->user->uuid) != 0) {
        target = store_user_get(call->api->store, other);
        if (target == NULL) {
            api__done_error(call, 500, "Read user: no user has this uuid");
            return;
        }
    } else {
        target = store_user_get(call->api->store, call->user->uuid);
        if (target == NULL) {
            api__done_error(call, 500, "Read user: the user was deleted");
            return;
        }
    }
    grants = store_grants_get(call->api->store, target->uuid);
    if (advanced != NULL && strcmp(advanced, "false") != 0) {
        api__info_advanced(call, target, grants);
        return;
    }
    api__done_json(call, 200, api__user_info(call, target, grants));
    store_user_free(target);
}

typedef struct api_password_job {
    api_call_t *call;
    char user_uuid[33];
    json_t *config; /* PUT /api/auth: the edit to apply, owned */
} api_password_job_t;

static void api__on_update_hashed(int status, const char *hash, void *data)
{
    api_password_job_t *job = data;
    api_call_t *call = job->call;
    api_t *api = call->api;
    store_user_t *user = store_user_get(api->store, job->user_uuid);
    int is_init = api__bool_value(api__body(call, "isInit"));

    api->jobs--;
    if (status != 0 || user == NULL) {
        api__done_error(call, 500,
                        "Change password failed: the user is "
                        "gone or hashing ran out of memory");
    } else {
        free(user->password_hash);
        user->password_hash = xstrdup(hash);
        user->password_type = PASSWORD_ARGON2ID;
        if (is_init >= 0)
            user->is_init = is_init;
        if (store_user_update(api->store, user) != 0) {
            api__done_error(call, 500,
                            "Change password failed: the store "
                            "rejected the update (see the log)");
        } else {
            /* MCSManager logs out only this session. Hearth ends every
             * session of the user, so a stolen session dies with the old
             * password. */
            session_drop_user(api->sessions, user->uuid);
            api__set_cookie(call, NULL);
            api__done_true(call);
        }
    }
    store_user_free(user);
    free(job);
}

void api__auth_update(api_call_t *call)
{
    const char *password = api__body_string(call, "passWord");
    const char *policy = password_policy_error(password);
    api_password_job_t *job;
    int rc;

    if (policy != NULL) {
        api__done_text(call, 400, policy);
        return;
    }
    job = xcalloc(1, sizeof(*job));
    job->call = call;
    snprintf(job->user_uuid, sizeof(job->user_uuid), "%s", call->user->uuid);
    rc = password_hash_async(call->api->loop, password, api__on_update_hashed,
                             job);
    if (api__job_started(call, rc, "change password") != 0)
        free(job);
}

void api__auth_api_key(api_call_t *call)
{
    api_t *api = call->api;
    int enable = api__bool_value(api__body(call, "enable"));
    enum store_api_key_mode mode = store_settings_api_key_mode(api->store);
    char key[33];

    if (!enable) {
        store_user_set_api_key(api->store, call->user->uuid, NULL);
        api__done_text(call, 200, "");
        return;
    }
    if (mode == STORE_API_KEY_OFF ||
        (mode == STORE_API_KEY_ONLY_ADMIN && !api__is_admin(call))) {
        api__done_error(
            call, 500,
            ACCESS_TEXT_KEY_DISABLED
            " - API keys are disabled on this panel (or enabled for "
            "administrators only). An administrator can enable them with "
            "PUT /api/overview/setting {\"enableApiKey\":true}.");
        return;
    }
    if (store_user_new_api_key(api->store, call->user->uuid, key) != 0) {
        api__done_error(call, 500, "Create API key failed: the user is gone");
        return;
    }
    log_info("user %s created a new API key", call->user->uuid);
    api__done_text(call, 200, key);
    sodium_memzero(key, sizeof(key));
}

/* ---- user management (administrators) ---- */

typedef struct api_create_job {
    api_call_t *call;
    char *user_name;
    int permission;
} api_create_job_t;

static void api__on_create_hashed(int status, const char *hash, void *data)
{
    api_create_job_t *job = data;
    api_call_t *call = job->call;
    char uuid[33];
    int rc;

    call->api->jobs--;
    if (status != 0) {
        api__done_error(call, 500,
                        "Create user failed: hashing the password "
                        "ran out of memory");
        goto out;
    }
    rc = store_user_create(call->api->store, job->user_name, hash,
                           PASSWORD_ARGON2ID, job->permission, uuid);
    if (rc == -EEXIST) {
        api__done_text(call, 400, TEXT_NAME_TAKEN);
    } else if (rc != 0) {
        api__done_error(call, 500,
                        "Create user failed: the store rejected "
                        "the record (see the panel log)");
    } else {
        log_info("user %s created by %s", uuid, call->user->uuid);
        api__done_json(call, 200,
                       json_pack("{s:s, s:s, s:i}", "uuid", uuid, "userName",
                                 job->user_name, "permission",
                                 job->permission));
    }
out:
    free(job->user_name);
    free(job);
}

void api__auth_create(api_call_t *call)
{
    const char *name = api__body_string(call, "username");
    const char *password = api__body_string(call, "password");
    const char *policy = password_policy_error(password);
    api_create_job_t *job;
    store_user_t *existing;
    double permission = 0;
    int rc;

    api__number_value(api__body(call, "permission"), &permission);
    if (policy != NULL) {
        api__done_text(call, 400, policy);
        return;
    }
    existing = store_user_find_by_name(call->api->store, name);
    if (existing != NULL) {
        store_user_free(existing);
        api__done_text(call, 400, TEXT_NAME_TAKEN);
        return;
    }
    job = xcalloc(1, sizeof(*job));
    job->call = call;
    job->user_name = xstrdup(name);
    job->permission = (int)permission;
    rc = password_hash_async(call->api->loop, password, api__on_create_hashed,
                             job);
    if (api__job_started(call, rc, "create user") != 0) {
        free(job->user_name);
        free(job);
    }
}

/*
 * Checks the config of PUT /api/auth before anything changes. Returns NULL
 * or a message (static or in *owned, which the caller frees) and sets
 * *status: 400 for a bad password (MCSManager's validator level), 500 for
 * the checks that MCSManager's handler throws.
 */
static const char *api__edit_check(json_t *config, char **owned, int *status)
{
    json_t *v = json_object_get(config, "instances"), *e;
    const char *policy;
    size_t i;

    *owned = NULL;
    *status = 500;
    if (v != NULL && !json_is_array(v))
        return "Edit user failed: config.instances must be an array of "
               "{instanceUuid, daemonId} objects";
    json_array_foreach(v, i, e)
    {
        const char *d = json_string_value(json_object_get(e, "daemonId"));
        const char *u = json_string_value(json_object_get(e, "instanceUuid"));

        if (d == NULL || d[0] == '\0' || u == NULL || u[0] == '\0') {
            *owned = xasprintf("Edit user failed: config.instances[%zu] "
                               "needs a non-empty daemonId and instanceUuid",
                               i);
            return *owned;
        }
    }
    v = json_object_get(config, "userName");
    if (v != NULL && (!json_is_string(v) || json_string_length(v) == 0))
        return "Edit user failed: config.userName must be a non-empty string";
    v = json_object_get(config, "passWord");
    if (v != NULL && json_is_string(v) && json_string_length(v) > 0 &&
        (policy = password_policy_error(json_string_value(v))) != NULL) {
        *status = 400;
        return policy;
    }
    return NULL;
}

static void api__edit_flag(json_t *config, const char *key, int *field)
{
    int b = api__bool_value(json_object_get(config, key));

    if (b >= 0)
        *field = b;
}

static void api__edit_string(json_t *config, const char *key, char **field)
{
    json_t *v = json_object_get(config, key);

    if (json_is_string(v)) {
        free(*field);
        *field = xstrdup(json_string_value(v));
    }
}

/* Applies a checked config to the user and responds. hash is the new
 * password hash or NULL. */
static void api__edit_apply(api_call_t *call, const char *uuid, json_t *config,
                            const char *hash)
{
    api_t *api = call->api;
    store_user_t *user = store_user_get(api->store, uuid);
    json_t *v;
    double d;
    int rc;

    if (user == NULL) {
        api__done_error(call, 500, "Edit user failed: no user has this uuid");
        return;
    }
    api__edit_string(config, "userName", &user->user_name);
    if (hash != NULL) {
        free(user->password_hash);
        user->password_hash = xstrdup(hash);
        user->password_type = PASSWORD_ARGON2ID;
        /* A password reset also resets two-factor authentication, as in
         * MCSManager. */
        free(user->secret);
        user->secret = xstrdup("");
        user->open_2fa = 0;
    }
    /* Only a truthy permission is applied, as in MCSManager; 0 (guest)
     * cannot be set this way. */
    if (api__number_value(json_object_get(config, "permission"), &d) == 0 &&
        d != 0)
        user->permission = (int)d;
    api__edit_flag(config, "isInit", &user->is_init);
    if (json_is_integer(json_object_get(config, "registerTime")))
        user->register_time =
            json_integer_value(json_object_get(config, "registerTime"));
    if (json_is_integer(json_object_get(config, "loginTime")))
        user->login_time =
            json_integer_value(json_object_get(config, "loginTime"));
    if (hash == NULL)
        api__edit_string(config, "secret", &user->secret);
    if (hash == NULL)
        api__edit_flag(config, "open2FA", &user->open_2fa);
    api__edit_string(config, "ssoSub", &user->sso_sub);
    api__edit_flag(config, "ssoBound", &user->sso_bound);

    rc = store_user_update(api->store, user);
    if (rc == -EEXIST) {
        api__done_text(call, 400, TEXT_NAME_TAKEN);
        goto out;
    }
    if (rc == 0 && (v = json_object_get(config, "instances")) != NULL)
        rc = store_grants_set(api->store, user->uuid, v);
    v = json_object_get(config, "apiKey");
    /* The masked placeholder that user listings return means "unchanged". */
    if (rc == 0 && json_is_string(v) &&
        strcmp(json_string_value(v), "__MCSM_SECRET_DATA__") != 0) {
        rc = store_user_set_api_key(api->store, user->uuid,
                                    json_string_value(v));
        if (rc == -EEXIST) {
            api__done_error(call, 500,
                            "Edit user failed: another user "
                            "already has this API key");
            goto out;
        }
        if (rc == 0 && !access_key_wellformed(json_string_value(v)) &&
            json_string_length(v) > 0)
            log_warn("user %s was given an API key with characters outside "
                     "[A-Za-z0-9_-]; requests cannot use it",
                     user->uuid);
    }
    if (rc != 0) {
        api__done_error(call, 500,
                        "Edit user failed: the store rejected "
                        "the change (see the panel log)");
        goto out;
    }
    if (hash != NULL)
        session_drop_user(api->sessions, user->uuid);
    log_info("user %s edited by %s", user->uuid, call->user->uuid);
    api__done_true(call);
out:
    store_user_free(user);
}

static void api__on_edit_hashed(int status, const char *hash, void *data)
{
    api_password_job_t *job = data;

    job->call->api->jobs--;
    if (status != 0)
        api__done_error(job->call, 500,
                        "Edit user failed: hashing the "
                        "password ran out of memory");
    else
        api__edit_apply(job->call, job->user_uuid, job->config, hash);
    json_decref(job->config);
    free(job);
}

void api__auth_edit(api_call_t *call)
{
    const char *uuid = api__body_string(call, "uuid");
    json_t *config = api__body(call, "config");
    json_t *password = json_object_get(config, "passWord");
    api_password_job_t *job;
    const char *err;
    char *owned;
    int rc, status;

    err = api__edit_check(config, &owned, &status);
    if (err != NULL) {
        if (status == 400)
            api__done_text(call, status, err);
        else
            api__done_error(call, status, err);
        free(owned);
        return;
    }
    if (!json_is_string(password) || json_string_length(password) == 0) {
        api__edit_apply(call, uuid, config, NULL);
        return;
    }
    job = xcalloc(1, sizeof(*job));
    job->call = call;
    snprintf(job->user_uuid, sizeof(job->user_uuid), "%s", uuid);
    job->config = json_incref(config);
    rc = password_hash_async(call->api->loop, json_string_value(password),
                             api__on_edit_hashed, job);
    if (api__job_started(call, rc, "edit user") != 0) {
        json_decref(job->config);
        free(job);
    }
}

void api__auth_delete(api_call_t *call)
{
    json_t *v;
    size_t i;

    if (!json_is_array(call->body)) {
        api__done_text(call, 400,
                       "Validator failed: the body must be a JSON "
                       "array of user uuids");
        return;
    }
    json_array_foreach(call->body, i, v)
    {
        const char *uuid = json_string_value(v);

        if (uuid == NULL)
            continue;
        if (store_user_delete(call->api->store, uuid) == 0) {
            session_drop_user(call->api->sessions, uuid);
            log_info("user %s deleted by %s", uuid, call->user->uuid);
        }
    }
    api__done_true(call);
}

/* A user record as GET /api/auth/search lists it, secrets blanked. */
static json_t *api__user_record(api_t *api, const store_user_t *u)
{
    /* MCSManager also returns the TOTP secret here; Hearth blanks it, as
     * it blanks passWord and salt. */
    return json_pack(
        "{s:s, s:s, s:s, s:i, s:s, s:i, s:o, s:o, s:o, s:s, "
        "s:b, s:s, s:b, s:s, s:b}",
        "uuid", u->uuid, "userName", u->user_name, "passWord", "",
        "passWordType", u->password_type, "salt", "", "permission",
        u->permission, "registerTime", api__time_json(u->register_time),
        "loginTime", api__time_json(u->login_time), "instances",
        store_grants_get(api->store, u->uuid), "apiKey", api__masked_key(u),
        "isInit", u->is_init, "secret", "", "open2FA", u->open_2fa, "ssoSub",
        u->sso_sub, "ssoBound", u->sso_bound);
}

/* "undefined", "null" and "" mean no filter, as MCSManager reads them. */
static const char *api__filter(const char *v)
{
    if (v == NULL || v[0] == '\0' || strcmp(v, "undefined") == 0 ||
        strcmp(v, "null") == 0)
        return NULL;
    return v;
}

void api__auth_search(api_call_t *call)
{
    const char *name = api__filter(api__query(call, "userName"));
    const char *role_text = api__filter(api__query(call, "role"));
    int page = atoi(api__query(call, "page"));
    int page_size = atoi(api__query(call, "page_size"));
    store_user_page_t result;
    json_t *list;
    int role, *role_ptr = NULL;
    size_t i;

    if (role_text != NULL) {
        role = atoi(role_text);
        role_ptr = &role;
    }
    api__clamp_page(&page, &page_size);
    if (store_user_search(call->api->store, name, role_ptr, page, page_size,
                          &result) != 0) {
        api__done_error(call, 500,
                        "Search users failed: the store query "
                        "failed (see the panel log)");
        return;
    }
    list = json_array();
    for (i = 0; i < result.count; i++)
        json_array_append_new(list,
                              api__user_record(call->api, result.users[i]));
    api__done_json(call, 200,
                   json_pack("{s:i, s:i, s:i, s:i, s:o}", "page", result.page,
                             "pageSize", result.page_size, "maxPage",
                             result.max_page, "total", result.total, "data",
                             list));
    store_user_page_clear(&result);
}

void api__auth_overview(api_call_t *call)
{
    store_user_page_t all;
    json_t *list;
    size_t i;

    if (store_user_list(call->api->store, &all) != 0) {
        api__done_error(call, 500,
                        "List users failed: the store query "
                        "failed (see the panel log)");
        return;
    }
    list = json_array();
    for (i = 0; i < all.count; i++) {
        const store_user_t *u = all.users[i];

        json_array_append_new(
            list,
            json_pack("{s:s, s:s, s:i, s:o, s:o, s:o}", "uuid", u->uuid,
                      "userName", u->user_name, "permission", u->permission,
                      "instances", store_grants_get(call->api->store, u->uuid),
                      "loginTime", api__time_json(u->login_time),
                      "registerTime", api__time_json(u->register_time)));
    }
    store_user_page_clear(&all);
    api__done_json(call, 200, list);
}
