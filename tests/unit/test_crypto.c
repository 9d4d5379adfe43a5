/*
** tp.crypto from C: SHA-256 and HMAC-SHA-256 against published vectors
** (FIPS 180-2's "abc", RFC 4231), the three encodings, the constant-time
** comparison and the errors a plugin sees for bad arguments.
*/
#include <lauxlib.h>
#include <lualib.h>

#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/rsa.h>
#include <stdlib.h>
#include <string.h>

#include "base/buf.h"
#include "base/crypto.h"
#include "tp_test.h"

static lua_State *L;
static char result[512];

static void setup(void) {
  L = luaL_newstate();
  luaL_openlibs(L);
  lua_createtable(L, 0, 3);
  lua_pushcfunction(L, tpx_l_sha256);
  lua_setfield(L, -2, "sha256");
  lua_pushcfunction(L, tpx_l_hmac_sha256);
  lua_setfield(L, -2, "hmac_sha256");
  lua_pushcfunction(L, tpx_l_equal);
  lua_setfield(L, -2, "equal");
  lua_setglobal(L, "crypto");
}

static void teardown(void) { lua_close(L); }

/* Runs "return <expr>"; its result (or error message) as text in result.
** Returns 0 when it ran, -1 when it raised. */
static int eval(const char *expr) {
  char chunk[1024];
  snprintf(chunk, sizeof chunk, "return %s", expr);
  int rc = luaL_dostring(L, chunk) == LUA_OK ? 0 : -1;
  const char *s = luaL_tolstring(L, -1, NULL);
  snprintf(result, sizeof result, "%s", s);
  lua_settop(L, 0);
  return rc;
}

