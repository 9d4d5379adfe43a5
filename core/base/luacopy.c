/*
** luacopy.c - copy plain data between two Lua states.
*/
#include "base/luacopy.h"

#include <lauxlib.h>
#include <limits.h>
#include <stdbool.h>
#include <stdio.h>

#include "base/json.h"

static int copy_value(lua_State *from, int idx, lua_State *to, int depth, char *err,
                      size_t errcap) {
  if (!lua_checkstack(from, 3) || !lua_checkstack(to, 3)) {
    snprintf(err, errcap, "value too deep to copy");
    return -1;
  }
  switch (lua_type(from, idx)) {
    case LUA_TNIL: lua_pushnil(to); return 0;
    case LUA_TBOOLEAN: lua_pushboolean(to, lua_toboolean(from, idx)); return 0;
    case LUA_TNUMBER:
      if (lua_isinteger(from, idx)) lua_pushinteger(to, lua_tointeger(from, idx));
      else lua_pushnumber(to, lua_tonumber(from, idx));
      return 0;
    case LUA_TSTRING: {
      size_t n;
      const char *s = lua_tolstring(from, idx, &n);
      lua_pushlstring(to, s, n);
      return 0;
    }
    case LUA_TLIGHTUSERDATA:
      if (lua_touserdata(from, idx) == NULL) {  /* the JSON null sentinel */
        lua_pushlightuserdata(to, NULL);
        return 0;
      }
      break;
    case LUA_TTABLE: {
      if (depth >= TP_COPY_MAX_DEPTH) {
        snprintf(err, errcap, "table nested deeper than %d levels (a cycle?)", TP_COPY_MAX_DEPTH);
        return -1;
      }
      idx = lua_absindex(from, idx);
      /* sized up front: filling an empty table rehashes it at every power of
      ** two, which cost more than the copying itself */
      lua_Unsigned narr = lua_rawlen(from, idx), n = 0;
      lua_pushnil(from);
      while (lua_next(from, idx)) {
        n++;
        lua_pop(from, 1);
      }
      if (narr > n) narr = n;
      lua_createtable(to, narr > INT_MAX ? INT_MAX : (int)narr,
                      n - narr > INT_MAX ? INT_MAX : (int)(n - narr));
      lua_pushnil(from);
      while (lua_next(from, idx)) {
        /* from: ... key value */
        if (copy_value(from, -2, to, depth + 1, err, errcap) != 0) {
          lua_pop(from, 2);
          lua_pop(to, 1);  /* the table */
          return -1;
        }
        if (copy_value(from, -1, to, depth + 1, err, errcap) != 0) {
          lua_pop(from, 2);
          lua_pop(to, 2);  /* the table and the key */
          return -1;
        }
        /* to: ... table key value */
        lua_rawset(to, -3);
        lua_pop(from, 1);
      }
      if (luaL_getmetafield(from, idx, "__jsontype") != LUA_TNIL) {  /* keep JSON markers */
        const char *kind = lua_tostring(from, -1);
        bool array = kind && kind[0] == 'a';
        lua_pop(from, 1);
        if (luaL_getmetatable(to, array ? "tp.json.array" : "tp.json.object") == LUA_TTABLE)
          lua_setmetatable(to, -2);
        else
          lua_pop(to, 1);  /* the receiving state has no JSON markers */
      }
      return 0;
    }
    case LUA_TUSERDATA: {
      const tpj_view *view = tpj_to_view(from, idx);
      if (!view) break;
      return tpj_decode_exact(to, view->text, view->len, err, errcap);  /* the receiver gets tables */
    }
    default: break;
  }
  snprintf(err, errcap, "cannot copy a %s between plugins (plain data only)",
           luaL_typename(from, idx));
  return -1;
}

int tp_lua_copy(lua_State *from, int idx, lua_State *to, char *err, size_t errcap) {
  return copy_value(from, idx, to, 0, err, errcap);
}
