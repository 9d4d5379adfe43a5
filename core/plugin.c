/*
** plugin.c - load a plugin into its own Lua state and call its handlers.
*/
#include "plugin.h"

#include <lauxlib.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "api.h"
#include "http.h"
#include "json.h"
#include "log.h"
#include "url.h"

static int req_index(lua_State *L);

/* ---- memory: every state's allocations are counted (the cap is a seam) */

static void *plugin_alloc(void *ud, void *ptr, size_t osize, size_t nsize) {
  tp_plugin *p = ud;
  size_t old = ptr ? osize : 0;
  if (nsize == 0) {
    free(ptr);
    p->mem_bytes -= old;
    return NULL;
  }
  void *np = realloc(ptr, nsize);
  if (!np) return NULL;
  p->mem_bytes = p->mem_bytes - old + nsize;
  if (p->mem_bytes > p->mem_peak) p->mem_peak = p->mem_bytes;
  return np;
}

/* ---- message handler: tp.fail errors pass through, others get a traceback */

static int msgh(lua_State *L) {
  if (tpa_is_fail(L, 1)) return 1;
  const char *msg = lua_tostring(L, 1);
  if (!msg) msg = lua_pushfstring(L, "(error object is a %s value)", luaL_typename(L, 1));
  luaL_traceback(L, L, msg, 1);
  return 1;
}

/* ---- loading */

static int find_plugin_file(const tpc_config *cfg, const char *name, char *dir, size_t dircap,
                            char *file, size_t filecap) {
  for (int i = 0; i < cfg->nplugin_dirs; i++) {
    snprintf(dir, dircap, "%s/%s", cfg->plugin_dirs[i], name);
    snprintf(file, filecap, "%s/plugin.lua", dir);
    if (access(file, R_OK) == 0) return 0;
  }
  return -1;
}

static int manifest_string(lua_State *L, int idx, const char *key, char *out, size_t cap,
                           char *err, size_t errcap) {
  if (lua_getfield(L, idx, key) != LUA_TSTRING || lua_rawlen(L, -1) == 0 ||
      lua_rawlen(L, -1) >= cap) {
    snprintf(err, errcap, "manifest field '%s' must be a string of 1-%zu bytes", key, cap - 1);
    lua_pop(L, 1);
    return -1;
  }
  snprintf(out, cap, "%s", lua_tostring(L, -1));
  lua_pop(L, 1);
  return 0;
}

static int parse_auth(const char *s, tp_auth *out) {
  static const char *const names[] = {"none", "optional", "user", "admin"};
  for (int i = 0; i < 4; i++)
    if (strcmp(s, names[i]) == 0) {
      *out = (tp_auth)i;
      return 0;
    }
  return -1;
}

/* Reads routes[i] (table at top of stack) into r. */
static int read_route(tp_plugin *p, int i, tp_route *r, char *err, size_t errcap) {
  lua_State *L = p->L;
  int t = lua_gettop(L);
  if (!lua_istable(L, t)) {
    snprintf(err, errcap, "routes[%d] must be a table", i);
    return -1;
  }
  r->plugin = p;
  const char *method = lua_getfield(L, t, "method") == LUA_TSTRING ? lua_tostring(L, -1) : NULL;
  const char *path = lua_getfield(L, t, "path") == LUA_TSTRING ? lua_tostring(L, -1) : NULL;
  const char *auth = lua_getfield(L, t, "auth") == LUA_TSTRING ? lua_tostring(L, -1) : "user";
  int rc = -1;
  if (!method || strlen(method) >= sizeof r->method)
    snprintf(err, errcap, "routes[%d].method must be GET, POST, PUT, PATCH or DELETE", i);
  else if (!path || strlen(path) >= sizeof r->path)
    snprintf(err, errcap, "routes[%d].path must be a string of at most 256 bytes", i);
  else if (parse_auth(auth, &r->auth) != 0)
    snprintf(err, errcap, "routes[%d].auth must be none, optional, user or admin", i);
  else if (lua_getfield(L, t, "handler") != LUA_TFUNCTION)
    snprintf(err, errcap, "routes[%d].handler must be a function", i);
  else {
    tp_copy_str(r->method, sizeof r->method, method);
    tp_copy_str(r->path, sizeof r->path, path);
    snprintf(r->label, sizeof r->label, "%s %s /%s/{tenant}%s", p->name, method,
             r->auth == TP_AUTH_ADMIN ? "admin" : "v1", path);
    r->handler_ref = luaL_ref(L, LUA_REGISTRYINDEX);
    rc = 0;
  }
  lua_settop(L, t);
  return rc;
}

