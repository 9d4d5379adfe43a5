/*
** host.c - the request pipeline: route, authenticate, run in a savepoint.
*/
#include "host/host_int.h"

#include <ctype.h>
#include <errno.h>
#include <lauxlib.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/stat.h>

#include "lua/api.h"
#include "lua/invoke.h"
#include "base/json.h"
#include "base/clock.h"
#include "host/keyguard.h"
#include "base/log.h"
#include "lua/sandbox.h"
#include "base/token.h"
#include "base/url.h"
#include "base/utf8.h"
#include "store/owners.h"
#include "store/users.h"

/* ---- opening */

static int cmp_tenant(const void *a, const void *b) {
  return strcmp(((const tp_tenant *)a)->conf->id, ((const tp_tenant *)b)->conf->id);
}

int tp_host_open(tp_host *h, const tpc_config *cfg, char *err, size_t errcap) {
  memset(h, 0, sizeof *h);
  h->cfg = cfg;
  h->metrics = tpm_new();
  h->timer_due_ms = INT64_MAX;
  h->nbuiltins = tp_host_builtins(h->builtins);
  h->scratch = luaL_newstate();
  h->keyguard = calloc(1, sizeof *h->keyguard);
  if (h->scratch) tpj_open(h->scratch);
  if (getrandom(&h->seed_secret, sizeof h->seed_secret, 0) != sizeof h->seed_secret)
    h->seed_secret = (uint64_t)tp_clock_mono_ns() * 0x9e3779b97f4a7c15ull;
  h->ratelimit = tprl_new(TPRL_SLOTS, h->seed_secret * 0x9e3779b97f4a7c15ull);
  tp__console_open(h);
  if (tp_mkdir_p(cfg->data_dir) != 0) {
    snprintf(err, errcap, "cannot create data directory %s: %s", cfg->data_dir, strerror(errno));
    return -1;
  }
  if (cfg->self) {  /* a move between two folders copies the brand's files; within one it need not */
    char ferr[512];
    if (tpow_folder_id(cfg->data_dir, h->folder, ferr, sizeof ferr) != 0) {
      h->folder[0] = '\0';
      tp_log_msg(TP_LOG_WARN, "the data folder has no id: every move here copies the brand's files", ferr);
    }
  }
  /* a cluster's other brands too: closed, answered 421, adopted when one moves here */
  int all = cfg->ntenants + cfg->nforeign;
  h->tenants = calloc((size_t)all, sizeof *h->tenants);
  h->batch = calloc((size_t)all, sizeof *h->batch);
  for (int i = 0; i < all; i++) h->tenants[i].conf = &cfg->tenants[i];
  /* sorted before anything points into the array: plugins keep &t->db */
  qsort(h->tenants, (size_t)all, sizeof *h->tenants, cmp_tenant);
  if (cfg->limits.page_cache_bytes > 0) sqlite3_soft_heap_limit64(cfg->limits.page_cache_bytes);
  if (cfg->lazy_tenants) {  /* where closed brands' timers stand (store/dueindex.h) */
    char path[1100], ierr[512];
    snprintf(path, sizeof path, "%s/tidepool.due.db", cfg->data_dir);
    if (tpdi_open(&h->due_index, path, ierr, sizeof ierr) != 0)
      tp_log_msg(TP_LOG_WARN, "every brand's file is read at start", ierr);
  }
  int read = 0, owned = 0;
  for (int i = 0; i < all; i++) {
    tp_tenant *t = &h->tenants[i];
    tp__brand_init(h, t, t->conf);
    h->ntenants++;
    if (!t->owned) continue;
    owned++;
    if (cfg->lazy_tenants) read += tp__brand_peek(h, t);  /* opened when first needed */
    else if (tp__brand_open(h, t, "start", err, errcap) != 0) return -1;
  }
  if (cfg->lazy_tenants) {
    tp_buf *line = tp_log_begin(TP_LOG_INFO, "brands closed until needed");
    tp_log_int(line, "brands", owned);
    tp_log_int(line, "due_times_read_from_their_files", read);
    tp_log_end(line);
  }
  return 0;
}

