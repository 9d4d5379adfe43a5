/*
** reload.c - plugin generations: load beside the old one, then swap.
**
** DESIGN.md "Hot reload": the next generation is loaded into a fresh state,
** its routes are mounted on new routers together with every other plugin's,
** its migrations run in their own transaction, and only then does the slot
** point at it. A failure at any step frees the candidate and leaves the old
** generation serving. Everything runs synchronously between two handlers, so
** no request ever sees a half-swapped tenant; an old generation is freed at
** once because nothing outlives the handler that used it (responses copy
** their route label).
*/
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lua/api.h"
#include "lua/invoke.h"
#include "base/clock.h"
#include "host/host_int.h"
#include "base/log.h"

/* The next segment of a route pattern at *p: its text and length; a
** parameter ({name} or {name:type}) is flagged. Advances *p past it. */
static bool next_segment(const char **p, const char **seg, size_t *len, bool *param) {
  while (**p == '/') (*p)++;
  if (!**p) return false;
  *seg = *p;
  while (**p && **p != '/') (*p)++;
  *len = (size_t)(*p - *seg);
  *param = **seg == '{';
  return true;
}

/* Whether a and b (patterns on the same router) clash: the same method and
** shape (a parameter matches any parameter), or parameters of different
** names at the same place after the same literals. */
static bool patterns_clash(const tp_route *a, const tp_route *b) {
  const char *pa = a->path, *pb = b->path;
  const char *sa, *sb;
  size_t na, nb;
  bool xa, xb;
  for (;;) {
    bool more_a = next_segment(&pa, &sa, &na, &xa), more_b = next_segment(&pb, &sb, &nb, &xb);
    if (!more_a || !more_b) return !more_a && !more_b && strcmp(a->method, b->method) == 0;
    if (xa && xb) {
      if (na != nb || memcmp(sa, sb, na) != 0) return true;  /* {id} against {code} */
    } else if (xa != xb || na != nb || memcmp(sa, sb, na) != 0) {
      return false;
    }
  }
}

/* Mounts r on admin or routes by its auth rule; mounted[0..n) went before
** it, so a clash names the route it clashes with and whose that is. */
static int mount(tpr_router *routes, tpr_router *admin, tp_route *r, tp_route *const *mounted,
                 int n, char *err, size_t errcap) {
  char e[256];
  if (tpr_add(r->auth == TP_AUTH_ADMIN ? admin : routes, r->method, r->path, r, e, sizeof e) == 0)
    return 0;
  const tp_route *other = NULL;
  for (int i = 0; i < n && !other; i++)
    if ((mounted[i]->auth == TP_AUTH_ADMIN) == (r->auth == TP_AUTH_ADMIN) &&
        patterns_clash(r, mounted[i]))
      other = mounted[i];
  char with[400] = "";
  if (other)
    snprintf(with, sizeof with, " (it clashes with %s %s of %s%s%s)", other->method, other->path,
             other->plugin ? "plugin '" : "the host's built-ins",
             other->plugin ? other->plugin->name : "", other->plugin ? "'" : "");
  if (r->plugin)
    snprintf(err, errcap, "route %s %s of plugin '%s': %s%s", r->method, r->path, r->plugin->name,
             e, with);
  else
    snprintf(err, errcap, "built-in route %s %s: %s%s", r->method, r->path, e, with);
  return -1;
}

