/*
** plugin.c - load a plugin into its own Lua state and read its manifest.
*/
#include "lua/plugin.h"

#include <errno.h>
#include <lauxlib.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "lua/api.h"
#include "lua/req.h"
#include "lua/routedoc.h"
#include "base/clock.h"
#include "base/json.h"
#include "base/log.h"
#include "base/suggest.h"
#include "base/luacopy.h"
#include "lua/sandbox.h"
#include "base/url.h"

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
  if (tpst_rawfield(L, idx, key) != LUA_TSTRING || lua_rawlen(L, -1) == 0 ||
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

/* The keys a route may have; an unknown one is most likely a typo of one of
** them (summery, respones), which would otherwise be dropped without a word. */
static const char *const ROUTE_KEYS[] = {
    "method", "path", "auth", "handler", "personal", "rate_class", "summary", "description",
    "query", "headers", "body", "response", "status", "errors", "idempotent", "csv", NULL};

static int check_route_keys(lua_State *L, int t, int i, char *err, size_t errcap) {
  lua_pushnil(L);
  while (lua_next(L, t)) {
    lua_pop(L, 1);
    const char *k = lua_type(L, -1) == LUA_TSTRING ? lua_tostring(L, -1) : NULL;
    bool ok = k && strncmp(k, "x_", 2) == 0;  /* x_*: the plugin's own notes, ignored */
    for (const char *const *n = ROUTE_KEYS; k && !ok && *n; n++) ok = strcmp(k, *n) == 0;
    if (!ok) {
      char hint[80];
      snprintf(err, errcap, "routes[%d]: unknown route field '%s'%s (a plugin's own notes go in "
               "x_ fields)", i, k ? k : "?", k ? tp_suggest_hint(k, ROUTE_KEYS, hint, sizeof hint) : "");
      lua_pop(L, 1);
      return -1;
    }
  }
  return 0;
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
  if (check_route_keys(L, t, i, err, errcap) != 0) return -1;
  const char *method = tpst_rawfield(L, t, "method") == LUA_TSTRING ? lua_tostring(L, -1) : NULL;
  const char *path = tpst_rawfield(L, t, "path") == LUA_TSTRING ? lua_tostring(L, -1) : NULL;
  const char *auth = tpst_rawfield(L, t, "auth") == LUA_TSTRING ? lua_tostring(L, -1) : "user";
  int personal = tpst_rawfield(L, t, "personal");
  r->personal = personal == LUA_TBOOLEAN && lua_toboolean(L, -1);
  int idempotent = tpst_rawfield(L, t, "idempotent");
  r->idempotent = idempotent == LUA_TBOOLEAN && lua_toboolean(L, -1);
  int csv = tpst_rawfield(L, t, "csv");
  r->csv = csv == LUA_TBOOLEAN && lua_toboolean(L, -1);
  int rclass = tpst_rawfield(L, t, "rate_class");
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
  else if (idempotent != LUA_TNIL && idempotent != LUA_TBOOLEAN)
    snprintf(err, errcap, "routes[%d].idempotent must be true or false", i);
  else if (r->idempotent && (strcmp(method, "GET") == 0 || strcmp(method, "HEAD") == 0))
    snprintf(err, errcap, "routes[%d].idempotent: a %s is idempotent already; only routes that "
             "change something take an Idempotency-Key", i, method);
  else if (cls < 0 || cls == TPRL_ADMIN)
    snprintf(err, errcap, "routes[%d].rate_class must be one of %s", i, tprl_route_classes());
  else if (rclass != LUA_TNIL && strcmp(auth, "admin") == 0)
    snprintf(err, errcap, "routes[%d].rate_class: admin routes are all of class admin", i);
  else if (tpst_rawfield(L, t, "handler") != LUA_TFUNCTION)
    snprintf(err, errcap, "routes[%d].handler must be a function", i);
  else if (tprd_read(L, t, i, &r->doc, err, errcap) == 0) {
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
  if (tpst_rawfield(L, manifest, "routes") == LUA_TNIL) {
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
** into names/n when given (subscriptions and exports are looked up by the
** host: a name list is a few string compares, a look into the plugin's
** state hundreds of instructions, for every plugin at every tp.exporters). */
static int read_handlers(tp_plugin *p, int manifest, const char *kind, int *ref,
                         char (**names)[TPQ_MAX_NAME + 1], int *n, char *err, size_t errcap) {
  lua_State *L = p->L;
  int t = tpst_rawfield(L, manifest, kind);
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
    if (!name || len == 0 || len > TPQ_MAX_NAME || strlen(name) != len) {
      snprintf(err, errcap, "%s: names must be strings of 1-%d bytes", kind, TPQ_MAX_NAME);
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
      tp_copy_str((*names)[(*n)++], TPQ_MAX_NAME + 1, lua_tostring(L, -2));
      lua_pop(L, 1);
    }
  }
  *ref = luaL_ref(L, LUA_REGISTRYINDEX);
  return 0;
}

static int check_manifest_keys(lua_State *L, int manifest, char *err, size_t errcap) {
  static const char *const known[] = {"name", "version", "description", "migrations", "routes",
                                      "jobs", "personal_jobs", "subscribe", "exports", "setup", "track",
                                      NULL};
  lua_pushnil(L);
  while (lua_next(L, manifest)) {
    lua_pop(L, 1);
    const char *k = lua_type(L, -1) == LUA_TSTRING ? lua_tostring(L, -1) : "?";
    bool ok = false;
    for (const char *const *n = known; *n; n++) ok |= strcmp(k, *n) == 0;
    if (!ok) {
      char hint[80];
      snprintf(err, errcap, "unknown manifest field '%s'%s (known: name, version, description, "
               "migrations, routes, jobs, personal_jobs, subscribe, exports, setup, track)", k,
               tp_suggest_hint(k, known, hint, sizeof hint));
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
  if (rc != LUA_OK && tpst_is_fail(L, -1)) {  /* tp.fail at load: a config check, say */
    tpst_rawfield(L, -1, "code");
    tpst_rawfield(L, -2, "message");
    snprintf(err, errcap, "%s: %s", lua_type(L, -2) == LUA_TSTRING ? lua_tostring(L, -2) : "error",
             lua_type(L, -1) == LUA_TSTRING ? lua_tostring(L, -1) : "");
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

/* personal_jobs: names of jobs the plugin has, kept as a set for the runner. */
static int read_personal_jobs(tp_plugin *p, int manifest, char *err, size_t errcap) {
  lua_State *L = p->L;
  p->personal_jobs_ref = LUA_NOREF;
  int t = tpst_rawfield(L, manifest, "personal_jobs");
  if (t == LUA_TNIL) {
    lua_pop(L, 1);
    return 0;
  }
  int list = lua_gettop(L);
  if (t != LUA_TTABLE) {
    snprintf(err, errcap, "manifest field 'personal_jobs' must be a list of job names");
    lua_pop(L, 1);
    return -1;
  }
  lua_newtable(L);
  lua_rawgeti(L, LUA_REGISTRYINDEX, p->jobs_ref);
  int set = list + 1, jobs = list + 2;
  lua_Integer n = (lua_Integer)lua_rawlen(L, list);
  for (lua_Integer i = 1; i <= n; i++) {
    const char *name = lua_rawgeti(L, list, i) == LUA_TSTRING ? lua_tostring(L, -1) : NULL;
    if (!name || lua_getfield(L, jobs, name) != LUA_TFUNCTION) {
      snprintf(err, errcap, "personal_jobs[%lld] must name one of the plugin's jobs", (long long)i);
      lua_settop(L, list - 1);
      return -1;
    }
    lua_pop(L, 1);
    lua_pushboolean(L, 1);
    lua_rawset(L, set);  /* set[name] = true, the name popped with it */
  }
  lua_pop(L, 1);  /* jobs */
  p->personal_jobs_ref = luaL_ref(L, LUA_REGISTRYINDEX);
  lua_pop(L, 1);  /* the list */
  return 0;
}

bool tpp_job_personal(tp_plugin *p, const char *name) {
  if (p->personal_jobs_ref == LUA_NOREF || !p->L) return false;
  lua_rawgeti(p->L, LUA_REGISTRYINDEX, p->personal_jobs_ref);
  bool personal = lua_getfield(p->L, -1, name) == LUA_TBOOLEAN;
  lua_pop(p->L, 2);
  return personal;
}

/* manifest.track: the events the mini-program may report as "<plugin>.<name>"
** (host/track.c), 1-32 names of [a-z0-9_], each 1-32 bytes. */
static int read_track(tp_plugin *p, int manifest, char *err, size_t errcap) {
  lua_State *L = p->L;
  int t = tpst_rawfield(L, manifest, "track");
  int rc = 0;
  int n = t == LUA_TTABLE ? (int)lua_rawlen(L, -1) : 0;
  if (t != LUA_TNIL && (t != LUA_TTABLE || n < 1 || n > 32)) {
    snprintf(err, errcap, "manifest field 'track' must be a list of 1-32 event names");
    rc = -1;
  }
  if (rc == 0 && n > 0) {
    p->track_kinds = calloc((size_t)n, sizeof *p->track_kinds);
    for (int i = 1; i <= n && rc == 0; i++) {
      size_t len = 0;
      const char *s = lua_rawgeti(L, -1, i) == LUA_TSTRING ? lua_tolstring(L, -1, &len) : NULL;
      bool ok = s && len >= 1 && len <= 32;
      for (size_t j = 0; ok && j < len; j++)
        ok = (s[j] >= 'a' && s[j] <= 'z') || (s[j] >= '0' && s[j] <= '9') || s[j] == '_';
      if (!ok) {
        snprintf(err, errcap, "track[%d] must be an event name: 1-32 bytes of a-z, 0-9 and _", i);
        rc = -1;
      } else {
        tp_copy_str(p->track_kinds[p->ntrack_kinds++], sizeof *p->track_kinds, s);
      }
      lua_pop(L, 1);
    }
  }
  lua_pop(L, 1);
  return rc;
}

/* Whether p declares the event name (manifest.track). */
bool tpp_tracks(const tp_plugin *p, const char *name) {
  for (int i = 0; i < p->ntrack_kinds; i++)
    if (strcmp(p->track_kinds[i], name) == 0) return true;
  return false;
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
      read_handlers(p, manifest, "exports", &p->exports_ref, &p->export_names, &p->nexports, err,
                    errcap) != 0 ||
      read_track(p, manifest, err, errcap) != 0)
    return -1;
  if (read_personal_jobs(p, manifest, err, errcap) != 0) return -1;
  int t = tpst_rawfield(L, manifest, "setup");
  if (t != LUA_TNIL && t != LUA_TFUNCTION) {
    snprintf(err, errcap, "manifest field 'setup' must be a function");
    return -1;
  }
  p->setup_ref = t == LUA_TNIL ? LUA_NOREF : luaL_ref(L, LUA_REGISTRYINDEX);
  if (t == LUA_TNIL) lua_pop(L, 1);
  t = tpst_rawfield(L, manifest, "migrations");
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
  p->setup_ref = p->personal_jobs_ref = LUA_NOREF;
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
  lua_pushcfunction(L, tpst_msgh);
  p->msgh_ref = luaL_ref(L, LUA_REGISTRYINDEX);
  p->req_mt_ref = tpreq_metatable(L);
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
  tpsb_release(p);
  for (int i = 0; i < p->nroutes; i++) tprd_free(&p->routes[i].doc);
  free(p->routes);
  free(p->subscriptions);
  free(p->export_names);
  free(p->track_kinds);
  tp_buf_free(&p->view_text);
  memset(p, 0, sizeof *p);
}