void tp_host_close(tp_host *h) {
  tp__sync_drain(h);   /* in case the host was never detached */
  tp__track_drain(h);
  tp__backup_stop(h);
  tp__transfer_drain(h);
  for (int i = 0; i < h->ntenants; i++) tp__brand_free(h, &h->tenants[i]);
  tpdi_close(&h->due_index);
  free(h->tenants);
  free(h->batch);
  tpm_free(h->metrics);
  if (h->scratch) lua_close(h->scratch);
  free(h->keyguard);
  h->keyguard = NULL;
  tprl_free(h->ratelimit);
  tp__console_close(h);
  tpt_forget_keys();
  memset(h, 0, sizeof *h);
}

/* ---- built-in endpoints */

/* ---- authentication */

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

/* ---- Idempotency-Keys (store/idem.h) */

/* A request to an idempotent route, with its key. */
typedef struct idem_request {
  const char *key;
  size_t klen;
  const char *scope;         /* the user, "" for none */
  unsigned char print[32];
} idem_request;

/* The stored answer as a replay: an object gains "replayed":true first (the
** host encoded it: no whitespace before the brace); anything else as it is. */
static void replayed(const tp_buf *stored, tp_buf *out) {
  if (stored->len >= 2 && stored->data[0] == '{') {
    tp_buf_adds(out, stored->data[1] == '}' ? "{\"replayed\":true" : "{\"replayed\":true,");
    tp_buf_add(out, stored->data + 1, stored->len - 1);
  } else {
    tp_buf_add(out, stored->data, stored->len);
  }
}

/* Reads the key of a request to r: false with the response filled when the
** request is answered here (400 for a malformed key, 503, or 409). Otherwise
** true: with *k filled if there is a key to store the answer under, or with
** k->key NULL if there is none. */
static bool idem_begin(tp_tenant *t, const tp_route *r, const tph_request *req, const char *path,
                       size_t plen, const char *query, size_t qlen, tph_response *res,
                       idem_request *k) {
  k->key = NULL;
  const tph_header *h = r->idempotent ? tph_find_header(req, "idempotency-key") : NULL;
  if (!h) return true;
  if (!tpid_key_valid(h->value, h->vlen)) {
    tph_error(res, 400, "invalid_idempotency_key",
              "Idempotency-Key must be 1-%d visible ASCII characters", TPID_MAX_KEY);
    return false;
  }
  k->key = h->value;
  k->klen = h->vlen;
  k->scope = res->user;
  if (tpid_fingerprint(r->label, req->method, path, plen, query, qlen, req->body, req->body_len,
                       k->print) != 0) {
    tph_error(res, 503, "out_of_memory", "the host could not fingerprint the request; retry");
    return false;
  }
  int status = 0;
  tp_buf stored;
  tp_buf_init(&stored);
  tpid_found found = tpid_find(&t->idem, k->scope, k->key, k->klen, k->print, tp__now(t),
                               &status, &stored);
  if (found == TPID_HIT) replayed(&stored, &res->body);
  tp_buf_free(&stored);
  switch (found) {
    case TPID_MISS:
      return true;
    case TPID_HIT:  /* answered again, no Lua: a created thing is not created twice */
      res->status = status == 201 ? 200 : status;
      tpm_idempotent_replay(t->host->metrics);
      return false;
    case TPID_REUSED:
      tph_error(res, 409, "idempotency_key_reused",
                "this Idempotency-Key was used for another request; send a new key for a new "
                "request");
      return false;
    default:
      tph_error(res, 503, "store_unavailable", "the tenant's database cannot look the "
                "Idempotency-Key up: %s", sqlite3_errmsg(t->db.db));
      return false;
  }
}

/* Stores a succeeded request's answer in its savepoint, still open. False,
** with the response replaced, when it cannot: the caller rolls back. */
static bool idem_store(tp_tenant *t, const idem_request *k, tph_response *res) {
  int rc = tpid_put(&t->idem, k->scope, k->key, k->klen, k->print, res->status, res->body.data,
                    res->body.len, tp__now(t));
  if (rc == 0) return true;
  tp_buf_reset(&res->body);
  if (rc == -1)
    tph_error(res, 500, "idempotent_answer_too_large", "the answer is over the %d bytes an "
              "Idempotency-Key keeps; nothing was done", TPID_MAX_BODY);
  else
    tph_error(res, 500, "store_error", "the answer of the Idempotency-Key could not be stored: "
              "%s; nothing was done", sqlite3_errmsg(t->db.db));
  return false;
}

