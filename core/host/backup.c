/*
** backup.c - each brand's database backed up on schedule, off the loop.
**
** With `backup = {dir, every_seconds, keep}` in the config, a timer looks at
** every tenant each tick (every_seconds, at most a minute) and, when its
** newest backup is every_seconds old or there is none, hands the copy to a
** libuv worker: store/backup.h's tpbk_take on a connection of the worker's
** own, then retention (the keep newest stay). The loop goes on serving; the
** copy is the database as one commit left it. One copy per tenant at a time,
** and at most MAX_SCHEDULED of the schedule's at once.
**
** Where a brand's schedule resumes is its newest backup on disk. That is read
** by the worker too, by the brand's first job (which copies only if the
** newest is old enough), never at start: with thousands of lazy brands a
** start would otherwise list thousands of folders before serving.
**
** POST /admin/{t}/backups starts one now (202), GET lists them with the one
** running and the last failure. At stop the host waits for copies in flight
** (as for the analytics checkpoints, host/track.c): a worker must never hold
** a connection to a file the host is closing.
*/
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "base/buf.h"
#include "base/clock.h"
#include "base/json.h"
#include "base/log.h"
#include "host/host_int.h"
#include "store/backup.h"

#define TICK_MAX_S 60
#define MAX_SCHEDULED 4   /* the schedule's jobs at once: libuv's default pool */

typedef struct tp_backup_job {
  uv_work_t req;
  tp_tenant *t;
  const tpc_backup *conf;
  char db_path[1100];
  int64_t started_ms;
  bool look_first;      /* the brand's newest backup is not known yet: list them first */
  bool scheduled;       /* started by the schedule (counted in tp_backups.running) */
  /* the worker's results */
  int rc;
  bool looked;          /* it listed them: newest_ms is the newest (0: none) */
  bool skipped;         /* the newest was recent enough: no copy */
  int64_t newest_ms;
  char name[TPBK_NAME_MAX];
  int64_t bytes;
  int removed;
  double seconds;
  char err[512];
  atomic_int finished;  /* the worker is done with every file */
  bool orphan;          /* the host stopped waiting for it: touch no tenant */
} backup_job;

typedef struct tp_backups {
  uv_timer_t timer;
  tp_host *h;
  int running;          /* the schedule's jobs in flight */
  int next;             /* where the next tick starts going round */
} tp_backups;

/* ---- one copy */

/* The newest backup's time, when it is not known yet; true when it is recent
** enough that the schedule need not copy now. */
static bool recent_enough(backup_job *j) {
  if (!j->look_first) return false;
  tpbk_entry *all;
  int n;
  char err[256];
  if (tpbk_list(j->conf->dir, j->t->conf->id, &all, &n, err, sizeof err) != 0) return false;
  j->looked = true;
  j->newest_ms = n ? all[0].taken_ms : 0;
  free(all);
  return j->scheduled && n && j->started_ms - j->newest_ms < j->conf->every_seconds * 1000;
}

static void backup_work(uv_work_t *w) {
  backup_job *j = w->data;
  uint64_t start = tp_clock_mono_ns();
  if ((j->skipped = recent_enough(j))) {
    atomic_store(&j->finished, 1);
    return;
  }
  j->rc = tpbk_take(j->db_path, j->conf->dir, j->t->conf->id, j->started_ms, j->name, &j->bytes,
                    j->err, sizeof j->err);
  if (j->rc == 0) {
    j->removed = tpbk_prune(j->conf->dir, j->t->conf->id, (int)j->conf->keep, j->err, sizeof j->err);
    if (j->removed < 0) j->removed = 0;  /* the copy stands; the next one prunes again */
  }
  j->seconds = (double)(tp_clock_mono_ns() - start) / 1e9;
  atomic_store(&j->finished, 1);
}

