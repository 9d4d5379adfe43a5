/*
** tp.crypto from C: SHA-256 and HMAC-SHA-256 against published vectors
** (FIPS 180-2's "abc", RFC 4231), the three encodings, the constant-time
** comparison and the errors a plugin sees for bad arguments.
*/
#include <lauxlib.h>
#include <lualib.h>

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

int main(void) {
  RUN(sha256_of_abc_in_every_encoding);
  RUN(hmac_sha256_matches_rfc_4231);
  RUN(equal_compares_whole_strings);
  RUN(bad_arguments_raise_clear_errors);
  return TEST_SUMMARY();
}
