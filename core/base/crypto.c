/*
** crypto.c - tp.crypto (see crypto.h).
*/
#include "base/crypto.h"

#include <lauxlib.h>
#include <limits.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/rand.h>
#include <openssl/sha.h>
#include <openssl/x509.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/buf.h"

#define DIGEST_LEN 32  /* SHA-256 */

/* The string argument at idx; raises with the function's name otherwise.
** Numbers are refused rather than converted: "1" and 1.0 would sign the
** same bytes only by accident. */
static const char *check_bytes(lua_State *L, int idx, const char *fn, const char *what,
                               size_t *len) {
  if (lua_type(L, idx) != LUA_TSTRING)
    luaL_error(L, "tp.crypto.%s: %s must be a string (got %s)", fn, what, luaL_typename(L, idx));
  return lua_tolstring(L, idx, len);
}

static void push_hex(lua_State *L, const unsigned char *in, size_t n) {
  static const char digits[] = "0123456789abcdef";
  char out[2 * DIGEST_LEN];
  for (size_t i = 0; i < n; i++) {
    out[2 * i] = digits[in[i] >> 4];
    out[2 * i + 1] = digits[in[i] & 15];
  }
  lua_pushlstring(L, out, 2 * n);
}

/* Standard alphabet with '=' padding, as payment providers send it. */
static void push_base64(lua_State *L, const unsigned char *in, size_t n) {
  unsigned char out[4 * ((DIGEST_LEN + 2) / 3) + 1];
  int len = EVP_EncodeBlock(out, in, (int)n);  /* no line breaks, NUL-terminated */
  lua_pushlstring(L, (const char *)out, (size_t)len);
}

/* Pushes the digest in the encoding named by the optional argument at idx. */
static int push_encoded(lua_State *L, int idx, const char *fn, const unsigned char *digest) {
  const char *encoding = "hex";
  if (!lua_isnoneornil(L, idx)) {
    if (lua_type(L, idx) != LUA_TSTRING)
      return luaL_error(L, "tp.crypto.%s: encoding must be \"hex\", \"base64\" or \"raw\" "
                        "(got %s)", fn, luaL_typename(L, idx));
    encoding = lua_tostring(L, idx);
  }
  if (strcmp(encoding, "hex") == 0) push_hex(L, digest, DIGEST_LEN);
  else if (strcmp(encoding, "base64") == 0) push_base64(L, digest, DIGEST_LEN);
  else if (strcmp(encoding, "raw") == 0) lua_pushlstring(L, (const char *)digest, DIGEST_LEN);
  else
    return luaL_error(L, "tp.crypto.%s: encoding must be \"hex\", \"base64\" or \"raw\" "
                      "(got \"%s\")", fn, encoding);
  return 1;
}

int tpx_l_sha256(lua_State *L) {
  size_t n;
  const char *data = check_bytes(L, 1, "sha256", "data", &n);
  unsigned char digest[DIGEST_LEN];
  SHA256((const unsigned char *)data, n, digest);
  return push_encoded(L, 2, "sha256", digest);
}

int tpx_l_hmac_sha256(lua_State *L) {
  size_t klen, n;
  const char *key = check_bytes(L, 1, "hmac_sha256", "key", &klen);
  const char *data = check_bytes(L, 2, "hmac_sha256", "data", &n);
  if (klen > INT_MAX) return luaL_error(L, "tp.crypto.hmac_sha256: the key is too long");
  unsigned char digest[DIGEST_LEN];
  unsigned int len = sizeof digest;
  if (!HMAC(EVP_sha256(), key, (int)klen, (const unsigned char *)data, n, digest, &len))
    return luaL_error(L, "tp.crypto.hmac_sha256: libcrypto failed");
  return push_encoded(L, 3, "hmac_sha256", digest);
}

/* Compares every byte of the shorter string whatever it finds, so the time
** says nothing about how much of a guessed signature was right; a length
** difference is folded in at the end rather than returned early. */
int tpx_l_equal(lua_State *L) {
  size_t na, nb;
  const char *a = check_bytes(L, 1, "equal", "a", &na);
  const char *b = check_bytes(L, 2, "equal", "b", &nb);
  int content_differs = CRYPTO_memcmp(a, b, na < nb ? na : nb) != 0;
  lua_pushboolean(L, (na == nb) & !content_differs);
  return 1;
}

