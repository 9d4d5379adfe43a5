/*
** admin.c - the host's own admin endpoints, mounted under /admin/{tenant}
** before any plugin's admin routes (a plugin cannot shadow them: its routes
** would clash and it would not load), and POST /admin/reload for the host.
*/
#include <lauxlib.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/clock.h"
#include "host/host_int.h"
#include "base/log.h"
#include "base/token.h"
#include "base/url.h"

/* ---- GET /metrics */

void tp__render_metrics(tp_host *h, tph_response *res) {
  res->status = 200;
  res->content_type = "text/plain; version=0.0.4";
  tpm_render(h->metrics, &res->body);
  tpm_family(&res->body, "tidepool_lua_memory_bytes", "gauge",
             "Bytes allocated by each plugin's Lua state.");
  for (int i = 0; i < h->ntenants; i++)
    for (int j = 0; j < h->tenants[i].nslots; j++) {
      const tp_plugin *p = h->tenants[i].slots[j].current;
      if (p)
        tp_buf_printf(&res->body, "tidepool_lua_memory_bytes{tenant=\"%s\",plugin=\"%s\"} %zu\n",
                      h->tenants[i].conf->id, p->name, p->mem_bytes);
    }
  tpm_family(&res->body, "tidepool_jobs_pending", "gauge",
             "Jobs and event deliveries waiting to run (dead=\"true\": dead-lettered).");
  for (int i = 0; i < h->ntenants; i++)
    for (int k = 0; k < 4 && h->tenants[i].open; k++)  /* a closed brand's queue is not counted */
      tp_buf_printf(&res->body, "tidepool_jobs_pending{tenant=\"%s\",kind=\"%s\",dead=\"%s\"} %lld\n",
                    h->tenants[i].conf->id, k & 1 ? "event" : "job", k & 2 ? "true" : "false",
                    (long long)tpq_count(&h->tenants[i].queue, k & 1 ? "event" : "job", k & 2));
  tpm_family(&res->body, "tidepool_instructions_peak", "gauge",
             "Most Lua instructions one invocation of a route, job or event used (this version).");
  tpm_family(&res->body, "tidepool_instructions_last", "gauge",
             "Lua instructions the last invocation of a route, job or event used.");
  tpm_family(&res->body, "tidepool_instruction_budget", "gauge",
             "Instruction budget of each invocation of a route, job or event.");
  for (int i = 0; i < h->ntenants; i++)
    tprun_stats_metrics(&h->tenants[i].runs.stats, h->tenants[i].conf->id, &res->body);
  tpm_family(&res->body, "tidepool_brands_open", "gauge",
             "Brands whose database and plugins are open now (open_tenants.lazy closes idle ones).");
  tp_buf_printf(&res->body, "tidepool_brands_open %d\n", h->open_tenants);
  tpm_family(&res->body, "tidepool_brands", "gauge", "Brands this host serves, open or not.");
  int owned = 0;
  for (int i = 0; i < h->ntenants; i++) owned += h->tenants[i].owned;
  tp_buf_printf(&res->body, "tidepool_brands %d\n", owned);
  tpm_family(&res->body, "tidepool_open_connections", "gauge", "Client connections open now.");
  tp_buf_printf(&res->body, "tidepool_open_connections %lld\n",
                (long long)(h->server ? tph_open_connections(h->server) : 0));
  tpm_family(&res->body, "tidepool_track_events_total", "counter",
             "Events POST /track took in (accepted), skipped as seen before (duplicate) or refused "
             "in an invalid batch (refused); a batch answered 503 busy counts in "
             "tidepool_refusals_total{code=\"busy\"}.");
  for (int i = 0; i < h->ntenants; i++) {
    const tptk_db *k = &h->tenants[i].track;
    const char *id = h->tenants[i].conf->id;
    tp_buf_printf(&res->body,
                  "tidepool_track_events_total{tenant=\"%s\",result=\"accepted\"} %lld\n"
                  "tidepool_track_events_total{tenant=\"%s\",result=\"duplicate\"} %lld\n"
                  "tidepool_track_events_total{tenant=\"%s\",result=\"refused\"} %lld\n",
                  id, (long long)k->accepted, id, (long long)k->duplicates, id,
                  (long long)k->refused);
  }
  tpm_family(&res->body, "tidepool_plugins_failed", "gauge", "Plugins that failed to load.");
  tp_buf_printf(&res->body, "tidepool_plugins_failed %d\n", h->plugin_failures);
}

