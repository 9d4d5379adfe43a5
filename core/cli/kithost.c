/*
** kithost.c - the `host` binding a test file's runner state gets (kithost.h):
** a real host, in-process, on a temporary data directory.
*/
#include "cli/kithost.h"

#include <lauxlib.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/clock.h"
#include "base/json.h"
#include "base/log.h"
#include "base/token.h"
#include "base/tzone.h"
#include "lua/api.h"
#include "lua/invoke.h"
#include "lua/sandbox.h"
#include "lua/tplib.h"

static kit_file *kit_of(lua_State *L) {
  return lua_touserdata(L, lua_upvalueindex(1));
}

static kit_file *kit_open_of(lua_State *L) {
  kit_file *k = kit_of(L);
  if (!k->ready) luaL_error(L, "the test host is not open (it failed to open)");
  return k;
}

/* Appends s as a Lua string literal. */
static void add_lua_str(tp_buf *b, const char *s) {
  tp_buf_addc(b, '"');
  for (; *s; s++) {
    if (*s == '"' || *s == '\\') tp_buf_addc(b, '\\');
    if (*s == '\n') tp_buf_adds(b, "\\n");
    else tp_buf_addc(b, *s);
  }
  tp_buf_addc(b, '"');
}

/* The manual clock starts at a whole second of wall time, so kit.now() and
** tp.now() agree exactly. */
static int start_clock(kit_file *k) {
  tp_tenant *t = k->t;
  t->clock_ms -= t->clock_ms % 1000;
  if (tp__join_batch(&k->host, t) != 0) return -1;
  int rc = tpq_clock_set(&t->queue, t->clock_ms);
  tp__flush_batch(&k->host);
  return rc;
}

/* host.open(plugins_src [, timezone [, http_src]]): loads the config with
** the plugins given (a Lua table literal), the tenant's time zone (default the
** config's, Asia/Shanghai) and its http destinations (a table literal; the kit
** runs no loop, so calls are written to the outbox but not made) and opens the
** host. true, or nil and what went wrong. */
static int l_open(lua_State *L) {
  kit_file *k = kit_of(L);
  const char *plugins = luaL_checkstring(L, 1);
  const char *zone = luaL_optstring(L, 2, NULL);
  const char *http = luaL_optstring(L, 3, NULL);
  if (k->cfg_loaded) return luaL_error(L, "the test host is already open");
  tp_buf text;
  tp_buf_init(&text);
  char data[PATH_MAX + 8];
  snprintf(data, sizeof data, "%s/data", k->tmp);
  tp_buf_adds(&text, "return {\n  listen = '127.0.0.1:0', synchronous = 'off',\n  data_dir = ");
  add_lua_str(&text, data);
  tp_buf_adds(&text, ",\n  plugin_dirs = { ");
  /* <plugin>/test/plugins first: helper plugins a test enables (a subscriber
  ** that records events, say), never shipped with the plugin */
  char helpers[PATH_MAX + 32];
  snprintf(helpers, sizeof helpers, "%s/%s/test/plugins", k->plugin_parent, k->plugin);
  if (tp_is_dir(helpers)) {
    add_lua_str(&text, helpers);
    tp_buf_adds(&text, ", ");
  }
  add_lua_str(&text, k->plugin_parent);
  if (k->builtin && strcmp(k->builtin, k->plugin_parent) != 0) {
    tp_buf_adds(&text, ", ");
    add_lua_str(&text, k->builtin);
  }
  /* the SDK's test plugins (campaign_probe): stand-ins any plugin's tests may enable */
  char shared[PATH_MAX + 32];
  snprintf(shared, sizeof shared, "%s/testplugins", k->sdk);
  if (tp_is_dir(shared)) {
    tp_buf_adds(&text, ", ");
    add_lua_str(&text, shared);
  }
  tp_buf_adds(&text, " },\n  sdk_dir = ");
  add_lua_str(&text, k->sdk);
  tp_buf_adds(&text, ",\n  tenants = { {\n    id = '" KIT_TENANT "', token_secret = '" KIT_SECRET
                     "',\n    api_keys = { '" KIT_ADMIN_KEY "' }, clock = 'manual',\n");
  if (zone) {
    tp_buf_adds(&text, "    timezone = ");
    add_lua_str(&text, zone);
    tp_buf_adds(&text, ",\n");
  }
  if (http) {
    tp_buf_adds(&text, "    http = ");
    tp_buf_adds(&text, http);
    tp_buf_adds(&text, ",\n");
  }
  tp_buf_adds(&text, "    plugins = ");
  tp_buf_adds(&text, plugins);
  tp_buf_adds(&text, ",\n  } },\n}\n");
  char err[1024];
  int rc = tpc_load_string(tp_buf_cstr(&text), "=kit.plugins", k->tmp, &k->cfg, err, sizeof err);
  tp_buf_free(&text);
  if (rc != 0) {
    lua_pushnil(L);
    lua_pushfstring(L, "the test config: %s", err);
    return 2;
  }
  k->cfg_loaded = true;
  rc = tp_host_open(&k->host, &k->cfg, err, sizeof err);
  k->host_opened = true;  /* tp_host_close cleans up after a failed open too */
  if (rc != 0) {
    lua_pushnil(L);
    lua_pushfstring(L, "the test host: %s", err);
    return 2;
  }
  k->t = &k->host.tenants[0];
  k->host.keep_last = true;
  luaL_Buffer b;
  luaL_buffinit(L, &b);
  for (int i = 0; i < k->t->nslots; i++)
    if (!k->t->slots[i].current) {
      if (luaL_bufflen(&b)) luaL_addstring(&b, "; ");
      lua_pushfstring(L, "plugin '%s' did not load: %s", k->t->slots[i].conf->name,
                      k->t->slots[i].last_error);
      luaL_addvalue(&b);
    }
  if (luaL_bufflen(&b) == 0 && start_clock(k) != 0) luaL_addstring(&b, "cannot set the test clock");
  size_t problems = luaL_bufflen(&b);
  luaL_pushresult(&b);
  /* stack: ... problems */
  if (problems) {
    lua_pushnil(L);
    lua_insert(L, -2);
    return 2;
  }
  k->ready = true;
  lua_pushboolean(L, 1);
  return 1;
}

