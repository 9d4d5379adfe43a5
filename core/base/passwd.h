/*
** passwd.h - console passwords and sessions: a slow salted hash, and the
** random tokens a signed-in browser carries.
**
** A password is kept as "pbkdf2-sha256$<iterations>$<salt hex>$<hash hex>":
** PBKDF2-HMAC-SHA256 (OpenSSL's PKCS5_PBKDF2_HMAC) over a 16-byte random salt,
** 600,000 iterations by default (OWASP's figure for PBKDF2-SHA256). Hashing
** takes a fraction of a second by design: the host runs it on a libuv worker
** (host/console.c), never on the loop. The iteration count travels with the
** hash, so raising it later leaves old passwords valid.
*/
#ifndef TP_PASSWD_H
#define TP_PASSWD_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define TPPW_MAX 160                 /* a stored hash's bytes with its NUL */
#define TPPW_MIN_PASSWORD 10         /* bytes of a password, at least */
#define TPPW_MAX_PASSWORD 256

/* Hashes password (n bytes) with a fresh salt into out. 0, or -1 when
** iterations is out of range (1,000-10,000,000) or OpenSSL fails. */
int tppw_hash(const char *password, size_t n, int64_t iterations, char out[TPPW_MAX]);
/* 1 when password matches stored, 0 when it does not, -1 when stored is no
** hash of ours. Compares in constant time. */
int tppw_verify(const char *password, size_t n, const char *stored);
/* Whether a password is acceptable: TPPW_MIN_PASSWORD to TPPW_MAX_PASSWORD
** bytes, no control characters. */
bool tppw_acceptable(const char *password, size_t n);

/* 32 random bytes as 64 lowercase hex digits and a NUL: a session id or a
** CSRF token. */
void tppw_token(char out[65]);
/* a and b (NUL-terminated tokens) are equal, in time that does not depend
** on where they differ; false when either is empty or their lengths differ. */
bool tppw_token_equal(const char *a, const char *b, size_t blen);

#endif