/* ---- helpers */

/* The decoded value of name in the request's query, into out ("" if absent).
** False (response filled: 400 invalid_query) when it is badly encoded or too long. */
static bool query_param(const tph_request *req, const char *name, char *out, size_t cap,
                        tph_response *res) {
  const char *q = memchr(req->target, '?', req->target_len);
  size_t n = q ? req->target_len - (size_t)(q + 1 - req->target) : 0;
  if (tp_query_get(q ? q + 1 : "", n, name, out, cap) >= 0) return true;
  tph_error(res, 400, "invalid_query", "query parameter '%s' is badly encoded or too long", name);
  return false;
}

static void add_str_field(tp_buf *b, const char *key, const char *value) {
  tp_buf_printf(b, "\"%s\":", key);
  if (value) tp_buf_add_json_str(b, value, strlen(value));
  else tp_buf_adds(b, "null");
}

/* ---- plugins and reload */

/* GET /admin/{tenant}/plugins */
static void get_plugins(tp_host *h, tp_tenant *t, const tph_request *req, tph_response *res) {
  (void)h, (void)req;
  tp_buf *b = &res->body;
  tp_buf_adds(b, "{");
  add_str_field(b, "tenant", t->conf->id);
  tp_buf_adds(b, ",\"plugins\":[");
  for (int i = 0; i < t->nslots; i++) {
    tp_slot *s = &t->slots[i];
    tp_plugin *p = s->current;
    tp_buf_adds(b, i ? ",{" : "{");
    add_str_field(b, "name", s->conf->name);
    tp_buf_printf(b, ",\"status\":\"%s\",", !p ? "failed" : s->last_error[0] ? "stale" : "active");
    add_str_field(b, "version", p ? p->version : NULL);
    tp_buf_printf(b, ",\"generation\":%llu,", (unsigned long long)(p ? p->generation : 0));
    add_str_field(b, "last_error", s->last_error[0] ? s->last_error : NULL);
    tp_buf_printf(b, ",\"last_error_ms\":%lld", (long long)s->last_error_ms);
    tp_buf_printf(b, ",\"instruction_budget\":%lld,\"memory_cap_bytes\":%lld",
                  (long long)s->conf->instructions, (long long)s->conf->memory_bytes);
    if (p) {
      tp_buf_printf(b, ",\"loaded_at_ms\":%lld,\"lua_memory_bytes\":%zu,\"routes\":[",
                    (long long)p->loaded_at_ms, p->mem_bytes);
      for (int j = 0; j < p->nroutes; j++) {
        tp_buf_adds(b, j ? "," : "");
        tp_buf_add_json_str(b, p->routes[j].label, strlen(p->routes[j].label));
      }
      tp_buf_adds(b, "],\"subscribe\":[");
      for (int j = 0; j < p->nsubscriptions; j++) {
        tp_buf_adds(b, j ? "," : "");
        tp_buf_add_json_str(b, p->subscriptions[j], strlen(p->subscriptions[j]));
      }
      tp_buf_adds(b, "]");
    }
    tp_buf_adds(b, "}");
  }
  tp_buf_adds(b, "]}");
  res->status = 200;
}

/* GET /admin/{tenant}/plugins/{name}/source: a campaign script as the host
** reads it (the Campaigns page shows it beside its file:line problems). A
** plugin folder's code is the agency's: only scripts are shown. */
static void get_source(tp_host *h, tp_tenant *t, const tph_request *req, tph_response *res) {
  (void)req;
  const char *name = h->match.params[0].value;
  tp_slot *s = tp__slot(t, name);
  if (!s) {
    tph_error(res, 404, "plugin_not_found", "no enabled plugin '%.64s'", name);
    return;
  }
  if (!s->conf->script) {
    tph_error(res, 404, "not_a_campaign", "'%s' is a plugin folder, not a campaign script", name);
    return;
  }
  size_t len;
  char *text = tp_read_file(s->conf->script, 1 << 20, &len);
  if (!text) {
    tph_error(res, 404, "script_unreadable", "the script of '%s' cannot be read", name);
    return;
  }
  const char *base = strrchr(s->conf->script, '/');
  tp_buf *b = &res->body;
  tp_buf_adds(b, "{");
  add_str_field(b, "plugin", name);
  tp_buf_adds(b, ",");
  add_str_field(b, "file", base ? base + 1 : s->conf->script);
  tp_buf_adds(b, ",\"source\":");
  tp_buf_add_json_str(b, text, len);
  tp_buf_adds(b, "}");
  free(text);
  res->status = 200;
}

