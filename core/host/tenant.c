/*
** tenant.c - a tenant's state between requests: its clock, its plugins'
** slots, and the batch: the open transaction that every request, job and
** event of one loop iteration joins, committed together (DESIGN "Group commit"),
** then made durable by a libuv worker while the loop goes on (the sync,
** below; store/walsync.h says why and what waits for it).
*/
#include "host/host_int.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "base/clock.h"
#include "base/log.h"

tp_slot *tp__slot(tp_tenant *t, const char *plugin) {
  for (int i = 0; i < t->nslots; i++)
    if (strcmp(t->slots[i].conf->name, plugin) == 0) return &t->slots[i];
  return NULL;
}

int64_t tp__now(const tp_tenant *t) {
  return t->conf->manual_clock ? t->clock_ms : tp_clock_wall_ms();
}

tp_tenant *tp__tenant(tp_host *h, const char *id, size_t n) {
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

/* The seed of an invocation's generator: the time, the request id and a
** secret drawn at start-up, so that no client can aim tp.random by choosing
** its request id. It is logged, so any run can be replayed. */
uint64_t tp__seed(const tp_host *h, int64_t now_ms, const char *request_id) {
  uint64_t seed = h->seed_secret ^ (uint64_t)now_ms;
  for (const char *c = request_id; *c; c++) seed = (seed ^ (unsigned char)*c) * 0x100000001b3ull;
  return seed & INT64_MAX;  /* the same positive number in Lua (tp.seed()) and in the log */
}

/* ---- workers at stop */

void tp__await_worker(atomic_int *finished) {
  while (!atomic_load(finished)) {
    struct timespec ms = {0, 1000000};
    nanosleep(&ms, NULL);
  }
}

/* ---- the batch */

int tp__join_batch(tp_host *h, tp_tenant *t) {
  if (tps_batch_begin(&t->db) != 0) return -1;
  if (!t->dirty) {
    t->dirty = true;
    h->batch[h->nbatch++] = t;
  }
  return 0;
}

static void sync_kick(tp_host *h, tp_tenant *t);

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
    if (t->queue_touched) {  /* the runner's next look at this tenant */
      t->queue_touched = false;
      t->next_due_ms = tpq_next_due(&t->queue);
    }
    sync_kick(h, t);
  }
  h->nbatch = 0;
}

/* ---- the sync: commits made durable by a worker (store/walsync.h)
**
** Commits are numbered as they come to owe a sync (committed); a sync covers
** every commit owed when it starts (its gen), and synced is the newest gen
** made durable. An answer that rests on an owed commit waits, deferred
** (net/http.h), with the gen it needs; so does the tenant, which neither
** closes nor moves while a sync or an answer is out (t->deferred). */

typedef struct sync_wait {
  tph_response *res;
  uint64_t gen;
} sync_wait;

typedef struct tp_sync_job {
  uv_work_t req;
  tp_tenant *t;
  uint64_t gen;
  int backoff_ms;          /* after failed syncs: the worker waits this long first */
  int64_t outbox_id;       /* the last call out the covered commits may have written */
  int rc;                  /* 0, or the errno of the failed sync */
  uint64_t asked_ns;       /* when it was queued (tidepool_sync_duration_seconds) */
  atomic_int finished;
  bool reaped;             /* the loop saw it finished first (tp__sync_reap): the callback only frees it */
  bool orphan;             /* the host stopped: the callback only frees it */
} sync_job;

typedef struct tp_sync {
  uint64_t committed, synced;
  int failures;            /* syncs failed in a row */
  sync_job *job;           /* the sync in flight, or NULL */
  sync_wait *wait;         /* answers held, oldest first */
  int nwait, capwait;
} tp_sync;

void tp__sync_open(tp_host *h, tp_tenant *t) {
  if (!h->loop || !t->open || t->sync) return;
  tp_sync *s = calloc(1, sizeof *s);
  if (!s) return;  /* COMMIT waits for the disk as before */
  if (tpws_defer(&t->db) != 0) {  /* not FULL or EXTRA: no sync to defer */
    free(s);
    return;
  }
  t->sync = s;
  /* what is in the file now is as durable as the commits that wrote it were */
  t->outbox.durable_id = t->outbox.last_id = tpob_max_id(&t->outbox);
}

static void sync_work(uv_work_t *w) {
  sync_job *j = w->data;
  if (j->backoff_ms) {  /* a disk that refused: not asked again at once */
    struct timespec pause = {j->backoff_ms / 1000, (j->backoff_ms % 1000) * 1000000L};
    nanosleep(&pause, NULL);
  }
  j->rc = tpws_run(&j->t->db);
  atomic_store(&j->finished, 1);
}

static void sync_done(uv_work_t *w, int status);

