/*
** metrics.c - request, commit and error metrics.
*/
#include "host/metrics.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define NBUCKETS 14
#define NSLOTS 256
#define NREFUSALS 32
#define NDESTS 128    /* (tenant, destination) pairs counted; the rest are not */  /* distinct refusal codes counted; the rest as risk_other */

static const double latency_bounds[NBUCKETS] = {0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005,
                                                0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5};
static const double lateness_bounds[NBUCKETS] = {0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1,
                                                 0.2, 0.5, 1, 2, 5, 10, 60};
static const double batch_bounds[NBUCKETS] = {1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024,
                                              2048, 4096, 8192};

typedef struct histogram {
  uint64_t buckets[NBUCKETS];  /* non-cumulative; summed when rendered */
  uint64_t count;
  double sum;
} histogram;

typedef struct series {
  char *route;
  int status;
  histogram h;
  struct series *next;
} series;

struct tpm_metrics {
  series *slots[NSLOTS];
  histogram commit_latency, commit_batch, sync_latency;
  uint64_t commits_ok, commits_failed, plugin_errors, idempotent_replays;
  uint64_t syncs_ok, syncs_failed;
  uint64_t tasks[2][3];            /* [job, event][ok, failed, dead] */
  histogram lateness[2];
  uint64_t reloads_ok, reloads_failed;
  uint64_t kills[3];               /* by limit_names */
  uint64_t resets[2];              /* ok, failed */
  char refusal_codes[NREFUSALS][40];  /* "rate_limited", "risk_*"; the last is "risk_other" */
  uint64_t refusals[NREFUSALS];
  struct dest_series {
    char tenant[40], to[40];
    uint64_t ok, failed;
    double seconds;
  } dests[NDESTS];
};

static const char *const limit_names[3] = {"budget_exceeded", "memory_exceeded",
                                           "deadline_exceeded"};

static void observe(histogram *h, const double *bounds, double v) {
  for (int i = 0; i < NBUCKETS; i++)
    if (v <= bounds[i]) {
      h->buckets[i]++;
      break;
    }
  h->count++;
  h->sum += v;
}

tpm_metrics *tpm_new(void) { return calloc(1, sizeof(tpm_metrics)); }

void tpm_free(tpm_metrics *m) {
  if (!m) return;
  for (int i = 0; i < NSLOTS; i++)
    for (series *s = m->slots[i], *next; s; s = next) {
      next = s->next;
      free(s->route);
      free(s);
    }
  free(m);
}

static unsigned slot_of(const char *route, int status) {
  unsigned h = 2166136261u ^ (unsigned)status;
  for (const char *p = route; *p; p++) h = (h ^ (unsigned char)*p) * 16777619u;
  return h % NSLOTS;
}

void tpm_request(tpm_metrics *m, const char *route, int status, double seconds) {
  if (!route) route = "unmatched";
  unsigned slot = slot_of(route, status);
  series *s = m->slots[slot];
  while (s && (s->status != status || strcmp(s->route, route) != 0)) s = s->next;
  if (!s) {
    s = calloc(1, sizeof *s);
    if (!s) return;
    s->route = strdup(route);
    s->status = status;
    s->next = m->slots[slot];
    m->slots[slot] = s;
  }
  observe(&s->h, latency_bounds, seconds);
}

void tpm_commit(tpm_metrics *m, int batch_size, double seconds, int ok) {
  observe(&m->commit_latency, latency_bounds, seconds);
  observe(&m->commit_batch, batch_bounds, batch_size);
  if (ok) m->commits_ok++;
  else m->commits_failed++;
}

void tpm_sync(tpm_metrics *m, double seconds, bool ok) {
  observe(&m->sync_latency, latency_bounds, seconds);
  if (ok) m->syncs_ok++;
  else m->syncs_failed++;
}

void tpm_plugin_error(tpm_metrics *m) { m->plugin_errors++; }
void tpm_idempotent_replay(tpm_metrics *m) { m->idempotent_replays++; }

void tpm_limit_kill(tpm_metrics *m, const char *limit) {
  for (int i = 0; i < 3; i++)
    if (strcmp(limit, limit_names[i]) == 0) m->kills[i]++;
}

void tpm_refusal(tpm_metrics *m, const char *code) {
  int i = 0;
  while (i < NREFUSALS - 1 && m->refusal_codes[i][0] && strcmp(m->refusal_codes[i], code) != 0) i++;
  if (i == NREFUSALS - 1) code = "risk_other";
  snprintf(m->refusal_codes[i], sizeof m->refusal_codes[i], "%s", code);
  m->refusals[i]++;
}

void tpm_plugin_reset(tpm_metrics *m, bool ok) { m->resets[ok ? 0 : 1]++; }