/* The request headers of the table at idx, names in lower case: names[i]
** holds header i's name, its value stays in the table. The count, or raises. */
static int read_headers(lua_State *L, int idx, tph_header *headers,
                        char (*names)[128]) {
  int n = 0;
  lua_pushnil(L);
  while (lua_next(L, idx)) {
    /* stack: ... key value */
    size_t nlen, vlen;
    const char *name = lua_tolstring(L, -2, &nlen), *value = lua_tolstring(L, -1, &vlen);
    if (lua_type(L, -2) != LUA_TSTRING || lua_type(L, -1) != LUA_TSTRING || nlen == 0 ||
        nlen >= sizeof names[0])
      return luaL_error(L, "headers must map names to strings");
    if (n == KIT_MAX_HEADERS) return luaL_error(L, "more than %d headers", KIT_MAX_HEADERS);
    for (size_t i = 0; i <= nlen; i++) {
      char c = name[i];
      names[n][i] = c >= 'A' && c <= 'Z' ? (char)(c - 'A' + 'a') : c;
    }
    headers[n] = (tph_header){names[n], nlen, value, vlen};  /* value is held by the table */
    n++;
    lua_pop(L, 1);
  }
  return n;
}

/* Handles one request of the current loop iteration, as the server would
** between reading it and the iteration's group commit; res is answered but
** not yet finished. The id of its recorded run if a plugin failed it (a 5xx
** with the plugin's error and traceback in _tp_runs), else 0. */
static int64_t handle_one(lua_State *L, kit_file *k, const char *method, int target_idx,
                          int headers_idx, int body_idx, tph_response *res) {
  size_t tlen, blen = 0;
  const char *target = luaL_checklstring(L, target_idx, &tlen);
  luaL_checktype(L, headers_idx, LUA_TTABLE);
  const char *body = luaL_optlstring(L, body_idx, NULL, &blen);
  tph_header headers[KIT_MAX_HEADERS];
  char names[KIT_MAX_HEADERS][128];
  int n = read_headers(L, headers_idx, headers, names);
  memset(res, 0, sizeof *res);
  tp_buf_init(&res->body);
  res->content_type = "application/json";
  res->start_ns = tp_clock_mono_ns();
  res->keep_alive = true;
  res->method = method;
  snprintf(res->request_id, sizeof res->request_id, "kit-%lld", (long long)++k->requests);
  tph_request req = {.method = method, .target = target, .target_len = tlen, .headers = headers,
                     .nheaders = n, .body = body, .body_len = blen,
                     .request_id = res->request_id};
  k->host.last.plugin[0] = '\0';
  k->host.last.run_id = 0;
  tp_host_handle(&k->host, &req, res);
  const struct tp_last_invocation *l = &k->host.last;
  return l->plugin[0] && !l->ok ? l->run_id : 0;
}

