/*
** host.c - the request pipeline: route, authenticate, run in a savepoint.
*/
#include "host.h"

#include <ctype.h>
#include <errno.h>
#include <lauxlib.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/stat.h>

#include "api.h"
#include "json.h"
#include "clock.h"
#include "keyguard.h"
#include "log.h"
#include "sandbox.h"
#include "token.h"
#include "utf8.h"

/* ---- opening */

static int mkdir_p(const char *path) {
  char tmp[1024];
  tp_copy_str(tmp, sizeof tmp, path);
  for (char *p = tmp + 1; *p; p++)
    if (*p == '/') {
      *p = '\0';
      if (mkdir(tmp, 0750) != 0 && errno != EEXIST) return -1;
      *p = '/';
    }
  return mkdir(tmp, 0750) != 0 && errno != EEXIST ? -1 : 0;
}

static int cmp_tenant(const void *a, const void *b) {
  return strcmp(((const tp_tenant *)a)->conf->id, ((const tp_tenant *)b)->conf->id);
}

/* The tenant's database, scheduler tables, clock, routers and plugins. */
static int open_tenant(tp_host *h, tp_tenant *t, char *err, size_t errcap) {
  char path[1100];
  snprintf(path, sizeof path, "%s/%s.db", h->cfg->data_dir, t->conf->id);
  t->host = h;
  t->next_due_ms = INT64_MAX;
  if (tps_open(&t->db, path, h->cfg->synchronous, err, errcap) != 0) return -1;
  if (tpq_open(&t->queue, &t->db, err, errcap) != 0) return -1;
  if (tprun_open(&t->runs, &t->db, err, errcap) != 0) return -1;
  if (tpal_open(&t->aliases, t->db.db, err, errcap) != 0) return -1;
  if (t->conf->manual_clock) {  /* a test clock never runs backwards, even across restarts */
    t->clock_ms = tpq_clock_get(&t->queue);
    if (t->clock_ms == 0) {  /* first start: from now on the saved clock is the truth */
      t->clock_ms = tp_clock_wall_ms();
      if (tpq_clock_set(&t->queue, t->clock_ms) != 0) {
        snprintf(err, errcap, "%s: cannot save the manual clock: %s", path, sqlite3_errmsg(t->db.db));
        return -1;
      }
    }
  }
  t->routes = tpr_new();
  t->admin = tpr_new();
  if (tp__add_builtins(t->routes, t->admin, err, errcap) != 0) return -1;
  t->nslots = t->conf->nplugins;
  t->slots = calloc((size_t)(t->nslots ? t->nslots : 1), sizeof *t->slots);
  for (int j = 0; j < t->nslots; j++) t->slots[j].conf = &t->conf->plugins[j];
  /* campaigns last: their setup drives the mechanics, which must be serving */
  for (int pass = 0; pass < 2; pass++)
    for (int j = 0; j < t->nslots; j++) {
      double ms;
      if (!t->slots[j].conf->script == !pass && tp__install(h, t, &t->slots[j], &ms) != 0)
        h->plugin_failures++;
    }
  t->next_due_ms = tpq_next_due(&t->queue);
  return 0;
}

int tp_host_open(tp_host *h, const tpc_config *cfg, char *err, size_t errcap) {
  memset(h, 0, sizeof *h);
  h->cfg = cfg;
  h->metrics = tpm_new();
  h->timer_due_ms = INT64_MAX;
  h->scratch = luaL_newstate();
  h->keyguard = calloc(1, sizeof *h->keyguard);
  if (h->scratch) tpj_open(h->scratch);
  if (getrandom(&h->seed_secret, sizeof h->seed_secret, 0) != sizeof h->seed_secret)
    h->seed_secret = (uint64_t)tp_clock_mono_ns() * 0x9e3779b97f4a7c15ull;
  h->ratelimit = tprl_new(TPRL_SLOTS, h->seed_secret * 0x9e3779b97f4a7c15ull);
  if (mkdir_p(cfg->data_dir) != 0) {
    snprintf(err, errcap, "cannot create data directory %s: %s", cfg->data_dir, strerror(errno));
    return -1;
  }
  h->tenants = calloc((size_t)cfg->ntenants, sizeof *h->tenants);
  h->batch = calloc((size_t)cfg->ntenants, sizeof *h->batch);
  for (int i = 0; i < cfg->ntenants; i++) h->tenants[i].conf = &cfg->tenants[i];
  /* sorted before anything points into the array: plugins keep &t->db */
  qsort(h->tenants, (size_t)cfg->ntenants, sizeof *h->tenants, cmp_tenant);
  for (int i = 0; i < cfg->ntenants; i++) {
    h->ntenants++;
    if (open_tenant(h, &h->tenants[i], err, errcap) != 0) return -1;
  }
  return 0;
}

