/*
** req.c - the req table a route handler receives.
*/
#include "lua/req.h"

#include <lauxlib.h>
#include <string.h>

#include "base/url.h"
#include "net/http.h"

static int push_pair(void *ud, const char *key, size_t klen, const char *value, size_t vlen) {
  lua_State *L = ud;
  lua_pushlstring(L, key, klen);
  lua_pushlstring(L, value, vlen);
  lua_rawset(L, -3);  /* a repeated key keeps its last value */
  return 0;
}

/* req.query: the host checked the query before the handler ran (400 invalid_query) */
static void push_query(lua_State *L, const char *q, size_t n) {
  lua_newtable(L);
  tp_query_each(q, n, push_pair, L);
}

static void push_headers(lua_State *L, const tp_call *c) {
  const tph_header *hs = c->headers;
  lua_createtable(L, 0, c->nheaders);
  for (int i = 0; i < c->nheaders; i++) {
    lua_pushlstring(L, hs[i].name, hs[i].nlen);
    lua_pushlstring(L, hs[i].value, hs[i].vlen);
    lua_rawset(L, -3);
  }
}

/* req.headers, req.query and req.raw_body are built on first use: most
** handlers read none of them, and a mini-program sends a dozen headers with
** every call. Once the handler has returned they read as nil (the request is
** gone). raw_body is the body as sent, for signatures over its exact bytes;
** nil when there was none. */
static int req_index(lua_State *L) {
  tp_plugin *p = tpst_owner(L);
  const char *key = lua_tostring(L, 2);
  if (!p->call || !key) return 0;
  if (strcmp(key, "headers") == 0) push_headers(L, p->call);
  else if (strcmp(key, "query") == 0) push_query(L, p->call->query, p->call->query_len);
  else if (strcmp(key, "raw_body") == 0 && p->call->body_len)
    lua_pushlstring(L, p->call->body, p->call->body_len);
  else return 0;
  lua_pushvalue(L, 2);
  lua_pushvalue(L, -2);
  lua_rawset(L, 1);  /* built once */
  return 1;
}

void tpreq_push(tp_plugin *p, const tp_route *r, const tp_call *c) {
  lua_State *L = p->L;
  lua_createtable(L, 0, 12);
  lua_pushstring(L, c->request_id);            lua_setfield(L, -2, "id");
  lua_pushstring(L, c->method);                lua_setfield(L, -2, "method");
  lua_pushlstring(L, c->path, c->path_len);    lua_setfield(L, -2, "path");
  lua_pushstring(L, r->path);                  lua_setfield(L, -2, "route");
  lua_pushstring(L, p->tenant_id);             lua_setfield(L, -2, "tenant");
  if (c->user) {
    lua_pushstring(L, c->user);
    lua_setfield(L, -2, "user");
  }
  lua_createtable(L, 0, c->match->nparams);
  for (int i = 0; i < c->match->nparams; i++) {
    const tpr_param *pr = &c->match->params[i];
    if (pr->type == TPR_INT) lua_pushinteger(L, pr->ival);
    else lua_pushlstring(L, pr->value, pr->len);
    lua_setfield(L, -2, pr->name);
  }
  lua_setfield(L, -2, "params");
  lua_rawgeti(L, LUA_REGISTRYINDEX, p->config_ref);
  lua_setfield(L, -2, "config");
  lua_rawgeti(L, LUA_REGISTRYINDEX, p->req_mt_ref);
  lua_setmetatable(L, -2);
}

int tpreq_metatable(lua_State *L) {
  lua_createtable(L, 0, 2);
  lua_pushcfunction(L, req_index);
  lua_setfield(L, -2, "__index");
  lua_pushliteral(L, "req");  /* protected, like every metatable the host gives out (json.c) */
  lua_setfield(L, -2, "__metatable");
  return luaL_ref(L, LUA_REGISTRYINDEX);
}