/* Runs a reload and answers 200 with the outcome, or 422 when any failed. */
static void answer_reload(tp_host *h, const char *tenant, const char *plugin, tph_response *res) {
  bool known_tenant = !tenant, known_plugin = !plugin;
  for (int i = 0; i < h->ntenants; i++) {
    tp_tenant *t = &h->tenants[i];
    if (tenant && strcmp(t->conf->id, tenant) != 0) continue;
    known_tenant = true;
    known_plugin |= plugin && tp__slot(t, plugin);
  }
  if (!known_tenant || !known_plugin) {
    tph_error(res, 404, !known_tenant ? "tenant_not_found" : "plugin_not_found",
              "no %s '%s' to reload", !known_tenant ? "tenant" : "enabled plugin",
              !known_tenant ? tenant : plugin);
    return;
  }
  tp_buf outcome;
  tp_buf_init(&outcome);
  int failed = tp__reload(h, tenant, plugin, &outcome);
  tp__arm_timer(h);
  if (failed == 0) {
    tp_buf_add(&res->body, outcome.data, outcome.len);
    res->status = 200;
  } else {
    tph_error(res, 422, "reload_failed", "%d plugin%s failed to reload and kept their old "
              "version (see details)", failed, failed == 1 ? "" : "s");
    res->body.len -= 2;
    tp_buf_adds(&res->body, ",\"details\":");
    tp_buf_add(&res->body, outcome.data, outcome.len);
    tp_buf_adds(&res->body, "}}");
  }
  tp_buf_free(&outcome);
}

/* POST /admin/{tenant}/reload  {"plugin": name?} */
static void post_reload(tp_host *h, tp_tenant *t, const tph_request *req, tph_response *res) {
  const char *plugin;
  if (!tp__body_object(h, req, res) || !tp__body_string(h, "plugin", &plugin, res)) return;
  answer_reload(h, t->conf->id, plugin, res);
}

/* POST /admin/reload  {"tenant": id?, "plugin": name?}, with a host admin key */
void tp__host_reload_endpoint(tp_host *h, const tph_request *req, tph_response *res) {
  tp_copy_str(res->route, sizeof res->route, "admin POST /admin/reload");
  if (strcmp(req->method, "POST") != 0) {
    snprintf(res->allow, sizeof res->allow, "POST");
    tph_error(res, 405, "method_not_allowed", "%s is not allowed here (allowed: POST)", req->method);
    return;
  }
  if (!tp__check_host_key(h, req, "POST /admin/reload", res)) return;
  const char *tenant, *plugin;
  if (!tp__body_object(h, req, res) || !tp__body_string(h, "tenant", &tenant, res) ||
      !tp__body_string(h, "plugin", &plugin, res))
    return;
  answer_reload(h, tenant, plugin, res);
}

/* ---- jobs and events */

static void list_tasks(tp_tenant *t, const char *kind, const tph_request *req, tph_response *res) {
  char state[16], limit_s[16];
  if (!query_param(req, "state", state, sizeof state, res) ||
      !query_param(req, "limit", limit_s, sizeof limit_s, res))
    return;
  bool dead = strcmp(state, "dead") == 0;
  if (state[0] && !dead && strcmp(state, "pending") != 0) {
    tph_error(res, 400, "invalid_query", "state must be pending or dead");
    return;
  }
  int limit = limit_s[0] ? atoi(limit_s) : 100;
  if (limit < 1 || limit > 1000) {
    tph_error(res, 400, "invalid_query", "limit must be 1-1000");
    return;
  }
  tp_buf *b = &res->body;
  tp_buf_printf(b, "{\"state\":\"%s\",\"pending\":%lld,\"dead\":%lld,\"%ss\":", dead ? "dead" : "pending",
                (long long)tpq_count(&t->queue, kind, false), (long long)tpq_count(&t->queue, kind, true),
                kind);
  if (tpq_list(&t->queue, kind, dead, limit, b) != 0) {
    tph_error(res, 500, "store_error", "listing failed: %s", sqlite3_errmsg(t->db.db));
    return;
  }
  tp_buf_adds(b, "}");
  res->status = 200;
}

