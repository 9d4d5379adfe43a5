/*
** runs.c - recorded runs and instruction statistics (see runs.h).
*/
#include "host/runs.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "net/http.h"

#define RUN_FORMAT "tidepool-run/1"
#define HEAD_BYTES 512  /* of a truncated body, to recognise it */

/* ---- statistics */

static uint64_t hash3(const char *a, const char *b, const char *c) {
  uint64_t h = 1469598103934665603ull;
  const char *parts[3] = {a, b, c};
  for (int i = 0; i < 3; i++) {
    for (const char *p = parts[i]; *p; p++) h = (h ^ (unsigned char)*p) * 1099511628211ull;
    h = (h ^ 0xff) * 1099511628211ull;  /* separator: ("ab","c") is not ("a","bc") */
  }
  return h;
}

/* The entry for plugin/kind/name, created when new; NULL without memory. */
static tprun_stat *stat_for(tprun_stats *s, const char *plugin, const char *kind,
                            const char *name) {
  uint64_t h = hash3(plugin, kind, name);
  for (int i = 0; i < s->n; i++) {
    tprun_stat *e = &s->items[i];
    if (e->hash == h && strcmp(e->name, name) == 0 && strcmp(e->plugin, plugin) == 0 &&
        strcmp(e->kind, kind) == 0)
      return e;
  }
  if (s->n == s->cap) {
    int cap = s->cap ? s->cap * 2 : 16;
    tprun_stat *items = realloc(s->items, (size_t)cap * sizeof *items);
    if (!items) return NULL;
    s->items = items;
    s->cap = cap;
  }
  tprun_stat *e = &s->items[s->n++];
  memset(e, 0, sizeof *e);
  tp_copy_str(e->plugin, sizeof e->plugin, plugin);
  tp_copy_str(e->kind, sizeof e->kind, kind);
  tp_copy_str(e->name, sizeof e->name, name);
  e->hash = h;
  return e;
}

void tprun_stats_note(tprun_stats *s, const char *plugin, uint64_t generation, const char *kind,
                      const char *name, int64_t used, int64_t budget) {
  tprun_stat *e = stat_for(s, plugin, kind, name);
  if (!e) return;
  if (e->generation != generation) {  /* a new version: its own peak */
    e->generation = generation;
    e->calls = 0;
    e->peak = 0;
  }
  e->calls++;
  e->last = used;
  if (used > e->peak) e->peak = used;
  e->budget = budget;
}

void tprun_stats_merge(tprun_stats *dst, const tprun_stats *src) {
  for (int i = 0; i < src->n; i++) {
    const tprun_stat *from = &src->items[i];
    tprun_stat *e = stat_for(dst, from->plugin, from->kind, from->name);
    if (!e) return;
    e->calls += from->calls;
    e->last = from->last;
    if (from->peak > e->peak) e->peak = from->peak;
    e->budget = from->budget;
  }
}

void tprun_stats_free(tprun_stats *s) {
  free(s->items);
  memset(s, 0, sizeof *s);
}

/* Prometheus label values escape backslash, quote and newline. */
static void add_label(tp_buf *out, const char *s) {
  for (; *s; s++) {
    if (*s == '\\' || *s == '"') tp_buf_addc(out, '\\');
    if (*s == '\n') tp_buf_adds(out, "\\n");
    else tp_buf_addc(out, *s);
  }
}

static void add_sample(tp_buf *out, const char *metric, const char *tenant, const tprun_stat *e,
                       int64_t v) {
  tp_buf_adds(out, metric);
  tp_buf_adds(out, "{tenant=\"");
  add_label(out, tenant);
  tp_buf_adds(out, "\",plugin=\"");
  add_label(out, e->plugin);
  tp_buf_printf(out, "\",kind=\"%s\",name=\"", e->kind);
  add_label(out, e->name);
  tp_buf_adds(out, "\"} ");
  tp_buf_addi(out, v);
  tp_buf_addc(out, '\n');
}

