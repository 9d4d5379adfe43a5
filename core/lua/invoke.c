/*
** invoke.c - calling into a loaded plugin under its limits.
*/
#include "lua/invoke.h"

#include <lauxlib.h>
#include <stdio.h>
#include <string.h>

#include "base/json.h"
#include "base/log.h"
#include "base/luacopy.h"
#include "lua/jsonview.h"
#include "lua/req.h"
#include "lua/sandbox.h"
#include "lua/watchdog.h"
#include "base/error.h"

bool tpi_has_job(tp_plugin *p, lua_State *L, const char *name) {
  lua_rawgeti(L, LUA_REGISTRYINDEX, p->jobs_ref);
  lua_pushstring(L, name);
  bool has = lua_rawget(L, -2) == LUA_TFUNCTION;
  lua_pop(L, 2);
  return has;
}

static bool listed(char (*names)[TPQ_MAX_NAME + 1], int n, const char *name) {
  for (int i = 0; i < n; i++)
    if (names[i][0] == name[0] && strcmp(names[i], name) == 0) return true;
  return false;
}

bool tpi_subscribes(const tp_plugin *p, const char *name) {
  return listed(p->subscriptions, p->nsubscriptions, name);
}

bool tpi_exports(const tp_plugin *p, const char *name) { return listed(p->export_names, p->nexports, name); }

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
** the answer: body in the one error shape (base/error.h), res failed. The
** error's text goes to inv->error when it asks for it. */
static void handler_error(tp_plugin *p, const tp_route *r, int rc, tp_buf *body, tp_result *res,
                          const char *request_id, tp_invocation *inv) {
  lua_State *L = p->L;
  if (inv && inv->error) describe_error(p, rc, inv->error, inv->error_cap);
  tp_error e;
  tp_buf details;
  tp_buf_init(&details);
  char msg[512];
  const char *limit = limit_hit(p, rc, msg, sizeof msg);
  if (limit) {
    log_failure(p, r->label, request_id, limit, msg);
    tp_error_set(&e, 500, limit, "%s", msg);
  } else if (tpst_is_fail(L, -1)) {
    /* the table came from tp.fail, but a plugin that caught it may have
    ** changed its fields before raising it again: take nothing on trust */
    tpst_rawfield(L, -1, "status");
    tpst_rawfield(L, -2, "code");
    tpst_rawfield(L, -3, "message");
    lua_Integer status = lua_isinteger(L, -3) ? lua_tointeger(L, -3) : 500;
    const char *code = lua_type(L, -2) == LUA_TSTRING ? lua_tostring(L, -2) : "error";
    const char *m = lua_type(L, -1) == LUA_TSTRING ? lua_tostring(L, -1) : "";
    if (status < 400 || status > 599) status = 500;
    if (status >= 500) log_failure(p, r->label, request_id, code, m);
    tp_error_set(&e, (int)status, code, "%s", m);
    lua_pop(L, 3);
    char err[128];
    if (tpst_rawfield(L, -1, "details") != LUA_TNIL &&
        tpj_encode(L, -1, &details, err, sizeof err) == 0) {
      e.details = details.data;
      e.details_len = details.len;
    }
    lua_pop(L, 1);
    if (tpwd_expired()) {  /* writing its details ran past the deadline */
      p->timed_out = true;
      limit = limit_hit(p, rc, msg, sizeof msg);
      log_failure(p, r->label, request_id, limit, msg);
      tp_error_set(&e, 500, limit, "%s", msg);
    }
  } else {
    log_failure(p, r->label, request_id, NULL, lua_tostring(L, -1));
    tp_error_set(&e, 500, "internal_error",
                 "the request failed inside plugin '%s' and changed nothing; quote request id %s",
                 p->name, request_id);
  }
  tp_error_render(&e, request_id, body);
  tp_buf_free(&details);
  res->status = e.status;
  res->ok = false;
  tp_copy_str(res->code, sizeof res->code, e.code);
}

static void bad_result(tp_plugin *p, const tp_route *r, tp_buf *body, tp_result *res,
                       const char *request_id, tp_invocation *inv, const char *why) {
  lua_pushfstring(p->L, "handler of %s returned %s", r->label, why);
  handler_error(p, r, LUA_ERRRUN, body, res, request_id, inv);
}