/* ---- recorded runs */

static void run_route(tp_host *h, tp_tenant *t, const tp_route *r, const tph_request *req,
                      const tpr_match *m, const char *path, size_t plen, const char *query,
                      size_t qlen, tph_response *res) {
  if (tp__join_batch(h, t) != 0) {
    tph_error(res, 503, "store_unavailable", "the tenant's database cannot start a transaction");
    return;
  }
  /* an answer rests on the batch's writes it may have seen: a 409 "sold out"
  ** is only true if the sale before it is saved; unless it wrote nothing and
  ** read no plugin's tables that the batch wrote (clean, at the end) */
  res->commit_failed = &t->db.commit_failed;
  res->rests_on = t;
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
  idem_request key;
  if (!idem_begin(t, r, req, path, plen, query, qlen, res, &key)) return;
  if (tps_savepoint(&t->db) != 0) {
    tph_error(res, 503, "store_unavailable", "the tenant's database cannot open a savepoint");
    return;
  }
  uint64_t start = tp_clock_mono_ns();
  tpi_call_route(r->plugin, r, &call, &inv, &res->body, &result);
  double ms = (double)(tp_clock_mono_ns() - start) / 1e6;
  res->status = result.status;
  if (result.csv) res->content_type = "text/csv; charset=utf-8";
  bool stored = true;  /* in the request's savepoint: kept or undone with it */
  if (result.ok && key.key && result.status >= 200 && result.status <= 299 &&
      tps_batch_alive(&t->db))
    stored = idem_store(t, &key, res);
  int rc = result.ok && stored ? tps_release(&t->db) : tps_rollback_to(&t->db);
  if (!stored) {
    result.ok = false;
    result.status = res->status;
    tp_copy_str(result.code, sizeof result.code, res->error_code);
  }
  tp_copy_str(res->error_code, sizeof res->error_code, result.code);
  bool failed = !result.ok && result.status >= 500;
  if (failed) tpm_plugin_error(h->metrics);
  if (strncmp(result.code, "risk_", 5) == 0) tpm_refusal(h->metrics, result.code);  /* tp.risk */
  char name[TPRUN_NAME_MAX];
  snprintf(name, sizeof name, "%s %s", r->method, r->path);
  /* written after the savepoint closed: a failed run's record outlives its rollback */
  const char *reason = tp__run_reason(h, t, r->plugin, &inv, "route", name, failed);
  if (reason) tp__record_route(h, t, r, &call, &inv, name, reason, &result, res, ms);
  if (!tps_batch_alive(&t->db)) return;  /* answered 503 when the batch is committed */
  if (rc != 0)
    tph_error(res, 500, "store_error", "the request's savepoint could not be closed: %s",
              sqlite3_errmsg(t->db.db));
  /* it changed nothing and read only owners whose last writes earlier
  ** commits made durable (each waited for the disk before its answers went;
  ** the sender's own records aside, which a power loss may undo: store.h,
  ** tps_set_durable): its answer need not wait for this iteration's commit
  ** (net/http.h; what it read: store/deps.h) */
  res->clean = rc == 0 && tps_request_clean(&t->db);
}