/* After the iteration's commit: a failed commit answers 503, as the server
** would; the request is finished (logged, counted). */
static void finish_one(kit_file *k, tph_response *res) {
  if (res->commit_failed && *res->commit_failed)
    tph_error(res, 503, "commit_failed", "the change could not be made durable; nothing was "
              "saved, retry");
  tp_host_finished(&k->host, res, (double)(tp_clock_mono_ns() - res->start_ns) / 1e9);
}

/* Pushes status, body, headers and the failed run's id (or nil) of res,
** and frees its body. */
static void push_response(lua_State *L, tph_response *res, int64_t run_id) {
  lua_pushinteger(L, res->status);
  lua_pushlstring(L, res->body.data ? res->body.data : "", res->body.len);
  lua_createtable(L, 0, 3);
  lua_pushstring(L, res->content_type);
  lua_setfield(L, -2, "content-type");
  lua_pushstring(L, res->request_id);
  lua_setfield(L, -2, "x-request-id");
  if (res->allow[0]) {
    lua_pushstring(L, res->allow);
    lua_setfield(L, -2, "allow");
  }
  if (run_id) lua_pushinteger(L, run_id);
  else lua_pushnil(L);
  tp_buf_free(&res->body);
}

/* A test's iterations begin with the whole of intake's share of the loop
** (track.c): the host carries the cost of the last commit of events over to
** the next iteration, which on a slow or loaded machine can use it up and
** answer the test's next batch 503 busy; how fast the machine ran the request
** before must not decide whether a test's batch is taken. */
static void kit_iteration_begin(kit_file *k) { k->host.track_ns = 0; }

/* host.request(method, target, headers, body) -> status, body, headers,
** failed_run_id. One request through the host's pipeline, committed like
** the end of a loop iteration before its answer is read. */
static int l_request(lua_State *L) {
  kit_file *k = kit_open_of(L);
  const char *method = luaL_checkstring(L, 1);
  kit_iteration_begin(k);
  tph_response res;
  int64_t run_id = handle_one(L, k, method, 2, 3, 4, &res);
  tp_host_commit(&k->host);
  finish_one(k, &res);
  tp_host_iteration_end(&k->host);
  tp_log_flush();
  push_response(L, &res, run_id);
  return 4;
}

#define KIT_MAX_BATCH 1000