void tprun_stats_metrics(const tprun_stats *s, const char *tenant, tp_buf *out) {
  static const char *const metrics[] = {"tidepool_instructions_peak", "tidepool_instructions_last",
                                        "tidepool_instruction_budget"};
  for (int m = 0; m < 3; m++)
    for (int i = 0; i < s->n; i++) {
      const tprun_stat *e = &s->items[i];
      add_sample(out, metrics[m], tenant, e, m == 0 ? e->peak : m == 1 ? e->last : e->budget);
    }
}

void tprun_fmt_count(char *out, size_t cap, int64_t v) {
  char digits[32];
  int n = snprintf(digits, sizeof digits, "%lld", (long long)(v < 0 ? -v : v));
  size_t k = 0;
  if (v < 0 && k + 1 < cap) out[k++] = '-';
  for (int i = 0; i < n && k + 1 < cap; i++) {
    if (i > 0 && (n - i) % 3 == 0 && k + 2 < cap) out[k++] = ',';
    out[k++] = digits[i];
  }
  out[k] = '\0';
}

static int cmp_stat(const void *a, const void *b) {
  const tprun_stat *x = a, *y = b;
  int c = strcmp(x->plugin, y->plugin);
  if (!c) c = strcmp(x->kind, y->kind);
  return c ? c : strcmp(x->name, y->name);
}

void tprun_stats_table(const tprun_stats *s, tp_buf *out) {
  if (s->n == 0) return;
  tprun_stat *sorted = malloc((size_t)s->n * sizeof *sorted);
  if (!sorted) return;
  memcpy(sorted, s->items, (size_t)s->n * sizeof *sorted);
  qsort(sorted, (size_t)s->n, sizeof *sorted, cmp_stat);
  size_t width = 0;
  char label[TPRUN_NAME_MAX + 48];
  for (int i = 0; i < s->n; i++) {
    size_t w = (size_t)snprintf(label, sizeof label, "%s %s %s", sorted[i].plugin,
                                sorted[i].kind, sorted[i].name);
    if (w > width) width = w;
  }
  tp_buf_adds(out, "instructions per invocation (peak of the tests' calls):\n");
  for (int i = 0; i < s->n; i++) {
    const tprun_stat *e = &sorted[i];
    char peak[32], budget[32];
    snprintf(label, sizeof label, "%s %s %s", e->plugin, e->kind, e->name);
    tprun_fmt_count(peak, sizeof peak, e->peak);
    tprun_fmt_count(budget, sizeof budget, e->budget);
    double pct = e->budget > 0 ? (double)e->peak * 100.0 / (double)e->budget : 0;
    tp_buf_printf(out, "  %-*s  peak %s instr  %.1f %% of %s  (%llu call%s)\n", (int)width, label,
                  peak, pct, budget, (unsigned long long)e->calls, e->calls == 1 ? "" : "s");
  }
  free(sorted);
}

/* ---- documents */

bool tprun_redacted(const char *name, size_t n) {
  static const char *const secret[] = {"authorization", "x-api-key", "cookie",
                                       "proxy-authorization", NULL};
  for (const char *const *s = secret; *s; s++)
    if (strlen(*s) == n && strncmp(*s, name, n) == 0) return true;
  return false;
}

void tprun_add_json_capped(tp_buf *out, const char *json, size_t n, size_t cap) {
  if (n <= cap && n > 0) {
    tp_buf_add(out, json, n);
    return;
  }
  if (n == 0) {
    tp_buf_adds(out, "null");
    return;
  }
  tp_buf_printf(out, "{\"truncated\":true,\"bytes\":%zu,\"head\":", n);
  tp_buf_add_json_str(out, json, n < HEAD_BYTES ? n : HEAD_BYTES);
  tp_buf_adds(out, "}");
}

void tprun_add_str_capped(tp_buf *out, const char *s, size_t n, size_t cap) {
  static const char marker[] = "... [truncated]";
  if (n <= cap) {
    tp_buf_add_json_str(out, s, n);
    return;
  }
  size_t keep = cap > sizeof marker ? cap - sizeof marker : 0;
  tp_buf_add_json_str(out, s, keep);
  out->len--;  /* reopen the string to add the marker */
  tp_buf_adds(out, marker);
  tp_buf_addc(out, '"');
}

static const char *auth_name(tp_auth a) {
  static const char *const names[] = {"none", "optional", "user", "admin"};
  return names[a];
}