int tp_host_build_routers(tp_route *const *builtins, int nbuiltins, tp_plugin *const *plugins,
                          int nplugins, tpr_router **out_routes, tpr_router **out_admin, char *err,
                          size_t errcap) {
  tpr_router *routes = tpr_new(), *admin = tpr_new();
  int total = nbuiltins, n = 0, rc = 0;
  for (int i = 0; i < nplugins; i++) total += plugins[i] ? plugins[i]->nroutes : 0;
  tp_route **mounted = malloc((size_t)(total ? total : 1) * sizeof *mounted);
  if (!mounted) abort();
  for (int i = 0; rc == 0 && i < nbuiltins; i++) {
    rc = mount(routes, admin, builtins[i], mounted, n, err, errcap);
    mounted[n++] = builtins[i];
  }
  for (int i = 0; rc == 0 && i < nplugins; i++)
    for (int j = 0; rc == 0 && plugins[i] && j < plugins[i]->nroutes; j++) {
      rc = mount(routes, admin, &plugins[i]->routes[j], mounted, n, err, errcap);
      mounted[n++] = &plugins[i]->routes[j];
    }
  free(mounted);
  if (rc != 0) {
    tpr_free(routes);
    tpr_free(admin);
    return -1;
  }
  *out_routes = routes;
  *out_admin = admin;
  return 0;
}

/* The tenant's routers from every serving plugin, with candidate in place
** of slot s's current generation. 0, or -1 with err if a route clashes. */
static int build_routers(tp_tenant *t, tp_slot *s, tp_plugin *candidate, tpr_router **out_routes,
                         tpr_router **out_admin, char *err, size_t errcap) {
  tp_plugin *plugins[TPC_MAX_PLUGINS];
  for (int i = 0; i < t->nslots; i++) plugins[i] = &t->slots[i] == s ? candidate : t->slots[i].current;
  return tp_host_build_routers(t->host->builtins, t->host->nbuiltins, plugins, t->nslots, out_routes,
                           out_admin, err, errcap);
}

static void record_failure(tp_tenant *t, tp_slot *s, const char *why) {
  tp_copy_str(s->last_error, sizeof s->last_error, why);
  s->last_error_ms = tp_clock_wall_ms();
  tp_buf *line = tp_log_begin(TP_LOG_ERROR, s->current ? "reload failed; the old version keeps serving"
                                                       : "plugin not enabled");
  tp_log_str(line, "tenant", t->conf->id);
  tp_log_str(line, "plugin", s->conf->name);
  if (s->current) tp_log_str(line, "serving_version", s->current->version);
  tp_log_str(line, "error", why);
  tp_log_end(line);
}

/* Runs the candidate's setup in a transaction of its own, committed before
** the swap: what it scheduled or wrote is durable when the generation serves. */
static int run_setup(tp_host *h, tp_tenant *t, tp_plugin *p, char *err, size_t errcap) {
  if (!tpi_has_setup(p)) return 0;
  tp_invocation inv = {.request_id = "setup", .now_ms = tp__now(t)};
  tpa_seed(&inv, tp__seed(h, inv.now_ms, "setup"));
  if (tp__join_batch(h, t) != 0 || tps_savepoint(&t->db) != 0) {
    snprintf(err, errcap, "setup: cannot open a transaction: %s", sqlite3_errmsg(t->db.db));
    return -1;
  }
  int rc = tpi_setup(p, &inv, err, errcap);
  if (rc == 0) tps_release(&t->db);
  else tps_rollback_to(&t->db);
  if (tp__flush_batch(h) != 0 && rc == 0) {
    snprintf(err, errcap, "setup: its transaction could not be committed");
    return -1;
  }
  return rc;
}