static void get_jobs(tp_host *h, tp_tenant *t, const tph_request *req, tph_response *res) {
  (void)h;
  list_tasks(t, "job", req, res);
}

static void get_events(tp_host *h, tp_tenant *t, const tph_request *req, tph_response *res) {
  (void)h;
  list_tasks(t, "event", req, res);
}

/* POST /admin/{tenant}/jobs/{id}/retry: a dead job or delivery runs again now. */
static void post_retry(tp_host *h, tp_tenant *t, const tph_request *req, tph_response *res) {
  (void)req;
  int64_t id = h->match.params[0].ival;
  int rc = tp__join_batch(h, t) == 0 ? tpq_retry(&t->queue, id, tp__now(t)) : -1;
  if (rc < 0) {
    tph_error(res, 503, "store_unavailable", "cannot update the task: %s", sqlite3_errmsg(t->db.db));
  } else if (rc == 0) {
    tph_error(res, 404, "dead_letter_not_found", "no dead-lettered task %lld", (long long)id);
  } else {
    t->queue_touched = true;
    res->commit_failed = &t->db.commit_failed;
    res->rests_on = t;
    tp_buf_printf(&res->body, "{\"id\":%lld,\"state\":\"pending\"}", (long long)id);
    res->status = 200;
  }
}

/* DELETE /admin/{tenant}/jobs/{id}: cancels a pending task or drops a dead one. */
static void delete_job(tp_host *h, tp_tenant *t, const tph_request *req, tph_response *res) {
  (void)req;
  int64_t id = h->match.params[0].ival;
  int rc = tp__join_batch(h, t) == 0 ? tpq_discard(&t->queue, id) : -1;
  if (rc < 0) {
    tph_error(res, 503, "store_unavailable", "cannot remove the task: %s", sqlite3_errmsg(t->db.db));
  } else if (rc == 0) {
    tph_error(res, 404, "job_not_found", "no task %lld", (long long)id);
  } else {
    t->queue_touched = true;
    res->commit_failed = &t->db.commit_failed;
    res->rests_on = t;
    tp_buf_printf(&res->body, "{\"id\":%lld,\"state\":\"removed\"}", (long long)id);
    res->status = 200;
  }
}

/* ---- the clock */

static void clock_json(tp_tenant *t, tp_buf *b) {
  int64_t now = tp__now(t);
  char iso[40];
  tp_clock_format_iso(now, iso, sizeof iso);
  tp_buf_printf(b, "\"clock\":\"%s\",\"now\":%lld,\"now_ms\":%lld,\"iso\":\"%s\"",
                t->conf->manual_clock ? "manual" : "wall", (long long)(now / 1000), (long long)now, iso);
}

static void get_clock(tp_host *h, tp_tenant *t, const tph_request *req, tph_response *res) {
  (void)h, (void)req;
  tp_buf_adds(&res->body, "{");
  clock_json(t, &res->body);
  tp_buf_adds(&res->body, "}");
  res->status = 200;
}

/* POST /admin/{tenant}/clock/advance  {"seconds": n} | {"ms": n} | {"to": epoch seconds} */
static void post_advance(tp_host *h, tp_tenant *t, const tph_request *req, tph_response *res) {
  if (!t->conf->manual_clock) {
    tph_error(res, 409, "clock_not_manual", "tenant '%s' runs on the wall clock; set clock = "
              "\"manual\" in its config to rehearse with a test clock", t->conf->id);
    return;
  }
  if (!tp__body_object(h, req, res)) return;
  lua_State *L = h->scratch;
  static const char *const keys[] = {"seconds", "ms", "to"};
  int64_t to = -1;
  int given = 0;
  for (int i = 0; i < 3; i++) {
    if (lua_getfield(L, 1, keys[i]) == LUA_TNIL) continue;
    given++;
    lua_Integer v = lua_tointeger(L, -1);
    if (!lua_isinteger(L, -1) || v < 0 || v > (lua_Integer)1e13) {
      tph_error(res, 400, "invalid_field", "'%s' must be a non-negative integer", keys[i]);
      return;
    }
    int64_t now = t->clock_ms;
    to = i == 0 ? now + v * 1000 : i == 1 ? now + v : v * 1000;
  }
  if (given != 1) {
    tph_error(res, 400, "invalid_field", "give exactly one of seconds, ms or to (epoch seconds)");
    return;
  }
  if (to < t->clock_ms) {
    tph_error(res, 409, "clock_backwards", "the clock never runs backwards (now %lld ms)",
              (long long)t->clock_ms);
    return;
  }
  int ran, failed;
  if (tp_host_advance(h, t, to, &ran, &failed) != 0) {
    tph_error(res, 503, "store_unavailable", "the clock could not be saved: %s",
              sqlite3_errmsg(t->db.db));
    return;
  }
  tp_buf *b = &res->body;
  tp_buf_adds(b, "{");
  clock_json(t, b);
  tp_buf_printf(b, ",\"tasks_run\":%d,\"tasks_failed\":%d}", ran, failed);
  res->status = 200;
}