static void backup_done(uv_work_t *w, int status) {
  backup_job *j = w->data;
  if (!j->orphan) {
    tp_tenant *t = j->t;
    t->backup_job = NULL;
    if (j->scheduled && t->host->backups) t->host->backups->running--;
    if (j->looked) {
      t->backup_known = true;
      if (j->newest_ms > t->backup_last_ms) t->backup_last_ms = j->newest_ms;
    }
    if (j->skipped && status == 0) {
      free(j);
      return;
    }
    bool ok = status == 0 && j->rc == 0;
    tp_buf *line = tp_log_begin(ok ? TP_LOG_INFO : TP_LOG_ERROR, ok ? "backup taken" : "backup failed");
    tp_log_str(line, "tenant", t->conf->id);
    if (ok) {
      t->backup_last_ms = j->started_ms;
      t->backup_known = true;
      t->backup_error[0] = '\0';
      tp_log_str(line, "file", j->name);
      tp_log_int(line, "bytes", j->bytes);
      tp_log_int(line, "pruned", j->removed);
    } else {
      t->backup_failed_ms = j->started_ms;
      tp_copy_str(t->backup_error, sizeof t->backup_error, status ? "cancelled" : j->err);
      tp_log_str(line, "error", t->backup_error);
    }
    tp_log_num(line, "seconds", j->seconds);
    tp_log_end(line);
  }
  free(j);
}

/* Starts t's copy on a worker (scheduled: by the schedule, which copies only
** when the brand's newest backup is old enough): 0, or -1 (one runs, or no
** worker). */
static int start_backup(tp_host *h, tp_tenant *t, bool scheduled) {
  if (t->backup_job || !h->loop || !h->cfg->backup.dir) return -1;
  backup_job *j = calloc(1, sizeof *j);
  if (!j) return -1;
  j->t = t;
  j->conf = &h->cfg->backup;
  j->started_ms = tp_clock_wall_ms();
  j->look_first = !t->backup_known;
  j->scheduled = scheduled;
  tpc_tenant_file(h->cfg->data_dir, t->conf->id, ".db", j->db_path, sizeof j->db_path);
  j->req.data = j;
  atomic_init(&j->finished, 0);
  if (uv_queue_work(h->loop, &j->req, backup_work, backup_done) != 0) {
    free(j);
    return -1;
  }
  t->backup_job = j;
  if (scheduled) h->backups->running++;
  return 0;
}

/* ---- the schedule */

/* Due, or not known yet (its job looks first). */
static bool due(const tp_host *h, const tp_tenant *t, int64_t now) {
  int64_t every = h->cfg->backup.every_seconds * 1000;
  if (every <= 0 || t->backup_job || !t->owned) return false;  /* another node backs its brands up */
  if (now - t->backup_failed_ms < every / 4 + 1000) return false;  /* a failure waits a while */
  return !t->backup_known || now - t->backup_last_ms >= every;
}

/* Starts what is due, MAX_SCHEDULED at most, going round the brands from
** where the last tick stopped, so that none waits behind the others. Ticks
** come every second while some are left. */
static void on_tick(uv_timer_t *timer) {
  tp_backups *b = timer->data;
  tp_host *h = b->h;
  int64_t now = tp_clock_wall_ms();
  bool left = false;
  for (int k = 0; k < h->ntenants; k++) {
    int i = (b->next + k) % h->ntenants;
    if (!due(h, &h->tenants[i], now)) continue;
    if (b->running >= MAX_SCHEDULED) {
      b->next = i;
      left = true;
      break;
    }
    start_backup(h, &h->tenants[i], true);
  }
  uint64_t tick = (uint64_t)(h->cfg->backup.every_seconds < TICK_MAX_S ? h->cfg->backup.every_seconds
                                                                       : TICK_MAX_S) * 1000;
  uv_timer_start(&b->timer, on_tick, left ? 1000 : tick, 0);
}

void tp__backup_start(tp_host *h) {
  const tpc_backup *c = &h->cfg->backup;
  if (!c->dir) return;
  if (c->every_seconds <= 0) return;
  tp_backups *b = calloc(1, sizeof *b);
  if (!b) return;
  b->h = h;
  uv_timer_init(h->loop, &b->timer);
  b->timer.data = b;
  uv_timer_start(&b->timer, on_tick, 0, 0);
  uv_unref((uv_handle_t *)&b->timer);  /* the schedule alone keeps no loop alive */
  h->backups = b;
}

static void on_closed(uv_handle_t *handle) { free(handle->data); }

/* Stops the schedule and waits, without running the loop, until no worker
** copies a tenant's file; their callbacks, run by the loop's last turn, then
** only free them. */
void tp__backup_stop(tp_host *h) {
  if (h->backups) {
    uv_timer_stop(&h->backups->timer);
    uv_close((uv_handle_t *)&h->backups->timer, on_closed);
    h->backups = NULL;
  }
  for (int i = 0; i < h->ntenants; i++) {
    tp_tenant *t = &h->tenants[i];
    backup_job *j = t->backup_job;
    if (!j) continue;
    tp__await_worker(&j->finished);
    j->orphan = true;
    t->backup_job = NULL;
  }
}