void tp_host_close(tp_host *h) {
  for (int i = 0; i < h->ntenants; i++) {
    tp_tenant *t = &h->tenants[i];
    for (int j = 0; j < t->nslots; j++)
      if (t->slots[j].current) {
        tpp_free(t->slots[j].current);
        free(t->slots[j].current);
      }
    free(t->slots);
    tpr_free(t->routes);
    tpr_free(t->admin);
    tpq_close(&t->queue);
    tprun_close(&t->runs);
    tpal_close(&t->aliases);
    tps_close(&t->db);
  }
  free(h->tenants);
  free(h->batch);
  tpm_free(h->metrics);
  if (h->scratch) lua_close(h->scratch);
  free(h->keyguard);
  h->keyguard = NULL;
  tprl_free(h->ratelimit);
  memset(h, 0, sizeof *h);
}

tp_slot *tp__slot(tp_tenant *t, const char *plugin) {
  for (int i = 0; i < t->nslots; i++)
    if (strcmp(t->slots[i].conf->name, plugin) == 0) return &t->slots[i];
  return NULL;
}

int64_t tp__now(const tp_tenant *t) {
  return t->conf->manual_clock ? t->clock_ms : tp_clock_wall_ms();
}

static tp_tenant *find_tenant(tp_host *h, const char *id, size_t n) {
  int lo = 0, hi = h->ntenants - 1;
  while (lo <= hi) {
    int mid = (lo + hi) / 2;
    const char *mid_id = h->tenants[mid].conf->id;
    int c = strncmp(id, mid_id, n);
    if (c == 0) c = mid_id[n] == '\0' ? 0 : -1;
    if (c == 0) return &h->tenants[mid];
    if (c < 0) hi = mid - 1;
    else lo = mid + 1;
  }
  return NULL;
}

/* ---- built-in endpoints */

static void render_metrics(tp_host *h, tph_response *res) {
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
    for (int k = 0; k < 4; k++)
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
  tpm_family(&res->body, "tidepool_open_connections", "gauge", "Client connections open now.");
  tp_buf_printf(&res->body, "tidepool_open_connections %lld\n",
                (long long)(h->server ? tph_open_connections(h->server) : 0));
  tpm_family(&res->body, "tidepool_plugins_failed", "gauge", "Plugins that failed to load.");
  tp_buf_printf(&res->body, "tidepool_plugins_failed %d\n", h->plugin_failures);
}

/* ---- authentication */

/* A merged member's token enters as its survivor's; an erased one's is refused. */
static bool resolve_member(tp_tenant *t, tph_response *res) {
  char survivor[TPT_MAX_ID + 1];
  switch (tpal_resolve(&t->aliases, res->user, survivor)) {
    case TPAL_SELF: return true;
    case TPAL_ALIAS: memcpy(res->user, survivor, strlen(survivor) + 1); return true;
    case TPAL_ERASED:
      tph_error(res, 401, "member_erased", "this member's personal data was erased at their request");
      break;
    case TPAL_ERROR:
      tph_error(res, 503, "unavailable", "cannot read the member's aliases; try again");
      break;
  }
  res->user[0] = '\0';
  return false;
}