void tpi_call_route(tp_plugin *p, const tp_route *r, const tp_call *call, tp_invocation *inv,
                    tp_buf *body, tp_result *res) {
  lua_State *L = p->L;
  int base = lua_gettop(L);
  res->csv = false;
  lua_rawgeti(L, LUA_REGISTRYINDEX, p->msgh_ref);
  lua_rawgeti(L, LUA_REGISTRYINDEX, r->handler_ref);
  tpreq_push(p, r, call);
  /* stack: msgh handler req */
  if (call->body_len) {
    char e[256];
    if (tpj_decode(L, call->body, call->body_len, e, sizeof e) != 0) {
      tp_error bad;
      tp_error_set(&bad, 400, "invalid_json", "the request body is not valid JSON: %s", e);
      tp_error_render(&bad, call->request_id, body);
      *res = (tp_result){.status = 400, .ok = false, .code = "invalid_json"};
      lua_settop(L, base);
      return;
    }
    lua_setfield(L, -2, "body");
  }
  p->call = call;
  /* the deadline covers the answer's JSON too: a body or an error's details
  ** shared many times over stop there (tpj_set_interrupt), as the handler would */
  tpsb_frame answer;
  tpsb_enter(p, p->deadline_ms, &answer);
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
    else if (r->csv && lua_type(L, -1) == LUA_TSTRING) {  /* a CSV answer, as it is */
      size_t n;
      const char *text = lua_tolstring(L, -1, &n);
      tp_buf_add(body, text, n);
      res->status = status;
      res->ok = true;
      res->csv = true;
      res->code[0] = '\0';
    } else if (!lua_istable(L, -1) && !lua_isnil(L, -1) && !tpj_to_view(L, -1))
      bad_result(p, r, body, res, call->request_id, inv,
                 r->csv ? "a body that is neither a table nor a string" : "a body that is not a table");
    else if (lua_isnil(L, -1) ? (tp_buf_adds(body, "{}"), 0)
                              : tpj_encode(L, -1, body, e, sizeof e) != 0) {
      if (tpwd_expired()) p->timed_out = true;  /* handler_error answers deadline_exceeded */
      lua_pushfstring(L, "handler of %s returned a body that cannot be JSON: %s", r->label, e);
      handler_error(p, r, LUA_ERRRUN, body, res, call->request_id, inv);
    } else {
      res->status = status;
      res->ok = true;
      res->code[0] = '\0';
    }
  }
  tpsb_leave(p, &answer);
  lua_settop(L, base);
}

/* The message of the error at the top of p's stack, for logs and dead letters. */
static void describe_error(tp_plugin *p, int rc, char *err, size_t errcap) {
  lua_State *L = p->L;
  if (limit_hit(p, rc, err, errcap)) return;
  if (tpst_is_fail(L, -1)) {
    tpst_rawfield(L, -1, "code");
    tpst_rawfield(L, -2, "message");
    snprintf(err, errcap, "%s: %s", lua_tostring(L, -2) ? lua_tostring(L, -2) : "error",
             lua_tostring(L, -1) ? lua_tostring(L, -1) : "");
    lua_pop(L, 2);
  } else {
    snprintf(err, errcap, "%s", lua_tostring(L, -1) ? lua_tostring(L, -1) : "error");
  }
}

int tpi_call_task(tp_plugin *p, const char *kind, const char *name, const char *arg,
                  size_t arg_len, tp_invocation *inv, int ctx, char *err, size_t errcap) {
  lua_State *L = p->L;
  int base = lua_gettop(L);
  int rc = -1;
  lua_rawgeti(L, LUA_REGISTRYINDEX, p->msgh_ref);
  lua_rawgeti(L, LUA_REGISTRYINDEX, strcmp(kind, "jobs") == 0 ? p->jobs_ref : p->subscribe_ref);
  if (lua_getfield(L, -1, name) != LUA_TFUNCTION) {
    snprintf(err, errcap, "plugin '%s' (version %s) has no %s handler '%s'", p->name, p->version,
             strcmp(kind, "jobs") == 0 ? "job" : "event", name);
  } else if (tpj_decode_exact(L, arg, arg_len, err, errcap) != 0 &&
             tpj_decode(L, arg, arg_len, err, errcap) != 0) {
    /* the host wrote arg (exact: [] and integers past 2^53 kept); cjson takes
    ** a payload written otherwise; err says why neither could */
  } else {
    /* stack: msgh handlers fn arg */
    int status = invoke(p, ctx, inv, 1, 0, base + 1);
    if (status == LUA_OK) rc = 0;
    else describe_error(p, status, err, errcap);
  }
  lua_settop(L, base);
  return rc;
}