/* ---- the endpoints */

static void get_backups(tp_host *h, tp_tenant *t, const tph_request *req, tph_response *res) {
  (void)req;
  const tpc_backup *c = &h->cfg->backup;
  tpbk_entry *all = NULL;
  int n = 0;
  char err[512];
  if (c->dir && tpbk_list(c->dir, t->conf->id, &all, &n, err, sizeof err) != 0) {
    tph_error(res, 500, "backup_unreadable", "%s", err);
    return;
  }
  tp_buf *out = &res->body;
  tp_buf_printf(out, "{\"configured\":%s,\"every_seconds\":%lld,\"keep\":%lld,\"running\":%s,",
                c->dir ? "true" : "false", (long long)c->every_seconds, (long long)c->keep,
                t->backup_job ? "true" : "false");
  tp_buf_adds(out, "\"last_error\":");
  if (t->backup_error[0]) tp_buf_add_json_str(out, t->backup_error, strlen(t->backup_error));
  else tp_buf_adds(out, "null");
  tp_buf_adds(out, ",\"backups\":[");
  for (int i = 0; i < n; i++) {
    tp_buf_adds(out, i ? ",{\"name\":" : "{\"name\":");
    tp_buf_add_json_str(out, all[i].name, strlen(all[i].name));
    tp_buf_printf(out, ",\"taken_ms\":%lld,\"bytes\":%lld}", (long long)all[i].taken_ms,
                  (long long)all[i].bytes);
  }
  free(all);
  tp_buf_adds(out, "]}");
  res->status = 200;
}

static void post_backup(tp_host *h, tp_tenant *t, const tph_request *req, tph_response *res) {
  (void)req;
  if (!h->cfg->backup.dir) {
    tph_error(res, 409, "backups_not_configured", "the host's config has no backup = {dir = ...}");
    return;
  }
  if (t->backup_job) {
    tph_error(res, 409, "backup_running", "a backup of %s is being taken; GET /admin/%s/backups "
              "lists it when it is done", t->conf->id, t->conf->id);
    return;
  }
  if (start_backup(h, t, false) != 0) {
    tph_error(res, 503, "busy", "no worker could take the backup now; try again");
    return;
  }
  tp_buf_printf(&res->body, "{\"running\":true,\"started_ms\":%lld}", (long long)t->backup_job->started_ms);
  res->status = 202;
}

#define J_INT "{\"type\":\"integer\"}"
#define LIST_ANSWER                                                                          \
  "{\"type\":\"object\",\"properties\":{\"configured\":{\"type\":\"boolean\"},\"every_seconds\":" \
  J_INT ",\"keep\":" J_INT ",\"running\":{\"type\":\"boolean\"},\"last_error\":{\"type\":"        \
  "\"string\",\"nullable\":true},\"backups\":{\"type\":\"array\",\"items\":{\"type\":\"object\"," \
  "\"properties\":{\"name\":{\"type\":\"string\"},\"taken_ms\":" J_INT ",\"bytes\":" J_INT "}}}}}"
#define START_ANSWER \
  "{\"type\":\"object\",\"properties\":{\"running\":{\"type\":\"boolean\"},\"started_ms\":" J_INT "}}"

static tp_route routes[] = {
  {.method = "GET", .path = "/backups", .label = "admin GET /admin/{tenant}/backups",
   .auth = TP_AUTH_ADMIN, .builtin = (void (*)(void))(tp_builtin_fn)get_backups,
   .doc = {.summary = "The brand's backups, newest first, and whether one is being taken",
           .response = LIST_ANSWER, .errors = TP_DOC_ERROR("500", "backup_unreadable", "\"backup_unreadable\"")}},
  {.method = "POST", .path = "/backups", .label = "admin POST /admin/{tenant}/backups",
   .auth = TP_AUTH_ADMIN, .builtin = (void (*)(void))(tp_builtin_fn)post_backup,
   .doc = {.summary = "Take a backup of the brand's database now, on a worker (online)",
           .status = 202, .response = START_ANSWER,
           .errors = TP_DOC_ERROR("409", "backups_not_configured, backup_running",
                                  "\"backups_not_configured\",\"backup_running\"") ","
                     TP_DOC_ERROR("503", "busy", "\"busy\"")}},
};

const tp_route *tp__backup_routes(int *n) {
  *n = (int)(sizeof routes / sizeof *routes);
  return routes;
}