/* Returns false (response filled) if the route's auth rule is not met. */
static bool authenticate(tp_tenant *t, const tp_route *r, const tph_request *req,
                         tph_response *res) {
  if (r->auth == TP_AUTH_ADMIN) return tp__check_admin(t, req, res);
  const tph_header *auth = tph_find_header(req, "authorization");
  if (!auth) {
    if (r->auth != TP_AUTH_USER) return true;
    tph_error(res, 401, "auth_required", "this route needs a user: send Authorization: Bearer <token>");
    return false;
  }
  if (auth->vlen < 8 || strncasecmp(auth->value, "Bearer ", 7) != 0) {
    tph_error(res, 401, "invalid_token", "the Authorization header must be 'Bearer <token>'");
    return false;
  }
  tpt_result rc = tpt_verify(auth->value + 7, auth->vlen - 7, t->conf->id, t->conf->token_secret,
                             t->conf->token_secret_len, tp_clock_wall_ms() / 1000, res->user);
  if (rc != TPT_OK) {
    tph_error(res, rc == TPT_WRONG_TENANT ? 403 : 401, tpt_result_code(rc), "%s",
              tpt_result_message(rc));
    res->user[0] = '\0';
    return false;
  }
  return resolve_member(t, res);
}

static bool content_type_json(const tph_request *req) {
  const tph_header *ct = tph_find_header(req, "content-type");
  if (!ct) return false;
  size_t n = 0;
  while (n < ct->vlen && ct->value[n] != ';' && ct->value[n] != ' ') n++;
  return n == 16 && strncasecmp(ct->value, "application/json", 16) == 0;
}

/* ---- dispatch */

/* Splits "/v1/{tenant}/rest" or "/admin/{tenant}/rest". */
static bool split_target(const char *path, size_t n, bool *admin, const char **tenant,
                         size_t *tlen, const char **rest, size_t *rlen) {
  size_t skip;
  if (n >= 4 && memcmp(path, "/v1/", 4) == 0) {
    *admin = false;
    skip = 4;
  } else if (n >= 7 && memcmp(path, "/admin/", 7) == 0) {
    *admin = true;
    skip = 7;
  } else {
    return false;
  }
  *tenant = path + skip;
  const char *slash = memchr(*tenant, '/', n - skip);
  *tlen = slash ? (size_t)(slash - *tenant) : n - skip;
  *rest = slash ? slash : "/";
  *rlen = slash ? n - (size_t)(slash - path) : 1;
  return *tlen > 0;
}

/* The seed of an invocation's generator: the time, the request id and a
** secret drawn at start-up, so that no client can aim tp.random by choosing
** its request id. It is logged, so any run can be replayed. */
uint64_t tp__seed(const tp_host *h, int64_t now_ms, const char *request_id) {
  uint64_t seed = h->seed_secret ^ (uint64_t)now_ms;
  for (const char *c = request_id; *c; c++) seed = (seed ^ (unsigned char)*c) * 0x100000001b3ull;
  return seed & INT64_MAX;  /* the same positive number in Lua (tp.seed()) and in the log */
}

/* ---- recorded runs */

const char *tp__run_reason(tp_host *h, tp_tenant *t, tp_plugin *p, const tp_invocation *inv,
                           const char *kind, const char *name, bool failed) {
  tprun_stats_note(&t->runs.stats, p->name, p->generation, kind, name, p->used, p->budget);
  bool armed = tprun_arm_take(&t->runs, p->name, kind, name);
  if (h->keep_last) {
    struct tp_last_invocation *l = &h->last;
    tp_copy_str(l->plugin, sizeof l->plugin, p->name);
    tp_copy_str(l->kind, sizeof l->kind, kind);
    tp_copy_str(l->name, sizeof l->name, name);
    l->ok = !failed;
    l->used = p->used;
    l->budget = p->budget;
    l->now_ms = inv->now_ms;
    l->seed = inv->seed;
    l->draws = inv->draws;
    l->mem_peak = p->mem_peak;
    l->run_id = 0;
  }
  return failed ? "error" : armed ? "armed" : NULL;
}