/* host.request_batch({ {method, target, headers, body}, ... }) ->
** { {status, body, headers, run_id}, ... }: the requests of one loop
** iteration, as clients that sent them at the same moment get them handled.
** The host has one thread: each runs to completion in its own savepoint, in
** the order given, at the same clock reading, and sees the writes of those
** before it; then all are committed together (one group commit) and only
** then answered. A commit that fails answers every one of them 503. */
static int l_request_batch(lua_State *L) {
  kit_file *k = kit_open_of(L);
  luaL_checktype(L, 1, LUA_TTABLE);
  lua_Integer n = luaL_len(L, 1);
  luaL_argcheck(L, n >= 1 && n <= KIT_MAX_BATCH, 1, "1 to 1000 requests expected");
  /* every request is checked before the first is handled: a raise in the
  ** middle would leave the iteration's batch open */
  for (lua_Integer i = 1; i <= n; i++) {
    lua_rawgeti(L, 1, i);
    /* stack: list request */
    if (!lua_istable(L, -1))
      return luaL_error(L, "request %d is not a table {method, target, headers, body}", (int)i);
    for (int f = 1; f <= 4; f++) lua_rawgeti(L, -f, f);
    /* stack: list request method target headers body */
    if (!lua_isstring(L, -4) || !lua_isstring(L, -3) || !lua_istable(L, -2) ||
        !(lua_isnil(L, -1) || lua_isstring(L, -1)))
      return luaL_error(L, "request %d: {method, target, headers, body} expected", (int)i);
    tph_header headers[KIT_MAX_HEADERS];
    char names[KIT_MAX_HEADERS][128];
    read_headers(L, lua_gettop(L) - 1, headers, names);
    lua_pop(L, 5);
  }
  kit_iteration_begin(k);
  tph_response *res = calloc((size_t)n, sizeof *res);
  int64_t *runs = calloc((size_t)n, sizeof *runs);
  if (!res || !runs) {
    free(res);
    free(runs);
    return luaL_error(L, "out of memory");
  }
  for (lua_Integer i = 0; i < n; i++) {
    lua_rawgeti(L, 1, i + 1);
    int r = lua_gettop(L);
    for (int f = 1; f <= 4; f++) lua_rawgeti(L, r, f);
    /* stack: list request method target headers body; the list holds them all */
    runs[i] = handle_one(L, k, lua_tostring(L, r + 1), r + 2, r + 3, r + 4, &res[i]);
    lua_settop(L, r - 1);
  }
  tp_host_commit(&k->host);
  for (lua_Integer i = 0; i < n; i++) finish_one(k, &res[i]);
  tp_host_iteration_end(&k->host);
  tp_log_flush();
  lua_createtable(L, (int)n, 0);
  for (lua_Integer i = 0; i < n; i++) {
    lua_createtable(L, 4, 0);
    push_response(L, &res[i], runs[i]);
    /* stack: list out answer status body headers run_id */
    for (int f = 4; f >= 1; f--) lua_rawseti(L, -1 - f, f);
    lua_rawseti(L, -2, i + 1);
  }
  free(res);
  free(runs);
  return 1;
}

/* host.token(user): valid for a day of wall time (tokens are checked
** against the wall clock, not the test clock). */
static int l_token(lua_State *L) {
  size_t n;
  const char *user = luaL_checklstring(L, 1, &n);
  if (!tpt_valid_user_id(user, n))
    return luaL_error(L, "invalid user id '%s' (1-%d letters, digits, _ - : @)", user, TPT_MAX_ID);
  tp_buf out;
  tp_buf_init(&out);
  tpt_mint(KIT_SECRET, strlen(KIT_SECRET), KIT_TENANT, user, tp_clock_wall_ms() / 1000 + 86400,
           &out);
  lua_pushlstring(L, out.data, out.len);
  tp_buf_free(&out);
  return 1;
}

static int l_now_ms(lua_State *L) {
  lua_pushinteger(L, kit_open_of(L)->t->clock_ms);
  return 1;
}

/* Moves the clock to to_ms running what falls due; repeats at to_ms while
** tasks ran (a task's own follow-ups due by then run too). */
static int advance_to(lua_State *L, kit_file *k, int64_t to_ms) {
  int ran = 0, failed = 0;
  for (int round = 0; round < 1000; round++) {
    int r, f;
    if (tp_host_advance(&k->host, k->t, to_ms, &r, &f) != 0)
      return luaL_error(L, "cannot move the test clock: %s", sqlite3_errmsg(k->t->db.db));
    ran += r;
    failed += f;
    if (r == 0) break;
  }
  tp_log_flush();
  lua_pushinteger(L, ran);
  lua_pushinteger(L, failed);
  return 2;
}

static int l_advance(lua_State *L) {
  kit_file *k = kit_open_of(L);
  lua_Integer ms = luaL_checkinteger(L, 1);
  luaL_argcheck(L, ms >= 0, 1, "the test clock only moves forward");
  return advance_to(L, k, k->t->clock_ms + ms);
}

static int l_drain(lua_State *L) {
  kit_file *k = kit_open_of(L);
  return advance_to(L, k, k->t->clock_ms);
}

