/*
** token.c - user tokens (HMAC-SHA-256) and API key digests.
*/
#include "base/token.h"

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/core_names.h>
#include <openssl/hmac.h>
#include <openssl/params.h>
#include <string.h>

static bool id_char(char c, bool user) {
  if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9'))
    return true;
  if (c == '_' || c == '-') return true;
  return user && (c == ':' || c == '@');
}

static bool valid_id(const char *s, size_t n, bool user) {
  if (n == 0 || n > TPT_MAX_ID) return false;
  for (size_t i = 0; i < n; i++)
    if (!id_char(s[i], user)) return false;
  return true;
}

bool tpt_valid_tenant_id(const char *s, size_t n) { return valid_id(s, n, false); }
bool tpt_valid_user_id(const char *s, size_t n) { return valid_id(s, n, true); }

size_t tpt_base64url(const unsigned char *in, size_t n, char *out) {
  static const char alphabet[] =
      "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
  size_t o = 0, i = 0;
  for (; i + 2 < n; i += 3) {
    uint32_t v = (uint32_t)in[i] << 16 | (uint32_t)in[i + 1] << 8 | in[i + 2];
    out[o++] = alphabet[v >> 18];
    out[o++] = alphabet[(v >> 12) & 63];
    out[o++] = alphabet[(v >> 6) & 63];
    out[o++] = alphabet[v & 63];
  }
  if (i < n) {
    uint32_t v = (uint32_t)in[i] << 16 | (i + 1 < n ? (uint32_t)in[i + 1] << 8 : 0);
    out[o++] = alphabet[v >> 18];
    out[o++] = alphabet[(v >> 12) & 63];
    if (i + 1 < n) out[o++] = alphabet[(v >> 6) & 63];
  }
  out[o] = '\0';
  return o;
}

/* Keyed HMAC contexts, one per secret lately used. OpenSSL 3's one-shot HMAC()
** fetches the algorithm (under a lock) and keys it on every call: 20k
** instructions per request, ten times the two SHA-256 blocks of a token. A
** cached context is only duplicated and fed the message (11k). Per thread, so a
** host with more threads needs no lock of its own. */
enum { KEYS = 8, KEY_MAX = 256 };
static _Thread_local struct keyed {
  EVP_MAC_CTX *ctx;
  size_t len;
  unsigned char key[KEY_MAX];
} keyed[KEYS];
static _Thread_local unsigned keyed_next;

static EVP_MAC_CTX *keyed_ctx(const char *secret, size_t n) {
  if (n > KEY_MAX) return NULL;
  for (int i = 0; i < KEYS; i++)
    if (keyed[i].ctx && keyed[i].len == n && memcmp(keyed[i].key, secret, n) == 0)
      return keyed[i].ctx;
  EVP_MAC *mac = EVP_MAC_fetch(NULL, "HMAC", NULL);
  EVP_MAC_CTX *ctx = mac ? EVP_MAC_CTX_new(mac) : NULL;
  EVP_MAC_free(mac);
  OSSL_PARAM params[] = {OSSL_PARAM_construct_utf8_string(OSSL_MAC_PARAM_DIGEST, (char *)"SHA256", 0),
                         OSSL_PARAM_construct_end()};
  if (!ctx || !EVP_MAC_init(ctx, (const unsigned char *)secret, n, params)) {
    EVP_MAC_CTX_free(ctx);
    return NULL;
  }
  struct keyed *k = &keyed[keyed_next++ % KEYS];
  EVP_MAC_CTX_free(k->ctx);
  k->ctx = ctx;
  k->len = n;
  memcpy(k->key, secret, n);
  return ctx;
}

/* sig must hold 44 bytes: 43 characters of base64url and a NUL. */
static void sign(const char *secret, size_t secret_len, const char *msg, size_t n,
                 char sig[44]) {
  unsigned char mac[32];
  size_t mac_len = 0;
  EVP_MAC_CTX *key = keyed_ctx(secret, secret_len);
  EVP_MAC_CTX *ctx = key ? EVP_MAC_CTX_dup(key) : NULL;
  if (!ctx || !EVP_MAC_update(ctx, (const unsigned char *)msg, n) ||
      !EVP_MAC_final(ctx, mac, &mac_len, sizeof mac)) {
    unsigned int len = sizeof mac;  /* a secret too long to keep, or no memory */
    HMAC(EVP_sha256(), secret, (int)secret_len, (const unsigned char *)msg, n, mac, &len);
    mac_len = len;
  }
  EVP_MAC_CTX_free(ctx);
  tpt_base64url(mac, mac_len, sig);
}