int64_t tp__record_run(tp_host *h, tp_tenant *t, tp_plugin *p, tprun_info *info,
                       const char *input, size_t input_len) {
  info->tenant = t->conf->id;
  info->plugin = p->name;
  info->version = p->version;
  info->generation = p->generation;
  info->at_ms = tp_clock_wall_ms();
  info->used = p->used;
  info->budget = p->budget;
  info->step = tpsb_hook_step();
  info->mem_peak = p->mem_peak;
  info->mem_cap = p->mem_limit;
  if (!info->limit && p->timed_out) info->limit = "deadline_exceeded";
  if (!info->limit && p->exceeded) info->limit = "budget_exceeded";
  if (!info->limit && p->mem_exceeded) info->limit = "memory_exceeded";
  tp_buf plugins;  /* what a replay enables besides the plugin itself */
  tp_buf_init(&plugins);
  tp_buf_addc(&plugins, '[');
  for (int i = 0; i < t->nslots; i++)
    if (t->slots[i].current) {
      if (plugins.len > 1) tp_buf_addc(&plugins, ',');
      tp_buf_add_json_str(&plugins, t->slots[i].conf->name, strlen(t->slots[i].conf->name));
    }
  tp_buf_addc(&plugins, ']');
  info->tenant_plugins = tp_buf_cstr(&plugins);
  int64_t id = 0;
  int rc = tprun_record(&t->runs, info, input, input_len, &id);
  tp_buf_free(&plugins);
  if (rc != 0) {
    tp_buf *line = tp_log_begin(TP_LOG_ERROR, "run not recorded");
    tp_log_str(line, "tenant", t->conf->id);
    tp_log_str(line, "plugin", p->name);
    tp_log_str(line, "error", sqlite3_errmsg(t->db.db));
    tp_log_end(line);
    return 0;
  }
  tp_buf *line = tp_log_begin(TP_LOG_INFO, "run recorded");
  if (line) {
    tp_log_str(line, "tenant", t->conf->id);
    tp_log_str(line, "plugin", p->name);
    tp_log_str(line, "kind", info->kind);
    tp_log_str(line, "name", info->name);
    tp_log_str(line, "reason", info->reason);
    if (info->request_id) tp_log_str(line, "request_id", info->request_id);
    tp_log_int(line, "run_id", id);
    tp_log_end(line);
  }
  if (h->keep_last) h->last.run_id = id;
  return id;
}

/* Records a route's run: its input as the handler saw it, the answer. */
static void record_route(tp_host *h, tp_tenant *t, const tp_route *r, const tp_call *call,
                         const tp_invocation *inv, const char *name, const char *reason,
                         const tp_result *result, const tph_response *res, double ms) {
  bool body_is_json = true;
  if (call->body_len && call->body_len <= TPRUN_MAX_BODY && h->scratch) {
    char e[64];  /* the handler may have failed on it: keep it as JSON only if it is */
    body_is_json = tpj_decode(h->scratch, call->body, call->body_len, e, sizeof e) == 0;
    lua_settop(h->scratch, 0);
  }
  tp_buf input;
  tp_buf_init(&input);
  tprun_route_input(&input, r, call, body_is_json);
  bool limit = strcmp(result->code, "budget_exceeded") == 0 ||
               strcmp(result->code, "memory_exceeded") == 0 ||
               strcmp(result->code, "deadline_exceeded") == 0;
  tprun_info info = {.kind = "route", .name = name, .request_id = call->request_id,
                     .reason = reason, .inv = inv, .ok = result->ok, .status = res->status,
                     .code = result->code[0] ? result->code : NULL,
                     .error = inv->error && inv->error[0] ? inv->error : NULL,
                     .limit = limit ? result->code : NULL,
                     .body = r->personal ? TPRUN_REDACTED : res->body.data,
                     .body_len = r->personal ? strlen(TPRUN_REDACTED) : res->body.len, .ms = ms};
  tp__record_run(h, t, r->plugin, &info, input.data, input.len);
  tp_buf_free(&input);
}