static int read_routes(tp_plugin *p, int manifest, char *err, size_t errcap) {
  lua_State *L = p->L;
  if (lua_getfield(L, manifest, "routes") == LUA_TNIL) {
    lua_pop(L, 1);
    return 0;
  }
  if (!lua_istable(L, -1)) {
    snprintf(err, errcap, "manifest field 'routes' must be a list");
    return -1;
  }
  int n = (int)luaL_len(L, -1);
  p->routes = calloc((size_t)(n ? n : 1), sizeof *p->routes);
  for (int i = 1; i <= n; i++) {
    lua_rawgeti(L, -1, i);
    int rc = read_route(p, i, &p->routes[i - 1], err, errcap);
    lua_pop(L, 1);
    if (rc != 0) return -1;
    p->nroutes++;
  }
  lua_pop(L, 1);
  return 0;
}

static int run_chunk(tp_plugin *p, const char *file, char *err, size_t errcap) {
  lua_State *L = p->L;
  lua_rawgeti(L, LUA_REGISTRYINDEX, p->msgh_ref);
  if (luaL_loadfilex(L, file, "t") != LUA_OK) {
    snprintf(err, errcap, "%s", lua_tostring(L, -1));
    return -1;
  }
  p->ctx = TP_CTX_LOAD;
  int rc = lua_pcall(L, 0, 1, -2);
  p->ctx = TP_CTX_NONE;
  if (rc != LUA_OK) {
    snprintf(err, errcap, "%s", lua_tostring(L, -1) ? lua_tostring(L, -1) : "error while loading");
    return -1;
  }
  if (!lua_istable(L, -1)) {
    snprintf(err, errcap, "%s must return the plugin's manifest table", file);
    return -1;
  }
  return 0;
}

int tpp_load(tp_plugin *p, const tpc_config *cfg, const tpc_tenant *t, const tpc_plugin *pc,
             tps_db *db, char *err, size_t errcap) {
  memset(p, 0, sizeof *p);
  tp_copy_str(p->name, sizeof p->name, pc->name);
  p->tenant_id = t->id;
  p->timezone = t->timezone;
  p->db = db;
  char file[600];
  if (find_plugin_file(cfg, pc->name, p->dir, sizeof p->dir, file, sizeof file) != 0) {
    snprintf(err, errcap, "no plugins/%s/plugin.lua in any plugin directory", pc->name);
    return -1;
  }
  p->L = lua_newstate(plugin_alloc, p);
  if (!p->L) {
    snprintf(err, errcap, "out of memory");
    return -1;
  }
  lua_State *L = p->L;
  tpa_open(L, p);
  lua_gc(L, LUA_GCGEN, 0, 0);  /* most garbage is one request's: generational suits it */
  lua_pushcfunction(L, msgh);
  p->msgh_ref = luaL_ref(L, LUA_REGISTRYINDEX);
  lua_createtable(L, 0, 1);
  lua_pushcfunction(L, req_index);
  lua_setfield(L, -2, "__index");
  p->req_mt_ref = luaL_ref(L, LUA_REGISTRYINDEX);
  char e[1024];
  if (tpc_push_plugin_config(cfg, pc, L, e, sizeof e) != 0) {
    snprintf(err, errcap, "config: %s", e);
    return -1;
  }
  p->config_ref = luaL_ref(L, LUA_REGISTRYINDEX);
  if (run_chunk(p, file, err, errcap) != 0) return -1;
  int manifest = lua_gettop(L);
  char name[33];
  if (manifest_string(L, manifest, "name", name, sizeof name, err, errcap) != 0 ||
      manifest_string(L, manifest, "version", p->version, sizeof p->version, err, errcap) != 0)
    return -1;
  if (strcmp(name, p->name) != 0) {
    snprintf(err, errcap, "manifest name '%s' does not match its folder '%s'", name, p->name);
    return -1;
  }
  if (read_routes(p, manifest, err, errcap) != 0) return -1;
  lua_getfield(L, manifest, "migrations");
  if (!lua_isnil(L, -1) && !lua_istable(L, -1)) {
    snprintf(err, errcap, "manifest field 'migrations' must be a list of SQL strings");
    return -1;
  }
  int applied;
  if (tps_migrate(db, p->name, L, lua_gettop(L), &applied, e, sizeof e) != 0) {
    snprintf(err, errcap, "%s", e);
    return -1;
  }
  if (applied) {
    tp_buf *line = tp_log_begin(TP_LOG_INFO, "migrations applied");
    tp_log_str(line, "tenant", t->id);
    tp_log_str(line, "plugin", p->name);
    tp_log_int(line, "count", applied);
    tp_log_end(line);
  }
  lua_settop(L, 0);
  return 0;
}

