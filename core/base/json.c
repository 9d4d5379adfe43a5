/*
** json.c - JSON encoding and decoding for plugin states.
*/
#include "base/json.h"

#include <lauxlib.h>
#include <lua-cjson.h>
#include <math.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>

#define DECODE_KEY "tp.cjson.decode"

#define BUF_MT "tp.json.buf"  /* the box of tpj_l_encode's text */

static int buf_gc(lua_State *L);

void tpj_open(lua_State *L) {
  luaL_requiref(L, "cjson", luaopen_cjson, 0);
  /* stack: cjson */
  lua_getfield(L, -1, "decode_max_depth");
  lua_pushinteger(L, TPJ_MAX_DEPTH);
  lua_call(L, 1, 0);
  lua_getfield(L, -1, "decode_invalid_numbers");
  lua_pushboolean(L, 0);  /* no NaN, Infinity or hex in request bodies */
  lua_call(L, 1, 0);
  lua_getfield(L, -1, "decode");
  lua_setfield(L, LUA_REGISTRYINDEX, DECODE_KEY);
  lua_pop(L, 1);
  /* forget package.loaded.cjson: plugins reach JSON through tp.json only */
  luaL_getsubtable(L, LUA_REGISTRYINDEX, LUA_LOADED_TABLE);
  lua_pushnil(L);
  lua_setfield(L, -2, "cjson");
  lua_pop(L, 1);
  /* protected (__metatable): a plugin that could reach a metatable the host
  ** gives out could add a __gc to it, and a finalizer runs where neither the
  ** count hook nor the watchdog can stop it */
  luaL_newmetatable(L, "tp.json.array");
  lua_pushliteral(L, "array");
  lua_setfield(L, -2, "__jsontype");
  lua_pushliteral(L, "tp.json.array");
  lua_setfield(L, -2, "__metatable");
  lua_pop(L, 1);
  luaL_newmetatable(L, BUF_MT);
  lua_pushcfunction(L, buf_gc);
  lua_setfield(L, -2, "__gc");
  lua_pushliteral(L, BUF_MT);
  lua_setfield(L, -2, "__metatable");
  lua_pop(L, 1);
  luaL_newmetatable(L, "tp.json.object");
  lua_pushliteral(L, "object");
  lua_setfield(L, -2, "__jsontype");
  lua_pushliteral(L, "tp.json.object");
  lua_setfield(L, -2, "__metatable");
  lua_pop(L, 1);
}

void tpj_mark_array(lua_State *L, int idx) {
  idx = lua_absindex(L, idx);
  luaL_getmetatable(L, "tp.json.array");
  lua_setmetatable(L, idx);
}

/* ---- encoding */

typedef struct {
  lua_State *L;
  tp_buf *out;
  size_t limit;          /* out->len may not pass it */
  char *err;
  size_t errcap;
} encoder;

/* Every table and every string checks the length so far: each writes at
** least a byte, so the work stops within a few bytes' worth of the limit. */
static int too_long(encoder *e) {
  if (e->out->len <= e->limit) return 0;
  snprintf(e->err, e->errcap, "the JSON text would be longer than %u bytes (a value shared many "
           "times over?)", TPJ_MAX_BYTES);
  return -1;
}

static int encode_value(encoder *e, int idx, int depth);

/* 1 = array, 0 = object, by marker or by keys 1..n. */
static int table_kind(lua_State *L, int idx, lua_Integer *n) {
  *n = (lua_Integer)lua_rawlen(L, idx);
  if (luaL_getmetafield(L, idx, "__jsontype") != LUA_TNIL) {
    const char *kind = lua_tostring(L, -1);  /* a plugin may set anything there */
    int array = kind && kind[0] == 'a';
    lua_pop(L, 1);
    return array;
  }
  lua_Integer count = 0;
  lua_pushnil(L);
  while (lua_next(L, idx)) {
    lua_pop(L, 1);
    if (!lua_isinteger(L, -1) || lua_tointeger(L, -1) < 1 || lua_tointeger(L, -1) > *n) {
      lua_pop(L, 1);
      return 0;
    }
    count++;
  }
  return count > 0 && count == *n;
}

