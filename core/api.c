/*
** api.c - the host API for plugins, declared once.
*/
#include "api.h"

#include <lauxlib.h>
#include <lualib.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "clock.h"
#include "crypto.h"
#include "json.h"
#include "log.h"
#include "alias.h"
#include "sandbox.h"
#include "token.h"
#include "tzone.h"

#define FAIL_MT "tp.fail"

tp_plugin *tpa_plugin(lua_State *L) { return *(tp_plugin **)lua_getextraspace(L); }

static tp_invocation *invocation(lua_State *L) {
  tp_invocation *inv = tpa_plugin(L)->inv;
  if (!inv) luaL_error(L, "no invocation in progress");
  return inv;
}

/* ---- time */

static int64_t now_ms(lua_State *L) {
  tp_plugin *p = tpa_plugin(L);
  return p->inv ? p->inv->now_ms : tp_clock_wall_ms();
}

static int l_now(lua_State *L) {
  lua_pushinteger(L, now_ms(L) / 1000);
  return 1;
}

static int l_now_ms(lua_State *L) {
  lua_pushinteger(L, now_ms(L));
  return 1;
}

static int l_localtime(lua_State *L) {
  tp_plugin *p = tpa_plugin(L);
  lua_Integer t = luaL_optinteger(L, 1, now_ms(L) / 1000);
  struct tm tm;
  long off;
  tp_tz_local(p->timezone, t, &tm, &off);
  lua_createtable(L, 0, 9);
  lua_pushinteger(L, tm.tm_year + 1900); lua_setfield(L, -2, "year");
  lua_pushinteger(L, tm.tm_mon + 1);     lua_setfield(L, -2, "month");
  lua_pushinteger(L, tm.tm_mday);        lua_setfield(L, -2, "day");
  lua_pushinteger(L, tm.tm_hour);        lua_setfield(L, -2, "hour");
  lua_pushinteger(L, tm.tm_min);         lua_setfield(L, -2, "min");
  lua_pushinteger(L, tm.tm_sec);         lua_setfield(L, -2, "sec");
  lua_pushinteger(L, tm.tm_wday == 0 ? 7 : tm.tm_wday); lua_setfield(L, -2, "wday");
  lua_pushinteger(L, tm.tm_yday + 1);    lua_setfield(L, -2, "yday");
  lua_pushinteger(L, off);               lua_setfield(L, -2, "utc_offset");
  return 1;
}

static int l_timezone(lua_State *L) {
  lua_pushstring(L, tpa_plugin(L)->timezone);
  return 1;
}

/* ---- chance: xoshiro256**, seeded per invocation and logged with it */

static uint64_t rotl(uint64_t x, int k) { return (x << k) | (x >> (64 - k)); }

static uint64_t next_random(tp_invocation *inv) {
  uint64_t *s = inv->rng;
  uint64_t result = rotl(s[1] * 5, 7) * 9, t = s[1] << 17;
  s[2] ^= s[0];
  s[3] ^= s[1];
  s[1] ^= s[2];
  s[0] ^= s[3];
  s[2] ^= t;
  s[3] = rotl(s[3], 45);
  return result;
}

