/*
** jsonview.c - a JSON view's metamethods (jsonview.h).
*/
#include "lua/jsonview.h"

#include <lauxlib.h>
#include <stdbool.h>
#include <stdint.h>

#include "base/buf.h"
#include "base/json.h"
#include "lua/sandbox.h"

static const tpj_view *check_view(lua_State *L) { return luaL_checkudata(L, 1, TPJ_VIEW); }

/* Pushes the member s[0..n): a view of an object or an array, a scalar as
** it was encoded (tpj_decode_exact). */
static void push_value(lua_State *L, const char *s, size_t n) {
  if (s[0] == '{' || s[0] == '[') {
    tpj_push_view(L, s, n);
    return;
  }
  char err[160];
  if (tpj_decode_exact(L, s, n, err, sizeof err) != 0) luaL_error(L, "%s", err);
}

/* Finds key (at 2) in the view; true with the member's text. Charges the
** bytes read. */
static bool find(lua_State *L, const tpj_view *v, const char **at, size_t *n) {
  bool found = false;
  int isint = 0;  /* a number with an integer value, as a table's key would be */
  lua_Integer i = lua_type(L, 2) == LUA_TNUMBER ? lua_tointegerx(L, 2, &isint) : 0;
  if (v->len && v->text[0] == '[') {
    found = isint && tpj_view_element(v->text, v->len, i, at, n);
  } else if (lua_type(L, 2) == LUA_TSTRING || isint) {
    /* the key as the encoder writes it, quotes included: compared as bytes */
    size_t klen;
    const char *k = isint ? NULL : lua_tolstring(L, 2, &klen);
    tp_buf key;
    tp_buf_init(&key);
    if (k) {
      tp_buf_add_json_str(&key, k, klen);
    } else {
      tp_buf_addc(&key, '"');
      tp_buf_addi(&key, i);
      tp_buf_addc(&key, '"');
    }
    found = tpj_view_member(v->text, v->len, key.data, key.len, at, n);
    tp_buf_free(&key);
  }
  size_t read = found ? (size_t)(*at - v->text) + *n : v->len;
  tpsb_charge(L, (int64_t)(read / TPSB_PARSE_BYTES));
  return found;
}

static int view_index(lua_State *L) {
  const tpj_view *v = check_view(L);
  const char *at;
  size_t n;
  if (find(L, v, &at, &n)) push_value(L, at, n);
  else lua_pushnil(L);
  return 1;
}

static int view_newindex(lua_State *L) {
  return luaL_error(L, "a JSON view (from tp.call_view) cannot change; tp.json.decode(view) "
                    "gives tables you can change");
}

static int view_len(lua_State *L) {
  const tpj_view *v = check_view(L);
  tpsb_charge(L, (int64_t)(v->len / TPSB_PARSE_BYTES));
  lua_pushinteger(L, tpj_view_count(v->text, v->len));
  return 1;
}

static int table_next(lua_State *L) {
  lua_settop(L, 2);
  if (lua_next(L, 1)) return 2;
  lua_pushnil(L);
  return 1;
}

/* pairs(v): the decoded tables' pairs. */
static int view_pairs(lua_State *L) {
  const tpj_view *v = check_view(L);
  tpsb_charge(L, (int64_t)(v->len / TPSB_PARSE_BYTES));
  char err[160];
  lua_pushcfunction(L, table_next);
  if (tpj_decode_exact(L, v->text, v->len, err, sizeof err) != 0) return luaL_error(L, "%s", err);
  lua_pushnil(L);
  return 3;
}

static int view_tostring(lua_State *L) {
  const tpj_view *v = check_view(L);
  tpsb_charge(L, (int64_t)(v->len / TPSB_COPY_BYTES));
  lua_pushlstring(L, v->text, v->len);
  return 1;
}

int64_t tpjv_push(lua_State *src, int idx, lua_State *to, char *err, size_t errcap) {
  const tpj_view *held = tpj_to_view(src, idx);
  if (held) {
    tpj_push_view(to, held->text, held->len);
    return 0;
  }
  /* through a buffer the receiving plugin keeps: one grown from nothing for
  ** each call cost more than the encoding (heap growth); a big one is not
  ** kept past its push */
  tp_buf *text = &tpst_owner(to)->view_text;
  tp_buf_reset(text);
  if (tpj_encode(src, idx, text, err, errcap) != 0) return -1;
  size_t n = text->len;
  tpj_push_view(to, text->data, n);
  if (text->cap > (64u << 10)) tp_buf_free(text);
  return (int64_t)n;
}

int tpjv_l_view(lua_State *L) {
  if (tpj_to_view(L, 1)) {  /* already one: that very view */
    lua_settop(L, 1);
    return 1;
  }
  luaL_checktype(L, 1, LUA_TTABLE);
  lua_settop(L, 1);
  char err[256];
  if (tpjv_push(L, 1, L, err, sizeof err) < 0) return luaL_error(L, "tp.json.view: %s", err);
  return 1;
}

void tpjv_open(lua_State *L) {
  static const luaL_Reg methods[] = {{"__index", view_index},   {"__newindex", view_newindex},
                                     {"__len", view_len},       {"__pairs", view_pairs},
                                     {"__tostring", view_tostring}, {NULL, NULL}};
  luaL_newmetatable(L, TPJ_VIEW);
  luaL_setfuncs(L, methods, 0);
  lua_pushliteral(L, TPJ_VIEW);  /* protected, as the host's other metatables are */
  lua_setfield(L, -2, "__metatable");
  lua_pop(L, 1);
}
