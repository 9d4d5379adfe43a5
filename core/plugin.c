/*
** plugin.c - load a plugin into its own Lua state and call its handlers.
*/
#include "plugin.h"

#include <errno.h>
#include <lauxlib.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "api.h"
#include "clock.h"
#include "http.h"
#include "json.h"
#include "log.h"
#include "luacopy.h"
#include "sandbox.h"
#include "url.h"

/* t[key] without metamethods: manifests and error tables come from plugin
** code, and an __index that raises outside a protected call would abort the
** host. Pushes the value; returns its type. */
static int raw_field(lua_State *L, int idx, const char *key) {
  idx = lua_absindex(L, idx);
  lua_pushstring(L, key);
  return lua_rawget(L, idx);
}

static int req_index(lua_State *L);

/* ---- message handler: tp.fail errors pass through, others get a traceback */

static int msgh(lua_State *L) {
  if (tpa_is_fail(L, 1)) return 1;
  const char *msg = lua_tostring(L, 1);
  if (!msg) msg = lua_pushfstring(L, "(error object is a %s value)", luaL_typename(L, 1));
  luaL_traceback(L, L, msg, 1);
  return 1;
}

/* ---- loading */

/* where(): the line of the innermost frame running the campaign script (the
** chunk named by upvalue 1), or nil. The campaign runtime has no debug
** library; this is how it tells an operator which line a mistake is on. */
static int script_line(lua_State *L) {
  const char *chunk = lua_tostring(L, lua_upvalueindex(1));
  lua_Debug ar;
  for (int level = 1; lua_getstack(L, level, &ar); level++)
    if (lua_getinfo(L, "Sl", &ar) && ar.currentline > 0 && strcmp(ar.source, chunk) == 0) {
      lua_pushinteger(L, ar.currentline);
      return 1;
    }
  lua_pushnil(L);
  return 1;
}