/* Loads slot s's next generation and swaps it in. 0, or -1 (reported). */
int tp__install(tp_host *h, tp_tenant *t, tp_slot *s, double *ms) {
  uint64_t start = tp_clock_mono_ns();
  char err[4096];
  tp_plugin *next = calloc(1, sizeof *next);
  tp_plugin *old = s->current;
  if (tpp_load(next, h->cfg, t->conf, s->conf, &t->db, err, sizeof err) != 0) goto fail;
  next->generation = s->generations + 1;
  next->services = &tp__services;
  next->services_ud = t;
  /* migrations need their own transaction: what this iteration did so far
  ** commits first (its answers are still held back until the batch ends) */
  tp__flush_batch(h);
  tpr_router *routes, *admin;
  if (build_routers(t, s, next, &routes, &admin, err, sizeof err) != 0) goto fail;
  if (tpp_migrate(next, err, sizeof err) != 0 || run_setup(h, t, next, err, sizeof err) != 0) {
    tpr_free(routes);
    tpr_free(admin);
    goto fail;
  }
  /* the swap: from the next handler on, the new generation serves */
  tpr_free(t->routes);
  tpr_free(t->admin);
  t->routes = routes;
  t->admin = admin;
  s->current = next;
  s->generations++;
  s->last_error[0] = '\0';
  if (old) {
    tpp_free(old);
    free(old);
  }
  *ms = (double)(tp_clock_mono_ns() - start) / 1e6;
  tp_buf *line = tp_log_begin(TP_LOG_INFO, old ? "plugin reloaded" : "plugin loaded");
  tp_log_str(line, "tenant", t->conf->id);
  tp_log_str(line, "plugin", next->name);
  tp_log_str(line, "version", next->version);
  tp_log_uint(line, "generation", next->generation);
  tp_log_int(line, "routes", next->nroutes);
  tp_log_num(line, "ms", *ms);
  tp_log_end(line);
  t->next_due_ms = 0;  /* its jobs may be runnable now: let the runner look */
  return 0;
fail:
  tpp_free(next);
  free(next);
  record_failure(t, s, err);
  *ms = (double)(tp_clock_mono_ns() - start) / 1e6;
  return -1;
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
}

/* ---- reloading on demand */

static void add_outcome(tp_buf *out, bool *first, tp_tenant *t, tp_slot *s, double ms) {
  if (!out) return;
  tp_buf_adds(out, *first ? "{" : ",{");
  *first = false;
  tp_buf_adds(out, "\"tenant\":");
  tp_buf_add_json_str(out, t->conf->id, strlen(t->conf->id));
  tp_buf_adds(out, ",\"plugin\":");
  tp_buf_add_json_str(out, s->conf->name, strlen(s->conf->name));
  if (s->last_error[0]) {
    tp_buf_adds(out, ",\"error\":");
    tp_buf_add_json_str(out, s->last_error, strlen(s->last_error));
  }
  if (s->current) {
    tp_buf_adds(out, ",\"serving_version\":");
    tp_buf_add_json_str(out, s->current->version, strlen(s->current->version));
    tp_buf_printf(out, ",\"generation\":%llu", (unsigned long long)s->current->generation);
  }
  tp_buf_printf(out, ",\"ms\":%.3f}", ms);
}

int tp__reload(tp_host *h, const char *tenant, const char *plugin, tp_buf *out) {
  int failed = 0, done = 0;
  tp_buf failures;
  tp_buf_init(&failures);
  bool first_ok = true, first_failed = true;
  if (out) tp_buf_adds(out, "{\"reloaded\":[");
  for (int i = 0; i < h->ntenants; i++) {
    tp_tenant *t = &h->tenants[i];
    if (tenant && strcmp(tenant, t->conf->id) != 0) continue;
    if (!t->open) continue;  /* a closed brand loads the plugins as they are when it opens */
    for (int j = 0; j < t->nslots; j++) {
      tp_slot *s = &t->slots[j];
      if (plugin && strcmp(plugin, s->conf->name) != 0) continue;
      bool was_serving = s->current != NULL;
      double ms;
      int rc = tp__install(h, t, s, &ms);
      done++;
      if (rc == 0) {
        if (!was_serving) h->plugin_failures--;  /* it failed at start; it serves now */
        add_outcome(out, &first_ok, t, s, ms);
      } else {
        failed++;
        add_outcome(out ? &failures : NULL, &first_failed, t, s, ms);
      }
    }
  }
  if (out) {
    tp_buf_adds(out, "],\"failed\":[");
    tp_buf_add(out, failures.data, failures.len);
    tp_buf_printf(out, "],\"matched\":%d}", done);
  }
  tp_buf_free(&failures);
  tpm_reload(h->metrics, done - failed, failed);
  return failed;
}