/* ---- recorded runs */

/* GET /admin/{tenant}/runs?plugin=&kind=&limit=&after= : summaries, newest first. */
static void get_runs(tp_host *h, tp_tenant *t, const tph_request *req, tph_response *res) {
  (void)h;
  char plugin[40], kind[16], limit_s[16], after_s[24];
  if (!query_param(req, "plugin", plugin, sizeof plugin, res) ||
      !query_param(req, "kind", kind, sizeof kind, res) ||
      !query_param(req, "limit", limit_s, sizeof limit_s, res) ||
      !query_param(req, "after", after_s, sizeof after_s, res))
    return;
  if (kind[0] && strcmp(kind, "route") && strcmp(kind, "job") && strcmp(kind, "event")) {
    tph_error(res, 400, "invalid_query", "kind must be route, job or event");
    return;
  }
  char *end;
  long limit = limit_s[0] ? strtol(limit_s, &end, 10) : 50;
  if ((limit_s[0] && *end) || limit < 1 || limit > TPRUN_KEEP) {
    tph_error(res, 400, "invalid_query", "limit must be an integer from 1 to %d", TPRUN_KEEP);
    return;
  }
  long long after = after_s[0] ? strtoll(after_s, &end, 10) : 0;
  if ((after_s[0] && *end) || after < 0) {
    tph_error(res, 400, "invalid_query", "after must be a run id (the 'next' of the last page)");
    return;
  }
  tp_buf *b = &res->body;
  if (tprun_list(&t->runs, plugin[0] ? plugin : NULL, kind[0] ? kind : NULL, (int)limit, after,
                 b) != 0) {
    tph_error(res, 500, "store_error", "listing runs failed: %s", sqlite3_errmsg(t->db.db));
    return;
  }
  b->len--;  /* the list's closing brace: the armed recordings join it */
  tp_buf_adds(b, ",\"armed\":");
  tprun_arms_json(&t->runs, b);
  tp_buf_adds(b, "}");
  res->status = 200;
}

/* GET /admin/{tenant}/runs/{id}: the whole document, as kit.load_run reads it. */
static void get_run(tp_host *h, tp_tenant *t, const tph_request *req, tph_response *res) {
  (void)req;
  int64_t id = h->match.params[0].ival;
  int rc = tprun_get(&t->runs, id, &res->body);
  if (rc < 0) {
    tph_error(res, 500, "store_error", "reading the run failed: %s", sqlite3_errmsg(t->db.db));
  } else if (rc == 0) {
    tph_error(res, 404, "run_not_found", "no recorded run %lld (only the last %d are kept)",
              (long long)id, TPRUN_KEEP);
  } else {
    res->status = 200;
  }
}