void tprun_route_input(tp_buf *out, const tp_route *r, const tp_call *call, bool body_is_json) {
  tp_buf_adds(out, "{\"method\":");
  tp_buf_add_json_str(out, call->method, strlen(call->method));
  tp_buf_adds(out, ",\"path\":");
  tp_buf_add_json_str(out, call->path, call->path_len);
  tp_buf_adds(out, ",\"route\":");
  tp_buf_add_json_str(out, r->path, strlen(r->path));
  tp_buf_printf(out, ",\"auth\":\"%s\",\"params\":{", auth_name(r->auth));
  for (int i = 0; i < call->match->nparams; i++) {
    const tpr_param *p = &call->match->params[i];
    if (i) tp_buf_addc(out, ',');
    tp_buf_add_json_str(out, p->name, strlen(p->name));
    tp_buf_addc(out, ':');
    if (p->type == TPR_INT) tp_buf_addi(out, p->ival);
    else tp_buf_add_json_str(out, p->value, p->len);
  }
  tp_buf_adds(out, "},\"query\":");
  if (r->personal) tp_buf_adds(out, "\"\"");
  else tp_buf_add_json_str(out, call->query, call->query_len);
  tp_buf_adds(out, ",\"headers\":{");
  const tph_header *hs = call->headers;
  size_t budget = TPRUN_MAX_HEADERS;
  bool first = true, cut = false;
  for (int i = 0; i < call->nheaders; i++) {
    if (tprun_redacted(hs[i].name, hs[i].nlen)) continue;
    if (hs[i].nlen + hs[i].vlen > budget) {
      cut = true;
      continue;
    }
    budget -= hs[i].nlen + hs[i].vlen;
    if (!first) tp_buf_addc(out, ',');
    first = false;
    tp_buf_add_json_str(out, hs[i].name, hs[i].nlen);
    tp_buf_addc(out, ':');
    tp_buf_add_json_str(out, hs[i].value, hs[i].vlen);
  }
  tp_buf_adds(out, "}");
  if (cut) tp_buf_adds(out, ",\"headers_truncated\":true");
  tp_buf_adds(out, ",\"user\":");
  if (call->user) tp_buf_add_json_str(out, call->user, strlen(call->user));
  else tp_buf_adds(out, "null");
  if (call->body_len == 0) {
    tp_buf_adds(out, ",\"body\":null,\"raw_body\":null");
  } else if (r->personal) {
    tp_buf_adds(out, ",\"body\":" TPRUN_REDACTED ",\"raw_body\":null");
  } else if (call->body_len > TPRUN_MAX_BODY) {
    tp_buf_adds(out, ",\"body_truncated\":true,\"body\":");
    tprun_add_json_capped(out, call->body, call->body_len, TPRUN_MAX_BODY);
    tp_buf_adds(out, ",\"raw_body\":null");
  } else {
    tp_buf_adds(out, ",\"body\":");
    if (body_is_json) tp_buf_add(out, call->body, call->body_len);
    else tp_buf_adds(out, "null");
    tp_buf_adds(out, ",\"raw_body\":");
    tp_buf_add_json_str(out, call->body, call->body_len);
  }
  tp_buf_adds(out, "}");
}

static void add_str_or_null(tp_buf *out, const char *key, const char *s) {
  tp_buf_printf(out, ",\"%s\":", key);
  if (s) tp_buf_add_json_str(out, s, strlen(s));
  else tp_buf_adds(out, "null");
}

