/*
** crypto.c - tp.crypto (see crypto.h).
*/
#include "base/crypto.h"

#include <lauxlib.h>
#include <limits.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/sha.h>
#include <string.h>

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
