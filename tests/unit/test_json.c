/*
** JSON: exact integers both ways, arrays vs objects, what cannot be encoded.
*/
#include <lauxlib.h>
#include <lualib.h>
#include <stdlib.h>
#include <string.h>

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

static int asks;
static bool stop_at_third_ask(void) { return ++asks >= 3; }

TEST(the_interrupt_stops_an_encoding_within_a_check_of_bytes) {
  setup();
  asks = 0;
  tpj_set_interrupt(stop_at_third_ask);
  ASSERT_TRUE(enc("(function() local t = {} for _ = 1, 40 do t = {t, t} end return t end)()") == NULL);
  ASSERT_CONTAINS(err, "deadline");
  ASSERT_EQ(asks, 3);  /* asked after each TPJ_CHECK_BYTES written */
  ASSERT_EQ(out.len, 0);
  asks = 0;
  ASSERT_STR(enc("{1, 2}"), "[1,2]");  /* a short text is never asked */
  ASSERT_EQ(asks, 0);
  tpj_set_interrupt(NULL);
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

TEST(long_strings_are_escaped_across_chunks) {
  setup();
  /* 4095 plain bytes, then a 3-byte character across the 4096-byte chunk's
  ** edge, then controls, DEL and an invalid byte each written as 6 */
  tp_buf in, want;
  tp_buf_init(&in);
  tp_buf_init(&want);
  tp_buf_addc(&want, '"');
  for (int i = 0; i < 4095; i++) tp_buf_addc(&in, 'x'), tp_buf_addc(&want, 'x');
  tp_buf_adds(&in, "\xe8\x8c\xb6");
  tp_buf_adds(&want, "\xe8\x8c\xb6");
  for (int i = 0; i < 3000; i++) {
    tp_buf_adds(&in, "\x01\x7f\xff\"");
    tp_buf_adds(&want, "\\u0001\\u007f\\ufffd\\\"");
  }
  tp_buf_addc(&want, '"');
  tp_buf_reset(&out);
  tp_buf_add_json_str(&out, in.data, in.len);
  ASSERT_EQ(out.len, want.len);
  ASSERT_TRUE(memcmp(out.data, want.data, want.len) == 0);
  tp_buf_free(&in);
  tp_buf_free(&want);
  teardown();
}

/* A view of text, in L (the metatable lua/jsonview.c would register). */
static void push_view(const char *text) {
  luaL_newmetatable(L, TPJ_VIEW);
  lua_pop(L, 1);
  tpj_push_view(L, text, strlen(text));
}

TEST(a_view_is_written_as_its_text) {
  setup();
  push_view("{\"b\":[1,2]}");
  lua_setglobal(L, "v");
  ASSERT_STR(enc("{a = v}"), "{\"a\":{\"b\":[1,2]}}");
  ASSERT_STR(enc("v"), "{\"b\":[1,2]}");
  ASSERT_TRUE(tpj_to_view(L, LUA_REGISTRYINDEX) == NULL);
  lua_pushliteral(L, "text");
  ASSERT_TRUE(tpj_to_view(L, -1) == NULL);
  lua_pop(L, 1);
  teardown();
}

static const char *member(const char *text, const char *key) {
  const char *v;
  size_t n;
  static char got[256];
  if (!tpj_view_member(text, strlen(text), key, strlen(key), &v, &n)) return NULL;
  snprintf(got, sizeof got, "%.*s", (int)n, v);
  return got;
}

static const char *element(const char *text, int64_t i) {
  const char *v;
  size_t n;
  static char got[256];
  if (!tpj_view_element(text, strlen(text), i, &v, &n)) return NULL;
  snprintf(got, sizeof got, "%.*s", (int)n, v);
  return got;
}

TEST(a_views_members_are_found_without_decoding) {
  setup();
  const char *o = "{\"a\":\"x,}]\\\"\",\"k\\\"q\":1,\"n\":{\"a\":[1,{\"b\":\"]\"}]},\"z\":-2.5e3}";
  ASSERT_STR(member(o, "\"a\""), "\"x,}]\\\"\"");     /* the string's , } ] and \" skipped */
  ASSERT_STR(member(o, "\"k\\\"q\""), "1");            /* a key with an escape, as written */
  ASSERT_STR(member(o, "\"n\""), "{\"a\":[1,{\"b\":\"]\"}]}");
  ASSERT_STR(member(o, "\"z\""), "-2.5e3");
  ASSERT_TRUE(member(o, "\"b\"") == NULL);                /* only the top level is searched */
  ASSERT_TRUE(member("[1]", "\"a\"") == NULL);
  const char *a = "[\"[\",{\"x\":[]},[],true,null]";
  ASSERT_STR(element(a, 1), "\"[\"");
  ASSERT_STR(element(a, 2), "{\"x\":[]}");
  ASSERT_STR(element(a, 3), "[]");
  ASSERT_STR(element(a, 5), "null");
  ASSERT_TRUE(element(a, 6) == NULL && element(a, 0) == NULL && element("[]", 1) == NULL);
  ASSERT_EQ(tpj_view_count(a, strlen(a)), 5);
  ASSERT_EQ(tpj_view_count("[]", 2), 0);
  ASSERT_EQ(tpj_view_count(o, strlen(o)), 0);
  /* cut short anywhere (a heap block of exactly that size, so that ASan sees
  ** any read past it): nothing found past the end */
  for (size_t cut = 0; cut < strlen(o); cut++) {
    char *part = malloc(cut ? cut : 1);
    memcpy(part, o, cut);
    const char *v;
    size_t n;
    if (tpj_view_member(part, cut, "\"z\"", 3, &v, &n)) ASSERT_TRUE(v + n <= part + cut);
    (void)tpj_view_member(part, cut, "\"q\"", 3, &v, &n);
    (void)tpj_view_element(part, cut, 9, &v, &n);
    (void)tpj_view_count(part, cut);
    if (tpj_decode_exact(L, part, cut, err, sizeof err) == 0) TP_FAIL_("decoded a cut: %zu", cut);
    free(part);
  }
  teardown();
}

TEST(a_views_text_decodes_exactly) {
  setup();
  const char *text = "{\"big\":9007199254740993,\"f\":0.25,\"i\":3,\"s\":\"a\\\"\\\\\\n\\u0001\\ufffd\xe8\x8c\xb6\","
                     "\"e\":[],\"o\":{},\"l\":[true,false,null,-7]}";
  ASSERT_EQ(tpj_decode_exact(L, text, strlen(text), err, sizeof err), 0);
  lua_getfield(L, -1, "big");
  ASSERT_TRUE(lua_isinteger(L, -1) && lua_tointeger(L, -1) == 9007199254740993LL);
  lua_getfield(L, -2, "f");
  ASSERT_TRUE(!lua_isinteger(L, -1) && lua_tonumber(L, -1) == 0.25);
  lua_getfield(L, -3, "s");
  ASSERT_STR(lua_tostring(L, -1), "a\"\\\n\x01\xef\xbf\xbd\xe8\x8c\xb6");
  lua_pop(L, 3);
  tp_buf_reset(&out);
  ASSERT_EQ(tpj_encode(L, -1, &out, err, sizeof err), 0);  /* and encodes back to itself */
  lua_pop(L, 1);
  ASSERT_TRUE(strstr(tp_buf_cstr(&out), "\"e\":[]") && strstr(out.data, "\"o\":{}") &&
              strstr(out.data, "\"l\":[true,false,null,-7]") && strstr(out.data, "9007199254740993"));
  const char *bad[] = {"", "{", "{\"a\"}", "[1,]", "[1 ]", "\"\\x\"", "\"\\ud800\"", "tru", "1.2.3",
                       "{\"a\":1}x", "nan"};
  for (size_t i = 0; i < sizeof bad / sizeof *bad; i++)
    if (tpj_decode_exact(L, bad[i], strlen(bad[i]), err, sizeof err) == 0) TP_FAIL_("accepted: %s", bad[i]);
  ASSERT_EQ(lua_gettop(L), 0);
  teardown();
}

/* Members are set a chunk at a time (VD_CHUNK, 64): an object and an array
** several chunks long decode whole, in order, a key given twice keeps its last
** value within a chunk and across a chunk's edge, and nulls and nested containers keep their place. */
TEST(large_containers_decode_whole_across_chunks) {
  setup();
  tp_buf text;
  tp_buf_init(&text);
  tp_buf_adds(&text, "{\"k1\":-100");  /* given again two members on, in the same chunk */
  for (int i = 0; i < 200; i++) tp_buf_printf(&text, ",\"k%d\":%d", i, i);
  tp_buf_adds(&text, ",\"k5\":-5,\"a\":[");
  for (int i = 1; i <= 150; i++) {
    if (i > 1) tp_buf_addc(&text, ',');
    if (i == 70) tp_buf_adds(&text, "null");
    else if (i == 100) tp_buf_adds(&text, "[100,{\"x\":1}]");
    else tp_buf_printf(&text, "%d", i);
  }
  tp_buf_adds(&text, "]}");
  ASSERT_EQ(tpj_decode_exact(L, text.data, text.len, err, sizeof err), 0);
  ASSERT_EQ(lua_gettop(L), 1);
  for (int i = 0; i < 200; i++) {
    char key[8];
    snprintf(key, sizeof key, "k%d", i);
    ASSERT_EQ(lua_getfield(L, 1, key), LUA_TNUMBER);
    ASSERT_EQ(lua_tointeger(L, -1), (i == 5 ? -5 : i));
    lua_pop(L, 1);
  }
  ASSERT_EQ(lua_getfield(L, 1, "a"), LUA_TTABLE);
  ASSERT_EQ((long long)lua_rawlen(L, 2), 150);
  for (int i = 1; i <= 150; i++) {
    int type = lua_rawgeti(L, 2, i);
    if (i == 70) ASSERT_TRUE(type == LUA_TLIGHTUSERDATA && lua_touserdata(L, -1) == NULL);
    else if (i == 100) ASSERT_EQ(type, LUA_TTABLE);
    else ASSERT_EQ(lua_tointeger(L, -1), i);
    lua_pop(L, 1);
  }
  tp_buf_reset(&out);
  ASSERT_EQ(tpj_encode(L, 2, &out, err, sizeof err), 0);  /* still an array, nested ones too */
  ASSERT_TRUE(strncmp(tp_buf_cstr(&out), "[1,2,3,", 7) == 0 && strstr(out.data, ",68,69,null,71,") &&
              strstr(out.data, ",99,[100,{\"x\":1}],101,") && strstr(out.data, ",149,150]"));
  lua_settop(L, 0);
  tp_buf_free(&text);
  teardown();
}

int main(void) {
  RUN(integers_are_exact);
  RUN(tables_become_arrays_or_objects);
  RUN(strings_are_escaped_and_valid_utf8);
  RUN(unencodable_values_are_errors);
  RUN(the_interrupt_stops_an_encoding_within_a_check_of_bytes);
  RUN(decoded_integral_numbers_are_integers);
  RUN(bad_json_is_an_error_not_a_crash);
  RUN(long_strings_are_escaped_across_chunks);
  RUN(a_view_is_written_as_its_text);
  RUN(a_views_members_are_found_without_decoding);
  RUN(a_views_text_decodes_exactly);
  RUN(large_containers_decode_whole_across_chunks);
  return TEST_SUMMARY();
}