/* host.query(sql, ...) -> rows, with the host's privileges but read-only. */
static int l_query(lua_State *L) {
  kit_file *k = kit_open_of(L);
  const char *sql = luaL_checkstring(L, 1);
  sqlite3 *db = k->t->db.db;
  sqlite3_stmt *st = NULL;
  char err[512] = "";
  if (sqlite3_prepare_v2(db, sql, -1, &st, NULL) != SQLITE_OK || !st) {
    snprintf(err, sizeof err, "%s", st ? sqlite3_errmsg(db) : sqlite3_errmsg(db));
    sqlite3_finalize(st);
    return luaL_error(L, "kit.query: %s", err[0] ? err : "empty statement");
  }
  if (!sqlite3_stmt_readonly(st)) {
    sqlite3_finalize(st);
    return luaL_error(L, "kit.query is read-only: change data through the plugin's routes");
  }
  if (tps_bind_lua(L, st, 2, lua_gettop(L) - 1, 0, err, sizeof err) != 0) {
    sqlite3_finalize(st);
    return luaL_error(L, "kit.query: %s", err);
  }
  lua_newtable(L);
  int rc, i = 0;
  while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
    tps_push_row(L, st, 0);
    lua_rawseti(L, -2, ++i);
  }
  if (rc != SQLITE_DONE) snprintf(err, sizeof err, "%s", sqlite3_errmsg(db));
  sqlite3_finalize(st);
  if (err[0]) return luaL_error(L, "kit.query: %s", err);
  return 1;
}

/* host.pin_seed(seed): the next invocation's random seed (a replay's). */
static int l_pin_seed(lua_State *L) {
  kit_file *k = kit_open_of(L);
  k->host.pinned_seed = (uint64_t)luaL_checkinteger(L, 1);
  k->host.pin_seed = true;
  k->host.last.plugin[0] = '\0';  /* host.last() then tells whether a plugin ran */
  return 0;
}

/* host.set_clock(ms): puts the test clock at ms, backwards too (a replay's
** recorded time); nothing falls due on the way. */
static int l_set_clock(lua_State *L) {
  kit_file *k = kit_open_of(L);
  lua_Integer ms = luaL_checkinteger(L, 1);
  luaL_argcheck(L, ms > 0, 1, "epoch milliseconds expected");
  k->t->clock_ms = ms;
  if (tp__join_batch(&k->host, k->t) != 0 || tpq_clock_set(&k->t->queue, ms) != 0)
    return luaL_error(L, "cannot set the test clock: %s", sqlite3_errmsg(k->t->db.db));
  k->t->queue_touched = true;
  tp__flush_batch(&k->host);
  return 0;
}

/* host.localtime(epoch) -> {year, month, day, hour, min, sec, wday, yday,
** utc_offset}: epoch broken down in the tenant's zone, as tp.localtime. */
static int l_localtime(lua_State *L) {
  kit_file *k = kit_open_of(L);
  tplib_push_localtime(L, k->t->conf->timezone, (int64_t)luaL_checkinteger(L, 1));
  return 1;
}

static int l_timezone(lua_State *L) {
  lua_pushstring(L, kit_open_of(L)->t->conf->timezone);
  return 1;
}

/* host.last() -> what the last plugin invocation cost, or nil. */
static int l_last(lua_State *L) {
  kit_file *k = kit_open_of(L);
  const struct tp_last_invocation *l = &k->host.last;
  if (!l->plugin[0]) return 0;
  lua_createtable(L, 0, 11);
  lua_pushstring(L, l->plugin);        lua_setfield(L, -2, "plugin");
  lua_pushstring(L, l->kind);          lua_setfield(L, -2, "kind");
  lua_pushstring(L, l->name);          lua_setfield(L, -2, "name");
  lua_pushboolean(L, l->ok);           lua_setfield(L, -2, "ok");
  lua_pushinteger(L, l->used);         lua_setfield(L, -2, "instructions");
  lua_pushinteger(L, l->budget);       lua_setfield(L, -2, "budget");
  lua_pushinteger(L, l->now_ms);       lua_setfield(L, -2, "now_ms");
  lua_pushinteger(L, (lua_Integer)l->seed);      lua_setfield(L, -2, "seed");
  lua_pushinteger(L, (lua_Integer)l->draws);     lua_setfield(L, -2, "random_draws");
  lua_pushinteger(L, (lua_Integer)l->mem_peak);  lua_setfield(L, -2, "mem_peak_bytes");
  return 1;
}

