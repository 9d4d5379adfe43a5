/*
** body.c - the JSON body of a host endpoint (admin.c, cluster.c), decoded
** onto the host's scratch Lua state, and its string fields read from there.
*/
#include "base/json.h"
#include "host/host_int.h"

/* Decodes the request body (a JSON object, or nothing) onto h->scratch. */
bool tp__body_object(tp_host *h, const tph_request *req, tph_response *res) {
  lua_State *L = h->scratch;
  lua_settop(L, 0);
  char err[256];
  if (!req->body_len) {
    lua_newtable(L);
    return true;
  }
  if (tpj_decode(L, req->body, req->body_len, err, sizeof err) != 0 || !lua_istable(L, -1)) {
    tph_error(res, 400, "invalid_json", "the body must be a JSON object%s%s", err[0] ? ": " : "",
              err);
    lua_settop(L, 0);
    return false;
  }
  return true;
}

/* body.key as a string (NULL if absent); false (response filled) if not a string. */
bool tp__body_string(tp_host *h, const char *key, const char **out, tph_response *res) {
  lua_State *L = h->scratch;
  int t = lua_getfield(L, 1, key);
  *out = t == LUA_TSTRING ? lua_tostring(L, -1) : NULL;
  if (t != LUA_TNIL && t != LUA_TSTRING) {
    tph_error(res, 400, "invalid_field", "'%s' must be a string", key);
    return false;
  }
  return true;  /* the string stays on the scratch stack until the next body */
}