static void run_route(tp_host *h, tp_tenant *t, const tp_route *r, const tph_request *req,
                      const tpr_match *m, const char *path, size_t plen, const char *query,
                      size_t qlen, tph_response *res) {
  if (tp__join_batch(h, t) != 0) {
    tph_error(res, 503, "store_unavailable", "the tenant's database cannot start a transaction");
    return;
  }
  /* every answer given in this batch rests on it: a 409 "sold out" is only
  ** true if the sale before it is saved */
  res->commit_failed = &t->db.commit_failed;
  if (!tps_batch_alive(&t->db)) {
    tph_error(res, 503, "batch_aborted", "the transaction this request would join was rolled "
              "back; nothing was saved, retry");
    return;
  }
  char error[TPRUN_MAX_ERROR + 64];  /* filled only when the handler fails */
  error[0] = '\0';
  tp_invocation inv = {.request_id = res->request_id, .now_ms = tp__now(t), .error = error,
                       .error_cap = sizeof error};
  res->seed = h->pin_seed ? h->pinned_seed : tp__seed(h, inv.now_ms, res->request_id);
  h->pin_seed = false;
  tpa_seed(&inv, res->seed);
  tp_call call = {.request_id = res->request_id, .method = req->method, .path = path,
                  .path_len = plen, .query = query, .query_len = qlen, .headers = req->headers,
                  .nheaders = req->nheaders, .body = req->body, .body_len = req->body_len,
                  .user = res->user[0] ? res->user : NULL, .match = m};
  tp_result result;
  if (tps_savepoint(&t->db) != 0) {
    tph_error(res, 503, "store_unavailable", "the tenant's database cannot open a savepoint");
    return;
  }
  uint64_t start = tp_clock_mono_ns();
  tpp_call_route(r->plugin, r, &call, &inv, &res->body, &result);
  double ms = (double)(tp_clock_mono_ns() - start) / 1e6;
  int rc = result.ok ? tps_release(&t->db) : tps_rollback_to(&t->db);
  res->status = result.status;
  tp_copy_str(res->error_code, sizeof res->error_code, result.code);
  bool failed = !result.ok && result.status >= 500;
  if (failed) tpm_plugin_error(h->metrics);
  if (strncmp(result.code, "risk_", 5) == 0) tpm_refusal(h->metrics, result.code);  /* tp.risk */
  char name[TPRUN_NAME_MAX];
  snprintf(name, sizeof name, "%s %s", r->method, r->path);
  /* written after the savepoint closed: a failed run's record outlives its rollback */
  const char *reason = tp__run_reason(h, t, r->plugin, &inv, "route", name, failed);
  if (reason) record_route(h, t, r, &call, &inv, name, reason, &result, res, ms);
  if (!tps_batch_alive(&t->db)) return;  /* answered 503 when the batch is committed */
  if (rc != 0)
    tph_error(res, 500, "store_error", "the request's savepoint could not be closed: %s",
              sqlite3_errmsg(t->db.db));
}

int tp__join_batch(tp_host *h, tp_tenant *t) {
  if (tps_batch_begin(&t->db) != 0) return -1;
  if (!t->dirty) {
    t->dirty = true;
    h->batch[h->nbatch++] = t;
  }
  return 0;
}

/* The client's address: the peer's, or, when the peer is a trusted proxy, the
** last address of its X-Forwarded-For (the one that proxy added; what came
** before it is the client's own say). Into out, which has 48 bytes. */
static const char *client_address(const tp_host *h, const tph_request *req, char *out) {
  const char *peer = req->peer ? req->peer : "";
  bool trusted = false;
  for (int i = 0; i < h->cfg->ntrusted_proxies && !trusted; i++)
    trusted = strcmp(peer, h->cfg->trusted_proxies[i]) == 0;
  const tph_header *xff = trusted ? tph_find_header(req, "x-forwarded-for") : NULL;
  if (!xff) return peer;
  size_t end = xff->vlen, start;
  while (end > 0 && (xff->value[end - 1] == ' ' || xff->value[end - 1] == ',')) end--;
  for (start = end; start > 0 && xff->value[start - 1] != ',' && xff->value[start - 1] != ' '; start--) {}
  size_t n = end - start;
  if (n == 0 || n >= 48) return peer;
  for (size_t i = 0; i < n; i++) {  /* an address is hex digits, '.' and ':' */
    char ch = xff->value[start + i];
    if (!(isxdigit((unsigned char)ch) || ch == '.' || ch == ':')) return peer;
  }
  memcpy(out, xff->value + start, n);
  out[n] = '\0';
  return out;
}