void tp_host_handle(void *host, const tph_request *req_in, tph_response *res) {
  tp_host *h = host;
  char client[48];
  tph_request with_client = *req_in;
  with_client.peer = tp__client_address(h, req_in, client);
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
      tp__render_metrics(h, res);
    }
    return;
  }
  if (plen >= 8 && memcmp(target, "/console", 8) == 0 && (plen == 8 || target[8] == '/')) {
    tp__console_handle(h, req, target, plen, res);
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
  if (admin && tlen == 7 && memcmp(tid, "cluster", 7) == 0) {
    tp__cluster_endpoint(h, req, rest, rlen, res);  /* "cluster" is no tenant's id either */
    return;
  }
  tp_tenant *t = tp__tenant(h, tid, tlen);
  if (!t && admin) {
    tp__refuse_unknown_admin(h, req, tid, tlen, res);
    return;
  }
  if (!t) {  /* a brand's public API is public: that it exists is no secret */
    tph_error(res, 404, "tenant_not_found", "no tenant '%.*s'", (int)(tlen > 64 ? 64 : tlen), tid);
    return;
  }
  tp_copy_str(res->tenant, sizeof res->tenant, t->conf->id);
  if (!tp__tenant_serving(h, t, res)) return;  /* another node's, moving, or not opening */
  tps_request_begin(&t->db);  /* what it reads from here, its token's alias first (store/deps.h) */
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
    if (!tp__authenticate(t, r, req, res)) {
      /* response filled */
    } else if (!tp__rate_admit(h, t, admin ? TPRL_ADMIN : (tprl_class)r->rate_class, req, res)) {
      tpm_refusal(h->metrics, "rate_limited");  /* 429, before any Lua runs */
    } else if (r->builtin) {
      ((tp_builtin_fn)(void (*)(void))r->builtin)(h, t, req, res);
    } else if (req->body_len && !content_type_json(req)) {
      tph_error(res, 415, "unsupported_media_type", "request bodies must be Content-Type: application/json");
    } else if (req->body_len && !tp_utf8_valid(req->body, req->body_len)) {
      tph_error(res, 400, "invalid_json", "the request body is not valid UTF-8");
    } else if (tp_query_each(query, qlen, NULL, NULL) != 0) {
      tph_error(res, 400, "invalid_query", "the query string is not valid percent-encoded UTF-8");
    } else {
      run_route(h, t, r, req, m, target, plen, query, qlen, res);
      tp__reset_killed(h);  /* the route and its plugin may be gone from here on */
    }
  }
  tps_request_end(&t->db);
}

/* ---- end of iteration */

int tp_host_builtins(tp_route *out[TP_HOST_MAX_BUILTINS]) {
  int n;
  const tp_route *admin = tp__admin_routes(&n);
  int k = 0;
  out[k++] = (tp_route *)tp__openapi_route(false);
  out[k++] = (tp_route *)tp__openapi_route(true);
  out[k++] = (tp_route *)tp__track_route();
  for (int i = 0; i < n && k < TP_HOST_MAX_BUILTINS; i++) out[k++] = (tp_route *)&admin[i];
  const tp_route *backup = tp__backup_routes(&n);
  for (int i = 0; i < n && k < TP_HOST_MAX_BUILTINS; i++) out[k++] = (tp_route *)&backup[i];
  const tp_route *tryout = tp__tryout_routes(&n);
  for (int i = 0; i < n && k < TP_HOST_MAX_BUILTINS; i++) out[k++] = (tp_route *)&tryout[i];
  const tp_route *console = tp__console_routes(&n);
  for (int i = 0; i < n && k < TP_HOST_MAX_BUILTINS; i++) out[k++] = (tp_route *)&console[i];
  return k;
}

int tp_host_reload(tp_host *h, const char *tenant, const char *plugin, tp_buf *out) {
  int failed = tp__reload(h, tenant, plugin, out);
  tp__arm_timer(h);
  return failed;
}

void tp_host_attach(tp_host *h, uv_loop_t *loop) {
  tp__runner_attach(h, loop);
  for (int i = 0; i < h->ntenants; i++) tp__sync_open(h, &h->tenants[i]);
  tp__sender_start(h);
  tp__backup_start(h);
  tp__brands_start(h);
}

void tp_host_detach(tp_host *h) {
  tp__sync_drain(h);   /* a worker may be syncing a brand's commits */
  tp__track_drain(h);  /* or checkpointing an analytics file */
  tp__backup_stop(h);  /* or copying a brand's database */
  tp__transfer_drain(h);  /* or reading or pulling one for a move */
  tp__brands_stop(h);
  tp__console_drain(h);  /* or checking a password */
  tp__tryout_stop(h);    /* or trying a campaign in a child process */
  tp__sender_stop(h);
  tp__runner_detach(h);
}

void tp_host_commit(void *host) {
  tp_host *h = host;
  tp__sync_reap(h);
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
