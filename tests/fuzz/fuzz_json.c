/*
** fuzz_json.c - request bodies as plugins receive them: any bytes through
** tpj_decode into a Lua state. Whatever decodes and encodes must decode again,
** and from then on the round trip keeps the value: decode(encode(v)) equals v.
** (The first encode may differ from the input: invalid UTF-8 becomes U+FFFD.)
** The encoder's own text also goes through what reads a JSON view: the exact
** decoder gives the same value, and every member the scanners find decodes to
** the member of the value. Any bytes through the exact decoder and the
** scanners: no read past them, the stack as it was.
*/
#define _GNU_SOURCE  /* memmem */
#include <lauxlib.h>
#include <lualib.h>
#include <stdbool.h>
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

/* The view readers over the encoder's text t of the table at v: each member
** (string keys; an array's elements) found, and decoded to the same value. */
static int members_found(const tp_buf *t, int v) {
  char err[256];
  const char *at;
  size_t n;
  bool array = t->len && t->data[0] == '[';
  if (array && tpj_view_count(t->data, t->len) != (int64_t)lua_rawlen(L, v)) return 0;
  lua_pushnil(L);
  while (lua_next(L, v)) {
    int found;
    if (array) {
      found = lua_isinteger(L, -2) &&
              tpj_view_element(t->data, t->len, lua_tointeger(L, -2), &at, &n);
    } else {
      if (lua_type(L, -2) != LUA_TSTRING) {
        lua_pop(L, 1);
        continue;
      }
      size_t klen;
      const char *k = lua_tolstring(L, -2, &klen);
      /* a key the encoder wrote \ufffd for (invalid UTF-8) is found by the
      ** bytes the callee had, not by the U+FFFD it decodes to */
      if (memmem(k, klen, "\xef\xbf\xbd", 3)) {
        lua_pop(L, 1);
        continue;
      }
      tp_buf key;
      tp_buf_init(&key);
      tp_buf_add_json_str(&key, k, klen);
      found = tpj_view_member(t->data, t->len, key.data, key.len, &at, &n);
      tp_buf_free(&key);
    }
    if (!found || tpj_decode_exact(L, at, n, err, sizeof err) != 0) return 0;
    int ok = same(lua_gettop(L) - 1, lua_gettop(L), 0);
    lua_pop(L, 2);
    if (!ok) return 0;
  }
  return 1;
}

/* Any bytes: the exact decoder and the scanners stay within them. */
static void readers_on_any_bytes(const char *s, size_t size) {
  char err[256];
  int top = lua_gettop(L);
  if (tpj_decode_exact(L, s, size, err, sizeof err) == 0) lua_pop(L, 1);
  if (lua_gettop(L) != top) abort();
  const char *at;
  size_t n;
  if (tpj_view_member(s, size, "\"a\"", 3, &at, &n) && (at < s || at + n > s + size)) abort();
  for (int64_t i = 1; i <= 3; i++)
    if (tpj_view_element(s, size, i, &at, &n) && (at < s || at + n > s + size)) abort();
  (void)tpj_view_count(s, size);
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
  /* a heap copy of exactly size bytes: ASan sees a read past them */
  char *bytes = malloc(size ? size : 1);
  if (size) memcpy(bytes, data, size);
  readers_on_any_bytes(bytes, size);
  free(bytes);
  if (tpj_decode(L, (const char *)data, size, err, sizeof err) == 0 && encode_top(&first) == 0) {
    /* our output must parse, encode again, and decode to the same value */
    if (tpj_decode(L, first.data, first.len, err, sizeof err) != 0) abort();
    if (encode_top(&second) != 0) abort();
    if (tpj_decode(L, second.data, second.len, err, sizeof err) != 0) abort();
    if (!same(lua_gettop(L) - 1, lua_gettop(L), 0)) abort();
    /* and read exactly, as a view reads it: the same value, member by member */
    if (tpj_decode_exact(L, first.data, first.len, err, sizeof err) != 0) abort();
    if (!same(lua_gettop(L) - 1, lua_gettop(L), 0)) abort();
    if (lua_istable(L, -1) && !members_found(&first, lua_gettop(L))) abort();
  }
  tp_buf_free(&first);
  tp_buf_free(&second);
  lua_settop(L, top);
  return 0;
}
