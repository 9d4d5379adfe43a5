/*
** passwd.c - PBKDF2-HMAC-SHA256 password hashes and random tokens (passwd.h).
*/
#include "base/passwd.h"

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/rand.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define SALT_BYTES 16
#define HASH_BYTES 32

static void hex(const unsigned char *p, size_t n, char *out) {
  for (size_t i = 0; i < n; i++) snprintf(out + 2 * i, 3, "%02x", p[i]);
}

static int unhex(const char *s, size_t n, unsigned char *out) {
  for (size_t i = 0; i < n; i++) {
    unsigned v = 0;
    for (int k = 0; k < 2; k++) {
      char ch = s[2 * i + k];
      int d = ch >= '0' && ch <= '9' ? ch - '0' : ch >= 'a' && ch <= 'f' ? ch - 'a' + 10 : -1;
      if (d < 0) return -1;
      v = v * 16 + (unsigned)d;
    }
    out[i] = (unsigned char)v;
  }
  return 0;
}

static int derive(const char *password, size_t n, const unsigned char *salt, int64_t iterations,
                  unsigned char out[HASH_BYTES]) {
  return PKCS5_PBKDF2_HMAC(password, (int)n, salt, SALT_BYTES, (int)iterations, EVP_sha256(),
                           HASH_BYTES, out) == 1 ? 0 : -1;
}

int tppw_hash(const char *password, size_t n, int64_t iterations, char out[TPPW_MAX]) {
  unsigned char salt[SALT_BYTES], dk[HASH_BYTES];
  if (iterations < 1000 || iterations > 10000000 || n > TPPW_MAX_PASSWORD) return -1;
  if (RAND_bytes(salt, sizeof salt) != 1 || derive(password, n, salt, iterations, dk) != 0) return -1;
  char salt_hex[2 * SALT_BYTES + 1], dk_hex[2 * HASH_BYTES + 1];
  hex(salt, sizeof salt, salt_hex);
  hex(dk, sizeof dk, dk_hex);
  snprintf(out, TPPW_MAX, "pbkdf2-sha256$%lld$%s$%s", (long long)iterations, salt_hex, dk_hex);
  OPENSSL_cleanse(dk, sizeof dk);
  return 0;
}

int tppw_verify(const char *password, size_t n, const char *stored) {
  static const char prefix[] = "pbkdf2-sha256$";
  if (!stored || strncmp(stored, prefix, sizeof prefix - 1) != 0) return -1;
  const char *p = stored + sizeof prefix - 1;
  char *end;
  long long iterations = strtoll(p, &end, 10);
  if (end == p || *end != '$' || iterations < 1000 || iterations > 10000000) return -1;
  const char *salt_hex = end + 1;
  if (strlen(salt_hex) != 2 * SALT_BYTES + 1 + 2 * HASH_BYTES || salt_hex[2 * SALT_BYTES] != '$')
    return -1;
  unsigned char salt[SALT_BYTES], want[HASH_BYTES], got[HASH_BYTES];
  if (unhex(salt_hex, SALT_BYTES, salt) != 0 ||
      unhex(salt_hex + 2 * SALT_BYTES + 1, HASH_BYTES, want) != 0)
    return -1;
  if (n > TPPW_MAX_PASSWORD || derive(password, n, salt, iterations, got) != 0) return 0;
  int same = CRYPTO_memcmp(got, want, HASH_BYTES) == 0;
  OPENSSL_cleanse(got, sizeof got);
  return same;
}

bool tppw_acceptable(const char *password, size_t n) {
  if (n < TPPW_MIN_PASSWORD || n > TPPW_MAX_PASSWORD) return false;
  for (size_t i = 0; i < n; i++)
    if ((unsigned char)password[i] < 32 || password[i] == 127) return false;
  return true;
}

void tppw_token(char out[65]) {
  unsigned char b[32];
  if (RAND_bytes(b, sizeof b) != 1) abort();  /* no randomness: nothing safe to hand out */
  hex(b, sizeof b, out);
}

bool tppw_token_equal(const char *a, const char *b, size_t blen) {
  size_t alen = strlen(a);
  if (alen == 0 || alen != blen) return false;
  return CRYPTO_memcmp(a, b, alen) == 0;
}
