/*
** tplib_http.c - tp.http: what a plugin's call out is checked for before it
** is written to the outbox (store/outbox.h) and made after commit
** (host/sender.c). Part of tplib (tplib.h).
*/
#include "lua/tplib.h"

#include <ctype.h>
#include <lauxlib.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "base/json.h"
#include "lua/invoke.h"

/* ---- calls out: tp.http.request (store/outbox.h, host/sender.c) */

/* The string field key of the table at t: NULL when absent; an error when it
** is not a string of 1-max bytes (or contains a line break). */
static const char *string_field(lua_State *L, int t, const char *key, size_t max) {
  if (lua_getfield(L, t, key) == LUA_TNIL) {
    lua_pop(L, 1);
    return NULL;
  }
  size_t n;
  const char *v = lua_tolstring(L, -1, &n);
  if (lua_type(L, -1) != LUA_TSTRING || n == 0 || n > max || strpbrk(v, "\r\n"))
    luaL_error(L, "tp.http.request: %s must be a string of 1-%d bytes without line breaks", key,
               (int)max);
  return v;  /* stays on the stack until the call returns */
}

/* A header name is an HTTP token; a value is printable without CR or LF. */
static bool header_ok(const char *name, size_t nlen, const char *value, size_t vlen) {
  if (nlen == 0 || nlen > 64 || vlen > 4096) return false;
  for (size_t i = 0; i < nlen; i++)
    if (!(isalnum((unsigned char)name[i]) || strchr("!#$%&'*+-.^_`|~", name[i]))) return false;
  for (size_t i = 0; i < vlen; i++)
    if (value[i] == '\r' || value[i] == '\n' || value[i] == '\0') return false;
  return true;
}

/* tp.http.request{to, method?, path, headers?, body? | json?, key?, on_reply?, context?,
** attempts?} -> id: the call is made once the transaction commits. */
int tplib_http_request(lua_State *L) {
  tp_plugin *p = tplib_services_of(L);
  luaL_checktype(L, 1, LUA_TTABLE);
  if (!p->services->http) return luaL_error(L, "tp.http.request: the host makes no calls here");
  tpob_call call = {.max_attempts = 0};
  call.dest = string_field(L, 1, "to", 32);
  if (!call.dest) return luaL_error(L, "tp.http.request: to (a destination of the brand's config) is required");
  call.path = string_field(L, 1, "path", 2048);
  if (!call.path || call.path[0] != '/' || strpbrk(call.path, " #"))
    return luaL_error(L, "tp.http.request: path must start with / and hold no spaces or #");
  call.key = string_field(L, 1, "key", 128);
  call.on_reply = string_field(L, 1, "on_reply", TPQ_MAX_NAME);
  if (call.on_reply && !tpi_has_job(p, L, call.on_reply))
    return luaL_error(L, "tp.http.request: on_reply names no job of plugin '%s' ('%s'); declare it "
                      "in the manifest's jobs table", p->name, call.on_reply);
  int has_body = lua_getfield(L, 1, "body") != LUA_TNIL;
  int has_json = lua_getfield(L, 1, "json") != LUA_TNIL;
  lua_pop(L, 2);
  if (has_body && has_json) return luaL_error(L, "tp.http.request: give body or json, not both");
  const char *method = string_field(L, 1, "method", 8);
  call.method = method ? method : has_body || has_json ? "POST" : "GET";
  if (strcmp(call.method, "GET") && strcmp(call.method, "POST") && strcmp(call.method, "PUT") &&
      strcmp(call.method, "PATCH") && strcmp(call.method, "DELETE"))
    return luaL_error(L, "tp.http.request: method must be GET, POST, PUT, PATCH or DELETE");
  if (lua_getfield(L, 1, "attempts") != LUA_TNIL) {
    lua_Integer n = lua_tointeger(L, -1);
    if (!lua_isinteger(L, -1) || n < 1 || n > 100)
      return luaL_error(L, "tp.http.request: attempts must be an integer 1-100");
    call.max_attempts = (int)n;
  }
  lua_pop(L, 1);
  tp_buf headers, body, context;
  tp_buf_init(&headers);
  tp_buf_init(&body);
  tp_buf_init(&context);
  bool has_type = false;
  char err[256] = "";
  if (lua_getfield(L, 1, "headers") == LUA_TTABLE) {
    int n = 0;
    lua_pushnil(L);
    while (!err[0] && lua_next(L, -2)) {
      size_t nlen = 0, vlen = 0;
      const char *name = lua_type(L, -2) == LUA_TSTRING ? lua_tolstring(L, -2, &nlen) : NULL;
      const char *value = lua_type(L, -1) == LUA_TSTRING ? lua_tolstring(L, -1, &vlen) : NULL;
      if (!name || !value || !header_ok(name, nlen, value, vlen) || ++n > 32) {
        snprintf(err, sizeof err, "headers must be at most 32 of name = value, a name an HTTP "
                 "token, a value without line breaks");
      } else {  /* one "Name: value" line each */
        has_type |= nlen == 12 && strncasecmp(name, "content-type", 12) == 0;
        tp_buf_add(&headers, name, nlen);
        tp_buf_adds(&headers, ": ");
        tp_buf_add(&headers, value, vlen);
        tp_buf_addc(&headers, '\n');
      }
      lua_pop(L, 1);
    }
    if (err[0]) lua_pop(L, 1);
  } else if (!lua_isnil(L, -1)) {
    snprintf(err, sizeof err, "headers must be a table of name = value");
  }
  lua_pop(L, 1);
  if (has_json && !has_type) tp_buf_adds(&headers, "Content-Type: application/json\n");
  if (!err[0] && has_body) {
    lua_getfield(L, 1, "body");
    size_t n;
    const char *b = lua_tolstring(L, -1, &n);
    if (lua_type(L, -1) != LUA_TSTRING) snprintf(err, sizeof err, "body must be a string (or give json)");
    else tp_buf_add(&body, b, n);
    lua_pop(L, 1);
  }
  if (!err[0] && has_json) {
    lua_getfield(L, 1, "json");
    char e[200];
    if (tpj_encode(L, -1, &body, e, sizeof e) != 0) snprintf(err, sizeof err, "json: %s", e);
    lua_pop(L, 1);
  }
  if (!err[0] && body.len > TPOB_MAX_BODY) snprintf(err, sizeof err, "the body is over %d bytes", TPOB_MAX_BODY);
  if (!err[0] && lua_getfield(L, 1, "context") != LUA_TNIL) {
    char e[200];
    if (tpj_encode(L, -1, &context, e, sizeof e) != 0) snprintf(err, sizeof err, "context: %s", e);
  }
  lua_pop(L, 1);
  int64_t id = 0;
  if (!err[0]) {
    call.headers = tp_buf_cstr(&headers);
    call.body = has_body || has_json ? tp_buf_cstr(&body) : NULL;
    call.body_len = body.len;
    call.context = context.len ? tp_buf_cstr(&context) : NULL;
    p->services->http(p->services_ud, p, &call, &id, err, sizeof err);
  }
  tp_buf_free(&headers);
  tp_buf_free(&body);
  tp_buf_free(&context);
  if (err[0]) return luaL_error(L, "tp.http.request: %s", err);
  lua_pushinteger(L, id);
  return 1;
}

/* tp.http.allowed(to) -> boolean: to is a destination this plugin may call */
int tplib_http_allowed(lua_State *L) {
  tp_plugin *p = tplib_services_of(L);
  const char *to = luaL_checkstring(L, 1);
  lua_pushboolean(L, p->services->http_allowed && p->services->http_allowed(p->services_ud, p, to));
  return 1;
}