/* POST /admin/{tenant}/runs/record {"plugin", "route"?, "count"?}: records the
** next count invocations of the plugin (of that route only, when given). */
static void post_record(tp_host *h, tp_tenant *t, const tph_request *req, tph_response *res) {
  const char *plugin, *route;
  if (!tp__body_object(h, req, res) || !tp__body_string(h, "plugin", &plugin, res) ||
      !tp__body_string(h, "route", &route, res))
    return;
  lua_State *L = h->scratch;
  lua_Integer count = 1;
  int type = lua_getfield(L, 1, "count");
  if (type != LUA_TNIL) {
    count = lua_tointeger(L, -1);
    if (!lua_isinteger(L, -1) || count < 0 || count > TPRUN_MAX_COUNT) {
      tph_error(res, 400, "invalid_field", "'count' must be an integer from 0 (stop) to %d",
                TPRUN_MAX_COUNT);
      return;
    }
  }
  lua_pushnil(L);
  while (lua_next(L, 1)) {
    lua_pop(L, 1);
    const char *k = lua_type(L, -1) == LUA_TSTRING ? lua_tostring(L, -1) : "?";
    if (strcmp(k, "plugin") && strcmp(k, "route") && strcmp(k, "count")) {
      tph_error(res, 400, "invalid_field", "unknown field '%s' (known: plugin, route, count)", k);
      return;
    }
  }
  if (!plugin) {
    tph_error(res, 400, "invalid_field", "'plugin' is required: the plugin whose invocations "
              "to record");
    return;
  }
  tp_slot *s = tp__slot(t, plugin);
  if (!s || !s->current) {
    tph_error(res, 404, "plugin_not_found", "no plugin '%s' serving in tenant '%s'", plugin,
              t->conf->id);
    return;
  }
  if (route) {
    bool found = false;
    char name[TPRUN_NAME_MAX];
    for (int i = 0; i < s->current->nroutes && !found; i++) {
      const tp_route *r = &s->current->routes[i];
      snprintf(name, sizeof name, "%s %s", r->method, r->path);
      found = strcmp(name, route) == 0;
    }
    if (!found) {
      tph_error(res, 404, "route_not_found", "plugin '%s' has no route '%.300s': give it as "
                "\"METHOD /pattern\" the way the plugin declares it (GET /admin/%s/plugins "
                "lists them)", plugin, route, t->conf->id);
      return;
    }
  }
  if (tprun_arm_set(&t->runs, plugin, route, (int)count) != 0) {
    tph_error(res, 409, "too_many_recordings", "at most %d plugin/route pairs may be armed at "
              "once; disarm one with count 0", TPRUN_MAX_ARMS);
    return;
  }
  tp_buf *b = &res->body;
  tp_buf_adds(b, "{");
  add_str_field(b, "plugin", plugin);
  tp_buf_adds(b, ",");
  add_str_field(b, "route", route);
  tp_buf_printf(b, ",\"count\":%lld,\"armed\":", (long long)count);
  tprun_arms_json(&t->runs, b);
  tp_buf_adds(b, "}");
  res->status = 200;
}

/* ---- the table */

/* The rest of the arguments document the route (tp_route_doc) for the
** OpenAPI document; params and body are JSON. */
#define BUILTIN(m, p, fn, ...) \
  {.method = m, .path = p, .label = "admin " m " /admin/{tenant}" p, .auth = TP_AUTH_ADMIN, \
   .builtin = (void (*)(void))(tp_builtin_fn)fn, .doc = {__VA_ARGS__}}

#define TASK_QUERY \
  "{\"name\":\"state\",\"in\":\"query\",\"required\":false,\"description\":" \
  "\"pending (default) or dead\",\"schema\":{\"type\":\"string\",\"enum\":[\"pending\",\"dead\"]}}," \
  "{\"name\":\"limit\",\"in\":\"query\",\"required\":false,\"description\":" \
  "\"at most this many (default 100)\",\"schema\":{\"type\":\"integer\",\"minimum\":1," \
  "\"maximum\":1000}}"
#define RELOAD_BODY \
  "{\"type\":\"object\",\"properties\":{\"plugin\":{\"type\":\"string\",\"description\":" \
  "\"only this plugin (default: all of the tenant's)\"}}}"
#define ADVANCE_BODY \
  "{\"type\":\"object\",\"description\":\"exactly one of seconds, ms or to\",\"properties\":{" \
  "\"seconds\":{\"type\":\"integer\",\"minimum\":0},\"ms\":{\"type\":\"integer\",\"minimum\":0}," \
  "\"to\":{\"type\":\"integer\",\"minimum\":0,\"description\":\"epoch seconds\"}}}"

