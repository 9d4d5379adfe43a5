/*
** brands.c - opening and closing one brand (a tenant): its claim, database,
** scheduler tables, routers and plugins.
**
** By default the host opens every brand at start and keeps it open. With
** open_tenants = {lazy = true, idle_seconds = N} a start only reads each
** brand's next due task and call out from its file (a read-only connection,
** a few queries: tpq_peek, tpob_peek), so that start, restart and idle memory
** do not grow with the number of brands; a brand opens on its first request,
** on a due task (runner.c) or a due call out (sender.c), and closes again
** after N seconds without any, keeping those due times so that its timers
** still fire on time. A brand is closed only between batches and only when
** nothing of it is in flight: no open transaction, no call out, no worker on
** its files, no plugin waiting for a fresh state.
*/
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "base/clock.h"
#include "base/log.h"
#include "host/host_int.h"
#include "store/backup.h"
#include "store/transfer.h"
#include "store/users.h"

static void db_path(const tp_host *h, const tp_tenant *t, const char *suffix, char *out, size_t cap) {
  tpc_tenant_file(h->cfg->data_dir, t->conf->id, suffix, out, cap);
}

/* Everything a brand needs to serve; on failure what was opened stays for
** tp__brand_close to free. */
static int open_parts(tp_host *h, tp_tenant *t, char *err, size_t errcap) {
  char path[1100], track[1100], why[200];
  if (h->cfg->self && tpxf_tombstone(h->cfg->data_dir, t->conf->id, why, sizeof why)) {
    snprintf(err, errcap, "'%s' %s: this node's copy of it is set aside, never served", t->conf->id, why);
    return -1;
  }
  db_path(h, t, ".db", path, sizeof path);
  t->claim = tpbk_claim(path, err, errcap);  /* one process serves a brand */
  if (t->claim < 0) return -1;
  if (tps_open(&t->db, path, h->cfg->synchronous, err, errcap) != 0) return -1;
  /* the analytics database: its own file and connection (store/track.h) */
  db_path(h, t, ".analytics.db", track, sizeof track);
  if (tptk_open(&t->track, track, err, errcap) != 0) return -1;
  if (tptk_attach(&t->db, track, err, errcap) != 0) return -1;
  if (tpq_open(&t->queue, &t->db, err, errcap) != 0) return -1;
  if (tprun_open(&t->runs, &t->db, err, errcap) != 0) return -1;
  if (tpal_open(&t->aliases, t->db.db, err, errcap) != 0) return -1;
  if (tpid_open(&t->idem, &t->db, err, errcap) != 0) return -1;  /* after aliases: its triggers */
  if (tpob_open(&t->outbox, &t->db, err, errcap) != 0) return -1;
  if (tpcu_open(t->db.db, err, errcap) != 0) return -1;  /* console users (store/users.h) */
  /* nothing is in flight after a start: every lease ends, and those calls go again */
  if (tpob_release_leases(&t->outbox, tp_clock_wall_ms()) != 0) {
    snprintf(err, errcap, "%s: cannot release the outbox's leases: %s", path, sqlite3_errmsg(t->db.db));
    return -1;
  }
  t->outbox_due_ms = tpob_next_due(&t->outbox);
  if (t->outbox_due_ms != INT64_MAX) t->outbox_touched = h->outbox_touched = true;
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
  if (tp_host_build_routers(h->builtins, h->nbuiltins, NULL, 0, &t->routes, &t->admin, err, errcap) != 0)
    return -1;
  t->open = true;
  /* campaigns last: their setup drives the mechanics, which must be serving */
  for (int pass = 0; pass < 2; pass++)
    for (int j = 0; j < t->nslots; j++) {
      double ms;
      if (!t->slots[j].conf->script == !pass && tp__install(h, t, &t->slots[j], &ms) != 0)
        h->plugin_failures++;
    }
  t->next_due_ms = tpq_next_due(&t->queue);
  tp__sync_open(h, t);  /* from now on its commits are synced by a worker */
  return 0;
}

/* A brand this node let go of (its tombstone says where to): never opened. */
static void disown(tp_host *h, tp_tenant *t, const char *why) {
  t->owned = false;
  for (int i = 0; i < h->cfg->nnodes; i++) {  /* "moved to node b at ..." */
    size_t n = strlen(h->cfg->nodes[i].name);
    if (strncmp(why, "moved to node ", 14) == 0 && strncmp(why + 14, h->cfg->nodes[i].name, n) == 0 &&
        why[14 + n] == ' ')
      t->owner = i;
  }
  tp_buf *line = tp_log_begin(TP_LOG_WARN, "brand not served: it moved away");
  tp_log_str(line, "tenant", t->conf->id);
  tp_log_str(line, "tombstone", why);
  tp_log_end(line);
}