/* A campaign runs as the SDK's campaign runtime, given the script's source,
** its chunk name, the campaign's name and where(). Pushes the 4 arguments. */
static int push_campaign_args(lua_State *L, const tpc_plugin *pc, char *err, size_t errcap) {
  size_t len;
  char *src = tp_read_file(pc->script, 4u << 20, &len);
  if (!src) {
    snprintf(err, errcap, "%s: cannot read the campaign script: %s", pc->script,
             errno == EFBIG ? "larger than 4 MiB" : strerror(errno));
    return -1;
  }
  lua_pushlstring(L, src, len);
  free(src);
  lua_pushfstring(L, "@%s", pc->script);
  lua_pushstring(L, pc->name + strlen("campaign_"));
  lua_pushvalue(L, -2);
  lua_pushcclosure(L, script_line, 1);
  return 0;
}

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
  if (raw_field(L, idx, key) != LUA_TSTRING || lua_rawlen(L, -1) == 0 ||
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

/* ---- route documentation: the optional doc fields of a route */

#define DOC_MAX_SUMMARY 200
#define DOC_MAX_PARAMS 64      /* per route, for each of query and headers */
#define DOC_MAX_PARAM_NAME 64

static int doc_error(char *err, size_t errcap, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static int doc_error(char *err, size_t errcap, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(err, errcap, fmt, ap);
  va_end(ap);
  return -1;
}

static char *dup_buf(const tp_buf *b) {
  char *s = malloc(b->len + 1);
  if (!s) abort();  /* like tp_buf: no sane way on without memory */
  memcpy(s, b->data ? b->data : "", b->len);
  s[b->len] = '\0';
  return s;
}

/* routes[i].key: a string (of at most max bytes when max > 0), copied to
** *out; absent leaves *out NULL. */
static int doc_text(lua_State *L, int t, int i, const char *key, size_t max, const char **out,
                    char *err, size_t errcap) {
  int type = raw_field(L, t, key);
  size_t n = 0;
  const char *s = type == LUA_TSTRING ? lua_tolstring(L, -1, &n) : NULL;
  int rc = 0;
  if (type == LUA_TNIL) {
    /* not declared */
  } else if (!s || (max && n > max)) {
    rc = max ? doc_error(err, errcap, "routes[%d].%s must be a string of at most %zu bytes", i,
                         key, max)
             : doc_error(err, errcap, "routes[%d].%s must be a string", i, key);
  } else if (strlen(s) != n) {
    rc = doc_error(err, errcap, "routes[%d].%s must be a string without NUL bytes", i, key);
  } else {
    *out = strdup(s);
    if (!*out) abort();
  }
  lua_pop(L, 1);
  return rc;
}

/* routes[i].key: a table that encodes as a JSON object (a JSON Schema),
** kept as its JSON text. */
static int doc_schema(lua_State *L, int t, int i, const char *key, const char **out, char *err,
                      size_t errcap) {
  int type = raw_field(L, t, key);
  int rc = 0;
  if (type == LUA_TNIL) {
    lua_pop(L, 1);
    return 0;
  }
  tp_buf json;
  tp_buf_init(&json);
  char e[256];
  if (type != LUA_TTABLE)
    rc = doc_error(err, errcap, "routes[%d].%s must be a table (a JSON Schema)", i, key);
  else if (tpj_encode(L, -1, &json, e, sizeof e) != 0)
    rc = doc_error(err, errcap, "routes[%d].%s cannot be JSON: %s", i, key, e);
  else if (json.data[0] != '{')
    rc = doc_error(err, errcap, "routes[%d].%s must be a JSON Schema object, not a list", i, key);
  else
    *out = dup_buf(&json);
  tp_buf_free(&json);
  lua_pop(L, 1);
  return rc;
}

static int doc_status(lua_State *L, int t, int i, int *out, char *err, size_t errcap) {
  int type = raw_field(L, t, "status");
  lua_Integer status = lua_isinteger(L, -1) ? lua_tointeger(L, -1) : 0;
  lua_pop(L, 1);
  *out = 200;
  if (type == LUA_TNIL) return 0;
  if (status < 200 || status > 299)
    return doc_error(err, errcap, "routes[%d].status must be an integer from 200 to 299", i);
  *out = (int)status;
  return 0;
}

static bool header_name_char(char c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
         c == '-' || c == '_';
}

static bool valid_param_name(const char *s, size_t n, bool header) {
  if (n == 0 || n > DOC_MAX_PARAM_NAME || strlen(s) != n) return false;
  for (size_t k = 0; header && k < n; k++)
    if (!header_name_char(s[k])) return false;
  return true;
}

static int cmp_names(const void *a, const void *b) {
  return strcmp(*(const char *const *)a, *(const char *const *)b);
}

/* The parameter names of the table at idx, checked and sorted (the output
** should not depend on Lua's table order). The strings are the table's keys,
** alive as long as it is. */
static int param_names(lua_State *L, int idx, int i, const char *field, const char **names,
                       int *n, char *err, size_t errcap) {
  bool header = strcmp(field, "headers") == 0;
  *n = 0;
  lua_pushnil(L);
  while (lua_next(L, idx)) {
    lua_pop(L, 1);
    size_t len;
    const char *name = lua_type(L, -1) == LUA_TSTRING ? lua_tolstring(L, -1, &len) : NULL;
    if (!name || !valid_param_name(name, len, header)) {
      lua_pop(L, 1);
      return header ? doc_error(err, errcap, "routes[%d].headers keys must be header names of "
                                "1-%d letters, digits, '-' or '_'", i, DOC_MAX_PARAM_NAME)
                    : doc_error(err, errcap, "routes[%d].query keys must be parameter names "
                                "of 1-%d bytes", i, DOC_MAX_PARAM_NAME);
    }
    if (*n == DOC_MAX_PARAMS) {
      lua_pop(L, 1);
      return doc_error(err, errcap, "routes[%d].%s declares more than %d parameters", i, field,
                       DOC_MAX_PARAMS);
    }
    names[(*n)++] = name;
  }
  qsort(names, (size_t)*n, sizeof *names, cmp_names);
  return 0;
}

/* Checks routes[i].field[name] (a table at spec) and appends it as an
** OpenAPI parameter object. */
static int render_param(lua_State *L, int spec, int i, const char *field, const char *name,
                        tp_buf *out, char *err, size_t errcap) {
  bool header = strcmp(field, "headers") == 0;
  lua_pushnil(L);
  while (lua_next(L, spec)) {
    lua_pop(L, 1);
    const char *k = lua_type(L, -1) == LUA_TSTRING ? lua_tostring(L, -1) : "?";
    if (strcmp(k, "description") && strcmp(k, "required") && (header || strcmp(k, "type"))) {
      lua_pop(L, 1);
      return doc_error(err, errcap, "routes[%d].%s.%s has an unknown field '%s' (known: %s)", i,
                       field, name, k, header ? "description, required"
                                              : "type, description, required");
    }
  }
  const char *type = "string";
  if (!header) {
    type = raw_field(L, spec, "type") == LUA_TSTRING ? lua_tostring(L, -1) : "";
    lua_pop(L, 1);  /* the string stays alive in spec */
    if (strcmp(type, "string") && strcmp(type, "integer") && strcmp(type, "boolean"))
      return doc_error(err, errcap, "routes[%d].query.%s.type must be \"string\", \"integer\" "
                       "or \"boolean\"", i, name);
  }
  int rt = raw_field(L, spec, "required");
  bool required = lua_toboolean(L, -1);
  lua_pop(L, 1);
  if (rt != LUA_TNIL && rt != LUA_TBOOLEAN)
    return doc_error(err, errcap, "routes[%d].%s.%s.required must be a boolean", i, field, name);
  int dt = raw_field(L, spec, "description");
  size_t dlen = 0;
  const char *description = dt == LUA_TSTRING ? lua_tolstring(L, -1, &dlen) : NULL;
  if (dt != LUA_TNIL && dt != LUA_TSTRING) {
    lua_pop(L, 1);
    return doc_error(err, errcap, "routes[%d].%s.%s.description must be a string", i, field,
                     name);
  }
  tp_buf_adds(out, out->len ? ",{\"name\":" : "{\"name\":");
  tp_buf_add_json_str(out, name, strlen(name));
  tp_buf_printf(out, ",\"in\":\"%s\",\"required\":%s", header ? "header" : "query",
                required ? "true" : "false");
  if (description) {
    tp_buf_adds(out, ",\"description\":");
    tp_buf_add_json_str(out, description, dlen);
  }
  tp_buf_printf(out, ",\"schema\":{\"type\":\"%s\"}}", type);
  lua_pop(L, 1);
  return 0;
}

/* routes[i].field (query or headers): name -> spec, appended to out as
** OpenAPI parameter objects in name order. */
static int doc_params(lua_State *L, int t, int i, const char *field, tp_buf *out, char *err,
                      size_t errcap) {
  int type = raw_field(L, t, field);
  int tbl = lua_gettop(L);
  int rc = 0;
  if (type == LUA_TNIL) {
    /* none declared */
  } else if (type != LUA_TTABLE) {
    rc = strcmp(field, "headers") == 0
             ? doc_error(err, errcap, "routes[%d].headers must be a table of header name = "
                         "{description = string?, required = boolean?}", i)
             : doc_error(err, errcap, "routes[%d].query must be a table of name = {type = "
                         "\"string\"|\"integer\"|\"boolean\", description = string?, "
                         "required = boolean?}", i);
  } else {
    const char *names[DOC_MAX_PARAMS];
    int n;
    rc = param_names(L, tbl, i, field, names, &n, err, errcap);
    for (int k = 0; rc == 0 && k < n; k++) {
      if (raw_field(L, tbl, names[k]) != LUA_TTABLE)
        rc = doc_error(err, errcap, "routes[%d].%s.%s must be a table {%sdescription = string?, "
                       "required = boolean?}", i, field, names[k],
                       strcmp(field, "query") == 0 ? "type = ..., " : "");
      else
        rc = render_param(L, lua_gettop(L), i, field, names[k], out, err, errcap);
      lua_pop(L, 1);
    }
  }
  lua_settop(L, tbl - 1);
  return rc;
}

static void free_route_doc(tp_route_doc *d) {
  free((void *)d->summary);
  free((void *)d->description);
  free((void *)d->params);
  free((void *)d->body);
  free((void *)d->response);
  memset(d, 0, sizeof *d);
}

/* Checks the doc fields of routes[i] (the table at t) and keeps them in doc,
** rendered for the OpenAPI document. */
static int read_route_doc(lua_State *L, int t, int i, tp_route_doc *doc, char *err,
                          size_t errcap) {
  tp_buf params;
  tp_buf_init(&params);
  int rc = -1;
  if (doc_text(L, t, i, "summary", DOC_MAX_SUMMARY, &doc->summary, err, errcap) == 0 &&
      doc_text(L, t, i, "description", 0, &doc->description, err, errcap) == 0 &&
      doc_params(L, t, i, "query", &params, err, errcap) == 0 &&
      doc_params(L, t, i, "headers", &params, err, errcap) == 0 &&
      doc_schema(L, t, i, "body", &doc->body, err, errcap) == 0 &&
      doc_schema(L, t, i, "response", &doc->response, err, errcap) == 0 &&
      doc_status(L, t, i, &doc->status, err, errcap) == 0) {
    if (params.len) doc->params = dup_buf(&params);
    rc = 0;
  }
  tp_buf_free(&params);
  if (rc != 0) free_route_doc(doc);
  return rc;
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
  const char *method = raw_field(L, t, "method") == LUA_TSTRING ? lua_tostring(L, -1) : NULL;
  const char *path = raw_field(L, t, "path") == LUA_TSTRING ? lua_tostring(L, -1) : NULL;
  const char *auth = raw_field(L, t, "auth") == LUA_TSTRING ? lua_tostring(L, -1) : "user";
  int personal = raw_field(L, t, "personal");
  r->personal = personal == LUA_TBOOLEAN && lua_toboolean(L, -1);
  int rclass = raw_field(L, t, "rate_class");
  int cls = rclass == LUA_TNIL ? (method && (strcmp(method, "GET") == 0 || strcmp(method, "HEAD") == 0)
                                       ? TPRL_READ : TPRL_WRITE)
            : rclass == LUA_TSTRING ? tprl_class_find(lua_tostring(L, -1)) : -1;
  int rc = -1;
  if (!method || strlen(method) >= sizeof r->method)
    snprintf(err, errcap, "routes[%d].method must be GET, POST, PUT, PATCH or DELETE", i);
  else if (!path || strlen(path) >= sizeof r->path)
    snprintf(err, errcap, "routes[%d].path must be a string of at most 256 bytes", i);
  else if (parse_auth(auth, &r->auth) != 0)
    snprintf(err, errcap, "routes[%d].auth must be none, optional, user or admin", i);
  else if (personal != LUA_TNIL && personal != LUA_TBOOLEAN)
    snprintf(err, errcap, "routes[%d].personal must be true or false", i);
  else if (cls < 0 || cls == TPRL_ADMIN)
    snprintf(err, errcap, "routes[%d].rate_class must be one of %s", i, tprl_route_classes());
  else if (rclass != LUA_TNIL && strcmp(auth, "admin") == 0)
    snprintf(err, errcap, "routes[%d].rate_class: admin routes are all of class admin", i);
  else if (raw_field(L, t, "handler") != LUA_TFUNCTION)
    snprintf(err, errcap, "routes[%d].handler must be a function", i);
  else if (read_route_doc(L, t, i, &r->doc, err, errcap) == 0) {
    r->rate_class = (unsigned char)cls;
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
  if (raw_field(L, manifest, "routes") == LUA_TNIL) {
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

/* Reads manifest[kind] = { name = function } into a registry table; names go
** into names/n when given (subscriptions are looked up by the host). */
static int read_handlers(tp_plugin *p, int manifest, const char *kind, int *ref,
                         char (**names)[TPP_MAX_NAME + 1], int *n, char *err, size_t errcap) {
  lua_State *L = p->L;
  int t = raw_field(L, manifest, kind);
  if (t == LUA_TNIL) {
    lua_pop(L, 1);
    lua_newtable(L);
  } else if (t != LUA_TTABLE) {
    snprintf(err, errcap, "manifest field '%s' must be a table of name = function", kind);
    return -1;
  }
  int count = 0;
  lua_pushnil(L);
  while (lua_next(L, -2)) {
    /* stack: handlers name fn */
    size_t len = 0;
    const char *name = lua_type(L, -2) == LUA_TSTRING ? lua_tolstring(L, -2, &len) : NULL;
    if (!name || len == 0 || len > TPP_MAX_NAME || strlen(name) != len) {
      snprintf(err, errcap, "%s: names must be strings of 1-%d bytes", kind, TPP_MAX_NAME);
      return -1;
    }
    if (!lua_isfunction(L, -1)) {
      snprintf(err, errcap, "%s.%s must be a function", kind, name);
      return -1;
    }
    lua_pop(L, 1);
    count++;
  }
  if (names) {
    *names = calloc((size_t)(count ? count : 1), sizeof **names);
    lua_pushnil(L);
    while (lua_next(L, -2)) {
      tp_copy_str((*names)[(*n)++], TPP_MAX_NAME + 1, lua_tostring(L, -2));
      lua_pop(L, 1);
    }
  }
  *ref = luaL_ref(L, LUA_REGISTRYINDEX);
  return 0;
}

static int check_manifest_keys(lua_State *L, int manifest, char *err, size_t errcap) {
  static const char *const known[] = {"name", "version", "description", "migrations", "routes",
                                      "jobs", "subscribe", "exports", "setup", NULL};
  lua_pushnil(L);
  while (lua_next(L, manifest)) {
    lua_pop(L, 1);
    const char *k = lua_type(L, -1) == LUA_TSTRING ? lua_tostring(L, -1) : "?";
    bool ok = false;
    for (const char *const *n = known; *n; n++) ok |= strcmp(k, *n) == 0;
    if (!ok) {
      snprintf(err, errcap, "unknown manifest field '%s' (known: name, version, description, "
               "migrations, routes, jobs, subscribe, exports, setup)", k);
      lua_pop(L, 1);
      return -1;
    }
  }
  return 0;
}

/* Runs file with the nargs values on top of the stack as its `...`. */
static int run_chunk(tp_plugin *p, const char *file, int nargs, int64_t budget, char *err,
                     size_t errcap) {
  lua_State *L = p->L;
  int first = lua_gettop(L) - nargs + 1;
  lua_rawgeti(L, LUA_REGISTRYINDEX, p->msgh_ref);
  lua_insert(L, first);
  if (luaL_loadfilex(L, file, "t") != LUA_OK) {
    snprintf(err, errcap, "%s", lua_tostring(L, -1));
    return -1;
  }
  lua_insert(L, first + 1);
  p->ctx = TP_CTX_LOAD;
  tpsb_arm(p, budget);
  tpsb_frame frame;
  tpsb_enter(p, p->load_ms, &frame);
  int rc = lua_pcall(L, nargs, 1, first);
  tpsb_leave(p, &frame);
  p->ctx = TP_CTX_NONE;
  if (p->timed_out) {
    snprintf(err, errcap, "loading %s took longer than %lld ms (limits.load_ms)", file,
             (long long)p->load_ms);
    return -1;
  }
  if (p->exceeded) {
    snprintf(err, errcap, "loading %s used more than %lld instructions (limits.load_instructions)",
             file, (long long)budget);
    return -1;
  }
  if (rc == LUA_ERRMEM) {
    snprintf(err, errcap, "loading %s reached the plugin's memory cap of %zu bytes", file,
             p->mem_limit);
    return -1;
  }
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

static int read_manifest(tp_plugin *p, int manifest, char *err, size_t errcap) {
  lua_State *L = p->L;
  char name[33];
  if (check_manifest_keys(L, manifest, err, errcap) != 0 ||
      manifest_string(L, manifest, "name", name, sizeof name, err, errcap) != 0 ||
      manifest_string(L, manifest, "version", p->version, sizeof p->version, err, errcap) != 0)
    return -1;
  if (strcmp(name, p->name) != 0) {
    snprintf(err, errcap, "manifest name '%s' does not match its folder '%s'", name, p->name);
    return -1;
  }
  if (read_routes(p, manifest, err, errcap) != 0 ||
      read_handlers(p, manifest, "jobs", &p->jobs_ref, NULL, NULL, err, errcap) != 0 ||
      read_handlers(p, manifest, "subscribe", &p->subscribe_ref, &p->subscriptions,
                    &p->nsubscriptions, err, errcap) != 0 ||
      read_handlers(p, manifest, "exports", &p->exports_ref, NULL, NULL, err, errcap) != 0)
    return -1;
  int t = raw_field(L, manifest, "setup");
  if (t != LUA_TNIL && t != LUA_TFUNCTION) {
    snprintf(err, errcap, "manifest field 'setup' must be a function");
    return -1;
  }
  p->setup_ref = t == LUA_TNIL ? LUA_NOREF : luaL_ref(L, LUA_REGISTRYINDEX);
  if (t == LUA_TNIL) lua_pop(L, 1);
  t = raw_field(L, manifest, "migrations");
  if (t == LUA_TNIL) {
    lua_pop(L, 1);
    lua_newtable(L);
  } else if (t != LUA_TTABLE) {
    snprintf(err, errcap, "manifest field 'migrations' must be a list of SQL strings");
    return -1;
  }
  p->migrations_ref = luaL_ref(L, LUA_REGISTRYINDEX);
  return 0;
}

int tpp_load(tp_plugin *p, const tpc_config *cfg, const tpc_tenant *t, const tpc_plugin *pc,
             tps_db *db, char *err, size_t errcap) {
  memset(p, 0, sizeof *p);
  tp_copy_str(p->name, sizeof p->name, pc->name);
  p->tenant_id = t->id;
  p->timezone = t->timezone;
  p->token_secret = t->token_secret;
  p->token_secret_len = t->token_secret_len;
  p->sdk_dir = cfg->sdk_dir;
  p->db = db;
  p->instructions = pc->instructions;
  /* a call into another plugin keeps the deadline of the invocation that began it */
  p->deadline_ms = pc->deadline_ms ? pc->deadline_ms : cfg->limits.invocation_ms;
  p->load_ms = cfg->limits.load_ms;
  p->migration_ms = cfg->limits.migration_ms;
  p->mem_limit = (size_t)pc->memory_bytes;
  p->loaded_at_ms = tp_clock_wall_ms();
  p->setup_ref = LUA_NOREF;
  char file[600];
  if (pc->script) {
    snprintf(file, sizeof file, "%s/tp/campaign/runtime.lua", cfg->sdk_dir);
    tp_copy_str(p->dir, sizeof p->dir, pc->script);  /* require() finds modules beside it */
    char *slash = strrchr(p->dir, '/');
    if (slash) *slash = '\0';
    else tp_copy_str(p->dir, sizeof p->dir, ".");
  } else if (find_plugin_file(cfg, pc->name, p->dir, sizeof p->dir, file, sizeof file) != 0) {
    snprintf(err, errcap, "no plugins/%s/plugin.lua in any plugin directory", pc->name);
    return -1;
  }
  p->L = lua_newstate(tpsb_alloc, p);
  if (!p->L) {
    snprintf(err, errcap, "out of memory");
    return -1;
  }
  lua_State *L = p->L;
  tpa_open(L, p);
  lua_gc(L, LUA_GCGEN, 0, 0);  /* most garbage is one request's: generational suits it */
  lua_pushcfunction(L, msgh);
  p->msgh_ref = luaL_ref(L, LUA_REGISTRYINDEX);
  lua_createtable(L, 0, 2);
  lua_pushcfunction(L, req_index);
  lua_setfield(L, -2, "__index");
  lua_pushliteral(L, "req");  /* protected, like every metatable the host gives out (json.c) */
  lua_setfield(L, -2, "__metatable");
  p->req_mt_ref = luaL_ref(L, LUA_REGISTRYINDEX);
  char e[1024];
  if (tpc_push_plugin_config(cfg, pc, L, e, sizeof e) != 0) {
    snprintf(err, errcap, "config: %s", e);
    return -1;
  }
  p->config_ref = luaL_ref(L, LUA_REGISTRYINDEX);
  if (pc->script && push_campaign_args(L, pc, err, errcap) != 0) return -1;
  if (run_chunk(p, file, pc->script ? 4 : 0, cfg->limits.load_instructions, err, errcap) != 0 ||
      read_manifest(p, lua_gettop(L), err, errcap) != 0)
    return -1;
  lua_settop(L, 0);
  return 0;
}

int tpp_migrate(tp_plugin *p, char *err, size_t errcap) {
  lua_State *L = p->L;
  lua_rawgeti(L, LUA_REGISTRYINDEX, p->migrations_ref);
  int applied;
  /* no Lua runs, but SQL can run long, and the whole host waits for it */
  p->timed_out = false;
  tpsb_frame frame;
  tpsb_enter(p, p->migration_ms, &frame);
  int rc = tps_migrate(p->db, p->name, L, lua_gettop(L), &applied, err, errcap);
  tpsb_leave(p, &frame);
  if (rc != 0 && p->timed_out)
    snprintf(err, errcap, "migrations ran longer than %lld ms (limits.migration_ms); none was "
             "applied", (long long)p->migration_ms);
  lua_pop(L, 1);
  if (rc == 0 && applied) {
    tp_buf *line = tp_log_begin(TP_LOG_INFO, "migrations applied");
    tp_log_str(line, "tenant", p->tenant_id);
    tp_log_str(line, "plugin", p->name);
    tp_log_int(line, "count", applied);
    tp_log_end(line);
  }
  return rc;
}

void tpp_free(tp_plugin *p) {
  if (p->L) {
    tps_cache_clear(p->L);
    lua_close(p->L);
  }
  for (int i = 0; i < p->nroutes; i++) free_route_doc(&p->routes[i].doc);
  free(p->routes);
  free(p->subscriptions);
  memset(p, 0, sizeof *p);
}

bool tpp_has_handler(tp_plugin *p, lua_State *L, const char *kind, const char *name) {
  int ref = strcmp(kind, "jobs") == 0      ? p->jobs_ref
            : strcmp(kind, "exports") == 0 ? p->exports_ref
                                           : p->subscribe_ref;
  lua_rawgeti(L, LUA_REGISTRYINDEX, ref);
  lua_pushstring(L, name);
  bool has = lua_rawget(L, -2) == LUA_TFUNCTION;
  lua_pop(L, 2);
  return has;
}

/* ---- invoking plugin code */

/* Calls the function beneath nargs arguments on p's stack (msgh is the
** message handler's index) as ctx of inv, under the plugin's budget. The
** store's owner is p for the duration, and restored for a calling peer. */
static int invoke(tp_plugin *p, int ctx, tp_invocation *inv, int nargs, int nres, int msgh_idx) {
  const char *owner = p->db->owner;
  int old_ctx = p->ctx;
  tp_invocation *old_inv = p->inv;
  p->ctx = ctx;
  p->inv = inv;
  p->running = true;
  p->mem_peak = p->mem_bytes;  /* the peak of this invocation, for its recorded run */
  tpsb_arm(p, p->instructions);
  tpsb_frame frame;
  tpsb_enter(p, p->deadline_ms, &frame);
  tps_set_owner(p->db, p->name);
  int rc = lua_pcall(p->L, nargs, nres, msgh_idx);
  tps_set_owner(p->db, owner);
  tpsb_leave(p, &frame);
  p->running = false;
  p->ctx = old_ctx;
  p->inv = old_inv;
  /* a limit passed in a coroutine can be caught by its resumer, which may
  ** then return within one hook step: the invocation failed all the same */
  if (tpsb_killed(p) && rc == LUA_OK) {
    lua_settop(p->L, msgh_idx);  /* whatever it returned */
    lua_pushliteral(p->L, "a limit was exceeded");
    rc = p->mem_exceeded && !p->exceeded && !p->timed_out ? LUA_ERRMEM : LUA_ERRRUN;
  }
  if (rc == LUA_ERRMEM) lua_gc(p->L, LUA_GCCOLLECT);  /* give the next invocation room */
  if (rc == LUA_ERRMEM || tpsb_killed(p)) {
    /* what the killed invocation left in module tables must not reach the
    ** next one: the host loads the plugin afresh before that */
    p->killed = true;
    if (p->services && p->services->killed) p->services->killed(p->services_ud, p);
  }
  return rc;
}

/* A killed invocation's error code and explanation, or NULL for plain errors. */
static const char *limit_hit(tp_plugin *p, int rc, char *msg, size_t cap) {
  /* the host resets the state of a plugin it serves (tp__reset_killed) */
  const char *reset = p->services && p->services->killed
                          ? ", and its Lua state is loaded afresh before its next invocation" : "";
  if (p->timed_out) {
    snprintf(msg, cap, "plugin '%s' ran longer than its deadline of %lld ms (limits.invocation_ms "
             "or plugin_limits.deadline_ms); everything it did was rolled back%s", p->name,
             (long long)p->deadline_ms, reset);
    return "deadline_exceeded";
  }
  if (p->exceeded) {
    snprintf(msg, cap, "plugin '%s' ran more than its budget of %lld instructions; everything "
             "it did was rolled back%s", p->name, (long long)p->budget, reset);
    return "budget_exceeded";
  }
  if (rc == LUA_ERRMEM || p->mem_exceeded) {
    snprintf(msg, cap, "plugin '%s' reached its memory cap of %zu bytes; everything it did was "
             "rolled back%s", p->name, p->mem_limit, reset);
    return "memory_exceeded";
  }
  return NULL;
}

/* ---- calling a handler */

int tpp_check_query(const char *q, size_t n) { return tp_query_each(q, n, NULL, NULL); }

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
  tp_plugin *p = tpa_plugin(L);
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

/* Logs a plugin's failure with where it happened. */
static void log_failure(tp_plugin *p, const char *where, const char *request_id, const char *code,
                        const char *error) {
  tp_buf *line = tp_log_begin(TP_LOG_ERROR, "plugin failed");
  tp_log_str(line, "tenant", p->tenant_id);
  tp_log_str(line, "plugin", p->name);
  tp_log_str(line, "route", where);
  if (request_id) tp_log_str(line, "request_id", request_id);
  if (code) tp_log_str(line, "code", code);
  tp_log_str(line, "error", error ? error : "?");
  tp_log_end(line);
}

static void describe_error(tp_plugin *p, int rc, char *err, size_t errcap);

/* Turns the error at the top of L (from an invocation that returned rc) into
** the response; the error's text goes to inv->error when it asks for it. */
static void handler_error(tp_plugin *p, const tp_route *r, int rc, tp_buf *body, tp_result *res,
                          const char *request_id, tp_invocation *inv) {
  lua_State *L = p->L;
  if (inv && inv->error) describe_error(p, rc, inv->error, inv->error_cap);
  tph_response tmp;  /* tph_error formats into a response; borrow its body */
  memset(&tmp, 0, sizeof tmp);
  tmp.body = *body;
  tp_copy_str(tmp.request_id, sizeof tmp.request_id, request_id);
  char msg[512];
  const char *limit = limit_hit(p, rc, msg, sizeof msg);
  if (limit) {
    log_failure(p, r->label, request_id, limit, msg);
    tph_error(&tmp, 500, limit, "%s", msg);
  } else if (tpa_is_fail(L, -1)) {
    /* the table came from tp.fail, but a plugin that caught it may have
    ** changed its fields before raising it again: take nothing on trust */
    raw_field(L, -1, "status");
    raw_field(L, -2, "code");
    raw_field(L, -3, "message");
    lua_Integer status = lua_isinteger(L, -3) ? lua_tointeger(L, -3) : 500;
    const char *code = lua_type(L, -2) == LUA_TSTRING ? lua_tostring(L, -2) : "error";
    const char *m = lua_type(L, -1) == LUA_TSTRING ? lua_tostring(L, -1) : "";
    if (status < 400 || status > 599) status = 500;
    if (status >= 500) log_failure(p, r->label, request_id, code, m);
    tph_error(&tmp, (int)status, code, "%s", m);
    lua_pop(L, 3);
    if (raw_field(L, -1, "details") != LUA_TNIL) {  /* {"error":{...}} gains details */
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
    log_failure(p, r->label, request_id, NULL, lua_tostring(L, -1));
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
                       const char *request_id, tp_invocation *inv, const char *why) {
  lua_pushfstring(p->L, "handler of %s returned %s", r->label, why);
  handler_error(p, r, LUA_ERRRUN, body, res, request_id, inv);
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
  p->call = call;
  int rc = invoke(p, TP_CTX_HANDLER, inv, 1, 2, base + 1);
  p->call = NULL;
  if (rc != LUA_OK) {
    handler_error(p, r, rc, body, res, call->request_id, inv);
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
      bad_result(p, r, body, res, call->request_id, inv, "a status outside 200-599");
    else if (!lua_istable(L, -1) && !lua_isnil(L, -1))
      bad_result(p, r, body, res, call->request_id, inv, "a body that is not a table");
    else if (lua_isnil(L, -1) ? (tp_buf_adds(body, "{}"), 0)
                              : tpj_encode(L, -1, body, e, sizeof e) != 0) {
      lua_pushfstring(L, "handler of %s returned a body that cannot be JSON: %s", r->label, e);
      handler_error(p, r, LUA_ERRRUN, body, res, call->request_id, inv);
    } else {
      res->status = status;
      res->ok = true;
      res->code[0] = '\0';
    }
  }
  lua_settop(L, base);
}

/* The message of the error at the top of p's stack, for logs and dead letters. */
static void describe_error(tp_plugin *p, int rc, char *err, size_t errcap) {
  lua_State *L = p->L;
  if (limit_hit(p, rc, err, errcap)) return;
  if (tpa_is_fail(L, -1)) {
    raw_field(L, -1, "code");
    raw_field(L, -2, "message");
    snprintf(err, errcap, "%s: %s", lua_tostring(L, -2) ? lua_tostring(L, -2) : "error",
             lua_tostring(L, -1) ? lua_tostring(L, -1) : "");
    lua_pop(L, 2);
  } else {
    snprintf(err, errcap, "%s", lua_tostring(L, -1) ? lua_tostring(L, -1) : "error");
  }
}

int tpp_call_task(tp_plugin *p, const char *kind, const char *name, const char *arg,
                  size_t arg_len, tp_invocation *inv, int ctx, char *err, size_t errcap) {
  lua_State *L = p->L;
  int base = lua_gettop(L);
  int rc = -1;
  lua_rawgeti(L, LUA_REGISTRYINDEX, p->msgh_ref);
  lua_rawgeti(L, LUA_REGISTRYINDEX, strcmp(kind, "jobs") == 0 ? p->jobs_ref : p->subscribe_ref);
  if (lua_getfield(L, -1, name) != LUA_TFUNCTION) {
    snprintf(err, errcap, "plugin '%s' (version %s) has no %s handler '%s'", p->name, p->version,
             strcmp(kind, "jobs") == 0 ? "job" : "event", name);
  } else if (tpj_decode(L, arg, arg_len, err, errcap) != 0) {
    /* err says why; the host wrote arg, so this is a host bug */
  } else {
    /* stack: msgh handlers fn arg */
    int status = invoke(p, ctx, inv, 1, 0, base + 1);
    if (status == LUA_OK) rc = 0;
    else describe_error(p, status, err, errcap);
  }
  lua_settop(L, base);
  return rc;
}

bool tpp_has_setup(const tp_plugin *p) { return p->setup_ref != LUA_NOREF; }

int tpp_setup(tp_plugin *p, tp_invocation *inv, char *err, size_t errcap) {
  lua_State *L = p->L;
  int base = lua_gettop(L);
  lua_rawgeti(L, LUA_REGISTRYINDEX, p->msgh_ref);
  lua_rawgeti(L, LUA_REGISTRYINDEX, p->setup_ref);
  int status = invoke(p, TP_CTX_SETUP, inv, 0, 0, base + 1);
  if (status != LUA_OK) describe_error(p, status, err, errcap);
  lua_settop(L, base);
  return status == LUA_OK ? 0 : -1;
}

/* What copy_results hands to its protected call. */
typedef struct result_copy {
  lua_State *src;
  int first, n;
  char *err;
  size_t errcap;
  int rc;
} result_copy;

static int copy_results_in(lua_State *to) {
  result_copy *c = lua_touserdata(to, 1);
  lua_pop(to, 1);
  for (int i = 0; i < c->n; i++)
    if (tp_lua_copy(c->src, c->first + i, to, c->err, c->errcap) != 0) {
      c->rc = -1;
      return 0;
    }
  return c->n;
}

/* Copies the n values at src[first..] onto to, where the receiver's memory
** cap may refuse them: in a protected call, so that a refusal unwinds to
** here and not past the savepoint and the callee's stack, which the caller
** of tpp_call_export still has to close. Returns n, or -1 with err. */
static int copy_results(lua_State *src, int first, int n, lua_State *to, char *err,
                        size_t errcap) {
  result_copy c = {src, first, n, err, errcap, 0};
  int top = lua_gettop(to);
  lua_pushcfunction(to, copy_results_in);
  lua_pushlightuserdata(to, &c);
  if (lua_pcall(to, 1, LUA_MULTRET, 0) != LUA_OK) {
    snprintf(err, errcap, "the results do not fit under plugin '%s''s memory cap of %zu bytes",
             tpa_plugin(to)->name, tpa_plugin(to)->mem_limit);
    tpa_plugin(to)->mem_exceeded = true;
    c.rc = -1;
  }
  if (c.rc != 0) {
    lua_settop(to, top);
    return -1;
  }
  return n;
}

int tpp_call_export(tp_plugin *callee, const char *name, lua_State *from, int first, int nargs,
                    tp_invocation *inv, int ctx, char *err, size_t errcap) {
  lua_State *L = callee->L;
  int base = lua_gettop(L);
  lua_rawgeti(L, LUA_REGISTRYINDEX, callee->msgh_ref);
  lua_rawgeti(L, LUA_REGISTRYINDEX, callee->exports_ref);
  if (lua_getfield(L, -1, name) != LUA_TFUNCTION) {
    snprintf(err, errcap, "plugin '%s' exports no function '%s'", callee->name, name);
    lua_settop(L, base);
    return -1;
  }
  lua_remove(L, -2);
  if (!lua_checkstack(L, nargs + 8)) {
    snprintf(err, errcap, "too many arguments");
    lua_settop(L, base);
    return -1;
  }
  /* the callee is not running, so its cap refuses nothing while the copy is
  ** made: it is checked once the copy is there, and the copy is the caller's
  ** work, counted without raising (a savepoint is open; the hook or the next
  ** charge ends the caller if need be) */
  size_t before = callee->mem_bytes;
  for (int i = 0; i < nargs; i++)
    if (tp_lua_copy(from, first + i, L, err, errcap) != 0) {
      lua_settop(L, base);
      return -1;
    }
  if (callee->mem_bytes > before)  /* a collection during the copy may leave it lower */
    tpa_plugin(from)->used += (int64_t)((callee->mem_bytes - before) / TPSB_COPY_BYTES);
  if (callee->mem_limit && callee->mem_bytes > callee->mem_limit) {
    snprintf(err, errcap, "the arguments do not fit under plugin '%s''s memory cap of %zu "
             "bytes", callee->name, callee->mem_limit);
    lua_settop(L, base);
    lua_gc(L, LUA_GCCOLLECT);
    return -1;
  }
  /* stack: msgh fn args... */
  const char *old_caller = callee->caller;  /* restored: the callee may be called again later */
  callee->caller = tpa_plugin(from)->name;
  int status = invoke(callee, ctx, inv, nargs, LUA_MULTRET, base + 1);
  callee->caller = old_caller;
  int nres = -1;
  if (status != LUA_OK) {
    /* a tp.fail's details can be large too: copied like results */
    if (!limit_hit(callee, status, err, errcap) && tpa_is_fail(L, -1) &&
        copy_results(L, lua_gettop(L), 1, from, err, errcap) == 1) {
      tpa_mark_fail(from);  /* the caller raises it as its own tp.fail */
      nres = -2;
    } else if (!tpsb_killed(callee) && status != LUA_ERRMEM) {
      describe_error(callee, status, err, errcap);
    }
  } else {
    nres = lua_gettop(L) - base - 1;
    tp_plugin *caller = tpa_plugin(from);
    size_t had = caller->mem_bytes;
    if (!lua_checkstack(from, nres + 8)) {
      snprintf(err, errcap, "too many results");
      nres = -1;
    }
    /* the caller runs: its cap refuses the copy as it is made */
    if (nres > 0) nres = copy_results(L, base + 2, nres, from, err, errcap);
    if (caller->mem_bytes > had)
      caller->used += (int64_t)((caller->mem_bytes - had) / TPSB_COPY_BYTES);
  }
  lua_settop(L, base);
  return nres;
}