bool tpi_has_setup(const tp_plugin *p) { return p->setup_ref != LUA_NOREF; }

int tpi_setup(tp_plugin *p, tp_invocation *inv, char *err, size_t errcap) {
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
  bool views;    /* tp.call_view: tables arrive as JSON views */
  size_t encoded;
  char *err;
  size_t errcap;
  int rc;
} result_copy;

static int copy_results_in(lua_State *to) {
  result_copy *c = lua_touserdata(to, 1);
  lua_pop(to, 1);
  for (int i = 0; i < c->n; i++) {
    int idx = c->first + i, type = lua_type(c->src, idx);
    int64_t encoded = c->views && (type == LUA_TTABLE || type == LUA_TUSERDATA)
                          ? tpjv_push(c->src, idx, to, c->err, c->errcap)  /* encoded in the callee */
                          : tp_lua_copy(c->src, idx, to, c->err, c->errcap);
    if (encoded < 0) {
      c->rc = -1;
      return 0;
    }
    c->encoded += (size_t)encoded;
  }
  return c->n;
}

/* Copies the n values at src[first..] onto to (tables as views if views),
** where the receiver's memory cap may refuse them: in a protected call, so
** that a refusal unwinds to here and not past the savepoint and the callee's
** stack, which the caller of tpi_call_export still has to close. Returns n,
** or -1 with err; *encoded: the bytes of JSON the views took. */
static int copy_results(lua_State *src, int first, int n, bool views, lua_State *to,
                        size_t *encoded, char *err, size_t errcap) {
  result_copy c = {src, first, n, views, 0, err, errcap, 0};
  int top = lua_gettop(to);
  lua_pushcfunction(to, copy_results_in);
  lua_pushlightuserdata(to, &c);
  if (lua_pcall(to, 1, LUA_MULTRET, 0) != LUA_OK) {
    snprintf(err, errcap, "the results do not fit under plugin '%s''s memory cap of %zu bytes",
             tpst_owner(to)->name, tpst_owner(to)->mem_limit);
    tpst_owner(to)->mem_exceeded = true;
    c.rc = -1;
  }
  if (encoded) *encoded = c.encoded;
  if (c.rc != 0) {
    lua_settop(to, top);
    return -1;
  }
  return n;
}

int tpi_call_export(tp_plugin *callee, const char *name, lua_State *from, int first, int nargs,
                    bool views, tp_invocation *inv, int ctx, char *err, size_t errcap) {
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
    tpst_owner(from)->used += (int64_t)((callee->mem_bytes - before) / TPSB_COPY_BYTES);
  if (callee->mem_limit && callee->mem_bytes > callee->mem_limit) {
    snprintf(err, errcap, "the arguments do not fit under plugin '%s''s memory cap of %zu "
             "bytes", callee->name, callee->mem_limit);
    lua_settop(L, base);
    lua_gc(L, LUA_GCCOLLECT);
    return -1;
  }
  /* stack: msgh fn args... */
  const char *old_caller = callee->caller;  /* restored: the callee may be called again later */
  callee->caller = tpst_owner(from)->name;
  int status = invoke(callee, ctx, inv, nargs, LUA_MULTRET, base + 1);
  callee->caller = old_caller;
  int nres = -1;
  if (status != LUA_OK) {
    /* a tp.fail's details can be large too: copied like results */
    if (!limit_hit(callee, status, err, errcap) && tpst_is_fail(L, -1) &&
        copy_results(L, lua_gettop(L), 1, false, from, NULL, err, errcap) == 1) {
      tpst_mark_fail(from);  /* the caller raises it as its own tp.fail */
      nres = -2;
    } else if (!tpsb_killed(callee) && status != LUA_ERRMEM) {
      describe_error(callee, status, err, errcap);
    }
  } else {
    nres = lua_gettop(L) - base - 1;
    tp_plugin *caller = tpst_owner(from);
    size_t had = caller->mem_bytes;
    if (!lua_checkstack(from, nres + 8)) {
      snprintf(err, errcap, "too many results");
      nres = -1;
    }
    /* the caller runs: its cap refuses the copy as it is made */
    size_t encoded = 0;
    if (nres > 0) nres = copy_results(L, base + 2, nres, views, from, &encoded, err, errcap);
    if (caller->mem_bytes > had)
      caller->used += (int64_t)((caller->mem_bytes - had) / TPSB_COPY_BYTES);
    caller->used += (int64_t)(encoded / TPSB_PARSE_BYTES);
  }
  lua_settop(L, base);
  return nres;
}
