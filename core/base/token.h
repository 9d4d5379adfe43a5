/*
** token.h - mini-program user tokens and admin API keys.
**
** A user token is  v1.<tenant>.<user>.<exp>.<sig>  where exp is a UTC epoch in
** seconds and sig is the unpadded base64url HMAC-SHA-256, keyed with the
** tenant's token secret, of everything before the last dot. Tenant and user
** ids never contain a dot, so the token splits without ambiguity.
*/
#ifndef TP_TOKEN_H
#define TP_TOKEN_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "base/buf.h"

#define TPT_MAX_ID 64       /* longest tenant or user id */
#define TPT_MAX_TOKEN 512   /* longer tokens are rejected before any work */

typedef enum {
  TPT_OK = 0,
  TPT_MALFORMED = -1,      /* not a token of ours */
  TPT_BAD_SIGNATURE = -2,  /* forged, or signed with another secret */
  TPT_EXPIRED = -3,
  TPT_WRONG_TENANT = -4,   /* a valid-looking token for another tenant */
} tpt_result;

/* Ids: 1..TPT_MAX_ID bytes of [A-Za-z0-9_-], plus ':' and '@' for users. */
bool tpt_valid_tenant_id(const char *s, size_t n);
bool tpt_valid_user_id(const char *s, size_t n);

/* Appends a token to out. Returns 0, or -1 if tenant or user is invalid. */
int tpt_mint(const char *secret, size_t secret_len, const char *tenant,
             const char *user, int64_t exp, tp_buf *out);

/* Verifies token for tenant at time now (epoch seconds). On TPT_OK the user
** id is copied NUL-terminated into user (which has TPT_MAX_ID + 1 bytes). */
tpt_result tpt_verify(const char *token, size_t len, const char *tenant,
                      const char *secret, size_t secret_len, int64_t now,
                      char *user);

/* Minting and verifying keep a keyed HMAC context per secret lately used (a
** few, per thread); this frees them and wipes their copies of the secrets. */
void tpt_forget_keys(void);

const char *tpt_result_code(tpt_result r);     /* stable error code */
const char *tpt_result_message(tpt_result r);

/* SHA-256 of an API key; keys are compared as digests so that the comparison
** takes the same time whatever the key's length or content. */
void tpt_key_digest(const char *key, size_t n, unsigned char out[32]);
bool tpt_digest_equal(const unsigned char a[32], const unsigned char b[32]);

/* Unpadded base64url; out must hold 4 * ceil(n / 3) + 1 bytes. */
size_t tpt_base64url(const unsigned char *in, size_t n, char *out);

#endif