TEST(sha256_of_abc_in_every_encoding) {
  setup();
  ASSERT_EQ(eval("crypto.sha256('abc')"), 0);
  ASSERT_STR(result, "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
  ASSERT_EQ(eval("crypto.sha256('abc', 'hex')"), 0);
  ASSERT_STR(result, "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
  ASSERT_EQ(eval("crypto.sha256('abc', 'base64')"), 0);
  ASSERT_STR(result, "ungWv48Bz+pBQUDeXa4iI7ADYaOWF3qctBD/YfIAFa0=");
  /* raw: the 32 bytes themselves */
  ASSERT_EQ(eval("(crypto.sha256('abc', 'raw'):gsub('.', function(c) "
                 "return ('%02x'):format(c:byte()) end))"), 0);
  ASSERT_STR(result, "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
  ASSERT_EQ(eval("#crypto.sha256('abc', 'raw')"), 0);
  ASSERT_STR(result, "32");
  ASSERT_EQ(eval("crypto.sha256('')"), 0);
  ASSERT_STR(result, "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
  /* bytes after a NUL count */
  ASSERT_EQ(eval("crypto.sha256('a\\0b') ~= crypto.sha256('a')"), 0);
  ASSERT_STR(result, "true");
  teardown();
}

TEST(hmac_sha256_matches_rfc_4231) {
  setup();
  /* test case 1 */
  ASSERT_EQ(eval("crypto.hmac_sha256(('\\x0b'):rep(20), 'Hi There')"), 0);
  ASSERT_STR(result, "b0344c61d8db38535ca8afceaf0bf12b881dc200c9833da726e9376c2e32cff7");
  /* test case 2: a key shorter than the output */
  ASSERT_EQ(eval("crypto.hmac_sha256('Jefe', 'what do ya want for nothing?')"), 0);
  ASSERT_STR(result, "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843");
  ASSERT_EQ(eval("crypto.hmac_sha256('Jefe', 'what do ya want for nothing?', 'base64')"), 0);
  ASSERT_STR(result, "W9zBRr9gdU5qBCQmCJV1x1oAPwidJzmDnexYuWTsOEM=");
  /* test case 3: binary key and data */
  ASSERT_EQ(eval("crypto.hmac_sha256(('\\xaa'):rep(20), ('\\xdd'):rep(50))"), 0);
  ASSERT_STR(result, "773ea91e36800e46854db8ebd09181a72959098b3ef8c122d9635514ced565fe");
  /* test case 4 */
  ASSERT_EQ(eval("crypto.hmac_sha256(string.char(table.unpack((function() local t = {} "
                 "for i = 1, 25 do t[i] = i end return t end)())), ('\\xcd'):rep(50))"), 0);
  ASSERT_STR(result, "82558a389a443c0ea4cc819899f2083a85f0faa3e578f8077a2e3ff46729665b");
  /* test cases 6 and 7: a key longer than the block is hashed first */
  ASSERT_EQ(eval("crypto.hmac_sha256(('\\xaa'):rep(131), "
                 "'Test Using Larger Than Block-Size Key - Hash Key First')"), 0);
  ASSERT_STR(result, "60e431591ee0b67f0d8a26aacbf5b77f8e0bc6213728c5140546040f0ee37f54");
  ASSERT_EQ(eval("crypto.hmac_sha256(('\\xaa'):rep(131), 'This is a test using a larger than "
                 "block-size key and a larger than block-size data. The key needs to be hashed "
                 "before being used by the HMAC algorithm.')"), 0);
  ASSERT_STR(result, "9b09ffa71b942fcb27635fbcd5b0e944bfdc63644f0713938a7f51535c3a35e2");
  ASSERT_EQ(eval("#crypto.hmac_sha256('k', 'd', 'raw')"), 0);
  ASSERT_STR(result, "32");
  teardown();
}

TEST(equal_compares_whole_strings) {
  setup();
  static const struct {
    const char *expr, *want;
  } cases[] = {
    {"crypto.equal('abc', 'abc')", "true"},
    {"crypto.equal('', '')", "true"},
    {"crypto.equal('abc', 'abd')", "false"},
    {"crypto.equal('xbc', 'abc')", "false"},
    {"crypto.equal('abc', 'ab')", "false"},    /* a prefix is not equal */
    {"crypto.equal('ab', 'abc')", "false"},
    {"crypto.equal('', 'a')", "false"},
    {"crypto.equal('a\\0b', 'a\\0c')", "false"},  /* not a C string comparison */
    {"crypto.equal('a\\0b', 'a\\0b')", "true"},
    {"crypto.equal(crypto.sha256('x'), crypto.sha256('x'))", "true"},
  };
  for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
    ASSERT_EQ(eval(cases[i].expr), 0);
    if (strcmp(result, cases[i].want) != 0) TP_FAIL_("%s: %s", cases[i].expr, result);
  }
  teardown();
}

TEST(bad_arguments_raise_clear_errors) {
  setup();
  ASSERT_EQ(eval("crypto.sha256('abc', 'HEX')"), -1);
  ASSERT_CONTAINS(result, "tp.crypto.sha256: encoding must be \"hex\", \"base64\" or \"raw\" "
                          "(got \"HEX\")");
  ASSERT_EQ(eval("crypto.hmac_sha256('k', 'd', 'base32')"), -1);
  ASSERT_CONTAINS(result, "tp.crypto.hmac_sha256: encoding must be");
  ASSERT_EQ(eval("crypto.sha256('abc', {})"), -1);
  ASSERT_CONTAINS(result, "(got table)");
  ASSERT_EQ(eval("crypto.sha256(42)"), -1);
  ASSERT_CONTAINS(result, "tp.crypto.sha256: data must be a string (got number)");
  ASSERT_EQ(eval("crypto.sha256()"), -1);
  ASSERT_CONTAINS(result, "data must be a string (got no value)");
  ASSERT_EQ(eval("crypto.hmac_sha256(nil, 'd')"), -1);
  ASSERT_CONTAINS(result, "tp.crypto.hmac_sha256: key must be a string (got nil)");
  ASSERT_EQ(eval("crypto.equal('a', 1)"), -1);
  ASSERT_CONTAINS(result, "tp.crypto.equal: b must be a string (got number)");
  teardown();
}

/* ---- RSA (SHA256withRSA) and AES-256-GCM, as WeChat Pay APIv3 uses them */

static char *copy_bytes(const char *p, size_t n) {
  char *out = malloc(n + 1);
  memcpy(out, p, n);
  out[n] = '\0';
  return out;
}

/* A fresh 2048-bit key pair as PEM: PKCS#8 private, SubjectPublicKeyInfo public. */
static void key_pair(char **priv, char **pub) {
  EVP_PKEY *k = EVP_RSA_gen(2048);
  ASSERT_TRUE(k != NULL);
  BIO *a = BIO_new(BIO_s_mem()), *b = BIO_new(BIO_s_mem());
  ASSERT_EQ(PEM_write_bio_PrivateKey(a, k, NULL, NULL, 0, NULL, NULL), 1);
  ASSERT_EQ(PEM_write_bio_PUBKEY(b, k), 1);
  char *p;
  long n = BIO_get_mem_data(a, &p);
  *priv = copy_bytes(p, (size_t)n);  /* a memory BIO's data has no NUL to stop strndup */
  n = BIO_get_mem_data(b, &p);
  *pub = copy_bytes(p, (size_t)n);
  BIO_free(a);
  BIO_free(b);
  EVP_PKEY_free(k);
}

TEST(rsa_signatures_verify_under_their_key_only) {
  char *priv, *pub, *priv2, *pub2, err[128];
  key_pair(&priv, &pub);
  key_pair(&priv2, &pub2);
  const char *text = "wx-app\n1554208460\n593BEC0C930BF1AFEB40B4A08C8FB242\nprepay_id=wx1\n";
  tp_buf sig, again;
  tp_buf_init(&sig);
  tp_buf_init(&again);
  ASSERT_EQ(tpx_rsa_sign_b64(priv, strlen(priv), text, strlen(text), &sig, err, sizeof err), 0);
  ASSERT_EQ(sig.len, 344);  /* 256 bytes in base64 */
  /* PKCS#1 v1.5 is deterministic: the same key signs the same text alike */
  ASSERT_EQ(tpx_rsa_sign_b64(priv, strlen(priv), text, strlen(text), &again, err, sizeof err), 0);
  ASSERT_STR(tp_buf_cstr(&sig), tp_buf_cstr(&again));
  ASSERT_EQ(tpx_rsa_verify_b64(pub, strlen(pub), text, strlen(text), sig.data, sig.len, err, sizeof err), 1);
  /* one byte of the text changed, the other key, a signature that is no base64 */
  ASSERT_EQ(tpx_rsa_verify_b64(pub, strlen(pub), "x", 1, sig.data, sig.len, err, sizeof err), 0);
  ASSERT_EQ(tpx_rsa_verify_b64(pub2, strlen(pub2), text, strlen(text), sig.data, sig.len, err,
                               sizeof err), 0);
  ASSERT_EQ(tpx_rsa_verify_b64(pub, strlen(pub), text, strlen(text), "@@@@", 4, err, sizeof err), 0);
  ASSERT_EQ(tpx_rsa_verify_b64(pub, strlen(pub), text, strlen(text), "", 0, err, sizeof err), 0);
  /* a key that is not one: refused, and the message holds no key bytes */
  ASSERT_EQ(tpx_rsa_verify_b64("junk", 4, text, 1, sig.data, sig.len, err, sizeof err), -1);
  ASSERT_CONTAINS(err, "not an RSA public key or certificate");
  ASSERT_EQ(tpx_rsa_check_private(priv, strlen(priv), err, sizeof err), 0);
  ASSERT_EQ(tpx_rsa_check_private(pub, strlen(pub), err, sizeof err), -1);
  ASSERT_CONTAINS(err, "not an unencrypted RSA private key");
  tp_buf_reset(&again);
  ASSERT_EQ(tpx_rsa_sign_b64(pub, strlen(pub), text, 1, &again, err, sizeof err), -1);
  ASSERT_EQ(again.len, 0);
  /* from Lua: tp.crypto.rsa_verify */
  setup();
  lua_pushcfunction(L, tpx_l_rsa_verify);
  lua_setglobal(L, "rsa_verify");
  lua_pushstring(L, pub);
  lua_setglobal(L, "pub");
  lua_pushstring(L, tp_buf_cstr(&sig));
  lua_setglobal(L, "sig");
  lua_pushstring(L, text);
  lua_setglobal(L, "text");
  ASSERT_EQ(eval("rsa_verify(pub, text, sig)"), 0);
  ASSERT_STR(result, "true");
  ASSERT_EQ(eval("rsa_verify(pub, text .. ' ', sig)"), 0);
  ASSERT_STR(result, "false");
  ASSERT_EQ(eval("rsa_verify('-----BEGIN PUBLIC KEY-----', text, sig)"), -1);
  ASSERT_CONTAINS(result, "tp.crypto.rsa_verify: public_key: not an RSA public key");
  ASSERT_EQ(eval("rsa_verify(pub, text, 7)"), -1);
  ASSERT_CONTAINS(result, "signature must be a string (got number)");
  teardown();
  tp_buf_free(&sig);
  tp_buf_free(&again);
  free(priv), free(pub), free(priv2), free(pub2);
}

/* McGrew and Viega's GCM test case 14: a zero 256-bit key, a zero 96-bit IV,
** 16 zero bytes of plaintext; ciphertext cea7403d..., tag d0d1c8a7... */
TEST(aes_gcm_opens_the_published_vector_and_refuses_a_tampered_one) {
  static const unsigned char ct_tag[32] = {
      0xce, 0xa7, 0x40, 0x3d, 0x4d, 0x60, 0x6b, 0x6e, 0x07, 0x4e, 0xc5, 0xd3, 0xba, 0xf3, 0x9d, 0x18,
      0xd0, 0xd1, 0xc8, 0xa7, 0x99, 0x99, 0x6b, 0xf0, 0x26, 0x5b, 0x98, 0xb5, 0xd4, 0x8a, 0xb9, 0x19};
  unsigned char key[32] = {0}, iv[12] = {0}, b64[64], bad[32];
  int n = EVP_EncodeBlock(b64, ct_tag, sizeof ct_tag);
  char err[128];
  tp_buf out;
  tp_buf_init(&out);
  ASSERT_EQ(tpx_aes256gcm_open(key, 32, iv, 12, "", 0, (char *)b64, (size_t)n, &out, err, sizeof err), 0);
  ASSERT_EQ(out.len, 16);
  for (int i = 0; i < 16; i++) ASSERT_EQ(out.data[i], 0);
  /* a flipped bit in the ciphertext or the tag, associated data it was not
  ** sealed with, another key: refused, nothing appended */
  for (int at = 0; at < 32; at += 31) {
    memcpy(bad, ct_tag, sizeof bad);
    bad[at] ^= 1;
    n = EVP_EncodeBlock(b64, bad, sizeof bad);
    tp_buf_reset(&out);
    ASSERT_EQ(tpx_aes256gcm_open(key, 32, iv, 12, "", 0, (char *)b64, (size_t)n, &out, err, sizeof err), -1);
    ASSERT_EQ(out.len, 0);
    ASSERT_CONTAINS(err, "does not open");
  }
  n = EVP_EncodeBlock(b64, ct_tag, sizeof ct_tag);
  ASSERT_EQ(tpx_aes256gcm_open(key, 32, iv, 12, "transaction", 11, (char *)b64, (size_t)n, &out, err,
                               sizeof err), -1);
  key[0] = 1;
  ASSERT_EQ(tpx_aes256gcm_open(key, 32, iv, 12, "", 0, (char *)b64, (size_t)n, &out, err, sizeof err), -1);
  /* shapes: a short key, no nonce, not base64, shorter than a tag */
  ASSERT_EQ(tpx_aes256gcm_open(key, 16, iv, 12, "", 0, (char *)b64, (size_t)n, &out, err, sizeof err), -1);
  ASSERT_CONTAINS(err, "32 bytes");
  ASSERT_EQ(tpx_aes256gcm_open(key, 32, iv, 0, "", 0, (char *)b64, (size_t)n, &out, err, sizeof err), -1);
  ASSERT_EQ(tpx_aes256gcm_open(key, 32, iv, 12, "", 0, "not base64!", 11, &out, err, sizeof err), -1);
  ASSERT_EQ(tpx_aes256gcm_open(key, 32, iv, 12, "", 0, "AAAA", 4, &out, err, sizeof err), -1);
  ASSERT_EQ(out.len, 0);
  tp_buf_free(&out);
}

int main(void) {
  RUN(sha256_of_abc_in_every_encoding);
  RUN(hmac_sha256_matches_rfc_4231);
  RUN(equal_compares_whole_strings);
  RUN(bad_arguments_raise_clear_errors);
  RUN(rsa_signatures_verify_under_their_key_only);
  RUN(aes_gcm_opens_the_published_vector_and_refuses_a_tampered_one);
  return TEST_SUMMARY();
}