void tp_host_handle(void *host, const tph_request *req_in, tph_response *res) {
  tp_host *h = host;
  char client[48];
  tph_request with_client = *req_in;
  with_client.peer = client_address(h, req_in, client);
  const tph_request *req = &with_client;
  const char *target = req->target;
  size_t n = req->target_len;
  const char *q = memchr(target, '?', n);
  size_t plen = q ? (size_t)(q - target) : n;
  const char *query = q ? q + 1 : "";
  size_t qlen = q ? n - plen - 1 : 0;
  if (plen > TPR_MAX_PATH || qlen > TPR_MAX_PATH) {
    tph_error(res, 414, "uri_too_long", "the path or the query is longer than %d bytes",
              TPR_MAX_PATH);
    return;
  }
  bool healthz = plen == 8 && memcmp(target, "/healthz", 8) == 0;
  bool metrics = plen == 8 && memcmp(target, "/metrics", 8) == 0;
  if (metrics && !tp__metrics_allowed(h, req)) {
    /* to a stranger, as absent as any unknown path */
    tph_error(res, 404, "not_found", "no such endpoint: paths start with /v1/{tenant}/ or /admin/{tenant}/");
    return;
  }
  if (healthz || metrics) {
    tp_copy_str(res->route, sizeof res->route, healthz ? "healthz" : "metrics");
    if (strcmp(req->method, "GET") != 0 && strcmp(req->method, "HEAD") != 0) {
      snprintf(res->allow, sizeof res->allow, "GET, HEAD");
      tph_error(res, 405, "method_not_allowed", "%s is not allowed here (allowed: GET, HEAD)",
                req->method);
    } else if (healthz) {
      tp_buf_adds(&res->body, "{\"status\":\"ok\"}");
      res->status = 200;
    } else {
      render_metrics(h, res);
    }
    return;
  }
  bool admin;
  const char *tid, *rest;
  size_t tlen, rlen;
  if (!split_target(target, plen, &admin, &tid, &tlen, &rest, &rlen)) {
    tph_error(res, 404, "not_found", "no such endpoint: paths start with /v1/{tenant}/ or /admin/{tenant}/");
    return;
  }
  if (admin && tlen == 6 && memcmp(tid, "reload", 6) == 0 && rlen == 1) {
    tp__host_reload_endpoint(h, req, res);  /* "reload" is no tenant's id */
    return;
  }
  tp_tenant *t = find_tenant(h, tid, tlen);
  if (!t && admin) {
    tp__refuse_unknown_admin(h, req, tid, tlen, res);
    return;
  }
  if (!t) {  /* a brand's public API is public: that it exists is no secret */
    tph_error(res, 404, "tenant_not_found", "no tenant '%.*s'", (int)(tlen > 64 ? 64 : tlen), tid);
    return;
  }
  tp_copy_str(res->tenant, sizeof res->tenant, t->conf->id);
  tpr_match *m = &h->match;
  tpr_result found = tpr_find(admin ? t->admin : t->routes, req->method, rest, rlen, m);
  if (found == TPR_NOT_FOUND) {
    tph_error(res, 404, "route_not_found", "no route %s %.*s", req->method, (int)plen, target);
  } else if (found == TPR_METHOD_NOT_ALLOWED) {
    tp_copy_str(res->allow, sizeof res->allow, m->allow);
    tph_error(res, 405, "method_not_allowed", "%s is not allowed here (allowed: %s)", req->method,
              m->allow);
  } else if (found == TPR_BAD_PARAM) {
    tph_error(res, 400, "invalid_param", "path parameter '%s' has the wrong type or encoding",
              m->bad_param);
  } else {
    const tp_route *r = m->data;
    tp_copy_str(res->route, sizeof res->route, r->label);
    if (!authenticate(t, r, req, res)) {
      /* response filled */
    } else if (!tprl_admit(h->ratelimit, &t->conf->rate_limits, t->conf->id,
                           admin ? TPRL_ADMIN : (tprl_class)r->rate_class, req, res)) {
      tpm_refusal(h->metrics, "rate_limited");  /* 429, before any Lua runs */
    } else if (r->builtin) {
      ((tp_builtin_fn)(void (*)(void))r->builtin)(h, t, req, res);
    } else if (req->body_len && !content_type_json(req)) {
      tph_error(res, 415, "unsupported_media_type", "request bodies must be Content-Type: application/json");
    } else if (req->body_len && !tp_utf8_valid(req->body, req->body_len)) {
      tph_error(res, 400, "invalid_json", "the request body is not valid UTF-8");
    } else if (tpp_check_query(query, qlen) != 0) {
      tph_error(res, 400, "invalid_query", "the query string is not valid percent-encoded UTF-8");
    } else {
      run_route(h, t, r, req, m, target, plen, query, qlen, res);
      tp__reset_killed(h);  /* the route and its plugin may be gone from here on */
    }
  }
}