void tpt_forget_keys(void) {
  for (int i = 0; i < KEYS; i++) {
    EVP_MAC_CTX_free(keyed[i].ctx);
    OPENSSL_cleanse(keyed[i].key, sizeof keyed[i].key);
    keyed[i].ctx = NULL;
    keyed[i].len = 0;
  }
}

int tpt_mint(const char *secret, size_t secret_len, const char *tenant,
             const char *user, int64_t exp, tp_buf *out) {
  if (!tpt_valid_tenant_id(tenant, strlen(tenant)) ||
      !tpt_valid_user_id(user, strlen(user)) || exp < 0)
    return -1;
  size_t start = out->len;
  tp_buf_printf(out, "v1.%s.%s.%lld", tenant, user, (long long)exp);
  char sig[44];
  sign(secret, secret_len, out->data + start, out->len - start, sig);
  tp_buf_addc(out, '.');
  tp_buf_adds(out, sig);
  return 0;
}

/* Splits token at its dots: v1 . tenant . user . exp . sig */
static int split(const char *t, size_t len, const char *part[5], size_t plen[5]) {
  int k = 0;
  size_t start = 0;
  for (size_t i = 0; i <= len; i++) {
    if (i == len || t[i] == '.') {
      if (k == 5) return -1;
      part[k] = t + start;
      plen[k] = i - start;
      k++;
      start = i + 1;
    }
  }
  return k == 5 ? 0 : -1;
}

static bool parse_exp(const char *s, size_t n, int64_t *out) {
  if (n == 0 || n > 15) return false;  /* 15 digits reach far past year 9999 */
  int64_t v = 0;
  for (size_t i = 0; i < n; i++) {
    if (s[i] < '0' || s[i] > '9') return false;
    v = v * 10 + (s[i] - '0');
  }
  *out = v;
  return true;
}

tpt_result tpt_verify(const char *token, size_t len, const char *tenant,
                      const char *secret, size_t secret_len, int64_t now,
                      char *user) {
  const char *part[5];
  size_t plen[5];
  int64_t exp;
  if (len > TPT_MAX_TOKEN || split(token, len, part, plen) != 0) return TPT_MALFORMED;
  if (plen[0] != 2 || memcmp(part[0], "v1", 2) != 0) return TPT_MALFORMED;
  if (!tpt_valid_tenant_id(part[1], plen[1]) || !tpt_valid_user_id(part[2], plen[2]) ||
      !parse_exp(part[3], plen[3], &exp) || plen[4] != 43)
    return TPT_MALFORMED;
  if (plen[1] != strlen(tenant) || memcmp(part[1], tenant, plen[1]) != 0)
    return TPT_WRONG_TENANT;
  char sig[44];
  sign(secret, secret_len, token, (size_t)(part[4] - token) - 1, sig);
  if (CRYPTO_memcmp(sig, part[4], 43) != 0) return TPT_BAD_SIGNATURE;
  if (exp <= now) return TPT_EXPIRED;
  memcpy(user, part[2], plen[2]);
  user[plen[2]] = '\0';
  return TPT_OK;
}

const char *tpt_result_code(tpt_result r) {
  switch (r) {
    case TPT_OK: return "ok";
    case TPT_MALFORMED: return "invalid_token";
    case TPT_BAD_SIGNATURE: return "invalid_token";
    case TPT_EXPIRED: return "token_expired";
    case TPT_WRONG_TENANT: return "wrong_tenant";
  }
  return "invalid_token";
}

const char *tpt_result_message(tpt_result r) {
  switch (r) {
    case TPT_OK: return "ok";
    case TPT_MALFORMED: return "the bearer token is malformed";
    case TPT_BAD_SIGNATURE: return "the bearer token's signature does not verify";
    case TPT_EXPIRED: return "the bearer token has expired";
    case TPT_WRONG_TENANT: return "the bearer token belongs to another tenant";
  }
  return "invalid token";
}

void tpt_key_digest(const char *key, size_t n, unsigned char out[32]) {
  unsigned int len = 32;
  EVP_Digest(key, n, out, &len, EVP_sha256(), NULL);
}

bool tpt_digest_equal(const unsigned char a[32], const unsigned char b[32]) {
  return CRYPTO_memcmp(a, b, 32) == 0;
}