#define RUNS_QUERY \
  "{\"name\":\"plugin\",\"in\":\"query\",\"required\":false,\"description\":" \
  "\"only this plugin's runs\",\"schema\":{\"type\":\"string\"}}," \
  "{\"name\":\"kind\",\"in\":\"query\",\"required\":false,\"description\":" \
  "\"only routes, jobs or event deliveries\",\"schema\":{\"type\":\"string\",\"enum\":" \
  "[\"route\",\"job\",\"event\"]}}," \
  "{\"name\":\"limit\",\"in\":\"query\",\"required\":false,\"description\":" \
  "\"at most this many (default 50)\",\"schema\":{\"type\":\"integer\",\"minimum\":1," \
  "\"maximum\":200}}," \
  "{\"name\":\"after\",\"in\":\"query\",\"required\":false,\"description\":" \
  "\"runs older than this id (the next of the previous page)\",\"schema\":{\"type\":" \
  "\"integer\",\"minimum\":0}}"
#define RECORD_BODY \
  "{\"type\":\"object\",\"required\":[\"plugin\"],\"properties\":{\"plugin\":{\"type\":" \
  "\"string\"},\"route\":{\"type\":\"string\",\"description\":\"METHOD /pattern as the " \
  "plugin declares it; default: every invocation of the plugin\"},\"count\":{\"type\":" \
  "\"integer\",\"minimum\":0,\"maximum\":200,\"description\":\"how many to record " \
  "(default 1; 0 stops)\"}}}"

/* The answers' schemas (OpenAPI 3.0), so the admin document types every route. */
#define J_STR "{\"type\":\"string\"}"
#define J_INT "{\"type\":\"integer\"}"
#define J_NUM "{\"type\":\"number\"}"
#define J_NSTR "{\"type\":\"string\",\"nullable\":true}"
#define J_NINT "{\"type\":\"integer\",\"nullable\":true}"
#define J_OBJ(props) "{\"type\":\"object\",\"properties\":{" props "}}"
#define J_LIST(item) "{\"type\":\"array\",\"items\":" item "}"
#define ARMED J_LIST(J_OBJ("\"plugin\":" J_STR ",\"route\":" J_NSTR ",\"left\":" J_INT))
#define PLUGINS_ANSWER                                                                     \
  J_OBJ("\"tenant\":" J_STR ",\"plugins\":" J_LIST(J_OBJ(                                   \
      "\"name\":" J_STR ",\"status\":{\"type\":\"string\",\"enum\":[\"active\",\"stale\",\"failed\"]},"  \
      "\"version\":" J_NSTR ",\"generation\":" J_INT ",\"last_error\":" J_NSTR                 \
      ",\"last_error_ms\":" J_INT ",\"instruction_budget\":" J_INT ",\"memory_cap_bytes\":" J_INT \
      ",\"loaded_at_ms\":" J_INT ",\"lua_memory_bytes\":" J_INT ",\"routes\":" J_LIST(J_STR)     \
      ",\"subscribe\":" J_LIST(J_STR))))
#define OUTCOME                                                                            \
  J_OBJ("\"tenant\":" J_STR ",\"plugin\":" J_STR ",\"error\":" J_STR ",\"serving_version\":" \
        J_STR ",\"generation\":" J_INT ",\"ms\":" J_NUM)
#define RELOAD_ANSWER                                                                      \
  J_OBJ("\"reloaded\":" J_LIST(OUTCOME) ",\"failed\":" J_LIST(OUTCOME) ",\"matched\":" J_INT)
#define TASK                                                                               \
  J_OBJ("\"id\":" J_INT ",\"kind\":" J_STR ",\"plugin\":" J_STR ",\"name\":" J_STR           \
        ",\"source\":" J_NSTR ",\"key\":" J_NSTR ",\"payload\":{},\"due\":" J_INT                \
        ",\"due_ms\":" J_INT ",\"every_s\":" J_INT ",\"attempts\":" J_INT ",\"max_attempts\":"    \
        J_INT ",\"last_error\":" J_NSTR ",\"created_ms\":" J_INT ",\"dead_ms\":" J_NINT)
#define TASKS_ANSWER                                                                       \
  J_OBJ("\"state\":" J_STR ",\"pending\":" J_INT ",\"dead\":" J_INT ",\"jobs\":" J_LIST(TASK) \
        ",\"events\":" J_LIST(TASK))
#define TASK_STATE J_OBJ("\"id\":" J_INT ",\"state\":" J_STR)
#define CLOCK_PROPS                                                                        \
  "\"clock\":{\"type\":\"string\",\"enum\":[\"wall\",\"manual\"]},\"now\":" J_INT ",\"now_ms\":"  \
  J_INT ",\"iso\":" J_STR