void tpa_seed(tp_invocation *inv, uint64_t seed) {
  inv->seed = seed;
  for (int i = 0; i < 4; i++) {  /* splitmix64 expands the seed */
    uint64_t z = (seed += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    inv->rng[i] = z ^ (z >> 31);
  }
}

/* random() -> float in [0,1); random(n) -> [1,n]; random(m, n) -> [m,n] */
static int l_random(lua_State *L) {
  tp_invocation *inv = invocation(L);
  uint64_t r = next_random(inv);
  inv->draws++;
  int n = lua_gettop(L);
  if (n == 0) {
    lua_pushnumber(L, (double)(r >> 11) * 0x1.0p-53);
    return 1;
  }
  lua_Integer lo = n == 1 ? 1 : luaL_checkinteger(L, 1);
  lua_Integer hi = luaL_checkinteger(L, n == 1 ? 1 : 2);
  luaL_argcheck(L, lo <= hi, n, "interval is empty");
  uint64_t span = (uint64_t)hi - (uint64_t)lo + 1;
  if (span == 0) {
    lua_pushinteger(L, (lua_Integer)r);
    return 1;
  }
  uint64_t limit = UINT64_MAX - UINT64_MAX % span;  /* reject the biased tail */
  while (r >= limit) r = next_random(inv);
  lua_pushinteger(L, (lua_Integer)((uint64_t)lo + r % span));
  return 1;
}

static int l_seed(lua_State *L) {
  lua_pushinteger(L, (lua_Integer)invocation(L)->seed);
  return 1;
}

/* ---- errors a handler means to send */

/* tp.fail(status, code, message [, details]): rolls the request back and
** answers {"error":{"code":code,"message":message,"details":details}}. */
static int l_fail(lua_State *L) {
  lua_Integer status = luaL_checkinteger(L, 1);
  luaL_argcheck(L, status >= 400 && status <= 599, 1, "status must be 400-599");
  const char *code = luaL_checkstring(L, 2);
  luaL_argcheck(L, strlen(code) > 0 && strlen(code) < 40, 2, "code must be 1-39 bytes");
  luaL_checkstring(L, 3);
  /* read before the error table is pushed: without details, slot 4 would
  ** be that table itself, and the error its own details (a cycle) */
  bool has_details = !lua_isnoneornil(L, 4);
  lua_settop(L, 4);
  lua_createtable(L, 0, 4);
  lua_pushinteger(L, status); lua_setfield(L, -2, "status");
  lua_pushvalue(L, 2);        lua_setfield(L, -2, "code");
  lua_pushvalue(L, 3);        lua_setfield(L, -2, "message");
  if (has_details) {
    lua_pushvalue(L, 4);
    lua_setfield(L, -2, "details");
  }
  luaL_setmetatable(L, FAIL_MT);
  return lua_error(L);
}

void tpa_mark_fail(lua_State *L) { luaL_setmetatable(L, FAIL_MT); }

int tpa_fail(lua_State *L, int status, const char *code, const char *fmt, ...) {
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

int tpa_is_fail(lua_State *L, int idx) {
  if (!lua_istable(L, idx) || !lua_getmetatable(L, idx)) return 0;
  luaL_getmetatable(L, FAIL_MT);
  int is = lua_rawequal(L, -1, -2);
  lua_pop(L, 2);
  return is;
}

/* ---- logging */

static int l_log(lua_State *L) {
  static const char *const levels[] = {"debug", "info", "warn", "error", NULL};
  int level = luaL_checkoption(L, 1, NULL, levels);
  const char *msg = luaL_checkstring(L, 2);
  tp_plugin *p = tpa_plugin(L);
  tp_buf *line = tp_log_begin((tp_log_level)level, msg);
  if (!line) return 0;
  tp_log_str(line, "tenant", p->tenant_id);
  tp_log_str(line, "plugin", p->name);
  if (p->inv) tp_log_str(line, "request_id", p->inv->request_id);
  if (lua_istable(L, 3)) {
    tp_buf fields;
    tp_buf_init(&fields);
    char err[128];
    if (tpj_encode(L, 3, &fields, err, sizeof err) == 0) {
      tp_buf_adds(line, ",\"fields\":");
      tp_buf_add(line, fields.data, fields.len);
    }
    tp_buf_free(&fields);
  }
  tp_log_end(line);
  return 0;
}

/* print() is kept for habit's sake: it logs at debug level. */
static int l_print(lua_State *L) {
  luaL_Buffer b;
  luaL_buffinit(L, &b);
  int n = lua_gettop(L);
  for (int i = 1; i <= n; i++) {
    if (i > 1) luaL_addchar(&b, '\t');
    luaL_tolstring(L, i, NULL);
    luaL_addvalue(&b);
  }
  luaL_pushresult(&b);
  lua_pushcfunction(L, l_log);
  lua_pushliteral(L, "debug");
  lua_pushvalue(L, -3);
  lua_call(L, 2, 0);
  return 0;
}

/* ---- the store */

typedef enum { RUN_EXEC, RUN_QUERY, RUN_ONE } run_mode;

/* Reports a failed statement; the statement is reset first so that nothing
** stays active inside the transaction. */
static int db_fail(lua_State *L, sqlite3_stmt *st, bool cached, const char *fmt, const char *msg) {
  if (st) {
    sqlite3_reset(st);
    sqlite3_clear_bindings(st);
    if (!cached) sqlite3_finalize(st);
  }
  tpsb_charge(L, 0);  /* interrupted for a limit: raise that, for good */
  return luaL_error(L, fmt, msg);
}

static int db_run(lua_State *L, run_mode mode) {
  tp_plugin *p = tpa_plugin(L);
  luaL_checkstring(L, 1);
  int nargs = lua_gettop(L) - 1;
  bool cached;
  sqlite3_stmt *st = tps_prepare_cached(p->db, L, 1, &cached);
  if (!st) {
    char msg[512];
    if (sqlite3_errcode(p->db->db) != SQLITE_OK) tps_errmsg(p->db, msg, sizeof msg);
    else snprintf(msg, sizeof msg, "expected exactly one SQL statement");
    return db_fail(L, NULL, false, "tp.db: %s", msg);
  }
  char err[256];
  if (tps_bind_lua(L, st, 2, nargs, err, sizeof err) != 0)
    return db_fail(L, st, cached, "tp.db: %s", err);
  int rc, nrows = 0;
  if (mode == RUN_QUERY) {
    lua_newtable(L);
    tpj_mark_array(L, -1);
  }
  p->sql_writing = !sqlite3_stmt_readonly(st);
  while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
    if (mode == RUN_EXEC) continue;
    tps_push_row(L, st);
    if (mode == RUN_ONE) {
      rc = SQLITE_DONE;  /* the first row is the answer; the rest is not read */
      break;
    }
    lua_rawseti(L, -2, ++nrows);
  }
  p->sql_writing = false;
  if (rc != SQLITE_DONE) {
    char msg[512];
    return db_fail(L, st, cached, "tp.db: %s", tps_errmsg(p->db, msg, sizeof msg));
  }
  sqlite3_reset(st);
  sqlite3_clear_bindings(st);
  if (!cached) sqlite3_finalize(st);
  if (mode == RUN_ONE) {
    if (lua_gettop(L) == nargs + 1) lua_pushnil(L);  /* no row */
    return 1;
  }
  if (mode == RUN_QUERY) return 1;
  lua_pushinteger(L, sqlite3_changes64(p->db->db));
  lua_pushinteger(L, sqlite3_last_insert_rowid(p->db->db));
  return 2;
}

static int l_db_exec(lua_State *L) { return db_run(L, RUN_EXEC); }
static int l_db_query(lua_State *L) { return db_run(L, RUN_QUERY); }
static int l_db_one(lua_State *L) { return db_run(L, RUN_ONE); }

/* ---- jobs, events and calls between plugins: services of the host */

static tp_plugin *services_of(lua_State *L) {
  tp_plugin *p = tpa_plugin(L);
  if (!p->services) luaL_error(L, "the host offers no scheduler here");
  return p;
}

/* Encodes the value at idx (nil: an empty object) as JSON into out. */
static void encode_arg(lua_State *L, int idx, const char *what, tp_buf *out) {
  char err[256];
  if (lua_isnoneornil(L, idx)) tp_buf_adds(out, "{}");
  else if (tpj_encode(L, idx, out, err, sizeof err) != 0) {
    tp_buf_free(out);
    luaL_error(L, "%s must be plain data that JSON can hold: %s", what, err);
  }
}

static int64_t seconds_field(lua_State *L, int t, const char *key, double min) {
  if (lua_getfield(L, t, key) == LUA_TNIL) {
    lua_pop(L, 1);
    return -1;
  }
  int ok;
  double v = lua_tonumberx(L, -1, &ok);
  if (!ok || !isfinite(v) || v < min || v > 1e11)
    luaL_error(L, "tp.jobs.schedule: when.%s must be a number of seconds >= %d", key, (int)min);
  lua_pop(L, 1);
  return (int64_t)llround(v * 1000);
}

/* tp.jobs.schedule(name, payload, when) -> id
** when: seconds from now, or {at = epoch | after = seconds [, every = seconds]
** [, key = string] [, max_attempts = n]} */
static int l_jobs_schedule(lua_State *L) {
  tp_plugin *p = services_of(L);
  const char *name = luaL_checkstring(L, 1);
  if (!tpp_has_handler(p, L, "jobs", name))
    return luaL_error(L, "tp.jobs.schedule: plugin '%s' has no job '%s' (declare it in the "
                      "manifest's jobs table)", p->name, name);
  int64_t now = p->inv->now_ms;
  tp_job_spec spec = {.name = name};
  if (lua_isnumber(L, 3)) {
    lua_createtable(L, 0, 1);
    lua_pushvalue(L, 3);
    lua_setfield(L, -2, "after");
    lua_replace(L, 3);
  }
  luaL_checktype(L, 3, LUA_TTABLE);
  int64_t at = seconds_field(L, 3, "at", 0), after = seconds_field(L, 3, "after", 0);
  spec.every_ms = seconds_field(L, 3, "every", 1);
  if (spec.every_ms < 0) spec.every_ms = 0;
  if (at >= 0 && after >= 0) return luaL_error(L, "tp.jobs.schedule: give when.at or when.after, not both");
  if (at < 0 && after < 0 && !spec.every_ms)
    return luaL_error(L, "tp.jobs.schedule: when needs at (epoch seconds), after (seconds) or every");
  spec.due_ms = at >= 0 ? at : now + (after >= 0 ? after : spec.every_ms);
  if (lua_getfield(L, 3, "key") != LUA_TNIL) {
    size_t n;
    spec.key = lua_tolstring(L, -1, &n);
    if (lua_type(L, -1) != LUA_TSTRING || n == 0 || n > 128)
      return luaL_error(L, "tp.jobs.schedule: when.key must be a string of 1-128 bytes");
  }
  if (lua_getfield(L, 3, "max_attempts") != LUA_TNIL) {
    spec.max_attempts = lua_tointeger(L, -1);
    if (!lua_isinteger(L, -1) || spec.max_attempts < 1 || spec.max_attempts > 1000)
      return luaL_error(L, "tp.jobs.schedule: when.max_attempts must be an integer 1-1000");
  }
  tp_buf payload;
  tp_buf_init(&payload);
  encode_arg(L, 2, "tp.jobs.schedule: the payload", &payload);
  spec.payload = payload.data;
  spec.payload_len = payload.len;
  int64_t id;
  char err[256];
  int rc = p->services->schedule(p->services_ud, p, &spec, &id, err, sizeof err);
  tp_buf_free(&payload);
  if (rc != 0) return luaL_error(L, "tp.jobs.schedule: %s", err);
  lua_pushinteger(L, id);
  return 1;
}

/* tp.jobs.cancel(id | key) -> true if a pending job was cancelled */
static int l_jobs_cancel(lua_State *L) {
  tp_plugin *p = services_of(L);
  int64_t id = 0;
  const char *key = NULL;
  if (lua_isinteger(L, 1)) id = lua_tointeger(L, 1);
  else key = luaL_checkstring(L, 1);
  int n;
  char err[256];
  if (p->services->cancel(p->services_ud, p, id, key, &n, err, sizeof err) != 0)
    return luaL_error(L, "tp.jobs.cancel: %s", err);
  lua_pushboolean(L, n > 0);
  return 1;
}

static bool valid_event_name(const char *s, size_t n) {
  if (n == 0 || n > TPP_MAX_NAME) return false;
  for (size_t i = 0; i < n; i++)
    if (!((s[i] >= 'a' && s[i] <= 'z') || (s[i] >= '0' && s[i] <= '9') || s[i] == '_' ||
          s[i] == '.' || s[i] == '-'))
      return false;
  return true;
}

/* tp.events.emit(name, data) -> number of subscribers it will reach */
static int l_events_emit(lua_State *L) {
  tp_plugin *p = services_of(L);
  size_t n;
  const char *name = luaL_checklstring(L, 1, &n);
  if (!valid_event_name(name, n))
    return luaL_error(L, "tp.events.emit: event names are 1-%d characters of a-z 0-9 _ . -",
                      TPP_MAX_NAME);
  tp_buf data;
  tp_buf_init(&data);
  encode_arg(L, 2, "tp.events.emit: the data", &data);
  int count;
  char err[256];
  int rc = p->services->emit(p->services_ud, p, name, data.data, data.len, &count, err, sizeof err);
  tp_buf_free(&data);
  if (rc != 0) return luaL_error(L, "tp.events.emit: %s", err);
  lua_pushinteger(L, count);
  return 1;
}

/* tp.call(plugin, name, ...) -> results of plugin's export name */
static int l_call(lua_State *L) {
  tp_plugin *p = services_of(L);
  const char *peer_name = luaL_checkstring(L, 1);
  const char *fn = luaL_checkstring(L, 2);
  tp_plugin *peer = p->services->peer(p->services_ud, p, peer_name);
  if (!peer) return luaL_error(L, "tp.call: no plugin '%s' is enabled for this tenant", peer_name);
  if (peer->running)
    return luaL_error(L, "tp.call: plugin '%s' is already running further up this call chain "
                      "(calls between plugins cannot cycle)", peer_name);
  if (peer->killed)  /* its state may hold what the killed call left: not until it is fresh */
    return luaL_error(L, "tp.call: plugin '%s' was stopped by a limit earlier in this request; "
                      "it serves again once its state is loaded afresh, after the request",
                      peer_name);
  if (tps_call_begin(p->db) != 0)
    return luaL_error(L, "tp.call: cannot open a savepoint: %s", sqlite3_errmsg(p->db->db));
  int nargs = lua_gettop(L) - 2;
  char err[512];
  int nres = tpp_call_export(peer, fn, L, 3, nargs, p->inv, p->ctx, err, sizeof err);
  tps_call_end(p->db, nres >= 0);  /* a failed callee leaves nothing behind */
  if (nres == -2) return lua_error(L);  /* its tp.fail, as the caller's own */
  if (nres < 0) return luaL_error(L, "tp.call %s.%s: %s", peer_name, fn, err);
  return nres;
}

/* tp.exporters(name) -> the names of the plugins serving this tenant that
** export name, in name order (the identity plugin asks who re-keys on a merge). */
static int l_exporters(lua_State *L) {
  tp_plugin *p = services_of(L);
  const char *name = luaL_checkstring(L, 1);
  lua_newtable(L);
  tpj_mark_array(L, -1);
  int n = 0;
  tp_plugin *peer;
  for (int i = 0; (peer = p->services->peer_at(p->services_ud, i)) != NULL; i++)
    if (tpp_has_handler(peer, peer == p ? L : peer->L, "exports", name)) {
      lua_pushstring(L, peer->name);
      lua_rawseti(L, -2, ++n);
    }
  return 1;
}

/* ---- members: the identity plugin's tokens and aliases (alias.h) */

/* The one plugin a brand trusts with identity: it alone mints tokens and
** merges or erases members. A brand replaces it by putting its own plugin of
** that name first on plugin_dirs. */
#define IDENTITY_PLUGIN "members"

/* Runs stmt as the host: _tp_aliases is not the plugin's to touch directly
** (the authorizer would refuse it, also when SQLite re-prepares the lookup). */
#define AS_HOST(L, stmt)                          \
  do {                                            \
    tps_db *db_ = tpa_plugin(L)->db;              \
    const char *owner_ = db_->owner;              \
    tps_set_owner(db_, NULL);                     \
    stmt;                                         \
    tps_set_owner(db_, owner_);                   \
  } while (0)

static tpal_table *aliases_for(lua_State *L, const char *what) {
  tp_plugin *p = services_of(L);
  if (what && strcmp(p->name, IDENTITY_PLUGIN) != 0)
    luaL_error(L, "%s: only the identity plugin ('" IDENTITY_PLUGIN "') may do this", what);
  return p->services->aliases(p->services_ud);
}

static const char *check_user(lua_State *L, int idx, const char *what) {
  size_t n;
  const char *s = luaL_checklstring(L, idx, &n);
  if (!tpt_valid_user_id(s, n))
    luaL_error(L, "%s: not a user id (1-64 bytes of A-Z a-z 0-9 _ - : @)", what);
  return s;
}

static int l_auth_token(lua_State *L) {
  tp_plugin *p = tpa_plugin(L);
  aliases_for(L, "tp.auth.token");
  const char *user = check_user(L, 1, "tp.auth.token");
  lua_Integer ttl = luaL_optinteger(L, 2, 7 * 86400);
  luaL_argcheck(L, ttl >= 60 && ttl <= 90 * 86400, 2, "seconds must be 60 to 7776000 (90 days)");
  tp_buf out = {0};
  int64_t exp = tp_clock_wall_ms() / 1000 + (int64_t)ttl;
  if (tpt_mint(p->token_secret, p->token_secret_len, p->tenant_id, user, exp, &out) != 0) {
    tp_buf_free(&out);
    return luaL_error(L, "tp.auth.token: cannot mint a token for this tenant");
  }
  lua_pushlstring(L, out.data, out.len);
  tp_buf_free(&out);
  return 1;
}

static int l_auth_alias(lua_State *L) {
  tpal_table *a = aliases_for(L, "tp.auth.alias");
  const char *from = check_user(L, 1, "tp.auth.alias");
  const char *into = check_user(L, 2, "tp.auth.alias");
  char err[256];
  int rc;
  AS_HOST(L, rc = tpal_set(a, from, into, now_ms(L), err, sizeof err));
  if (rc != 0) return luaL_error(L, "tp.auth.alias: %s", err);
  return 0;
}

static int l_auth_erase(lua_State *L) {
  tpal_table *a = aliases_for(L, "tp.auth.erase");
  const char *user = check_user(L, 1, "tp.auth.erase");
  char err[256];
  int rc;
  AS_HOST(L, rc = tpal_set(a, user, NULL, now_ms(L), err, sizeof err));
  if (rc != 0) return luaL_error(L, "tp.auth.erase: %s", err);
  return 0;
}

static int l_auth_unalias(lua_State *L) {
  tpal_table *a = aliases_for(L, "tp.auth.unalias");
  const char *from = check_user(L, 1, "tp.auth.unalias");
  char err[256];
  int removed, rc;
  AS_HOST(L, rc = tpal_unset(a, from, &removed, err, sizeof err));
  if (rc != 0) return luaL_error(L, "tp.auth.unalias: %s", err);
  lua_pushboolean(L, removed);
  return 1;
}

static int l_auth_resolve(lua_State *L) {
  tpal_table *a = aliases_for(L, NULL);
  const char *user = check_user(L, 1, "tp.auth.resolve");
  char survivor[TPT_MAX_ID + 1];
  tpal_result r;
  AS_HOST(L, r = tpal_resolve(a, user, survivor));
  switch (r) {
    case TPAL_SELF: lua_pushvalue(L, 1); return 1;
    case TPAL_ALIAS: lua_pushstring(L, survivor); return 1;
    case TPAL_ERASED: lua_pushnil(L); return 1;
    default: return luaL_error(L, "tp.auth.resolve: cannot read the aliases");
  }
}

/* ---- the plugin's own setting */

/* tp.config() -> the plugin's config table: the same table as req.config,
** for jobs, event handlers and exports, which have no req. */
static int l_config(lua_State *L) {
  lua_rawgeti(L, LUA_REGISTRYINDEX, tpa_plugin(L)->config_ref);
  return 1;
}

/* tp.caller() -> the plugin whose tp.call is running this code, or nil. */
static int l_caller(lua_State *L) {
  const char *caller = tpa_plugin(L)->caller;
  if (caller) lua_pushstring(L, caller);
  else lua_pushnil(L);
  return 1;
}

/* ---- the declaration */

const tpa_fn tpa_functions[] = {
  {NULL, "now", l_now, TP_CTX_ANY, "tp.now() -> integer",
   "The host's clock as UTC epoch seconds, fixed for the whole invocation.",
   "@return integer # UTC epoch seconds"},
  {NULL, "now_ms", l_now_ms, TP_CTX_ANY, "tp.now_ms() -> integer",
   "The host's clock as UTC epoch milliseconds, fixed for the whole invocation.",
   "@return integer # UTC epoch milliseconds"},
  {NULL, "localtime", l_localtime, TP_CTX_ANY, "tp.localtime([epoch]) -> table",
   "Breaks an epoch (default now) down in the tenant's time zone: year, month, day, "
   "hour, min, sec, wday (1 = Monday), yday, utc_offset (seconds).",
   "@param epoch? integer UTC epoch seconds (default: now)\n"
   "@return TpLocaltime"},
  {NULL, "timezone", l_timezone, TP_CTX_ANY, "tp.timezone() -> string",
   "The tenant's time zone name, e.g. Asia/Shanghai.",
   "@return string"},
  {NULL, "random", l_random, TP_CTX_TXN, "tp.random([m [, n]]) -> number",
   "Like math.random, from a generator the host seeds per invocation and logs, so "
   "every draw can be replayed. math.random is the same function.",
   "@param m? integer alone: the upper bound of 1..m; with n: the lower bound\n"
   "@param n? integer the upper bound of m..n\n"
   "@return number # a float in [0,1) without arguments, else an integer"},
  {NULL, "seed", l_seed, TP_CTX_TXN, "tp.seed() -> integer",
   "The seed of this invocation's random generator.",
   "@return integer"},
  {NULL, "fail", l_fail, TP_CTX_TXN, "tp.fail(status, code, message [, details])",
   "Ends the handler: everything it wrote is rolled back and the client gets "
   "{\"error\":{\"code\",\"message\",\"details\"}} with status (400-599).",
   "@param status integer 400-599\n"
   "@param code string a stable error code of 1-39 bytes, e.g. sold_out\n"
   "@param message string for people\n"
   "@param details? any plain data, sent as error.details"},
  {NULL, "log", l_log, TP_CTX_ANY, "tp.log(level, message [, fields])",
   "Writes a JSON log line (level: debug, info, warn, error) tagged with tenant, "
   "plugin and request id; fields is a table added as is.",
   "@param level \"debug\"|\"info\"|\"warn\"|\"error\"\n"
   "@param message string\n"
   "@param fields? table plain data, logged under \"fields\""},
  {"db", "exec", l_db_exec, TP_CTX_TXN, "tp.db.exec(sql, ...) -> changes, last_insert_id",
   "Runs one statement with bound values (positional ?, or one table for :names). "
   "Raises on any SQL error, which rolls the request back.",
   "@param sql string one SQL statement on the plugin's own tables\n"
   "@param ... any values bound to ?, or one table for :names\n"
   "@return integer changes # rows changed\n"
   "@return integer last_insert_id"},
  {"db", "query", l_db_query, TP_CTX_TXN, "tp.db.query(sql, ...) -> rows",
   "Runs one statement and returns every row as a table of column = value "
   "(NULL columns are absent); the list encodes as a JSON array even when empty.",
   "@param sql string one SQL statement on the plugin's own tables\n"
   "@param ... any values bound to ?, or one table for :names\n"
   "@return table[] rows"},
  {"db", "one", l_db_one, TP_CTX_TXN, "tp.db.one(sql, ...) -> row | nil",
   "Runs one statement and returns its first row, or nil. RETURNING works.",
   "@param sql string one SQL statement on the plugin's own tables\n"
   "@param ... any values bound to ?, or one table for :names\n"
   "@return table? row"},
  {"jobs", "schedule", l_jobs_schedule, TP_CTX_TXN,
   "tp.jobs.schedule(name, payload, when) -> id",
   "Schedules the manifest's job name with payload (plain data) inside this transaction: it "
   "exists only if the transaction commits. when is seconds from now, or {at = epoch seconds "
   "| after = seconds [, every = seconds] [, key = string] [, max_attempts = n]}. A key is "
   "unique among the plugin's pending jobs: scheduling it again replaces that job. A job that "
   "raises is retried with exponential back-off, then dead-lettered.",
   "@param name string a job declared in the manifest's jobs table\n"
   "@param payload table? plain data, handed to the job as job.payload (nil: {})\n"
   "@param when number|TpJobWhen seconds from now, or when and how often\n"
   "@return integer id"},
  {"jobs", "cancel", l_jobs_cancel, TP_CTX_TXN, "tp.jobs.cancel(id | key) -> boolean",
   "Cancels one of the plugin's pending jobs (inside this transaction); false if none matched.",
   "@param id_or_key integer|string the id tp.jobs.schedule returned, or the job's key\n"
   "@return boolean # true if a pending job was cancelled"},
  {"events", "emit", l_events_emit, TP_CTX_TXN, "tp.events.emit(name, data) -> integer",
   "Writes event name with data to the outbox inside this transaction. After commit it is "
   "delivered to every subscribing plugin of the tenant, each delivery its own transaction, "
   "at least once and in order; returns the number of subscribers.",
   "@param name string 1-64 characters of a-z 0-9 _ . -\n"
   "@param data table? plain data, handed to subscribers as ev.data (nil: {})\n"
   "@return integer # the number of subscribers it will reach"},
  {NULL, "call", l_call, TP_CTX_TXN, "tp.call(plugin, name, ...) -> ...",
   "Calls a function that another plugin of the tenant exports, synchronously and inside "
   "this transaction. Arguments and results are copied as plain data. An error in the callee "
   "rolls back what it did and is raised in the caller (a tp.fail keeps its status and code).",
   "@param plugin string the name of an enabled plugin\n"
   "@param name string a function in that plugin's exports\n"
   "@param ... any plain data\n"
   "@return any ... # the export's results, copied"},
  {NULL, "config", l_config, TP_CTX_ANY, "tp.config() -> table",
   "The plugin's config table from the tenant's config (the same table a handler gets as "
   "req.config), in every context: jobs, event handlers and exports have no req.",
   "@return table"},
  {NULL, "caller", l_caller, TP_CTX_ANY, "tp.caller() -> string | nil",
   "Inside a function another plugin invoked with tp.call, that plugin's name (the immediate "
   "caller when calls nest); nil in a route handler, job or event handler the host invoked.",
   "@return string?"},
  {NULL, "exporters", l_exporters, TP_CTX_TXN, "tp.exporters(name) -> string[]",
   "The plugins serving this tenant (the caller included) that export a function called name, "
   "in name order: whom to tp.call for a hook such as member_merge.",
   "@param name string\n"
   "@return string[]"},
  {"auth", "token", l_auth_token, TP_CTX_TXN, "tp.auth.token(user [, seconds]) -> string",
   "Mints a user token of this tenant for user, valid for seconds (default 7 days, 60 s to 90 "
   "days) of wall time, like the tokens the host verifies. Identity plugin (members) only.",
   "@param user string a member id\n"
   "@param seconds? integer lifetime, default 604800\n"
   "@return string"},
  {"auth", "alias", l_auth_alias, TP_CTX_TXN, "tp.auth.alias(from, into)",
   "From the end of this transaction on, tokens of from enter as into (a merge), and ids merged "
   "into from follow it. into must not itself be merged or erased. Identity plugin only.",
   "@param from string the merged member id\n"
   "@param into string the survivor"},
  {"auth", "unalias", l_auth_unalias, TP_CTX_TXN, "tp.auth.unalias(from) -> boolean",
   "Undoes tp.auth.alias for from (its tokens name it again); true if it was an alias. Ids "
   "that were merged into from stay with the survivor. Identity plugin only.",
   "@param from string\n"
   "@return boolean"},
  {"auth", "erase", l_auth_erase, TP_CTX_TXN, "tp.auth.erase(user)",
   "Refuses every token of user (and of ids merged into it) from the end of this transaction "
   "on: 401 member_erased. For a deletion request. Identity plugin only.",
   "@param user string"},
  {"auth", "resolve", l_auth_resolve, TP_CTX_TXN, "tp.auth.resolve(user) -> string | nil",
   "The member id user names now: its survivor if it was merged, itself if not, nil if it was "
   "erased. For user ids that arrive in bodies (an operator's list) rather than in a token.",
   "@param user string\n"
   "@return string? member # nil when erased"},
  {"crypto", "sha256", tpx_l_sha256, TP_CTX_ANY, "tp.crypto.sha256(data [, encoding]) -> string",
   "The SHA-256 digest of the string data; encoding is \"hex\" (default, lowercase), "
   "\"base64\" (standard alphabet, padded) or \"raw\" (32 bytes).",
   "@param data string\n"
   "@param encoding? \"hex\"|\"base64\"|\"raw\" default \"hex\"\n"
   "@return string"},
  {"crypto", "hmac_sha256", tpx_l_hmac_sha256, TP_CTX_ANY,
   "tp.crypto.hmac_sha256(key, data [, encoding]) -> string",
   "The HMAC-SHA-256 of data keyed with key (both strings), encoded like tp.crypto.sha256. "
   "To verify a signed callback, compute it over req.raw_body and compare with "
   "tp.crypto.equal.",
   "@param key string\n"
   "@param data string\n"
   "@param encoding? \"hex\"|\"base64\"|\"raw\" default \"hex\"\n"
   "@return string"},
  {"crypto", "equal", tpx_l_equal, TP_CTX_ANY, "tp.crypto.equal(a, b) -> boolean",
   "True if the strings a and b are equal, compared in constant time (no early exit on the "
   "first differing byte); strings of different lengths are never equal.",
   "@param a string\n"
   "@param b string\n"
   "@return boolean"},
  {"json", "encode", tpj_l_encode, TP_CTX_ANY, "tp.json.encode(value) -> string",
   "Encodes plain data as JSON; integers exactly, tables marked by tp.json.array as arrays.",
   "@param value any plain data (raises if it is not)\n"
   "@return string"},
  {"json", "decode", tpj_l_decode, TP_CTX_ANY, "tp.json.decode(text) -> value | nil, err",
   "Decodes JSON; integral numbers become integers; null becomes tp.json.null.",
   "@param text string\n"
   "@return any value # nil when text is not JSON\n"
   "@return string? err"},
  {"json", "array", tpj_l_array, TP_CTX_ANY, "tp.json.array([t]) -> t",
   "Marks t (or a new table) to encode as a JSON array, even when empty.",
   "@param t? table\n"
   "@return table"},
  {"json", "object", tpj_l_object, TP_CTX_ANY, "tp.json.object([t]) -> t",
   "Marks t (or a new table) to encode as a JSON object, even when empty.",
   "@param t? table\n"
   "@return table"},
  {NULL, NULL, NULL, 0, NULL, NULL, NULL},
};

/* The tables plugin code is handed (req, job, ev, ...) or hands the host
** (the manifest, its routes). plugin.c builds req (push_request, req_index),
** sched.c builds a job's and an event's argument (TASK_ARG), plugin.c reads
** the manifest (check_manifest_keys, read_route, read_route_doc). */
const tpa_field tpa_shapes[] = {
  {"tp", NULL, NULL,
   "The host's API: the global table every plugin state gets. Each function says where it "
   "may be called: load (while plugin.lua runs), handler (a route handler), job, event (an "
   "event subscriber). Calling one elsewhere raises."},
  {"tp.db", NULL, NULL,
   "The tenant's database, inside the invocation's transaction. A plugin may use only tables "
   "named NAME_... after itself (enforced); PRAGMA, ATTACH and transaction statements are refused."},
  {"tp.jobs", NULL, NULL,
   "Jobs: rows written in the caller's transaction that run later as their own transactions, "
   "retried with back-off and dead-lettered after limits.job_max_attempts runs."},
  {"tp.events", NULL, NULL,
   "Events: written to the outbox in the caller's transaction, delivered after commit to every "
   "subscribing plugin, at least once and in emission order per subscriber."},
  {"tp.json", NULL, NULL, "JSON with exact integers and explicit arrays and objects."},
  {"tp.json", "null", "lightuserdata",
   "The JSON null: decoding null gives this value (not nil); encoding it writes null."},
  {"tp.crypto", NULL, NULL, "Digests and signatures for callbacks and tokens."},
  {"tp.auth", NULL, NULL,
   "Members and their tokens. A merged member's token enters as its survivor, so req.user is "
   "always a survivor; ids in bodies are resolved with tp.auth.resolve."},

  {"TpRequest", NULL, NULL,
   "What a route handler gets as its one argument. headers, query and raw_body are built when "
   "first read, and read as nil once the handler has returned."},
  {"TpRequest", "id", "string", "The request id (also in the log line and the X-Request-Id header)."},
  {"TpRequest", "method", "string", "GET, POST, PUT, PATCH or DELETE."},
  {"TpRequest", "path", "string", "The request path as sent, without the query."},
  {"TpRequest", "route", "string", "The route's path pattern as declared, e.g. /orders/{id:int}."},
  {"TpRequest", "tenant", "string", "The tenant's id."},
  {"TpRequest", "user", "string?",
   "The user id of a verified bearer token; nil on auth = \"none\" routes and anonymous "
   "auth = \"optional\" requests."},
  {"TpRequest", "params", "table<string,string|integer>",
   "Path parameters by name: {name:int} ones are integers, the others decoded strings."},
  {"TpRequest", "query", "table<string,string>",
   "Query parameters, percent-decoded; a repeated key keeps its last value; a key without = is \"\"."},
  {"TpRequest", "headers", "table<string,string>", "Request headers by lowercase name."},
  {"TpRequest", "body", "any", "The JSON body, decoded (integers stay integers); nil without a body."},
  {"TpRequest", "raw_body", "string?",
   "The body's exact bytes, for signatures over them; nil without a body."},
  {"TpRequest", "config", "table", "The plugin's config table (the same as tp.config())."},

  {"TpJob", NULL, NULL, "What a job handler (manifest jobs.NAME) gets as its one argument."},
  {"TpJob", "id", "integer", "The job's id (tp.jobs.schedule returned it)."},
  {"TpJob", "name", "string", "The job's name."},
  {"TpJob", "attempt", "integer", "1 on the first run, 2 on the first retry, and so on."},
  {"TpJob", "due", "integer", "When it was due, epoch seconds."},
  {"TpJob", "due_ms", "integer", "When it was due, epoch milliseconds."},
  {"TpJob", "key", "string|lightuserdata", "Its key, or tp.json.null when it was scheduled without one."},
  {"TpJob", "payload", "any", "The payload given to tp.jobs.schedule, decoded from JSON."},

  {"TpEvent", NULL, NULL,
   "What an event handler (manifest subscribe[\"NAME\"]) gets as its one argument."},
  {"TpEvent", "id", "integer", "The delivery's id."},
  {"TpEvent", "name", "string", "The event's name, e.g. order.paid."},
  {"TpEvent", "source", "string", "The plugin that emitted it."},
  {"TpEvent", "attempt", "integer", "1 on the first delivery, 2 on the first retry, and so on."},
  {"TpEvent", "emitted_at", "integer", "When it was emitted, epoch seconds."},
  {"TpEvent", "emitted_at_ms", "integer", "When it was emitted, epoch milliseconds."},
  {"TpEvent", "data", "any", "The data given to tp.events.emit, decoded from JSON."},

  {"TpJobWhen", NULL, NULL, "When and how often a job runs (tp.jobs.schedule's when)."},
  {"TpJobWhen", "at", "integer?", "Due at this epoch (seconds); not with after."},
  {"TpJobWhen", "after", "number?", "Due this many seconds from now; not with at."},
  {"TpJobWhen", "every", "number?", "Runs again every so many seconds (at least 1) after each run."},
  {"TpJobWhen", "key", "string?",
   "1-128 bytes, unique among the plugin's pending jobs: scheduling it again replaces that "
   "job, and tp.jobs.cancel(key) cancels it."},
  {"TpJobWhen", "max_attempts", "integer?", "Runs before it is dead-lettered, 1-1000 (default limits.job_max_attempts)."},

  {"TpLocaltime", NULL, NULL, "An instant broken down in the tenant's time zone (tp.localtime)."},
  {"TpLocaltime", "year", "integer", "e.g. 2024"},
  {"TpLocaltime", "month", "integer", "1-12"},
  {"TpLocaltime", "day", "integer", "1-31"},
  {"TpLocaltime", "hour", "integer", "0-23"},
  {"TpLocaltime", "min", "integer", "0-59"},
  {"TpLocaltime", "sec", "integer", "0-60"},
  {"TpLocaltime", "wday", "integer", "1 = Monday ... 7 = Sunday"},
  {"TpLocaltime", "yday", "integer", "1-366"},
  {"TpLocaltime", "utc_offset", "integer", "Seconds east of UTC (28800 in Asia/Shanghai)."},

  {"TpFailure", NULL, NULL,
   "The error value tp.fail raises (what pcall catches, and a tp.call to a plugin that "
   "failed raises in its caller)."},
  {"TpFailure", "status", "integer", "400-599"},
  {"TpFailure", "code", "string", "The stable error code."},
  {"TpFailure", "message", "string", "The message for people."},
  {"TpFailure", "details", "any", "The details given to tp.fail, if any."},

  {"TpManifest", NULL, NULL,
   "What plugin.lua returns. Unknown fields are refused, so a typo fails the load."},
  {"TpManifest", "name", "string", "The plugin's name: its folder's name, [a-z][a-z0-9_]* of at most 32 bytes."},
  {"TpManifest", "version", "string", "1-32 bytes, e.g. \"1.0.0\"."},
  {"TpManifest", "description", "string?", "One line for people."},
  {"TpManifest", "migrations", "string[]?",
   "SQL scripts, applied once each, in order, in one transaction when the plugin loads; "
   "append, never edit a released one."},
  {"TpManifest", "routes", "TpRoute[]?", "The HTTP routes the plugin serves."},
  {"TpManifest", "jobs", "table<string,fun(job:TpJob)>?", "Job handlers by name (tp.jobs.schedule)."},
  {"TpManifest", "subscribe", "table<string,fun(ev:TpEvent)>?", "Event handlers by event name."},
  {"TpManifest", "exports", "table<string,function>?",
   "Functions other plugins call with tp.call(this plugin, name, ...)."},
  {"TpManifest", "setup", "fun()?",
   "Runs on every load of a generation (start-up and each reload), after the migrations, in a "
   "transaction of its own, before the generation serves: schedule or cancel jobs, reconcile "
   "rows with the code. If it raises, everything it did is rolled back and the load fails (the "
   "old generation keeps serving)."},

  {"TpRoute", NULL, NULL,
   "One route of the manifest: mounted under /v1/{tenant} (or /admin/{tenant} with auth = "
   "\"admin\"). The doc fields (summary ... status) feed GET /v1/{tenant}/openapi.json and are "
   "checked at load; other unknown keys are ignored."},
  {"TpRoute", "method", "\"GET\"|\"POST\"|\"PUT\"|\"PATCH\"|\"DELETE\"", "The HTTP method."},
  {"TpRoute", "path", "string",
   "The path pattern, at most 256 bytes: literal segments and {name}, {name:str} or {name:int} parameters."},
  {"TpRoute", "auth", "\"none\"|\"optional\"|\"user\"|\"admin\"|nil",
   "Who may call it (default \"user\": a valid bearer token); \"admin\" needs the tenant's X-Api-Key."},
  {"TpRoute", "handler", "fun(req:TpRequest):integer|table?,table?",
   "Runs inside the request's transaction and returns status, body (a table, encoded as JSON) "
   "or just the body for 200. Raising rolls everything back (500 internal_error, or tp.fail's "
   "status and code)."},
  {"TpRoute", "summary", "string?", "At most 200 bytes."},
  {"TpRoute", "description", "string?", "Longer documentation."},
  {"TpRoute", "query", "table<string,TpQueryParam>?", "Query parameters by name."},
  {"TpRoute", "headers", "table<string,TpHeaderParam>?", "Request headers the route reads, by name."},
  {"TpRoute", "body", "table?", "JSON Schema of the request body, written as a Lua table."},
  {"TpRoute", "response", "table?", "JSON Schema of the success body, written as a Lua table."},
  {"TpRoute", "status", "integer?", "The success status, 200-299 (default 200)."},
  {"TpRoute", "personal", "boolean?",
   "True when its request or answer carries personal data (phones, names, addresses): a "
   "recorded run of it keeps neither body nor query, only that they were redacted."},
  {"TpRoute", "rate_class",
   "\"read\"|\"write\"|\"buy\"|\"join\"|\"help\"|\"claim\"|nil",
   "Which of the brand's rate limits (tenants[i].rate_limits in the host config) count it, "
   "before any Lua runs: default \"read\" for GET and \"write\" for other methods. Declare "
   "\"buy\", \"join\", \"help\" or \"claim\" on the routes a scalper would hammer. Not on "
   "admin routes: they are all of class \"admin\"."},

  {"TpQueryParam", NULL, NULL, "A documented query parameter of a route."},
  {"TpQueryParam", "type", "\"string\"|\"integer\"|\"boolean\"|nil", "Default \"string\"."},
  {"TpQueryParam", "description", "string?", ""},
  {"TpQueryParam", "required", "boolean?", "Default false."},

  {"TpHeaderParam", NULL, NULL, "A documented request header of a route."},
  {"TpHeaderParam", "description", "string?", ""},
  {"TpHeaderParam", "required", "boolean?", "Default false."},
  {NULL, NULL, NULL, NULL},
};

const char *const tpa_context_names[TP_CTX_COUNT] = {"load", "handler", "job", "event", "setup"};

/* Every API function is called through here: the context check lives once. */
static int trampoline(lua_State *L) {
  const tpa_fn *f = &tpa_functions[lua_tointeger(L, lua_upvalueindex(1))];
  tp_plugin *p = tpa_plugin(L);
  if (!(p->ctx & f->contexts)) {
    char allowed[80] = "";
    for (int i = 0; i < TP_CTX_COUNT; i++)
      if (f->contexts & (1 << i)) {
        if (allowed[0]) strcat(allowed, ", ");
        strcat(allowed, tpa_context_names[i]);
      }
    const char *where = p->ctx == TP_CTX_LOAD ? "while the plugin loads" : "here";
    return luaL_error(L, "tp.%s%s%s is not available %s (allowed in: %s)",
                      f->module ? f->module : "", f->module ? "." : "", f->name, where, allowed);
  }
  /* what it reads and what it builds cost their bytes (JSON, crypto, ...) */
  tpsb_charge_strings(L, lua_gettop(L), TPSB_PARSE_BYTES);
  int n = f->fn(L);
  tpsb_charge_strings(L, n, TPSB_PARSE_BYTES);
  return n;
}

void tpa_open(lua_State *L, tp_plugin *p) {
  *(tp_plugin **)lua_getextraspace(L) = p;
  tpsb_open(L);
  lua_pushcfunction(L, l_print);  /* print() logs at debug level */
  lua_setglobal(L, "print");
  tpj_open(L);
  luaL_newmetatable(L, FAIL_MT);
  lua_pushliteral(L, "tp.fail");  /* protected, like every metatable the host gives out (json.c) */
  lua_setfield(L, -2, "__metatable");
  lua_pop(L, 1);
  lua_newtable(L);  /* stack: tp */
  for (int i = 0; tpa_functions[i].name; i++) {
    const tpa_fn *f = &tpa_functions[i];
    if (f->module && lua_getfield(L, -1, f->module) != LUA_TTABLE) {
      lua_pop(L, 1);
      lua_newtable(L);
      lua_pushvalue(L, -1);
      lua_setfield(L, -3, f->module);
    }
    /* stack: tp [module] */
    lua_pushinteger(L, i);
    lua_pushcclosure(L, trampoline, 1);
    lua_setfield(L, -2, f->name);
    if (f->module) lua_pop(L, 1);
  }
  lua_getfield(L, -1, "json");
  lua_pushlightuserdata(L, NULL);
  lua_setfield(L, -2, "null");
  lua_pop(L, 1);
  lua_setglobal(L, "tp");
  /* math.random is the host's generator; nobody seeds it but the host */
  lua_getglobal(L, LUA_MATHLIBNAME);
  lua_getglobal(L, "tp");
  lua_getfield(L, -1, "random");
  lua_setfield(L, -3, "random");
  lua_pop(L, 1);
  lua_pushnil(L);
  lua_setfield(L, -2, "randomseed");
  lua_pop(L, 1);
}
