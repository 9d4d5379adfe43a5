/*
** Copying plain data between Lua states: values, nesting, JSON markers, and
** refusals that leave both stacks as they were.
*/
#include <lauxlib.h>
#include <lualib.h>
#include <string.h>

#include "base/json.h"
#include "base/luacopy.h"
#include "tp_test.h"

static lua_State *from, *to;
static char err[256];

static void setup(void) {
  from = luaL_newstate();
  to = luaL_newstate();
  luaL_openlibs(from);
  tpj_open(from);
  tpj_open(to);
}

static void teardown(void) {
  lua_close(from);
  lua_close(to);
}

/* Copies the value of expr; -99 (no test expects it) when expr does not run,
** its error in err, so that a typo in a test's Lua fails that test. */
static int copy_expr(const char *expr) {
  char chunk[256];
  snprintf(chunk, sizeof chunk, "return %s", expr);
  if (luaL_dostring(from, chunk) != LUA_OK) {
    snprintf(err, sizeof err, "%s", lua_tostring(from, -1));
    lua_pop(from, 1);
    return -99;
  }
  int rc = tp_lua_copy(from, -1, to, err, sizeof err);
  lua_pop(from, 1);
  return rc;
}

TEST(plain_values_arrive_equal) {
  setup();
  ASSERT_EQ(copy_expr("{ price_fen = 990, ratio = 0.5, name = 'tea', on = true,"
                      "  skus = { 'a', 'b' }, nested = { deep = { n = 1 } } }"), 0);
  lua_getfield(to, -1, "price_fen");
  ASSERT_TRUE(lua_isinteger(to, -1));
  ASSERT_EQ(lua_tointeger(to, -1), 990);
  lua_getfield(to, -2, "skus");
  lua_rawgeti(to, -1, 2);
  ASSERT_STR(lua_tostring(to, -1), "b");
  lua_getfield(to, -4, "nested");
  lua_getfield(to, -1, "deep");
  lua_getfield(to, -1, "n");
  ASSERT_EQ(lua_tointeger(to, -1), 1);
  lua_settop(to, 0);
  teardown();
}

TEST(json_array_marker_survives) {
  setup();
  lua_newtable(from);
  tpj_mark_array(from, -1);  /* an empty list must stay a list */
  ASSERT_EQ(tp_lua_copy(from, -1, to, err, sizeof err), 0);
  tp_buf b;
  tp_buf_init(&b);
  ASSERT_EQ(tpj_encode(to, -1, &b, err, sizeof err), 0);
  ASSERT_STR(tp_buf_cstr(&b), "[]");
  tp_buf_free(&b);
  teardown();
}

TEST(functions_and_cycles_are_refused_cleanly) {
  setup();
  ASSERT_EQ(copy_expr("{ ok = 1, f = print }"), -1);
  ASSERT_CONTAINS(err, "function");
  ASSERT_EQ(lua_gettop(to), 0);
  ASSERT_EQ(copy_expr("(function() local t = {} t.t = t return t end)()"), -1);
  ASSERT_CONTAINS(err, "deeper");
  ASSERT_EQ(lua_gettop(to), 0);
  ASSERT_EQ(lua_gettop(from), 0);
  ASSERT_EQ(copy_expr("coroutine.create(print)"), -1);
  teardown();
}

TEST(a_json_view_arrives_as_the_tables_it_holds) {
  setup();
  luaL_newmetatable(from, TPJ_VIEW);  /* what lua/jsonview.c registers */
  lua_pop(from, 1);
  const char *text = "{\"id\":9007199254740993,\"lines\":[{\"sku\":\"a\"}],\"tags\":[]}";
  tpj_push_view(from, text, strlen(text));
  ASSERT_EQ(tp_lua_copy(from, -1, to, err, sizeof err), 0);
  ASSERT_EQ(lua_type(to, -1), LUA_TTABLE);
  lua_getfield(to, -1, "id");
  ASSERT_TRUE(lua_isinteger(to, -1) && lua_tointeger(to, -1) == 9007199254740993LL);
  lua_pop(to, 1);
  tp_buf out;
  tp_buf_init(&out);
  ASSERT_EQ(tpj_encode(to, -1, &out, err, sizeof err), 0);  /* [] is still an array */
  ASSERT_TRUE(strstr(tp_buf_cstr(&out), "\"tags\":[]") != NULL);
  ASSERT_TRUE(strstr(tp_buf_cstr(&out), "\"lines\":[{\"sku\":\"a\"}]") != NULL);
  tp_buf_free(&out);
  lua_pop(to, 1);
  lua_pop(from, 1);
  teardown();
}

int main(void) {
  RUN(plain_values_arrive_equal);
  RUN(json_array_marker_survives);
  RUN(functions_and_cycles_are_refused_cleanly);
  RUN(a_json_view_arrives_as_the_tables_it_holds);
  return TEST_SUMMARY();
}
