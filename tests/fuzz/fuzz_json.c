/*
** fuzz_json.c - request bodies as plugins receive them: any bytes through
** tpj_decode into a Lua state. Whatever decodes and encodes must decode again,
** and from then on the round trip keeps the value: decode(encode(v)) equals v.
** (The first encode may differ from the input: invalid UTF-8 becomes U+FFFD.)
*/
#include <lauxlib.h>
#include <lualib.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "base/json.h"

static lua_State *L;

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void close_state(void) {
  lua_close(L);
}

int LLVMFuzzerInitialize(int *argc, char ***argv) {
  (void)argc;
  (void)argv;
  L = luaL_newstate();
  luaL_openlibs(L);
  tpj_open(L);
  atexit(close_state);
  return 0;
}

/* Deep equality of two decoded values (key order and array markers aside).
** Every key of a is compared in depth with b's; of b's keys only presence in a
** is checked: comparing in depth both ways made nested arrays cost 2^depth
** (a fuzzer input 20 levels deep timed out). */
static int same(int a, int b, int depth) {
  if (lua_type(L, a) != lua_type(L, b)) return 0;
  if (!lua_istable(L, a)) return lua_rawequal(L, a, b) || lua_compare(L, a, b, LUA_OPEQ);
  if (depth > TPJ_MAX_DEPTH + 1 || lua_rawlen(L, a) != lua_rawlen(L, b)) return 0;
  if (!lua_checkstack(L, 4)) return 0;  /* three slots a level, 65 levels: past Lua's first 40 */
  lua_pushnil(L);
  while (lua_next(L, a)) {  /* every key of a: the same value in b */
    lua_pushvalue(L, -2);
    lua_rawget(L, b);
    int ok = same(lua_gettop(L) - 1, lua_gettop(L), depth + 1);
    lua_pop(L, 2);
    if (!ok) {
      lua_pop(L, 1);
      return 0;
    }
  }
  lua_pushnil(L);
  while (lua_next(L, b)) {  /* and no key of b that a lacks */
    lua_pushvalue(L, -2);
    int absent = lua_rawget(L, a) == LUA_TNIL;
    lua_pop(L, 2);
    if (absent) {
      lua_pop(L, 1);
      return 0;
    }
  }
  return 1;
}

/* Encodes the value on top into out; 0 or -1. */
static int encode_top(tp_buf *out) {
  char err[256];
  return tpj_encode(L, -1, out, err, sizeof err);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  char err[256];
  int top = lua_gettop(L);
  tp_buf first, second;
  tp_buf_init(&first);
  tp_buf_init(&second);
  if (tpj_decode(L, (const char *)data, size, err, sizeof err) == 0 && encode_top(&first) == 0) {
    /* our output must parse, encode again, and decode to the same value */
    if (tpj_decode(L, first.data, first.len, err, sizeof err) != 0) abort();
    if (encode_top(&second) != 0) abort();
    if (tpj_decode(L, second.data, second.len, err, sizeof err) != 0) abort();
    if (!same(lua_gettop(L) - 1, lua_gettop(L), 0)) abort();
  }
  tp_buf_free(&first);
  tp_buf_free(&second);
  lua_settop(L, top);
  return 0;
}
