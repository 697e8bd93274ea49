#include "panel/password.h"

#include <crypt.h>
#include <errno.h>
#include <string.h>

#include <openssl/evp.h>
#include <sodium.h>

#include "core/util.h"

/*
 * argon2id with t=2 passes over m=19 MiB, one lane: the minimum that the
 * OWASP Password Storage Cheat Sheet recommends. A panel often shares a
 * small host with game servers, and the libuv pool runs up to four hashes
 * at once (76 MiB). So the memory cost stays at that floor, which still
 * costs an attacker tens of milliseconds of a core per guess.
 */
#define PASSWORD_OPSLIMIT 2
#define PASSWORD_MEMLIMIT (19U * 1024U * 1024U)

#define PASSWORD_MIN_LEN 9
#define PASSWORD_MAX_LEN 36

int password_hash(const char *password, char out[PASSWORD_HASH_MAX])
{
    /* libsodium writes at most crypto_pwhash_STRBYTES, which is 128. */
    _Static_assert(crypto_pwhash_STRBYTES <= PASSWORD_HASH_MAX,
                   "argon2id string does not fit PASSWORD_HASH_MAX");

    /* Selects the fastest argon2 code for this CPU; thread-safe and cheap
     * after the first call. */
    if (sodium_init() < 0)
        return -ENOMEM;
    if (crypto_pwhash_str_alg(out, password, strlen(password),
                              PASSWORD_OPSLIMIT, PASSWORD_MEMLIMIT,
                              crypto_pwhash_ALG_ARGON2ID13) != 0)
        return -ENOMEM;
    return 0;
}

static int password_verify_bcrypt(const char *password, const char *hash)
{
    struct crypt_data *cd;
    const char *result;
    int match;

    /* Only bcrypt: other crypt(3) schemes are not MCSManager's type 1. */
    if (strncmp(hash, "$2a$", 4) != 0 && strncmp(hash, "$2b$", 4) != 0 &&
        strncmp(hash, "$2y$", 4) != 0)
        return 0;

    /* struct crypt_data is 32 KiB: too big for a thread-pool stack. */
    cd = xcalloc(1, sizeof(*cd));
    result = crypt_rn(password, hash, cd, (int)sizeof(*cd));
    match = result != NULL && result[0] != '*' &&
            util_secure_equal(result, hash);
    sodium_memzero(cd, sizeof(*cd));
    free(cd);
    return match;
}

static int password_verify_md5(const char *password, const char *hash)
{
    unsigned char digest[EVP_MAX_MD_SIZE];
    unsigned int digest_len = 0;
    char hex[2 * EVP_MAX_MD_SIZE + 1];
    char lower[33];
    size_t i;

    if (strlen(hash) != 32)
        return 0;
    if (!EVP_Digest(password, strlen(password), digest, &digest_len,
                    EVP_md5(), NULL) || digest_len != 16)
        return 0;
    sodium_bin2hex(hex, sizeof(hex), digest, digest_len);

    /* MCSManager writes lowercase hex; accept uppercase from hand edits. */
    for (i = 0; i < 32; i++) {
        char c = hash[i];

        lower[i] = (c >= 'A' && c <= 'F') ? (char)(c - 'A' + 'a') : c;
    }
    lower[32] = '\0';
    return util_secure_equal(hex, lower);
}

int password_verify(const char *password, const char *hash, int type)
{
    if (password == NULL || hash == NULL || hash[0] == '\0')
        return 0;
    switch (type) {
    case PASSWORD_ARGON2ID:
        return crypto_pwhash_str_verify(hash, password, strlen(password)) ==
               0;
    case PASSWORD_BCRYPT:
        return password_verify_bcrypt(password, hash);
    case PASSWORD_MD5:
        return password_verify_md5(password, hash);
    default:
        return 0;
    }
}

int password_needs_rehash(const char *hash, int type)
{
    if (type != PASSWORD_ARGON2ID)
        return 1;
    return crypto_pwhash_str_needs_rehash(hash, PASSWORD_OPSLIMIT,
                                          PASSWORD_MEMLIMIT) != 0;
}