static int encode_table(encoder *e, int idx, int depth) {
  lua_State *L = e->L;
  if (too_long(e)) return -1;
  if (depth >= TPJ_MAX_DEPTH) {
    snprintf(e->err, e->errcap, "table nested deeper than %d levels (a cycle?)", TPJ_MAX_DEPTH);
    return -1;
  }
  if (!lua_checkstack(L, 4)) {
    snprintf(e->err, e->errcap, "Lua stack exhausted");
    return -1;
  }
  lua_Integer n;
  if (table_kind(L, idx, &n)) {
    tp_buf_addc(e->out, '[');
    for (lua_Integer i = 1; i <= n; i++) {
      if (i > 1) tp_buf_addc(e->out, ',');
      lua_rawgeti(L, idx, i);
      int rc = encode_value(e, lua_gettop(L), depth + 1);
      lua_pop(L, 1);
      if (rc) return rc;
    }
    tp_buf_addc(e->out, ']');
    return 0;
  }
  tp_buf_addc(e->out, '{');
  bool first = true;
  lua_pushnil(L);
  while (lua_next(L, idx)) {
    /* stack: ... key value */
    if (!first) tp_buf_addc(e->out, ',');
    first = false;
    if (lua_type(L, -2) == LUA_TSTRING) {
      size_t klen;
      const char *k = lua_tolstring(L, -2, &klen);
      tp_buf_add_json_str(e->out, k, klen);
    } else if (lua_isinteger(L, -2)) {
      tp_buf_addc(e->out, '"');
      tp_buf_addi(e->out, lua_tointeger(L, -2));
      tp_buf_addc(e->out, '"');
    } else {
      snprintf(e->err, e->errcap, "cannot encode a table with %s keys", luaL_typename(L, -2));
      lua_pop(L, 2);
      return -1;
    }
    tp_buf_addc(e->out, ':');
    int rc = encode_value(e, lua_gettop(L), depth + 1);
    lua_pop(L, 1);
    if (rc) {
      lua_pop(L, 1);
      return rc;
    }
  }
  tp_buf_addc(e->out, '}');
  return 0;
}

static int encode_value(encoder *e, int idx, int depth) {
  lua_State *L = e->L;
  switch (lua_type(L, idx)) {
    case LUA_TNIL: tp_buf_adds(e->out, "null"); return 0;
    case LUA_TBOOLEAN: tp_buf_adds(e->out, lua_toboolean(L, idx) ? "true" : "false"); return 0;
    case LUA_TNUMBER:
      if (lua_isinteger(L, idx)) {
        tp_buf_addi(e->out, lua_tointeger(L, idx));
      } else {
        double v = lua_tonumber(L, idx);
        if (!isfinite(v)) {
          snprintf(e->err, e->errcap, "cannot encode %s as JSON", isnan(v) ? "NaN" : "infinity");
          return -1;
        }
        tp_buf_printf(e->out, "%.17g", v);
      }
      return 0;
    case LUA_TSTRING: {
      size_t n;
      const char *s = lua_tolstring(L, idx, &n);
      if (e->out->len + n > e->limit) {  /* before a copy that could not be kept anyway */
        e->out->len = e->limit + 1;
        return too_long(e);
      }
      tp_buf_add_json_str(e->out, s, n);
      return too_long(e);
    }
    case LUA_TTABLE: return encode_table(e, idx, depth);
    case LUA_TLIGHTUSERDATA:
      if (!lua_touserdata(L, idx)) {
        tp_buf_adds(e->out, "null");
        return 0;
      }
      break;
    default: break;
  }
  snprintf(e->err, e->errcap, "cannot encode a %s as JSON", luaL_typename(L, idx));
  return -1;
}

