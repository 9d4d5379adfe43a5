/*
** tplib.c - what the functions of the tp table do, one C function for each
** row of the declaration in api.c (which adds the context check, the cost of
** their strings, and the documentation). tplib.h lists them.
*/
#include "lua/tplib.h"

#include <ctype.h>
#include <lauxlib.h>
#include <lualib.h>
#include <math.h>
#include <stdbool.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "base/clock.h"
#include "base/crypto.h"
#include "base/json.h"
#include "base/log.h"
#include "base/rng.h"
#include "base/token.h"
#include "base/tzone.h"
#include "lua/invoke.h"
#include "lua/sandbox.h"
#include "store/alias.h"

static tp_invocation *invocation(lua_State *L) {
  tp_invocation *inv = tpst_owner(L)->inv;
  if (!inv) luaL_error(L, "no invocation in progress");
  return inv;
}

/* ---- time */

static int64_t now_ms(lua_State *L) {
  tp_plugin *p = tpst_owner(L);
  return p->inv ? p->inv->now_ms : tp_clock_wall_ms();
}

int tplib_now(lua_State *L) {
  lua_pushinteger(L, now_ms(L) / 1000);
  return 1;
}

int tplib_now_ms(lua_State *L) {
  lua_pushinteger(L, now_ms(L));
  return 1;
}

void tplib_push_localtime(lua_State *L, const char *zone, int64_t epoch) {
  struct tm tm;
  long off;
  tp_tz_local(zone, epoch, &tm, &off);
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
}

int tplib_localtime(lua_State *L) {
  tplib_push_localtime(L, tpst_owner(L)->timezone, luaL_optinteger(L, 1, now_ms(L) / 1000));
  return 1;
}

int tplib_timezone(lua_State *L) {
  lua_pushstring(L, tpst_owner(L)->timezone);
  return 1;
}

/* ---- chance: the invocation's generator (base/rng.h), seeded per invocation and logged */

/* random() -> float in [0,1); random(n) -> [1,n]; random(m, n) -> [m,n] */
int tplib_random(lua_State *L) {
  tp_invocation *inv = invocation(L);
  uint64_t r = tp_rng_next(inv->rng);
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
  while (r >= limit) r = tp_rng_next(inv->rng);
  lua_pushinteger(L, (lua_Integer)((uint64_t)lo + r % span));
  return 1;
}

int tplib_seed(lua_State *L) {
  lua_pushinteger(L, (lua_Integer)invocation(L)->seed);
  return 1;
}

/* ---- errors a handler means to send */

/* tp.fail(status, code, message [, details]): rolls the request back and
** answers {"error":{"code":code,"message":message,"details":details}}. */
int tplib_fail(lua_State *L) {
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
  tpst_mark_fail(L);
  return lua_error(L);
}

/* ---- logging */