/*
 * Counts UTF-16 code units, because MCSManager checks String.length in
 * JavaScript: characters outside the BMP count twice.
 */
static size_t password_js_length(const char *s)
{
    size_t n = 0;

    for (; *s != '\0'; s++) {
        unsigned char c = (unsigned char)*s;

        if ((c & 0xc0) == 0x80)
            continue;
        n += c >= 0xf0 ? 2 : 1;
    }
    return n;
}

const char *password_policy_error(const char *password)
{
    static const char message[] =
        "Invalid Password Format. A password must be 9 to 36 characters "
        "long and contain at least one lowercase letter, one uppercase "
        "letter and one digit.";
    int lower = 0, upper = 0, digit = 0;
    size_t len;
    const char *p;

    if (password == NULL)
        return message;
    len = password_js_length(password);
    if (len < PASSWORD_MIN_LEN || len > PASSWORD_MAX_LEN)
        return message;
    for (p = password; *p != '\0'; p++) {
        lower |= *p >= 'a' && *p <= 'z';
        upper |= *p >= 'A' && *p <= 'Z';
        digit |= *p >= '0' && *p <= '9';
    }
    return lower && upper && digit ? NULL : message;
}

/* ---- thread-pool variants ---- */

struct password_work {
    uv_work_t req;
    char *password;
    char *hash;      /* verify: the stored hash */
    int type;
    int status;      /* hash: 0 or -ENOMEM; verify: match */
    int rehashed;    /* verify: new_hash contains a fresh hash */
    char new_hash[PASSWORD_HASH_MAX];
    password_hash_cb hash_cb;
    password_verify_cb verify_cb;
    void *data;
};

static void password_work_free(struct password_work *w)
{
    sodium_memzero(w->password, strlen(w->password));
    free(w->password);
    free(w->hash);
    sodium_memzero(w->new_hash, sizeof(w->new_hash));
    free(w);
}

static void password_hash_run(uv_work_t *req)
{
    struct password_work *w = req->data;

    w->status = password_hash(w->password, w->new_hash);
}

static void password_hash_done(uv_work_t *req, int status)
{
    struct password_work *w = req->data;

    /* status is UV_ECANCELED only after uv_cancel, which Hearth never
     * calls; report it as a failure all the same. */
    if (status != 0)
        w->status = -ENOMEM;
    w->hash_cb(w->status, w->status == 0 ? w->new_hash : NULL, w->data);
    password_work_free(w);
}

static void password_verify_run(uv_work_t *req)
{
    struct password_work *w = req->data;

    w->status = password_verify(w->password, w->hash, w->type);
    if (w->status && password_needs_rehash(w->hash, w->type))
        w->rehashed = password_hash(w->password, w->new_hash) == 0;
}

static void password_verify_done(uv_work_t *req, int status)
{
    struct password_work *w = req->data;

    if (status != 0)
        w->status = 0;
    w->verify_cb(w->status, w->status && w->rehashed ? w->new_hash : NULL,
                 w->data);
    password_work_free(w);
}

int password_hash_async(uv_loop_t *loop, const char *password,
                        password_hash_cb cb, void *data)
{
    struct password_work *w = xcalloc(1, sizeof(*w));
    int rc;

    w->password = xstrdup(password);
    w->hash_cb = cb;
    w->data = data;
    w->req.data = w;
    rc = uv_queue_work(loop, &w->req, password_hash_run, password_hash_done);
    if (rc != 0)
        password_work_free(w);
    return rc;
}

int password_verify_async(uv_loop_t *loop, const char *password,
                          const char *hash, int type, password_verify_cb cb,
                          void *data)
{
    struct password_work *w = xcalloc(1, sizeof(*w));
    int rc;

    w->password = xstrdup(password);
    w->hash = xstrdup(hash != NULL ? hash : "");
    w->type = type;
    w->verify_cb = cb;
    w->data = data;
    w->req.data = w;
    rc = uv_queue_work(loop, &w->req, password_verify_run,
                       password_verify_done);
    if (rc != 0)
        password_work_free(w);
    return rc;
}
