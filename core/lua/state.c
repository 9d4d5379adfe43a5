/*
** state.c - what every part of a plugin's Lua state shares: its owner, and
** the error a plugin raises with tp.fail.
*/
#include "lua/state.h"

#include <lauxlib.h>
#include <stdarg.h>
#include <stdio.h>

#define FAIL_MT "tp.fail"

void tpst_open(lua_State *L, tp_plugin *p) {
  *(tp_plugin **)lua_getextraspace(L) = p;
  luaL_newmetatable(L, FAIL_MT);
  lua_pushliteral(L, "tp.fail");  /* protected, like every metatable the host gives out (json.c) */
  lua_setfield(L, -2, "__metatable");
  lua_pop(L, 1);
}

tp_plugin *tpst_owner(lua_State *L) { return *(tp_plugin **)lua_getextraspace(L); }

/* t[key] without metamethods: manifests and error tables come from plugin
** code, and an __index that raises outside a protected call would abort the
** host. Pushes the value; returns its type. */
int tpst_rawfield(lua_State *L, int idx, const char *key) {
  idx = lua_absindex(L, idx);
  lua_pushstring(L, key);
  return lua_rawget(L, idx);
}

/* ---- tp.fail errors */

void tpst_mark_fail(lua_State *L) { luaL_setmetatable(L, FAIL_MT); }

int tpst_fail(lua_State *L, int status, const char *code, const char *fmt, ...) {
  char msg[512];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(msg, sizeof msg, fmt, ap);
  va_end(ap);
  lua_createtable(L, 0, 3);
  lua_pushinteger(L, status); lua_setfield(L, -2, "status");
  lua_pushstring(L, code);    lua_setfield(L, -2, "code");
  lua_pushstring(L, msg);     lua_setfield(L, -2, "message");
  luaL_setmetatable(L, FAIL_MT);
  return lua_error(L);
}

int tpst_is_fail(lua_State *L, int idx) {
  if (!lua_istable(L, idx) || !lua_getmetatable(L, idx)) return 0;
  luaL_getmetatable(L, FAIL_MT);
  int is = lua_rawequal(L, -1, -2);
  lua_pop(L, 2);
  return is;
}

/* The message handler of every call into plugin code: tp.fail errors pass
** through as they are, others get a traceback. */
int tpst_msgh(lua_State *L) {
  if (tpst_is_fail(L, 1)) return 1;
  const char *msg = lua_tostring(L, 1);
  if (!msg) msg = lua_pushfstring(L, "(error object is a %s value)", luaL_typename(L, 1));
  luaL_traceback(L, L, msg, 1);
  return 1;
}