void tprun_document(tp_buf *out, const tprun_info *in, const char *input, size_t input_len) {
  tp_buf_adds(out, "{\"format\":\"" RUN_FORMAT "\"");
  add_str_or_null(out, "tenant", in->tenant);
  add_str_or_null(out, "plugin", in->plugin);
  add_str_or_null(out, "version", in->version);
  tp_buf_printf(out, ",\"generation\":%llu", (unsigned long long)in->generation);
  add_str_or_null(out, "kind", in->kind);
  add_str_or_null(out, "name", in->name);
  add_str_or_null(out, "request_id", in->request_id);
  add_str_or_null(out, "reason", in->reason);
  tp_buf_printf(out, ",\"tenant_plugins\":%s", in->tenant_plugins ? in->tenant_plugins : "[]");
  tp_buf_printf(out, ",\"at_ms\":%lld,\"input\":", (long long)in->at_ms);
  /* the route input caps its own parts; a task's argument is capped here */
  if (strcmp(in->kind, "route") == 0) tp_buf_add(out, input, input_len);
  else tprun_add_json_capped(out, input, input_len, TPRUN_MAX_BODY);
  /* the seed is a 63-bit integer: a string, which no JSON reader rounds */
  tp_buf_printf(out, ",\"host\":{\"now_ms\":%lld,\"seed\":\"%llu\",\"random_draws\":%llu}",
                (long long)in->inv->now_ms, (unsigned long long)in->inv->seed,
                (unsigned long long)in->inv->draws);
  tp_buf_printf(out, ",\"outcome\":{\"ok\":%s", in->ok ? "true" : "false");
  if (in->status) tp_buf_printf(out, ",\"status\":%d", in->status);
  add_str_or_null(out, "code", in->code);
  add_str_or_null(out, "limit", in->limit);
  tp_buf_adds(out, ",\"error\":");
  if (in->error) tprun_add_str_capped(out, in->error, strlen(in->error), TPRUN_MAX_ERROR);
  else tp_buf_adds(out, "null");
  if (in->body) {
    tp_buf_adds(out, ",\"body\":");
    tprun_add_json_capped(out, in->body, in->body_len, TPRUN_MAX_BODY);
  }
  double pct = in->budget > 0 ? (double)in->used * 100.0 / (double)in->budget : 0;
  tp_buf_printf(out, "},\"instructions\":{\"used\":%lld,\"budget\":%lld,\"percent\":%.3f,"
                "\"counted_every\":%lld}", (long long)in->used, (long long)in->budget, pct,
                (long long)in->step);
  tp_buf_printf(out, ",\"memory\":{\"peak_bytes\":%zu,\"cap_bytes\":%zu},\"duration_ms\":%.3f}",
                in->mem_peak, in->mem_cap, in->ms);
}

/* ---- arming */

static tprun_arm *find_arm(tprun_log *l, const char *plugin, const char *route) {
  for (int i = 0; i < l->narms; i++)
    if (strcmp(l->arms[i].plugin, plugin) == 0 && strcmp(l->arms[i].route, route) == 0)
      return &l->arms[i];
  return NULL;
}

static void drop_arm(tprun_log *l, tprun_arm *a) {
  *a = l->arms[--l->narms];
}

int tprun_arm_set(tprun_log *l, const char *plugin, const char *route, int count) {
  if (!route) route = "";
  tprun_arm *a = find_arm(l, plugin, route);
  if (count <= 0) {
    if (a) drop_arm(l, a);
    return 0;
  }
  if (!a) {
    if (l->narms == TPRUN_MAX_ARMS) return -1;
    a = &l->arms[l->narms++];
    tp_copy_str(a->plugin, sizeof a->plugin, plugin);
    tp_copy_str(a->route, sizeof a->route, route);
  }
  a->left = count;
  return 0;
}

bool tprun_arm_take(tprun_log *l, const char *plugin, const char *kind, const char *name) {
  if (l->narms == 0) return false;  /* the usual case */
  bool route = strcmp(kind, "route") == 0;
  for (int i = 0; i < l->narms; i++) {
    tprun_arm *a = &l->arms[i];
    if (strcmp(a->plugin, plugin) != 0) continue;
    if (a->route[0] && (!route || strcmp(a->route, name) != 0)) continue;
    if (--a->left == 0) drop_arm(l, a);
    return true;
  }
  return false;
}

void tprun_arms_json(const tprun_log *l, tp_buf *out) {
  tp_buf_adds(out, "[");
  for (int i = 0; i < l->narms; i++) {
    const tprun_arm *a = &l->arms[i];
    tp_buf_adds(out, i ? ",{\"plugin\":" : "{\"plugin\":");
    tp_buf_add_json_str(out, a->plugin, strlen(a->plugin));
    tp_buf_adds(out, ",\"route\":");
    if (a->route[0]) tp_buf_add_json_str(out, a->route, strlen(a->route));
    else tp_buf_adds(out, "null");
    tp_buf_printf(out, ",\"left\":%d}", a->left);
  }
  tp_buf_adds(out, "]");
}