void tp__brand_init(tp_host *h, tp_tenant *t, const tpc_tenant *conf) {
  t->conf = conf;
  t->host = h;
  t->owner = conf->node;
  t->owned = !h->cfg->self || &h->cfg->nodes[conf->node] == h->cfg->self;
  char why[200];
  if (t->owned && h->cfg->self && tpxf_tombstone(h->cfg->data_dir, conf->id, why, sizeof why))
    disown(h, t, why);  /* it moved away, and this folder's record of that was lost */
  t->claim = -1;
  t->next_due_ms = t->outbox_due_ms = INT64_MAX;
  t->nslots = conf->nplugins;
  t->slots = calloc((size_t)(t->nslots ? t->nslots : 1), sizeof *t->slots);
  for (int j = 0; j < t->nslots; j++) t->slots[j].conf = &conf->plugins[j];
}

int tp__brand_open(tp_host *h, tp_tenant *t, const char *why, char *err, size_t errcap) {
  if (t->open) return 0;
  uint64_t start = tp_clock_mono_ns();
  int failures = h->plugin_failures;
  if (open_parts(h, t, err, errcap) != 0) {
    tp__brand_close(h, t);
    return -1;
  }
  t->last_used_ms = tp_clock_wall_ms();
  h->open_tenants++;
  if (h->cfg->lazy_tenants) {
    tp_buf *line = tp_log_begin(TP_LOG_INFO, "brand opened");
    tp_log_str(line, "tenant", t->conf->id);
    tp_log_str(line, "why", why);
    tp_log_num(line, "ms", (double)(tp_clock_mono_ns() - start) / 1e6);
    if (h->plugin_failures > failures) tp_log_int(line, "plugins_failed", h->plugin_failures - failures);
    tp_log_end(line);
  }
  return 0;
}

/* Frees what a brand holds open; what it keeps closed stays: its config, its
** plugins' slots (no generation in them), its due times, its backups' state. */
void tp__brand_close(tp_host *h, tp_tenant *t) {
  bool was_open = t->open;
  tp__sync_close(t);
  if (was_open) {  /* what its timers need while it is closed */
    t->next_due_ms = tpq_next_due(&t->queue);
    t->outbox_due_ms = tpob_next_due(&t->outbox);
  }
  for (int j = 0; j < t->nslots; j++)
    if (t->slots[j].current) {
      tpp_free(t->slots[j].current);
      free(t->slots[j].current);
      t->slots[j].current = NULL;
    }
  tpr_free(t->routes);
  tpr_free(t->admin);
  tpq_close(&t->queue);
  tprun_close(&t->runs);
  tpal_close(&t->aliases);
  tpid_close(&t->idem);
  tpob_close(&t->outbox);
  tps_close(&t->db);
  tptk_close(&t->track);
  tpbk_unclaim(t->claim);
  if (t->open) h->open_tenants--;
  tp_tenant kept = *t;
  memset(t, 0, sizeof *t);
  t->conf = kept.conf;
  t->host = kept.host;
  t->owned = kept.owned;
  t->owner = kept.owner;
  t->paused_ms = kept.paused_ms;
  t->adopting = kept.adopting;
  t->claim = -1;
  t->slots = kept.slots;
  t->nslots = kept.nslots;
  t->next_due_ms = kept.next_due_ms;
  t->outbox_due_ms = kept.outbox_due_ms;
  t->clock_ms = kept.clock_ms;
  t->backup_job = kept.backup_job;
  t->backup_last_ms = kept.backup_last_ms;
  t->backup_known = kept.backup_known;
  t->backup_failed_ms = kept.backup_failed_ms;
  memcpy(t->backup_error, kept.backup_error, sizeof t->backup_error);
  if (was_open && h->cfg->lazy_tenants) {  /* after the close: its files are as they stay */
    tpdi_entry e = {t->next_due_ms, t->outbox_due_ms, t->clock_ms, tp_clock_wall_ms()};
    tpdi_put(&h->due_index, t->conf->id, &e);
  }
}

void tp__brand_free(tp_host *h, tp_tenant *t) {
  tp__brand_close(h, t);
  free(t->slots);
  t->slots = NULL;
  t->nslots = 0;
}

