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

struct tp_buf;

/* tp.crypto.sha256(data [, encoding]) -> string; encoding "hex" (default),
** "base64" or "raw" */
int tpx_l_sha256(lua_State *L);
/* tp.crypto.hmac_sha256(key, data [, encoding]) -> string */
int tpx_l_hmac_sha256(lua_State *L);
/* tp.crypto.equal(a, b) -> boolean, in time that does not depend on where
** the contents differ */
int tpx_l_equal(lua_State *L);

/* tp.crypto.rsa_verify(public_key_pem, data, signature_base64) -> boolean:
** RSASSA-PKCS1-v1_5 with SHA-256 (WeChat Pay's SHA256withRSA). The key is a
** PEM PUBLIC KEY or CERTIFICATE; one that does not parse raises, a signature
** that is not base64 or does not verify is false. */
int tpx_l_rsa_verify(lua_State *L);

/* ---- for the host: signing and decrypting with secrets plugins never see.
** Each returns 0, or -1 with a message in err that never holds key bytes. */

/* Appends base64(RSASSA-PKCS1-v1_5(SHA-256(data))) signed with the PEM RSA
** private key (PKCS#8 PRIVATE KEY or PKCS#1 RSA PRIVATE KEY, unencrypted). */
int tpx_rsa_sign_b64(const char *pem, size_t pem_len, const void *data, size_t n,
                     struct tp_buf *out, char *err, size_t errcap);
/* 0 when pem is an unencrypted RSA private key (config checks it at load). */
int tpx_rsa_check_private(const char *pem, size_t pem_len, char *err, size_t errcap);
/* 1 when sig_b64 verifies data under the PEM public key or certificate, 0
** when it does not (or is not base64), -1 with err when the key is unusable. */
int tpx_rsa_verify_b64(const char *pem, size_t pem_len, const void *data, size_t n,
                       const char *sig_b64, size_t sig_len, char *err, size_t errcap);
/* AES-256-GCM open, as WeChat Pay APIv3 seals a notify's resource: key is 32
** bytes, nonce 1-64 bytes used as the IV as is (12 in practice), aad may be
** empty, ct_b64 the base64 of ciphertext followed by the 16-byte tag.
** Appends the plaintext to out; -1 when anything fails, the tag included
** (nothing is appended then). */
int tpx_aes256gcm_open(const void *key, size_t key_len, const void *nonce, size_t nonce_len,
                       const void *aad, size_t aad_len, const char *ct_b64, size_t ct_len,
                       struct tp_buf *out, char *err, size_t errcap);
/* n random bytes from the system's CSPRNG as 2n uppercase hex digits and a NUL. */
void tpx_random_hex(char *out, size_t n);

/* HMAC-SHA-256 of data keyed with key, as 64 lowercase hex digits and a NUL. */
void tpx_hmac_sha256_hex(const void *key, size_t klen, const void *data, size_t n, char out[65]);

#endif