void tpx_hmac_sha256_hex(const void *key, size_t klen, const void *data, size_t n, char out[65]) {
  unsigned char digest[EVP_MAX_MD_SIZE];
  unsigned int len = 0;
  if (!HMAC(EVP_sha256(), key, (int)klen, data, n, digest, &len)) len = 0;
  for (unsigned i = 0; i < len && i < 32; i++) snprintf(out + 2 * i, 3, "%02x", digest[i]);
  out[len ? 64 : 0] = '\0';
}

/* ---- RSA and AES-GCM (WeChat Pay APIv3) */

/* Decodes standard base64 (padding required when the length asks for it);
** NULL when it is not base64. The caller frees. */
static unsigned char *base64_decode(const char *in, size_t n, size_t *out_len) {
  while (n > 0 && (in[n - 1] == '\n' || in[n - 1] == '\r' || in[n - 1] == ' ')) n--;
  if (n == 0 || n % 4 != 0 || n > INT_MAX / 2) return NULL;
  unsigned char *out = malloc(n / 4 * 3 + 1);
  if (!out) return NULL;
  int len = EVP_DecodeBlock(out, (const unsigned char *)in, (int)n);
  if (len < 0) {
    free(out);
    return NULL;
  }
  size_t pad = (in[n - 1] == '=') + (in[n - 2] == '=');  /* DecodeBlock counts them as zeros */
  *out_len = (size_t)len - pad;
  return out;
}

static void add_base64(tp_buf *out, const unsigned char *in, size_t n) {
  tp_buf_reserve(out, 4 * ((n + 2) / 3) + 1);
  int len = EVP_EncodeBlock((unsigned char *)out->data + out->len, in, (int)n);
  out->len += (size_t)len;
}

static int no_password(char *buf, int size, int rwflag, void *u) {
  (void)buf, (void)size, (void)rwflag, (void)u;
  return 0;  /* an encrypted key is refused, never prompted for */
}

static EVP_PKEY *read_private(const char *pem, size_t pem_len, char *err, size_t errcap) {
  BIO *bio = pem_len <= INT_MAX ? BIO_new_mem_buf(pem, (int)pem_len) : NULL;
  EVP_PKEY *key = bio ? PEM_read_bio_PrivateKey(bio, NULL, no_password, NULL) : NULL;
  BIO_free(bio);
  ERR_clear_error();
  if (key && EVP_PKEY_base_id(key) != EVP_PKEY_RSA) {
    EVP_PKEY_free(key);
    key = NULL;
  }
  if (!key) snprintf(err, errcap, "not an unencrypted RSA private key in PEM");
  return key;
}

/* A PUBLIC KEY (SubjectPublicKeyInfo, WeChat Pay's public key) or a CERTIFICATE
** (a platform certificate). */
static EVP_PKEY *read_public(const char *pem, size_t pem_len, char *err, size_t errcap) {
  EVP_PKEY *key = NULL;
  if (pem_len > INT_MAX) goto done;
  BIO *bio = BIO_new_mem_buf(pem, (int)pem_len);
  if (!bio) goto done;
  key = PEM_read_bio_PUBKEY(bio, NULL, no_password, NULL);
  if (!key) {
    (void)BIO_reset(bio);
    X509 *cert = PEM_read_bio_X509(bio, NULL, no_password, NULL);
    if (cert) key = X509_get_pubkey(cert);
    X509_free(cert);
  }
  BIO_free(bio);
done:
  ERR_clear_error();
  if (key && EVP_PKEY_base_id(key) != EVP_PKEY_RSA) {
    EVP_PKEY_free(key);
    key = NULL;
  }
  if (!key) snprintf(err, errcap, "not an RSA public key or certificate in PEM");
  return key;
}

int tpx_rsa_check_private(const char *pem, size_t pem_len, char *err, size_t errcap) {
  EVP_PKEY *key = read_private(pem, pem_len, err, errcap);
  EVP_PKEY_free(key);
  return key ? 0 : -1;
}

int tpx_rsa_sign_b64(const char *pem, size_t pem_len, const void *data, size_t n, tp_buf *out,
                     char *err, size_t errcap) {
  int rc = -1;
  unsigned char *sig = NULL;
  EVP_MD_CTX *ctx = NULL;
  EVP_PKEY *key = read_private(pem, pem_len, err, errcap);
  if (!key) goto fail;
  size_t len = (size_t)EVP_PKEY_size(key);
  sig = malloc(len);
  ctx = EVP_MD_CTX_new();
  if (!sig || !ctx || EVP_DigestSignInit(ctx, NULL, EVP_sha256(), NULL, key) != 1 ||
      EVP_DigestSign(ctx, sig, &len, data, n) != 1) {
    snprintf(err, errcap, "libcrypto could not sign");
    goto fail;
  }
  add_base64(out, sig, len);
  rc = 0;
fail:
  ERR_clear_error();
  EVP_MD_CTX_free(ctx);
  free(sig);
  EVP_PKEY_free(key);
  return rc;
}