/* host.invoke_task(kind, plugin, name, arg_json) -> ok, error: runs a job
** ("job") or an event delivery ("event") handler once, now, as the runner
** would, in its own savepoint committed at once; it is not queued. */
static int l_invoke_task(lua_State *L) {
  kit_file *k = kit_open_of(L);
  const char *kind = luaL_checkstring(L, 1);
  const char *plugin = luaL_checkstring(L, 2);
  const char *name = luaL_checkstring(L, 3);
  size_t n;
  const char *arg = luaL_checklstring(L, 4, &n);
  bool event = strcmp(kind, "event") == 0;
  luaL_argcheck(L, event || strcmp(kind, "job") == 0, 1, "\"job\" or \"event\" expected");
  tp_slot *s = tp__slot(k->t, plugin);
  if (!s || !s->current)
    return luaL_error(L, "plugin '%s' is not enabled in this test host (kit.plugins)", plugin);
  tp_plugin *p = s->current;
  tp_host *h = &k->host;
  if (tp__join_batch(h, k->t) != 0 || tps_savepoint(&k->t->db) != 0)
    return luaL_error(L, "cannot open a transaction: %s", sqlite3_errmsg(k->t->db.db));
  tp_invocation inv = {.request_id = "kit-replay", .now_ms = k->t->clock_ms};
  tpa_seed(&inv, h->pin_seed ? h->pinned_seed : tp__seed(h, inv.now_ms, inv.request_id));
  h->pin_seed = false;
  char err[4096] = "";
  int rc = tpi_call_task(p, event ? "subscribe" : "jobs", name, arg, n, &inv,
                         event ? TP_CTX_EVENT : TP_CTX_JOB, err, sizeof err);
  if (rc == 0) tps_release(&k->t->db);
  else tps_rollback_to(&k->t->db);
  tp__run_reason(h, k->t, p, &inv, event ? "event" : "job", name, rc != 0);
  k->t->queue_touched = true;  /* the handler may have scheduled or emitted */
  tp__flush_batch(h);
  tp_host_iteration_end(h);
  tp_log_flush();
  lua_pushboolean(L, rc == 0);
  if (rc == 0) lua_pushnil(L);
  else lua_pushstring(L, err);
  return 2;
}

void tpkit_push(lua_State *L, kit_file *k) {
  static const luaL_Reg fns[] = {
      {"open", l_open}, {"request", l_request}, {"request_batch", l_request_batch},
      {"token", l_token}, {"now_ms", l_now_ms}, {"localtime", l_localtime},
      {"timezone", l_timezone},
      {"advance", l_advance}, {"drain", l_drain}, {"query", l_query},
      {"pin_seed", l_pin_seed}, {"set_clock", l_set_clock}, {"last", l_last},
      {"invoke_task", l_invoke_task},
      {"json_encode", tpj_l_encode}, {"json_decode", tpj_l_decode}, {NULL, NULL}};
  lua_newtable(L);
  lua_pushlightuserdata(L, k);
  luaL_setfuncs(L, fns, 1);
  lua_pushstring(L, KIT_ADMIN_KEY);
  lua_setfield(L, -2, "admin_key");
  lua_pushstring(L, k->plugin);
  lua_setfield(L, -2, "plugin");
  char err[64];
  if (tpj_decode(L, "[null]", 6, err, sizeof err) == 0) {
    lua_rawgeti(L, -1, 1);
    lua_setfield(L, -3, "null");
    lua_pop(L, 1);
  }
}

void tpkit_close(kit_file *k, tprun_stats *stats) {
  if (k->t) tprun_stats_merge(stats, &k->t->runs.stats);
  if (k->host_opened) {
    tp_host_commit(&k->host);
    tp_host_close(&k->host);
  }
  if (k->cfg_loaded) tpc_free(&k->cfg);
  tp_log_flush();
  tp_remove_tree(k->tmp);
}