int tpj_encode(lua_State *L, int idx, tp_buf *out, char *err, size_t errcap) {
  size_t mark = out->len;
  encoder e = {L, out, mark + TPJ_MAX_BYTES, err, errcap};
  int rc = encode_value(&e, lua_absindex(L, idx), 0);
  if (rc) out->len = mark;
  return rc;
}

/* ---- decoding */

/* Replaces integral floats (|v| <= 2^53) in the table at idx by integers. */
static void integerize(lua_State *L, int idx, int depth) {
  if (depth > TPJ_MAX_DEPTH || !lua_checkstack(L, 4)) return;
  lua_pushnil(L);
  while (lua_next(L, idx)) {
    /* stack: ... key value */
    if (lua_type(L, -1) == LUA_TNUMBER && !lua_isinteger(L, -1)) {
      double v = lua_tonumber(L, -1);
      if (v == floor(v) && fabs(v) <= 9007199254740992.0) {
        lua_pushvalue(L, -2);
        lua_pushinteger(L, (lua_Integer)v);
        lua_rawset(L, idx);
      }
    } else if (lua_type(L, -1) == LUA_TTABLE) {
      integerize(L, lua_gettop(L), depth + 1);
    }
    lua_pop(L, 1);
  }
}

static int decode_protected(lua_State *L) {
  /* stack: decode text */
  lua_call(L, 1, 1);
  if (lua_type(L, -1) == LUA_TTABLE) integerize(L, lua_gettop(L), 0);
  else if (lua_type(L, -1) == LUA_TNUMBER && !lua_isinteger(L, -1)) {
    double v = lua_tonumber(L, -1);
    if (v == floor(v) && fabs(v) <= 9007199254740992.0) {
      lua_pop(L, 1);
      lua_pushinteger(L, (lua_Integer)v);
    }
  }
  return 1;
}

int tpj_decode(lua_State *L, const char *s, size_t n, char *err, size_t errcap) {
  lua_pushcfunction(L, decode_protected);
  lua_getfield(L, LUA_REGISTRYINDEX, DECODE_KEY);
  lua_pushlstring(L, s, n);
  if (lua_pcall(L, 2, 1, 0) != LUA_OK) {
    const char *msg = lua_tostring(L, -1);
    snprintf(err, errcap, "%s", msg ? msg : "invalid JSON");
    lua_pop(L, 1);
    return -1;
  }
  return 0;
}

/* ---- tp.json */

/* The text is built in a tp_buf held by a userdata whose __gc frees it:
** pushing the result may be refused by the memory cap, and the error
** unwinds past this function. */
static int buf_gc(lua_State *L) {
  tp_buf_free(lua_touserdata(L, 1));
  return 0;
}

int tpj_l_encode(lua_State *L) {
  luaL_checkany(L, 1);
  lua_settop(L, 1);
  tp_buf *b = lua_newuserdatauv(L, sizeof *b, 0);
  tp_buf_init(b);
  luaL_setmetatable(L, BUF_MT);
  char err[256];
  if (tpj_encode(L, 1, b, err, sizeof err) != 0) {
    tp_buf_free(b);
    return luaL_error(L, "tp.json.encode: %s", err);
  }
  lua_pushlstring(L, b->data ? b->data : "", b->len);
  tp_buf_free(b);
  return 1;
}

int tpj_l_decode(lua_State *L) {
  size_t n;
  const char *s = luaL_checklstring(L, 1, &n);
  char err[256];
  if (tpj_decode(L, s, n, err, sizeof err) != 0) {
    lua_pushnil(L);
    lua_pushstring(L, err);
    return 2;
  }
  return 1;
}

static int mark(lua_State *L, const char *kind) {
  if (lua_isnoneornil(L, 1)) {
    lua_settop(L, 0);
    lua_newtable(L);
  }
  luaL_checktype(L, 1, LUA_TTABLE);
  luaL_getmetatable(L, kind);
  lua_setmetatable(L, 1);
  lua_settop(L, 1);
  return 1;
}

int tpj_l_array(lua_State *L) { return mark(L, "tp.json.array"); }
int tpj_l_object(lua_State *L) { return mark(L, "tp.json.object"); }
