/*
** crypto.h - tp.crypto: digests, MACs and a constant-time comparison for
** plugins, from OpenSSL's libcrypto.
**
** A plugin verifies a payment callback's signature with these: it computes
** the HMAC over req.raw_body and compares it to the header's value with
** tp.crypto.equal, which takes the same time wherever the strings differ.
** The functions need no plugin state, so they can be called on any lua_State
** (the unit test does); api.c registers them as tp.crypto.*.
*/
#ifndef TP_CRYPTO_H
#define TP_CRYPTO_H

#include <lua.h>
#include <stddef.h>

/* tp.crypto.sha256(data [, encoding]) -> string; encoding "hex" (default),
** "base64" or "raw" */
int tpx_l_sha256(lua_State *L);
/* tp.crypto.hmac_sha256(key, data [, encoding]) -> string */
int tpx_l_hmac_sha256(lua_State *L);
/* tp.crypto.equal(a, b) -> boolean, in time that does not depend on where
** the contents differ */
int tpx_l_equal(lua_State *L);

/* HMAC-SHA-256 of data keyed with key, as 64 lowercase hex digits and a NUL. */
void tpx_hmac_sha256_hex(const void *key, size_t klen, const void *data, size_t n, char out[65]);

#endif