/* ---- the table */

int tprun_open(tprun_log *l, tps_db *db, char *err, size_t errcap) {
  memset(l, 0, sizeof *l);
  l->db = db;
  if (tps_exec_script(db,
                      "CREATE TABLE IF NOT EXISTS _tp_runs ("
                      " id INTEGER PRIMARY KEY AUTOINCREMENT, at_ms INTEGER NOT NULL,"
                      " plugin TEXT NOT NULL, kind TEXT NOT NULL, name TEXT NOT NULL,"
                      " reason TEXT NOT NULL, ok INTEGER NOT NULL, status INTEGER,"
                      " code TEXT, instructions INTEGER NOT NULL, budget INTEGER NOT NULL,"
                      " mem_peak INTEGER NOT NULL, duration_ms REAL NOT NULL,"
                      " doc TEXT NOT NULL)",
                      err, errcap) != 0)
    return -1;
  static const char *const sql[] = {
      "INSERT INTO _tp_runs (at_ms, plugin, kind, name, reason, ok, status, code, instructions,"
      " budget, mem_peak, duration_ms, doc) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?)",
      "DELETE FROM _tp_runs WHERE id <= ?",
      "SELECT doc FROM _tp_runs WHERE id = ?",
      "SELECT id, at_ms, plugin, kind, name, reason, ok, status, code, instructions, budget,"
      " mem_peak, duration_ms FROM _tp_runs WHERE (?1 IS NULL OR plugin = ?1)"
      " AND (?2 IS NULL OR kind = ?2) AND (?3 = 0 OR id < ?3) ORDER BY id DESC LIMIT ?4"};
  sqlite3_stmt **st[] = {&l->insert, &l->trim, &l->get, &l->list};
  for (int i = 0; i < 4; i++)
    if (sqlite3_prepare_v3(db->db, sql[i], -1, SQLITE_PREPARE_PERSISTENT, st[i], NULL) !=
        SQLITE_OK) {
      snprintf(err, errcap, "runs: %s", sqlite3_errmsg(db->db));
      tprun_close(l);
      return -1;
    }
  return 0;
}

void tprun_close(tprun_log *l) {
  sqlite3_finalize(l->insert);
  sqlite3_finalize(l->trim);
  sqlite3_finalize(l->get);
  sqlite3_finalize(l->list);
  tprun_stats_free(&l->stats);
  memset(l, 0, sizeof *l);
}

/* Steps st with the host's privileges (a plugin's owner may still be set). */
static int host_step(tprun_log *l, sqlite3_stmt *st) {
  const char *owner = l->db->owner;
  tps_set_owner(l->db, NULL);
  int rc = sqlite3_step(st);
  tps_set_owner(l->db, owner);
  return rc;
}

static void bind_text(sqlite3_stmt *st, int i, const char *s) {
  if (s) sqlite3_bind_text(st, i, s, -1, SQLITE_STATIC);
  else sqlite3_bind_null(st, i);
}

int tprun_record(tprun_log *l, const tprun_info *info, const char *input, size_t input_len,
                 int64_t *id) {
  tp_buf doc;
  tp_buf_init(&doc);
  tprun_document(&doc, info, input, input_len);
  sqlite3_stmt *st = l->insert;
  sqlite3_bind_int64(st, 1, info->at_ms);
  bind_text(st, 2, info->plugin);
  bind_text(st, 3, info->kind);
  bind_text(st, 4, info->name);
  bind_text(st, 5, info->reason);
  sqlite3_bind_int(st, 6, info->ok);
  if (info->status) sqlite3_bind_int(st, 7, info->status);
  else sqlite3_bind_null(st, 7);
  bind_text(st, 8, info->limit ? info->limit : info->code);
  sqlite3_bind_int64(st, 9, info->used);
  sqlite3_bind_int64(st, 10, info->budget);
  sqlite3_bind_int64(st, 11, (sqlite3_int64)info->mem_peak);
  sqlite3_bind_double(st, 12, info->ms);
  sqlite3_bind_text(st, 13, doc.data, (int)doc.len, SQLITE_STATIC);
  int rc = host_step(l, st);
  sqlite3_reset(st);
  sqlite3_clear_bindings(st);
  tp_buf_free(&doc);
  if (rc != SQLITE_DONE) return -1;
  *id = sqlite3_last_insert_rowid(l->db->db);
  sqlite3_bind_int64(l->trim, 1, *id - TPRUN_KEEP);
  rc = host_step(l, l->trim);
  sqlite3_reset(l->trim);
  return rc == SQLITE_DONE ? 0 : -1;
}

