#ifndef HEARTH_PANEL_PASSWORD_H
#define HEARTH_PANEL_PASSWORD_H

#include <uv.h>

/*
 * Password hashing and verification for panel users.
 *
 * New hashes are argon2id strings ("$argon2id$v=19$m=19456,t=2,p=1$...").
 * Verification also accepts the two formats an imported MCSManager panel
 * stores: bcrypt ($2a$, $2b$, $2y$) and the legacy unsalted MD5 hex digest.
 *
 * Hashing and verifying take tens of milliseconds on purpose, so on the
 * event loop use only the _async variants, which run on the libuv thread
 * pool. The synchronous functions are for tests, tools and other threads.
 */

/* The passWordType values of a user record. 0 and 1 are MCSManager's. */
enum password_type {
    PASSWORD_MD5 = 0,      /* MCSManager legacy: md5 hex of the password */
    PASSWORD_BCRYPT = 1,   /* MCSManager: bcrypt, cost 10 */
    PASSWORD_ARGON2ID = 2  /* Hearth: every hash it creates */
};

/* Size of a buffer that fits any hash string this module writes. */
#define PASSWORD_HASH_MAX 128

/*
 * Hashes password with argon2id into out (NUL-terminated). Returns 0, or
 * -ENOMEM when the memory for argon2id cannot be allocated.
 */
int password_hash(const char *password, char out[PASSWORD_HASH_MAX]);

/*
 * Checks password against hash stored with the given passWordType. Returns
 * 1 on a match, 0 on a mismatch, an unknown type or a malformed hash. The
 * comparison of digests takes constant time.
 */
int password_verify(const char *password, const char *hash, int type);

/*
 * Returns 1 when a hash of this type should be replaced by a fresh argon2id
 * hash after the next successful login: any MD5 or bcrypt hash, and argon2id
 * hashes made with other parameters than the current ones. Otherwise 0.
 */
int password_needs_rehash(const char *hash, int type);

/*
 * Checks MCSManager's password policy: 9 to 36 characters with at least one
 * lowercase letter, one uppercase letter and one digit. Returns NULL when
 * the password complies, else a static message that starts with
 * MCSManager's "Invalid Password Format" and then states the rule.
 */
const char *password_policy_error(const char *password);

/*
 * Completion of password_hash_async. status is 0 with hash set (borrowed,
 * valid during the call), or -ENOMEM with hash NULL.
 */
typedef void (*password_hash_cb)(int status, const char *hash, void *data);

/*
 * Completion of password_verify_async. match is 1 or 0 as password_verify
 * returns. When the password matched and password_needs_rehash() was true,
 * new_hash is a fresh argon2id hash (borrowed, valid during the call) that
 * the caller may store with type PASSWORD_ARGON2ID; otherwise NULL.
 */
typedef void (*password_verify_cb)(int match, const char *new_hash,
                                   void *data);

/*
 * Hashes password on the loop's thread pool and calls cb on the loop
 * thread. The password is copied (and wiped after use). Returns 0, or a
 * negative libuv error if the work could not be queued, in which case cb is
 * never called. cb is always called once otherwise, even if the caller's
 * request has gone away meanwhile: data must stay valid until then.
 */
int password_hash_async(uv_loop_t *loop, const char *password,
                        password_hash_cb cb, void *data);

/*
 * Verifies password against hash (type as in password_verify) on the
 * thread pool and calls cb on the loop thread. Copies both strings. Same
 * return value and callback guarantee as password_hash_async.
 */
int password_verify_async(uv_loop_t *loop, const char *password,
                          const char *hash, int type, password_verify_cb cb,
                          void *data);

#endif