void tpp_free(tp_plugin *p) {
  if (p->L) {
    tps_cache_clear(p->L);
    lua_close(p->L);
  }
  free(p->routes);
  memset(p, 0, sizeof *p);
}

/* ---- calling a handler */

int tpp_check_query(const char *q, size_t n) {
  char tmp[TPR_MAX_PATH];
  if (n > sizeof tmp) return -1;
  for (size_t i = 0; i < n;) {
    size_t j = i;
    while (j < n && q[j] != '&') j++;
    if (tp_url_decode(q + i, j - i, tmp, true) < 0) return -1;
    i = j + 1;
  }
  return 0;
}

static void push_decoded(lua_State *L, const char *s, size_t n) {
  char tmp[TPR_MAX_PATH];
  long len = tp_url_decode(s, n, tmp, true);
  lua_pushlstring(L, tmp, len > 0 ? (size_t)len : 0);
}

static void push_query(lua_State *L, const char *q, size_t n) {
  lua_newtable(L);
  for (size_t i = 0; i < n;) {
    size_t j = i;
    while (j < n && q[j] != '&') j++;
    if (j > i) {
      const char *eq = memchr(q + i, '=', j - i);
      size_t klen = eq ? (size_t)(eq - (q + i)) : j - i;
      push_decoded(L, q + i, klen);
      if (eq) push_decoded(L, eq + 1, (size_t)(q + j - eq - 1));
      else lua_pushliteral(L, "");
      lua_rawset(L, -3);  /* a repeated key keeps its last value */
    }
    i = j + 1;
  }
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

/* req.headers and req.query are built on first use: most handlers read
** neither, and a mini-program sends a dozen headers with every call. Once
** the handler has returned they read as nil (the request is gone). */
static int req_index(lua_State *L) {
  tp_plugin *p = tpa_plugin(L);
  const char *key = lua_tostring(L, 2);
  if (!p->call || !key) return 0;
  if (strcmp(key, "headers") == 0) push_headers(L, p->call);
  else if (strcmp(key, "query") == 0) push_query(L, p->call->query, p->call->query_len);
  else return 0;
  lua_pushvalue(L, 2);
  lua_pushvalue(L, -2);
  lua_rawset(L, 1);  /* built once */
  return 1;
}

static void push_request(tp_plugin *p, const tp_route *r, const tp_call *c) {
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

/* Turns the error at the top of L into the response. */
static void handler_error(tp_plugin *p, const tp_route *r, tp_buf *body, tp_result *res,
                          const char *request_id) {
  lua_State *L = p->L;
  tph_response tmp;  /* tph_error formats into a response; borrow its body */
  memset(&tmp, 0, sizeof tmp);
  tmp.body = *body;
  tp_copy_str(tmp.request_id, sizeof tmp.request_id, request_id);
  if (tpa_is_fail(L, -1)) {
    /* the table came from tp.fail, but a plugin that caught it may have
    ** changed its fields before raising it again: take nothing on trust */
    lua_getfield(L, -1, "status");
    lua_getfield(L, -2, "code");
    lua_getfield(L, -3, "message");
    lua_Integer status = lua_isinteger(L, -3) ? lua_tointeger(L, -3) : 500;
    const char *code = lua_type(L, -2) == LUA_TSTRING ? lua_tostring(L, -2) : "error";
    const char *msg = lua_type(L, -1) == LUA_TSTRING ? lua_tostring(L, -1) : "";
    tph_error(&tmp, status >= 400 && status <= 599 ? (int)status : 500, code, "%s", msg);
    lua_pop(L, 3);
    if (lua_getfield(L, -1, "details") != LUA_TNIL) {  /* {"error":{...}} gains details */
      tp_buf d;
      tp_buf_init(&d);
      char e[128];
      if (tpj_encode(L, -1, &d, e, sizeof e) == 0) {
        tmp.body.len -= 2;
        tp_buf_adds(&tmp.body, ",\"details\":");
        tp_buf_add(&tmp.body, d.data, d.len);
        tp_buf_adds(&tmp.body, "}}");
      }
      tp_buf_free(&d);
    }
    lua_pop(L, 1);
  } else {
    const char *trace = lua_tostring(L, -1);
    tp_buf *line = tp_log_begin(TP_LOG_ERROR, "handler raised an error");
    tp_log_str(line, "tenant", p->tenant_id);
    tp_log_str(line, "plugin", p->name);
    tp_log_str(line, "route", r->label);
    tp_log_str(line, "request_id", request_id);
    tp_log_str(line, "error", trace ? trace : "?");
    tp_log_end(line);
    tph_error(&tmp, 500, "internal_error",
              "the request failed inside plugin '%s' and changed nothing; quote request id %s",
              p->name, request_id);
  }
  *body = tmp.body;
  res->status = tmp.status;
  res->ok = false;
  tp_copy_str(res->code, sizeof res->code, tmp.error_code);
}

static void bad_result(tp_plugin *p, const tp_route *r, tp_buf *body, tp_result *res,
                       const char *request_id, const char *why) {
  lua_pushfstring(p->L, "handler of %s returned %s", r->label, why);
  handler_error(p, r, body, res, request_id);
}

void tpp_call_route(tp_plugin *p, const tp_route *r, const tp_call *call, tp_invocation *inv,
                    tp_buf *body, tp_result *res) {
  lua_State *L = p->L;
  int base = lua_gettop(L);
  lua_rawgeti(L, LUA_REGISTRYINDEX, p->msgh_ref);
  lua_rawgeti(L, LUA_REGISTRYINDEX, r->handler_ref);
  push_request(p, r, call);
  /* stack: msgh handler req */
  if (call->body_len) {
    char e[256];
    if (tpj_decode(L, call->body, call->body_len, e, sizeof e) != 0) {
      tph_response tmp = {.body = *body};
      tp_copy_str(tmp.request_id, sizeof tmp.request_id, call->request_id);
      tph_error(&tmp, 400, "invalid_json", "the request body is not valid JSON: %s", e);
      *body = tmp.body;
      *res = (tp_result){.status = 400, .ok = false, .code = "invalid_json"};
      lua_settop(L, base);
      return;
    }
    lua_setfield(L, -2, "body");
  }
  p->inv = inv;
  p->call = call;
  p->ctx = TP_CTX_HANDLER;
  tps_set_owner(p->db, p->name);
  int rc = lua_pcall(L, 1, 2, base + 1);
  tps_set_owner(p->db, NULL);
  p->ctx = TP_CTX_NONE;
  if (rc != LUA_OK) {
    handler_error(p, r, body, res, call->request_id);
  } else {
    /* stack: msgh status body  |  msgh body nil */
    int status = 200;
    if (lua_isinteger(L, -2)) {
      status = (int)lua_tointeger(L, -2);
    } else {
      lua_rotate(L, -2, 1);  /* a lone table: status 200 */
    }
    char e[256];
    tp_buf_reset(body);
    if (status < 200 || status > 599)
      bad_result(p, r, body, res, call->request_id, "a status outside 200-599");
    else if (!lua_istable(L, -1) && !lua_isnil(L, -1))
      bad_result(p, r, body, res, call->request_id, "a body that is not a table");
    else if (lua_isnil(L, -1) ? (tp_buf_adds(body, "{}"), 0)
                              : tpj_encode(L, -1, body, e, sizeof e) != 0) {
      lua_pushfstring(L, "handler of %s returned a body that cannot be JSON: %s", r->label, e);
      handler_error(p, r, body, res, call->request_id);
    } else {
      res->status = status;
      res->ok = true;
      res->code[0] = '\0';
    }
  }
  p->inv = NULL;
  p->call = NULL;
  lua_settop(L, base);
}