static void sync_kick(tp_host *h, tp_tenant *t) {
  tp_sync *s = t->sync;
  /* detached (stopping): closing the database syncs what is owed */
  if (!s || s->job || !h->loop || !tpws_owed(&t->db)) return;
  sync_job *j = calloc(1, sizeof *j);
  if (!j || tpws_start(&t->db) != 0) {
    tp_buf *line = tp_log_begin(TP_LOG_ERROR, "cannot sync the brand's commits; answers wait");
    tp_log_str(line, "tenant", t->conf->id);
    tp_log_str(line, "error", j ? strerror(errno) : "out of memory");
    tp_log_end(line);
    free(j);
    return;
  }
  s->committed++;  /* the commits tpws_start moved in flight */
  j->t = t;
  j->gen = s->committed;
  /* 50 ms after the first failure, doubling up to 1 s (a stop waits for it) */
  j->backoff_ms = s->failures ? (s->failures > 5 ? 1000 : 25 << s->failures) : 0;
  j->outbox_id = t->outbox.last_id;
  j->asked_ns = tp_clock_mono_ns();
  j->req.data = j;
  atomic_init(&j->finished, 0);
  if (uv_queue_work(h->loop, &j->req, sync_work, sync_done) != 0) {
    tpws_done(&t->db, false);
    free(j);
    return;
  }
  s->job = j;
  t->deferred++;
}

/* Sends, or refuses, the answers that waited for gen or older. */
static void release(tp_tenant *t, uint64_t gen, bool ok) {
  tp_sync *s = t->sync;
  int kept = 0;
  for (int i = 0; i < s->nwait; i++) {
    sync_wait *w = &s->wait[i];
    if (w->gen > gen) {
      s->wait[kept++] = *w;
      continue;
    }
    if (!ok)
      tph_error(w->res, 503, "commit_failed",
                "the change could not be made durable; it may not have been saved, retry");
    t->deferred--;
    tph_resume(w->res);
  }
  s->nwait = kept;
}

/* The sync j made (ok) or not: its answers go, or are refused. */
static void sync_finish(tp_tenant *t, sync_job *j, bool ok) {
  tp_sync *s = t->sync;
  tpm_sync(t->host->metrics, (double)(tp_clock_mono_ns() - j->asked_ns) / 1e9, ok);
  s->job = NULL;
  t->deferred--;
  tpws_done(&t->db, ok);
  s->failures = ok ? 0 : s->failures + 1;
  if (ok) {
    s->synced = j->gen;
    if (j->outbox_id > t->outbox.durable_id) {  /* their calls out may leave now */
      t->outbox.durable_id = j->outbox_id;
      t->outbox_touched = t->host->outbox_touched = true;
    }
  } else {
    tp_buf *line = tp_log_begin(TP_LOG_ERROR, "the disk did not sync the brand's commits; "
                                "their answers are refused");
    tp_log_str(line, "tenant", t->conf->id);
    tp_log_str(line, "error", j->rc ? strerror(j->rc) : "the worker did not run");
    tp_log_end(line);
  }
  release(t, j->gen, ok);
  sync_kick(t->host, t);  /* commits made while it ran */
}

static void sync_done(uv_work_t *w, int status) {
  sync_job *j = w->data;
  if (!j->orphan && !j->reaped) sync_finish(j->t, j, status == 0 && j->rc == 0);
  free(j);
}

void tp__sync_reap(tp_host *h) {
  for (int i = 0; i < h->ntenants; i++) {
    tp_sync *s = h->tenants[i].sync;
    if (!s || !s->job || !atomic_load(&s->job->finished)) continue;
    sync_job *j = s->job;
    j->reaped = true;
    sync_finish(&h->tenants[i], j, j->rc == 0);
  }
}

bool tp_host_hold(void *host, tph_response *res) {
  (void)host;
  tp_tenant *t = res->rests_on;
  tp_sync *s = t->sync;
  if (!s || (res->commit_failed && *res->commit_failed)) return false;
  /* the commits owed now: those of a running sync, and the ones after it */
  uint64_t gen = s->committed + (tpws_owed(&t->db) ? 1 : 0);
  if (gen <= s->synced) return false;
  if (s->nwait == s->capwait) {
    int cap = s->capwait ? 2 * s->capwait : 64;
    sync_wait *more = realloc(s->wait, (size_t)cap * sizeof *more);
    if (!more) return false;  /* cannot wait: answered now, as before deferral */
    s->wait = more;
    s->capwait = cap;
  }
  s->wait[s->nwait++] = (sync_wait){res, gen};
  t->deferred++;
  sync_kick(t->host, t);  /* owed by a commit made outside a batch (a migration) */
  return true;
}

void tp__sync_drain(tp_host *h) {
  for (int i = 0; i < h->ntenants; i++) {
    tp_tenant *t = &h->tenants[i];
    tp_sync *s = t->sync;
    if (!s) continue;
    if (s->job) {
      tp__await_worker(&s->job->finished);
      s->job->orphan = true;
      s->job = NULL;
      t->deferred--;
    }
    for (int k = 0; k < s->nwait; k++) {  /* the host stopped: nobody is answered */
      tph_abandon(s->wait[k].res);
      t->deferred--;
    }
    s->nwait = 0;
  }
}

void tp__sync_close(tp_tenant *t) {
  if (!t->sync) return;
  free(t->sync->wait);
  free(t->sync);
  t->sync = NULL;
  t->outbox.durable_id = INT64_MAX;  /* closing syncs it all (SQLite's last checkpoint) */
}

/* A batch may commit more than once per iteration (a reload or a clock advance
** flushes what came before it), so a failure is remembered until every answer
** of the iteration has been sent, not just until the next BEGIN. */
void tp_host_iteration_end(void *host) {
  tp_host *h = host;
  h->track_ns = 0;  /* intake's share starts afresh (track.c) */
  if (!h->commit_failed) return;  /* the usual case: no tenant to visit */
  h->commit_failed = false;
  for (int i = 0; i < h->ntenants; i++) h->tenants[i].db.commit_failed = false;
}