static int64_t mtime_ms(const char *path) {
  struct stat st;
  if (stat(path, &st) != 0) return -1;
  return (int64_t)st.st_mtim.tv_sec * 1000 + st.st_mtim.tv_nsec / 1000000;
}

/* The index's row of t, if t's files have not changed since it was written. */
static bool from_index(tp_host *h, tp_tenant *t) {
  tpdi_entry e;
  if (tpdi_get(&h->due_index, t->conf->id, &e) != 1) return false;
  char path[1100], wal[1100];
  db_path(h, t, ".db", path, sizeof path);
  db_path(h, t, ".db-wal", wal, sizeof wal);
  int64_t db = mtime_ms(path), log = mtime_ms(wal);
  if (db > e.written_ms || log > e.written_ms) return false;  /* opened since, or died open */
  t->next_due_ms = e.next_due_ms;
  t->outbox_due_ms = e.outbox_due_ms;
  if (t->conf->manual_clock) t->clock_ms = e.clock_ms;
  return true;
}

bool tp__brand_peek(tp_host *h, tp_tenant *t) {
  if (from_index(h, t)) return false;
  char path[1100];
  db_path(h, t, ".db", path, sizeof path);
  sqlite3 *db = NULL;
  if (sqlite3_open_v2(path, &db, SQLITE_OPEN_READONLY, NULL) == SQLITE_OK) {
    int64_t clock_ms;
    tpq_peek(db, &t->next_due_ms, &clock_ms);
    t->outbox_due_ms = tpob_peek(db);
    if (t->conf->manual_clock) t->clock_ms = clock_ms;
  }
  sqlite3_close(db);  /* no file yet: nothing is due */
  tpdi_entry e = {t->next_due_ms, t->outbox_due_ms, t->clock_ms, tp_clock_wall_ms()};
  tpdi_put(&h->due_index, t->conf->id, &e);  /* the next start need not read it again */
  return true;
}

int tp__brand_use(tp_host *h, tp_tenant *t, const char *why) {
  if (!t->owned) return -1;  /* another node's (host/cluster.c) */
  if (!t->open) {
    char err[1024];
    if (tp__brand_open(h, t, why, err, sizeof err) != 0) {
      tp_buf *line = tp_log_begin(TP_LOG_ERROR, "brand not opened");
      tp_log_str(line, "tenant", t->conf->id);
      tp_log_str(line, "why", why);
      tp_log_str(line, "error", err);
      tp_log_end(line);
      return -1;
    }
  }
  t->last_used_ms = tp_clock_wall_ms();
  return 0;
}

/* ---- closing idle brands */

static bool closable(const tp_host *h, const tp_tenant *t, int64_t now) {
  return t->open && !t->dirty && !t->reset_pending && !t->track_ckpt && !t->backup_job && t->calls_out == 0 &&
         t->deferred == 0 &&
         !t->outbox_touched && now - t->last_used_ms >= h->cfg->idle_seconds * 1000;
}

static void on_idle_tick(uv_timer_t *timer) {
  tp_host *h = timer->data;
  if (h->running_tasks) return;
  int64_t now = tp_clock_wall_ms();
  for (int i = 0; i < h->ntenants; i++) {
    tp_tenant *t = &h->tenants[i];
    if (!closable(h, t, now)) continue;
    tp_buf *line = tp_log_begin(TP_LOG_INFO, "brand closed");
    tp_log_str(line, "tenant", t->conf->id);
    tp_log_int(line, "idle_s", (now - t->last_used_ms) / 1000);
    tp_log_end(line);
    tp__brand_close(h, t);  /* the runner's timer stays armed for those due times */
  }
}

void tp__brands_start(tp_host *h) {
  if (!h->cfg->lazy_tenants) return;
  uv_timer_init(h->loop, &h->idle_timer);
  h->idle_timer.data = h;
  uint64_t every = (uint64_t)(h->cfg->idle_seconds * 1000 / 4);
  uv_timer_start(&h->idle_timer, on_idle_tick, every ? every : 250, every ? every : 250);
  uv_unref((uv_handle_t *)&h->idle_timer);
  h->idle_timer_on = true;
}

void tp__brands_stop(tp_host *h) {
  if (!h->idle_timer_on) return;
  h->idle_timer_on = false;
  uv_timer_stop(&h->idle_timer);
  uv_close((uv_handle_t *)&h->idle_timer, NULL);
}