void tp__reset_killed(tp_host *h) {
  if (!h->reset_pending || h->running_tasks) return;
  h->reset_pending = false;
  for (int i = 0; i < h->ntenants; i++) {
    tp_tenant *t = &h->tenants[i];
    if (!t->reset_pending) continue;
    t->reset_pending = false;
    for (int j = 0; j < t->nslots; j++) {
      tp_slot *s = &t->slots[j];
      if (!s->current || !s->current->killed) continue;
      s->current->killed = false;  /* if the load fails, the old state serves on */
      double ms;
      int rc = tp__install(h, t, s, &ms);
      tpm_plugin_reset(h->metrics, rc == 0);
      tp_buf *line = tp_log_begin(rc == 0 ? TP_LOG_INFO : TP_LOG_ERROR,
                                  rc == 0 ? "plugin state reset after a limit"
                                          : "plugin state could not be reset after a limit");
      tp_log_str(line, "tenant", t->conf->id);
      tp_log_str(line, "plugin", s->conf->name);
      tp_log_num(line, "ms", ms);
      tp_log_end(line);
    }
  }
  tp__arm_timer(h);
}

/* ---- end of iteration */

void tp__flush_batch(tp_host *h) {
  for (int i = 0; i < h->nbatch; i++) {
    tp_tenant *t = h->batch[i];
    uint64_t start = tp_clock_mono_ns();
    int size = t->db.batch_size;
    char err[256];
    int rc = tps_commit(&t->db, err, sizeof err);
    tpm_commit(h->metrics, size, (double)(tp_clock_mono_ns() - start) / 1e9, rc == 0);
    if (rc != 0) {
      h->commit_failed = true;
      tp_buf *line = tp_log_begin(TP_LOG_ERROR, "commit failed; the batch was rolled back");
      tp_log_str(line, "tenant", t->conf->id);
      tp_log_int(line, "requests", size);
      tp_log_str(line, "error", err);
      tp_log_end(line);
    }
    t->dirty = false;
    tp__after_commit(h, t);
  }
  h->nbatch = 0;
}

/* A batch may commit more than once per iteration (a reload or a clock advance
** flushes what came before it), so a failure is remembered until every answer
** of the iteration has been sent, not just until the next BEGIN. */
void tp_host_iteration_end(void *host) {
  tp_host *h = host;
  if (!h->commit_failed) return;  /* the usual case: no tenant to visit */
  h->commit_failed = false;
  for (int i = 0; i < h->ntenants; i++) h->tenants[i].db.commit_failed = false;
}

void tp_host_commit(void *host) {
  tp_host *h = host;
  tp__flush_batch(h);
  tp__arm_timer(h);
}

void tp_host_finished(void *host, const tph_response *res, double seconds) {
  tp_host *h = host;
  tpm_request(h->metrics, res->route[0] ? res->route : NULL, res->status, seconds);
  tp_buf *line = tp_log_begin(TP_LOG_INFO, "request");
  if (!line) return;
  tp_log_str(line, "request_id", res->request_id);
  if (res->tenant[0]) tp_log_str(line, "tenant", res->tenant);
  tp_log_str(line, "method", res->method);
  tp_log_str(line, "route", res->route[0] ? res->route : "unmatched");
  tp_log_int(line, "status", res->status);
  tp_log_num(line, "duration_ms", seconds * 1000);
  if (res->user[0]) tp_log_str(line, "user", res->user);
  if (res->error_code[0]) tp_log_str(line, "error", res->error_code);
  if (res->seed) tp_log_uint(line, "seed", res->seed);
  tp_log_end(line);
}