void tpm_call_out(tpm_metrics *m, const char *tenant, const char *to, double seconds, bool ok) {
  for (int i = 0; i < NDESTS; i++) {
    struct dest_series *d = &m->dests[i];
    if (!d->tenant[0]) {
      snprintf(d->tenant, sizeof d->tenant, "%s", tenant);
      snprintf(d->to, sizeof d->to, "%s", to);
    } else if (strcmp(d->tenant, tenant) != 0 || strcmp(d->to, to) != 0) {
      continue;
    }
    *(ok ? &d->ok : &d->failed) += 1;
    d->seconds += seconds;
    return;
  }
}

void tpm_task(tpm_metrics *m, bool event, bool ok, bool dead, double lateness_s) {
  m->tasks[event][ok ? 0 : dead ? 2 : 1]++;
  if (lateness_s >= 0) observe(&m->lateness[event], lateness_bounds, lateness_s);
}

void tpm_reload(tpm_metrics *m, int ok, int failed) {
  m->reloads_ok += (uint64_t)ok;
  m->reloads_failed += (uint64_t)failed;
}

void tpm_family(tp_buf *out, const char *name, const char *type, const char *help) {
  tp_buf_printf(out, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}

/* Prometheus label values escape backslash, quote and newline. */
static void add_label(tp_buf *out, const char *s) {
  for (; *s; s++) {
    if (*s == '\\' || *s == '"') tp_buf_addc(out, '\\');
    if (*s == '\n') {
      tp_buf_adds(out, "\\n");
      continue;
    }
    tp_buf_addc(out, *s);
  }
}

static void render_histogram(tp_buf *out, const char *name, const char *labels,
                             const histogram *h, const double *bounds) {
  uint64_t cum = 0;
  const char *sep = labels[0] ? "," : "";
  for (int i = 0; i < NBUCKETS; i++) {
    cum += h->buckets[i];
    tp_buf_printf(out, "%s_bucket{%s%sle=\"%g\"} %llu\n", name, labels, sep, bounds[i],
                  (unsigned long long)cum);
  }
  tp_buf_printf(out, "%s_bucket{%s%sle=\"+Inf\"} %llu\n", name, labels, sep,
                (unsigned long long)h->count);
  const char *open = labels[0] ? "{" : "", *close = labels[0] ? "}" : "";
  tp_buf_printf(out, "%s_sum%s%s%s %.6f\n", name, open, labels, close, h->sum);
  tp_buf_printf(out, "%s_count%s%s%s %llu\n", name, open, labels, close,
                (unsigned long long)h->count);
}

static void series_labels(const series *s, tp_buf *l) {
  tp_buf_reset(l);
  tp_buf_adds(l, "route=\"");
  add_label(l, s->route);
  tp_buf_printf(l, "\",status=\"%d\"", s->status);
}

void tpm_render(const tpm_metrics *m, tp_buf *out) {
  tp_buf labels;
  tp_buf_init(&labels);
  tpm_family(out, "tidepool_requests_total", "counter", "Requests answered, by route and status.");
  for (int i = 0; i < NSLOTS; i++)
    for (const series *s = m->slots[i]; s; s = s->next) {
      series_labels(s, &labels);
      tp_buf_printf(out, "tidepool_requests_total{%s} %llu\n", tp_buf_cstr(&labels),
                    (unsigned long long)s->h.count);
    }
  tpm_family(out, "tidepool_request_duration_seconds", "histogram",
             "Time from a complete request to its response being sent, commit included.");
  for (int i = 0; i < NSLOTS; i++)
    for (const series *s = m->slots[i]; s; s = s->next) {
      series_labels(s, &labels);
      render_histogram(out, "tidepool_request_duration_seconds", tp_buf_cstr(&labels), &s->h,
                       latency_bounds);
    }
  tp_buf_free(&labels);
  tpm_family(out, "tidepool_commits_total", "counter", "Group commits, by result.");
  tp_buf_printf(out, "tidepool_commits_total{result=\"ok\"} %llu\n",
                (unsigned long long)m->commits_ok);
  tp_buf_printf(out, "tidepool_commits_total{result=\"failed\"} %llu\n",
                (unsigned long long)m->commits_failed);
  tpm_family(out, "tidepool_commit_batch_size", "histogram", "Requests made durable by one commit.");
  render_histogram(out, "tidepool_commit_batch_size", "", &m->commit_batch, batch_bounds);
  tpm_family(out, "tidepool_commit_duration_seconds", "histogram",
             "Time one group commit took on the loop (its sync off the loop: tidepool_sync_duration_seconds).");
  render_histogram(out, "tidepool_commit_duration_seconds", "", &m->commit_latency, latency_bounds);
  tpm_family(out, "tidepool_syncs_total", "counter",
             "Syncs of commits to disk made by the host's syncer thread, by result.");
  tp_buf_printf(out, "tidepool_syncs_total{result=\"ok\"} %llu\n", (unsigned long long)m->syncs_ok);
  tp_buf_printf(out, "tidepool_syncs_total{result=\"failed\"} %llu\n", (unsigned long long)m->syncs_failed);
  tpm_family(out, "tidepool_sync_duration_seconds", "histogram",
             "Time from asking the syncer thread to sync commits to the loop hearing it was done: what their answers wait.");
  render_histogram(out, "tidepool_sync_duration_seconds", "", &m->sync_latency, latency_bounds);
  tpm_family(out, "tidepool_idempotent_replays_total", "counter",
             "Requests answered from the stored answer of their Idempotency-Key, without Lua");
  tp_buf_printf(out, "tidepool_idempotent_replays_total %llu\n",
                (unsigned long long)m->idempotent_replays);
  tpm_family(out, "tidepool_plugin_errors_total", "counter",
             "Plugin invocations that raised an unexpected error.");
  tp_buf_printf(out, "tidepool_plugin_errors_total %llu\n", (unsigned long long)m->plugin_errors);
  static const char *const kinds[] = {"job", "event"}, *const results[] = {"ok", "failed", "dead"};
  tpm_family(out, "tidepool_tasks_total", "counter",
             "Jobs and event deliveries run, by result (dead: failed for the last time).");
  for (int k = 0; k < 2; k++)
    for (int r = 0; r < 3; r++)
      tp_buf_printf(out, "tidepool_tasks_total{kind=\"%s\",result=\"%s\"} %llu\n", kinds[k],
                    results[r], (unsigned long long)m->tasks[k][r]);
  tpm_family(out, "tidepool_task_lateness_seconds", "histogram",
             "How long after its due time a task started (tenants on the wall clock).");
  for (int k = 0; k < 2; k++) {
    char kind[32];
    snprintf(kind, sizeof kind, "kind=\"%s\"", kinds[k]);
    render_histogram(out, "tidepool_task_lateness_seconds", kind, &m->lateness[k],
                     lateness_bounds);
  }
  tpm_family(out, "tidepool_limit_kills_total", "counter",
             "Plugin invocations ended by a limit: instruction budget, memory cap or deadline.");
  for (int i = 0; i < 3; i++)
    tp_buf_printf(out, "tidepool_limit_kills_total{limit=\"%s\"} %llu\n", limit_names[i],
                  (unsigned long long)m->kills[i]);
  tpm_family(out, "tidepool_plugin_resets_total", "counter",
             "Plugin states loaded afresh after a limit ended an invocation, by result.");
  tp_buf_printf(out, "tidepool_plugin_resets_total{result=\"ok\"} %llu\n",
                (unsigned long long)m->resets[0]);
  tp_buf_printf(out, "tidepool_plugin_resets_total{result=\"failed\"} %llu\n",
                (unsigned long long)m->resets[1]);
  tpm_family(out, "tidepool_refusals_total", "counter",
             "Requests refused by a rate limit (rate_limited) or a risk rule (risk_*), by code.");
  for (int i = 0; i < NREFUSALS && m->refusal_codes[i][0]; i++) {
    tp_buf_adds(out, "tidepool_refusals_total{code=\"");
    add_label(out, m->refusal_codes[i]);
    tp_buf_printf(out, "\"} %llu\n", (unsigned long long)m->refusals[i]);
  }
  tpm_family(out, "tidepool_calls_out_total", "counter",
             "Attempts of calls out (tp.http), by tenant, destination and result (ok: a 2xx).");
  for (int i = 0; i < NDESTS && m->dests[i].tenant[0]; i++)
    for (int k = 0; k < 2; k++) {
      tp_buf_adds(out, "tidepool_calls_out_total{tenant=\"");
      add_label(out, m->dests[i].tenant);
      tp_buf_adds(out, "\",to=\"");
      add_label(out, m->dests[i].to);
      tp_buf_printf(out, "\",result=\"%s\"} %llu\n", k ? "failed" : "ok",
                    (unsigned long long)(k ? m->dests[i].failed : m->dests[i].ok));
    }
  tpm_family(out, "tidepool_call_out_seconds", "summary", "Time of calls out, by tenant and destination.");
  for (int i = 0; i < NDESTS && m->dests[i].tenant[0]; i++)
    for (int k = 0; k < 2; k++) {
      tp_buf_adds(out, k ? "tidepool_call_out_seconds_count{tenant=\"" : "tidepool_call_out_seconds_sum{tenant=\"");
      add_label(out, m->dests[i].tenant);
      tp_buf_adds(out, "\",to=\"");
      add_label(out, m->dests[i].to);
      if (k) tp_buf_printf(out, "\"} %llu\n", (unsigned long long)(m->dests[i].ok + m->dests[i].failed));
      else tp_buf_printf(out, "\"} %.6f\n", m->dests[i].seconds);
    }
  tpm_family(out, "tidepool_reloads_total", "counter", "Plugin reloads, by result.");
  tp_buf_printf(out, "tidepool_reloads_total{result=\"ok\"} %llu\n", (unsigned long long)m->reloads_ok);
  tp_buf_printf(out, "tidepool_reloads_total{result=\"failed\"} %llu\n",
                (unsigned long long)m->reloads_failed);
}