int tpx_rsa_verify_b64(const char *pem, size_t pem_len, const void *data, size_t n,
                       const char *sig_b64, size_t sig_len, char *err, size_t errcap) {
  EVP_PKEY *key = read_public(pem, pem_len, err, errcap);
  if (!key) return -1;
  size_t len = 0;
  unsigned char *sig = base64_decode(sig_b64, sig_len, &len);
  EVP_MD_CTX *ctx = EVP_MD_CTX_new();
  int ok = sig && ctx && EVP_DigestVerifyInit(ctx, NULL, EVP_sha256(), NULL, key) == 1 &&
           EVP_DigestVerify(ctx, sig, len, data, n) == 1;
  ERR_clear_error();
  EVP_MD_CTX_free(ctx);
  free(sig);
  EVP_PKEY_free(key);
  return ok;
}

int tpx_aes256gcm_open(const void *key, size_t key_len, const void *nonce, size_t nonce_len,
                       const void *aad, size_t aad_len, const char *ct_b64, size_t ct_len,
                       tp_buf *out, char *err, size_t errcap) {
  enum { TAG = 16 };
  if (key_len != 32) {
    snprintf(err, errcap, "the key must be 32 bytes (got %zu)", key_len);
    return -1;
  }
  if (nonce_len == 0 || nonce_len > 64 || aad_len > INT_MAX) {
    snprintf(err, errcap, "the nonce must be 1-64 bytes");
    return -1;
  }
  size_t n = 0;
  unsigned char *ct = base64_decode(ct_b64, ct_len, &n);
  if (!ct || n < TAG) {
    free(ct);
    snprintf(err, errcap, "the ciphertext is not base64 of at least %d bytes", TAG);
    return -1;
  }
  n -= TAG;
  int rc = -1, len = 0, fin = 0;
  unsigned char *plain = malloc(n + 1);
  EVP_CIPHER_CTX *ctx = EVP_CIPHER_CTX_new();
  if (!plain || !ctx || n > INT_MAX ||
      EVP_DecryptInit_ex(ctx, EVP_aes_256_gcm(), NULL, NULL, NULL) != 1 ||
      EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_GCM_SET_IVLEN, (int)nonce_len, NULL) != 1 ||
      EVP_DecryptInit_ex(ctx, NULL, NULL, key, nonce) != 1 ||
      (aad_len && EVP_DecryptUpdate(ctx, NULL, &len, aad, (int)aad_len) != 1) ||
      EVP_DecryptUpdate(ctx, plain, &len, ct, (int)n) != 1 ||
      EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_GCM_SET_TAG, TAG, ct + n) != 1 ||
      EVP_DecryptFinal_ex(ctx, plain + len, &fin) != 1) {
    snprintf(err, errcap, "the ciphertext does not open (wrong key, nonce, associated data or tag)");
    goto fail;
  }
  tp_buf_add(out, plain, (size_t)(len + fin));
  rc = 0;
fail:
  ERR_clear_error();
  EVP_CIPHER_CTX_free(ctx);
  if (plain) OPENSSL_cleanse(plain, n + 1);
  free(plain);
  free(ct);
  return rc;
}

void tpx_random_hex(char *out, size_t n) {
  static const char digits[] = "0123456789ABCDEF";
  unsigned char b[64];
  if (n > sizeof b) n = sizeof b;
  if (RAND_bytes(b, (int)n) != 1) abort();  /* no randomness: nothing safe to do */
  for (size_t i = 0; i < n; i++) {
    out[2 * i] = digits[b[i] >> 4];
    out[2 * i + 1] = digits[b[i] & 15];
  }
  out[2 * n] = '\0';
}

int tpx_l_rsa_verify(lua_State *L) {
  size_t klen, n, slen;
  const char *pem = check_bytes(L, 1, "rsa_verify", "public_key", &klen);
  const char *data = check_bytes(L, 2, "rsa_verify", "data", &n);
  const char *sig = check_bytes(L, 3, "rsa_verify", "signature", &slen);
  char err[128];
  int ok = tpx_rsa_verify_b64(pem, klen, data, n, sig, slen, err, sizeof err);
  if (ok < 0) return luaL_error(L, "tp.crypto.rsa_verify: public_key: %s", err);
  lua_pushboolean(L, ok);
  return 1;
}