static void add_col_str(tp_buf *out, sqlite3_stmt *st, int col) {
  if (sqlite3_column_type(st, col) == SQLITE_NULL) {
    tp_buf_adds(out, "null");
    return;
  }
  tp_buf_add_json_str(out, (const char *)sqlite3_column_text(st, col),
                      (size_t)sqlite3_column_bytes(st, col));
}

int tprun_list(tprun_log *l, const char *plugin, const char *kind, int limit, int64_t after,
               tp_buf *out) {
  sqlite3_stmt *st = l->list;
  bind_text(st, 1, plugin);
  bind_text(st, 2, kind);
  sqlite3_bind_int64(st, 3, after);
  sqlite3_bind_int(st, 4, limit + 1);  /* one more says whether there is a next page */
  tp_buf_adds(out, "{\"runs\":[");
  int rc, n = 0;
  int64_t last = 0;
  bool more = false;
  while ((rc = host_step(l, st)) == SQLITE_ROW) {
    if (n == limit) {
      more = true;
      continue;
    }
    last = sqlite3_column_int64(st, 0);
    int64_t used = sqlite3_column_int64(st, 9), budget = sqlite3_column_int64(st, 10);
    tp_buf_printf(out, "%s{\"id\":%lld,\"at_ms\":%lld,\"plugin\":", n++ ? "," : "",
                  (long long)last, (long long)sqlite3_column_int64(st, 1));
    add_col_str(out, st, 2);
    tp_buf_adds(out, ",\"kind\":");
    add_col_str(out, st, 3);
    tp_buf_adds(out, ",\"name\":");
    add_col_str(out, st, 4);
    tp_buf_adds(out, ",\"reason\":");
    add_col_str(out, st, 5);
    tp_buf_printf(out, ",\"outcome\":\"%s\",\"status\":", sqlite3_column_int(st, 6) ? "ok" : "failed");
    if (sqlite3_column_type(st, 7) == SQLITE_NULL) tp_buf_adds(out, "null");
    else tp_buf_addi(out, sqlite3_column_int64(st, 7));
    tp_buf_adds(out, ",\"code\":");
    add_col_str(out, st, 8);
    tp_buf_printf(out, ",\"instructions\":%lld,\"budget\":%lld,\"budget_percent\":%.3f,"
                  "\"mem_peak_bytes\":%lld,\"ms\":%.3f}", (long long)used, (long long)budget,
                  budget > 0 ? (double)used * 100.0 / (double)budget : 0.0,
                  (long long)sqlite3_column_int64(st, 11), sqlite3_column_double(st, 12));
  }
  sqlite3_reset(st);
  sqlite3_clear_bindings(st);
  if (rc != SQLITE_DONE) return -1;
  tp_buf_adds(out, "],\"next\":");
  if (more) tp_buf_addi(out, last);
  else tp_buf_adds(out, "null");
  tp_buf_adds(out, "}");
  return 0;
}

int tprun_get(tprun_log *l, int64_t id, tp_buf *out) {
  sqlite3_stmt *st = l->get;
  sqlite3_bind_int64(st, 1, id);
  int rc = host_step(l, st), found = 0;
  if (rc == SQLITE_ROW) {
    /* the stored document has no id (it is written before the row has one) */
    const char *doc = (const char *)sqlite3_column_text(st, 0);
    size_t n = (size_t)sqlite3_column_bytes(st, 0);
    tp_buf_printf(out, "{\"id\":%lld,", (long long)id);
    if (n > 1) tp_buf_add(out, doc + 1, n - 1);
    found = 1;
  }
  sqlite3_reset(st);
  return rc == SQLITE_ROW || rc == SQLITE_DONE ? found : -1;
}