#define RUNS_ANSWER                                                                        \
  J_OBJ("\"runs\":" J_LIST(J_OBJ(                                                          \
      "\"id\":" J_INT ",\"at_ms\":" J_INT ",\"plugin\":" J_STR ",\"kind\":" J_STR ",\"name\":"  \
      J_STR ",\"reason\":" J_STR ",\"outcome\":{\"type\":\"string\",\"enum\":[\"ok\",\"failed\"]}," \
      "\"status\":" J_NINT ",\"code\":" J_NSTR ",\"instructions\":" J_INT ",\"budget\":" J_INT   \
      ",\"budget_percent\":" J_NUM ",\"mem_peak_bytes\":" J_INT ",\"ms\":" J_NUM))             \
        ",\"next\":" J_NINT ",\"armed\":" ARMED)
#define RUN_ANSWER                                                                         \
  "{\"type\":\"object\",\"description\":\"the recorded run: the file tidepool test --replay reads\"," \
  "\"properties\":{\"format\":" J_STR ",\"plugin\":" J_STR ",\"generation\":" J_INT ",\"at_ms\":"   \
  J_INT ",\"input\":{\"type\":\"object\"},\"host\":{\"type\":\"object\"},\"outcome\":{\"type\":\"object\"}," \
  "\"instructions\":{\"type\":\"object\"},\"memory\":{\"type\":\"object\"},\"duration_ms\":" J_NUM "}}"
#define RECORD_ANSWER J_OBJ("\"plugin\":" J_STR ",\"route\":" J_NSTR ",\"count\":" J_INT ",\"armed\":" ARMED)

static tp_route builtins[] = {
  BUILTIN("GET", "/plugins", get_plugins,
          .summary = "The tenant's plugins: status, version, generation, last error, routes",
          .response = PLUGINS_ANSWER),
  BUILTIN("GET", "/plugins/{name}/source", get_source,
          .summary = "A campaign script's source, as the host reads it",
          .response = J_OBJ("\"plugin\":" J_STR ",\"file\":" J_STR ",\"source\":" J_STR)),
  BUILTIN("POST", "/reload", post_reload, .body = RELOAD_BODY,
          .summary = "Hot-reload the tenant's plugins (a failed one keeps its old version)",
          .response = RELOAD_ANSWER),
  BUILTIN("GET", "/jobs", get_jobs, .params = TASK_QUERY,
          .summary = "Pending or dead-lettered jobs", .response = TASKS_ANSWER),
  BUILTIN("GET", "/events", get_events, .params = TASK_QUERY,
          .summary = "Pending or dead-lettered event deliveries", .response = TASKS_ANSWER),
  BUILTIN("POST", "/jobs/{id:int}/retry", post_retry,
          .summary = "Run a dead-lettered job or delivery again now", .response = TASK_STATE),
  BUILTIN("DELETE", "/jobs/{id:int}", delete_job,
          .summary = "Cancel a pending job or delivery, or drop a dead one", .response = TASK_STATE),
  BUILTIN("GET", "/clock", get_clock, .summary = "The tenant's clock (wall or manual)",
          .response = J_OBJ(CLOCK_PROPS)),
  BUILTIN("POST", "/clock/advance", post_advance, .body = ADVANCE_BODY, .body_required = true,
          .summary = "Move a manual clock forward and run what falls due",
          .response = J_OBJ(CLOCK_PROPS ",\"tasks_run\":" J_INT ",\"tasks_failed\":" J_INT)),
  BUILTIN("GET", "/runs", get_runs, .params = RUNS_QUERY,
          .summary = "Recorded runs, newest first: outcome, instructions against the budget",
          .response = RUNS_ANSWER),
  BUILTIN("GET", "/runs/{id:int}", get_run,
          .summary = "One recorded run: input, time, seed, outcome (the file to replay)",
          .response = RUN_ANSWER),
  BUILTIN("POST", "/runs/record", post_record, .body = RECORD_BODY, .body_required = true,
          .summary = "Record the next invocations of a plugin (or of one of its routes)",
          .response = RECORD_ANSWER),
};

const tp_route *tp__admin_routes(int *n) {
  *n = (int)(sizeof builtins / sizeof *builtins);
  return builtins;
}
