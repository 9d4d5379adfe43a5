/*
** Tokens: mint/verify round trip, and every way a token can be wrong.
*/
#include "base/token.h"

#include <openssl/evp.h>
#include <openssl/hmac.h>

#include "tp_test.h"

static const char secret[] = "a-secret-of-enough-length";
static const int64_t now = 1800000000;

static tpt_result verify(const char *tok, const char *tenant, char *user) {
  return tpt_verify(tok, strlen(tok), tenant, secret, strlen(secret), now, user);
}

static void mint(const char *tenant, const char *user, int64_t exp, tp_buf *b) {
  tp_buf_init(b);
  tpt_mint(secret, strlen(secret), tenant, user, exp, b);
  tp_buf_cstr(b);
}

TEST(round_trip_gives_the_user) {
  tp_buf b;
  char user[TPT_MAX_ID + 1];
  mint("leaf", "u-42", now + 60, &b);
  ASSERT_EQ(verify(b.data, "leaf", user), TPT_OK);
  ASSERT_STR(user, "u-42");
  tp_buf_free(&b);
}

TEST(expired_token_is_refused) {
  tp_buf b;
  char user[TPT_MAX_ID + 1];
  mint("leaf", "u-42", now, &b);  /* exp == now: already expired */
  ASSERT_EQ(verify(b.data, "leaf", user), TPT_EXPIRED);
  tp_buf_free(&b);
}

TEST(other_tenants_token_is_wrong_tenant) {
  tp_buf b;
  char user[TPT_MAX_ID + 1];
  mint("leaf", "u-42", now + 60, &b);
  ASSERT_EQ(verify(b.data, "bloom", user), TPT_WRONG_TENANT);
  tp_buf_free(&b);
}

TEST(any_changed_byte_breaks_the_signature) {
  tp_buf b;
  char user[TPT_MAX_ID + 1];
  mint("leaf", "u-42", now + 60, &b);
  for (size_t i = 0; i < b.len; i++) {
    char saved = b.data[i];
    b.data[i] = saved == 'A' ? 'B' : 'A';
    tpt_result r = verify(b.data, "leaf", user);
    b.data[i] = saved;
    ASSERT_TRUE(r != TPT_OK);
  }
  tp_buf_free(&b);
}

TEST(forged_user_is_refused) {
  tp_buf b;
  char user[TPT_MAX_ID + 1];
  mint("leaf", "u-42", now + 60, &b);
  char forged[256];
  const char *sig = strrchr(b.data, '.');
  snprintf(forged, sizeof forged, "v1.leaf.admin.%lld%s", (long long)(now + 60), sig);
  ASSERT_EQ(verify(forged, "leaf", user), TPT_BAD_SIGNATURE);
  tp_buf_free(&b);
}

TEST(malformed_tokens_are_refused) {
  char user[TPT_MAX_ID + 1];
  const char *bad[] = {"", "v1", "v1.leaf.u.1", "v2.leaf.u.1.xxx", "v1.leaf.u.-1.x",
                       "v1.leaf..1.AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA",
                       "v1.leaf.u.1.2.3", "v1.le af.u.1.AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"};
  for (size_t i = 0; i < sizeof bad / sizeof *bad; i++)
    ASSERT_EQ(verify(bad[i], "leaf", user), TPT_MALFORMED);
  char huge[TPT_MAX_TOKEN + 10];
  memset(huge, 'a', sizeof huge - 1);
  huge[sizeof huge - 1] = '\0';
  ASSERT_EQ(verify(huge, "leaf", user), TPT_MALFORMED);
}

TEST(invalid_ids_cannot_be_minted) {
  tp_buf b;
  tp_buf_init(&b);
  ASSERT_EQ(tpt_mint(secret, strlen(secret), "le.af", "u", now, &b), -1);
  ASSERT_EQ(tpt_mint(secret, strlen(secret), "leaf", "u.1", now, &b), -1);
  ASSERT_EQ(tpt_mint(secret, strlen(secret), "leaf", "", now, &b), -1);
  ASSERT_EQ(tpt_mint(secret, strlen(secret), "leaf", "wx:oAbc@x", now, &b), 0);
  tp_buf_free(&b);
}

TEST(base64url_matches_rfc4648_vectors) {
  char out[16];
  tpt_base64url((const unsigned char *)"f", 1, out);
  ASSERT_STR(out, "Zg");
  tpt_base64url((const unsigned char *)"fo", 2, out);
  ASSERT_STR(out, "Zm8");
  tpt_base64url((const unsigned char *)"foob", 4, out);
  ASSERT_STR(out, "Zm9vYg");
  tpt_base64url((const unsigned char *)"\xfb\xff", 2, out);
  ASSERT_STR(out, "-_8");
}

TEST(api_key_digests_compare_by_content) {
  unsigned char a[32], b[32], c[32];
  tpt_key_digest("key-number-one-0001", 19, a);
  tpt_key_digest("key-number-one-0001", 19, b);
  tpt_key_digest("key-number-one-0002", 19, c);
  ASSERT_TRUE(tpt_digest_equal(a, b));
  ASSERT_TRUE(!tpt_digest_equal(a, c));
}

/* Signing keeps a keyed context per secret lately used: with more secrets
** than it keeps, and one too long to keep, every token still carries exactly
** HMAC-SHA-256(its secret, message), and no secret verifies another's. */
TEST(every_secret_signs_with_its_own_key) {
  char secrets[20][300];
  for (int i = 0; i < 20; i++) {
    size_t n = i == 7 ? 299 : 20 + (size_t)i / 2;  /* pairs of one length; #7 too long to keep */
    memset(secrets[i], 'a' + i, n);
    secrets[i][n] = '\0';
  }
  for (int round = 0; round < 2; round++)
    for (int i = 0; i < 20; i++) {
      tp_buf b;
      tp_buf_init(&b);
      ASSERT_EQ(tpt_mint(secrets[i], strlen(secrets[i]), "leaf", "u-1", now + 60, &b), 0);
      tp_buf_cstr(&b);
      unsigned char mac[32];
      unsigned int len = sizeof mac;
      const char *dot = strrchr(b.data, '.');
      HMAC(EVP_sha256(), secrets[i], (int)strlen(secrets[i]), (const unsigned char *)b.data,
           (size_t)(dot - b.data), mac, &len);
      char want[44];
      tpt_base64url(mac, len, want);
      ASSERT_STR(dot + 1, want);
      char user[TPT_MAX_ID + 1];
      const char *other = secrets[(i + 1) % 20];
      ASSERT_EQ(tpt_verify(b.data, b.len, "leaf", secrets[i], strlen(secrets[i]), now, user), TPT_OK);
      ASSERT_EQ(tpt_verify(b.data, b.len, "leaf", other, strlen(other), now, user),
                TPT_BAD_SIGNATURE);
      tp_buf_free(&b);
    }
  tpt_forget_keys();
}

int main(void) {
  RUN(round_trip_gives_the_user);
  RUN(expired_token_is_refused);
  RUN(other_tenants_token_is_wrong_tenant);
  RUN(any_changed_byte_breaks_the_signature);
  RUN(forged_user_is_refused);
  RUN(malformed_tokens_are_refused);
  RUN(invalid_ids_cannot_be_minted);
  RUN(base64url_matches_rfc4648_vectors);
  RUN(api_key_digests_compare_by_content);
  RUN(every_secret_signs_with_its_own_key);
  return TEST_SUMMARY();
}
