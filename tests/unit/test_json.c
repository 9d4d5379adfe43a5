/*
** JSON: exact integers both ways, arrays vs objects, what cannot be encoded.
*/
#include <lauxlib.h>
#include <lualib.h>

#include "base/json.h"
#include "tp_test.h"

static lua_State *L;
static tp_buf out;
static char err[256];

static void setup(void) {
  L = luaL_newstate();
  luaL_openlibs(L);
  tpj_open(L);
  lua_pushcfunction(L, tpj_l_array);
  lua_setglobal(L, "array");
  lua_pushlightuserdata(L, NULL);
  lua_setglobal(L, "null");
  tp_buf_init(&out);
}

static void teardown(void) {
  lua_close(L);
  tp_buf_free(&out);
}

/* Evaluates a Lua expression and encodes it. */
static const char *enc(const char *expr) {
  char chunk[512];
  snprintf(chunk, sizeof chunk, "return %s", expr);
  tp_buf_reset(&out);
  if (luaL_dostring(L, chunk) != LUA_OK) return lua_tostring(L, -1);
  int rc = tpj_encode(L, -1, &out, err, sizeof err);
  lua_pop(L, 1);
  return rc == 0 ? tp_buf_cstr(&out) : NULL;
}

TEST(integers_are_exact) {
  setup();
  ASSERT_STR(enc("990"), "990");
  ASSERT_STR(enc("123456789012345678"), "123456789012345678");
  ASSERT_STR(enc("math.mininteger"), "-9223372036854775808");
  ASSERT_STR(enc("0.5"), "0.5");
  teardown();
}

TEST(tables_become_arrays_or_objects) {
  setup();
  ASSERT_STR(enc("{1, 2, 3}"), "[1,2,3]");
  ASSERT_STR(enc("{a = 1}"), "{\"a\":1}");
  ASSERT_STR(enc("{}"), "{}");
  ASSERT_STR(enc("array({})"), "[]");
  ASSERT_TRUE(strstr(enc("{[1] = 'a', [3] = 'c'}"), "\"3\":\"c\"") != NULL);  /* sparse: object */
  ASSERT_STR(enc("{x = {true, false, null}}"), "{\"x\":[true,false,null]}");
  teardown();
}

TEST(strings_are_escaped_and_valid_utf8) {
  setup();
  ASSERT_STR(enc("'a\"b\\\\c\\n\\1'"), "\"a\\\"b\\\\c\\n\\u0001\"");
  ASSERT_STR(enc("'\\xe8\\x8c\\xb6'"), "\"\xe8\x8c\xb6\"");   /* 茶 passes through */
  ASSERT_STR(enc("'a\\xffb'"), "\"a\\ufffdb\"");              /* invalid byte replaced */
  ASSERT_STR(enc("'\\xed\\xa0\\x80'"), "\"\\ufffd\\ufffd\\ufffd\"");  /* surrogate */
  teardown();
}

TEST(unencodable_values_are_errors) {
  setup();
  ASSERT_TRUE(enc("print") == NULL);
  ASSERT_CONTAINS(err, "function");
  ASSERT_TRUE(enc("0/0") == NULL);
  ASSERT_CONTAINS(err, "NaN");
  ASSERT_TRUE(enc("1/0") == NULL);
  ASSERT_TRUE(enc("(function() local t = {} t.self = t return t end)()") == NULL);
  ASSERT_CONTAINS(err, "deeper");
  ASSERT_TRUE(enc("{[true] = 1}") == NULL);
  ASSERT_EQ(out.len, 0);  /* nothing half-written */
  teardown();
}

TEST(decoded_integral_numbers_are_integers) {
  setup();
  const char *text = "{\"price_fen\":990,\"ratio\":0.25,\"big\":9007199254740992,\"list\":[1,2.0]}";
  ASSERT_EQ(tpj_decode(L, text, strlen(text), err, sizeof err), 0);
  lua_getfield(L, -1, "price_fen");
  ASSERT_TRUE(lua_isinteger(L, -1));
  ASSERT_EQ(lua_tointeger(L, -1), 990);
  lua_getfield(L, -2, "ratio");
  ASSERT_TRUE(!lua_isinteger(L, -1));
  lua_getfield(L, -3, "big");
  ASSERT_TRUE(lua_isinteger(L, -1));
  lua_getfield(L, -4, "list");
  lua_rawgeti(L, -1, 2);
  ASSERT_TRUE(lua_isinteger(L, -1));
  lua_settop(L, 0);
  ASSERT_EQ(tpj_decode(L, "42", 2, err, sizeof err), 0);
  ASSERT_TRUE(lua_isinteger(L, -1));
  teardown();
}

TEST(bad_json_is_an_error_not_a_crash) {
  setup();
  const char *bad[] = {"{", "{\"a\":}", "[1,]", "nan", "Infinity", "0x10", "{'a':1}", ""};
  for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
    if (tpj_decode(L, bad[i], strlen(bad[i]), err, sizeof err) == 0) TP_FAIL_("accepted: %s", bad[i]);
  }
  char deep[300];
  memset(deep, '[', sizeof deep);
  ASSERT_EQ(tpj_decode(L, deep, sizeof deep, err, sizeof err), -1);
  ASSERT_EQ(lua_gettop(L), 0);
  teardown();
}

int main(void) {
  RUN(integers_are_exact);
  RUN(tables_become_arrays_or_objects);
  RUN(strings_are_escaped_and_valid_utf8);
  RUN(unencodable_values_are_errors);
  RUN(decoded_integral_numbers_are_integers);
  RUN(bad_json_is_an_error_not_a_crash);
  return TEST_SUMMARY();
}