int tplib_log(lua_State *L) {
  static const char *const levels[] = {"debug", "info", "warn", "error", NULL};
  int level = luaL_checkoption(L, 1, NULL, levels);
  const char *msg = luaL_checkstring(L, 2);
  tp_plugin *p = tpst_owner(L);
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
int tplib_print(lua_State *L) {
  luaL_Buffer b;
  luaL_buffinit(L, &b);
  int n = lua_gettop(L);
  for (int i = 1; i <= n; i++) {
    if (i > 1) luaL_addchar(&b, '\t');
    luaL_tolstring(L, i, NULL);
    luaL_addvalue(&b);
  }
  luaL_pushresult(&b);
  lua_pushcfunction(L, tplib_log);
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
  tp_plugin *p = tpst_owner(L);
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
  int names = cached && tps_push_names(L, st) ? lua_gettop(L) : 0;
  if (tps_bind_lua(L, st, 2, nargs, names, err, sizeof err) != 0)
    return db_fail(L, st, cached, "tp.db: %s", err);
  int rc, nrows = 0;
  if (mode == RUN_QUERY) {
    lua_newtable(L);
    tpj_mark_array(L, -1);
  }
  p->sql_writing = !sqlite3_stmt_readonly(st);
  /* the statement starts, and a write does all its work (triggers too), in
  ** its first step: that is when store/deps.h notes it as the owner's */
  p->db->plugin_sql = true;
  rc = sqlite3_step(st);
  p->db->plugin_sql = false;
  for (; rc == SQLITE_ROW; rc = sqlite3_step(st)) {
    if (mode == RUN_EXEC) continue;
    tps_push_row(L, st, names);
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
    if (lua_gettop(L) == (names ? names : nargs + 1)) lua_pushnil(L);  /* no row */
    return 1;
  }
  if (mode == RUN_QUERY) return 1;
  lua_pushinteger(L, sqlite3_changes64(p->db->db));
  lua_pushinteger(L, sqlite3_last_insert_rowid(p->db->db));
  return 2;
}

int tplib_db_exec(lua_State *L) { return db_run(L, RUN_EXEC); }
int tplib_db_query(lua_State *L) { return db_run(L, RUN_QUERY); }
int tplib_db_one(lua_State *L) { return db_run(L, RUN_ONE); }

/* ---- jobs, events and calls between plugins: services of the host */

tp_plugin *tplib_services_of(lua_State *L) {
  tp_plugin *p = tpst_owner(L);
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
int tplib_jobs_schedule(lua_State *L) {
  tp_plugin *p = tplib_services_of(L);
  const char *name = luaL_checkstring(L, 1);
  if (!tpi_has_job(p, L, name))
    return luaL_error(L, "tp.jobs.schedule: plugin '%s' has no job '%s' (declare it in the "
                      "manifest's jobs table)", p->name, name);
  int64_t now = p->inv->now_ms;
  tpq_job spec = {.name = name};
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
int tplib_jobs_cancel(lua_State *L) {
  tp_plugin *p = tplib_services_of(L);
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
  if (n == 0 || n > TPQ_MAX_NAME) return false;
  for (size_t i = 0; i < n; i++)
    if (!((s[i] >= 'a' && s[i] <= 'z') || (s[i] >= '0' && s[i] <= '9') || s[i] == '_' ||
          s[i] == '.' || s[i] == '-'))
      return false;
  return true;
}

/* tp.events.emit(name, data) -> number of subscribers it will reach */
int tplib_events_emit(lua_State *L) {
  tp_plugin *p = tplib_services_of(L);
  size_t n;
  const char *name = luaL_checklstring(L, 1, &n);
  if (!valid_event_name(name, n))
    return luaL_error(L, "tp.events.emit: event names are 1-%d characters of a-z 0-9 _ . -",
                      TPQ_MAX_NAME);
  if (p->services->subscribers(p->services_ud, name) == 0) {
    lua_pushinteger(L, 0);  /* nobody hears it: nothing to encode, nothing to store */
    return 1;
  }
  tp_buf data;  /* encoded once; stored and handed over as it is */
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

/* tp.call and tp.call_view (what: its name): plugin's export name, its
** tables copied back or as JSON views. */
static int call_peer(lua_State *L, const char *what, bool views) {
  tp_plugin *p = tplib_services_of(L);
  const char *peer_name = luaL_checkstring(L, 1);
  const char *fn = luaL_checkstring(L, 2);
  tp_plugin *peer = p->services->peer(p->services_ud, p, peer_name);
  if (!peer) return luaL_error(L, "%s: no plugin '%s' is enabled for this tenant", what, peer_name);
  if (peer->running)
    return luaL_error(L, "%s: plugin '%s' is already running further up this call chain "
                      "(calls between plugins cannot cycle)", what, peer_name);
  if (peer->killed)  /* its state may hold what the killed call left: not until it is fresh */
    return luaL_error(L, "%s: plugin '%s' was stopped by a limit earlier in this request; "
                      "it serves again once its state is loaded afresh, after the request",
                      what, peer_name);
  if (tps_call_begin(p->db) != 0)
    return luaL_error(L, "%s: cannot open a savepoint: %s", what, sqlite3_errmsg(p->db->db));
  int nargs = lua_gettop(L) - 2;
  char err[512];
  int nres = tpi_call_export(peer, fn, L, 3, nargs, views, p->inv, p->ctx, err, sizeof err);
  tps_call_end(p->db, nres >= 0);  /* a failed callee leaves nothing behind */
  if (nres == -2) return lua_error(L);  /* its tp.fail, as the caller's own */
  if (nres < 0) return luaL_error(L, "%s %s.%s: %s", what, peer_name, fn, err);
  return nres;
}

/* tp.call(plugin, name, ...) -> results of plugin's export name */
int tplib_call(lua_State *L) { return call_peer(L, "tp.call", false); }

/* tp.call_view(plugin, name, ...) -> the same, tables as JSON views */
int tplib_call_view(lua_State *L) { return call_peer(L, "tp.call_view", true); }

/* tp.exporters(name) -> the names of the plugins serving this tenant that
** export name, in name order (the identity plugin asks who re-keys on a merge). */
int tplib_exporters(lua_State *L) {
  tp_plugin *p = tplib_services_of(L);
  const char *name = luaL_checkstring(L, 1);
  lua_newtable(L);
  tpj_mark_array(L, -1);
  int n = 0;
  tp_plugin *peer;
  for (int i = 0; (peer = p->services->peer_at(p->services_ud, i)) != NULL; i++)
    if (tpi_exports(peer, name)) {
      lua_pushstring(L, peer->name);
      lua_rawseti(L, -2, ++n);
    }
  return 1;
}

/* tp.exports(plugin, name) -> whether plugin serves this tenant and exports
** name: the question a plugin asks before it tp.calls an optional peer. */
int tplib_exports(lua_State *L) {
  tp_plugin *p = tplib_services_of(L);
  const char *peer_name = luaL_checkstring(L, 1), *name = luaL_checkstring(L, 2);
  tp_plugin *peer = p->services->peer(p->services_ud, p, peer_name);
  lua_pushboolean(L, peer != NULL && tpi_exports(peer, name));
  return 1;
}

/* ---- signing and decrypting with a destination's secrets (base/crypto.h) */

/* The secret named by the string arguments 1 (destination) and 2 (name),
** which the plugin may use; raises otherwise: a wrong name is a mistake in
** the plugin or the brand's config, not something to handle. */
static const char *use_secret(lua_State *L, const char *fn, size_t *len) {
  tp_plugin *p = tplib_services_of(L);
  const char *dest = luaL_checkstring(L, 1), *name = luaL_checkstring(L, 2);
  char err[256];
  const char *v = p->services->secret ? p->services->secret(p->services_ud, p, dest, name, len, err,
                                                            sizeof err)
                                      : NULL;
  if (!p->services->secret) snprintf(err, sizeof err, "the host lends no secrets here");
  if (!v) luaL_error(L, "tp.crypto.%s: %s", fn, err);
  return v;
}

/* tp.crypto.rsa_sign(to, secret, data) -> base64 SHA256withRSA signature */
int tplib_crypto_rsa_sign(lua_State *L) {
  size_t klen, n;
  const char *key = use_secret(L, "rsa_sign", &klen);
  const char *data = luaL_checklstring(L, 3, &n);
  tp_buf sig;
  tp_buf_init(&sig);
  char err[128];
  if (tpx_rsa_sign_b64(key, klen, data, n, &sig, err, sizeof err) != 0) {
    tp_buf_free(&sig);
    return luaL_error(L, "tp.crypto.rsa_sign: secret '%s' of '%s' is %s", lua_tostring(L, 2),
                      lua_tostring(L, 1), err);
  }
  lua_pushlstring(L, sig.data, sig.len);
  tp_buf_free(&sig);
  return 1;
}

/* tp.crypto.aes_gcm_decrypt(to, secret, nonce, aad, ciphertext) -> plaintext | nil, err */
int tplib_crypto_aes_gcm_decrypt(lua_State *L) {
  size_t klen, nlen, alen, clen;
  const char *key = use_secret(L, "aes_gcm_decrypt", &klen);
  const char *nonce = luaL_checklstring(L, 3, &nlen);
  const char *aad = luaL_checklstring(L, 4, &alen);
  const char *ct = luaL_checklstring(L, 5, &clen);
  if (klen != 32)
    return luaL_error(L, "tp.crypto.aes_gcm_decrypt: secret '%s' of '%s' must be 32 bytes (an APIv3 "
                      "key), not %d", lua_tostring(L, 2), lua_tostring(L, 1), (int)klen);
  tp_buf plain;
  tp_buf_init(&plain);
  char err[128];
  if (tpx_aes256gcm_open(key, klen, nonce, nlen, aad, alen, ct, clen, &plain, err, sizeof err) != 0) {
    tp_buf_free(&plain);
    lua_pushnil(L);
    lua_pushstring(L, err);
    return 2;
  }
  lua_pushlstring(L, plain.data ? plain.data : "", plain.len);
  tp_buf_free(&plain);
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
    tps_db *db_ = tpst_owner(L)->db;              \
    const char *owner_ = db_->owner;              \
    tps_set_owner(db_, NULL);                     \
    stmt;                                         \
    tps_set_owner(db_, owner_);                   \
  } while (0)

static tpal_table *aliases_for(lua_State *L, const char *what) {
  tp_plugin *p = tplib_services_of(L);
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

int tplib_auth_token(lua_State *L) {
  tp_plugin *p = tpst_owner(L);
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

int tplib_auth_alias(lua_State *L) {
  tpal_table *a = aliases_for(L, "tp.auth.alias");
  const char *from = check_user(L, 1, "tp.auth.alias");
  const char *into = check_user(L, 2, "tp.auth.alias");
  char err[256];
  int rc;
  AS_HOST(L, rc = tpal_set(a, from, into, now_ms(L), err, sizeof err));
  if (rc != 0) return luaL_error(L, "tp.auth.alias: %s", err);
  return 0;
}

int tplib_auth_erase(lua_State *L) {
  tpal_table *a = aliases_for(L, "tp.auth.erase");
  const char *user = check_user(L, 1, "tp.auth.erase");
  char err[256];
  int rc;
  AS_HOST(L, rc = tpal_set(a, user, NULL, now_ms(L), err, sizeof err));
  if (rc != 0) return luaL_error(L, "tp.auth.erase: %s", err);
  return 0;
}

int tplib_auth_unalias(lua_State *L) {
  tpal_table *a = aliases_for(L, "tp.auth.unalias");
  const char *from = check_user(L, 1, "tp.auth.unalias");
  char err[256];
  int removed, rc;
  AS_HOST(L, rc = tpal_unset(a, from, &removed, err, sizeof err));
  if (rc != 0) return luaL_error(L, "tp.auth.unalias: %s", err);
  lua_pushboolean(L, removed);
  return 1;
}

int tplib_auth_resolve(lua_State *L) {
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
int tplib_config(lua_State *L) {
  lua_rawgeti(L, LUA_REGISTRYINDEX, tpst_owner(L)->config_ref);
  return 1;
}

/* tp.caller() -> the plugin whose tp.call is running this code, or nil. */
int tplib_caller(lua_State *L) {
  const char *caller = tpst_owner(L)->caller;
  if (caller) lua_pushstring(L, caller);
  else lua_pushnil(L);
  return 1;
}
