/*
** tenant.c - a tenant's state between requests: its clock, its plugins'
** slots, and the batch: the open transaction that every request, job and
** event of one loop iteration joins, committed together (DESIGN "Group commit"),
** then made durable by a thread of the host's while the loop goes on (the
** sync, below; store/walsync.h says why and what waits for it).
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

void tp__join_track(tp_host *h, tp_tenant *t) {
  if (!t->dirty) {
    t->dirty = true;
    h->batch[h->nbatch++] = t;
  }
}

int tp__join_batch(tp_host *h, tp_tenant *t) {
  if (tps_batch_begin(&t->db) != 0) return -1;
  tp__join_track(h, t);  /* listed for the commit, as intake's batches are */
  return 0;
}

static bool sync_kick(tp_host *h, tp_tenant *t);

/* The brand's batch: committed, its commit owed a sync. Whether it failed. */
static bool commit_brand(tp_host *h, tp_tenant *t) {
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
  tpob_committed(&t->outbox);  /* the calls out it made (or not: rolled back) */
  if (t->queue_touched) {  /* the runner's next look at this tenant */
    t->queue_touched = false;
    t->next_due_ms = tpq_next_due(&t->queue);
  }
  sync_kick(h, t);
  return rc != 0;
}

/* Intake's batches of events (host/track.c): committed in their own file. */
static void commit_track(tp_host *h, tp_tenant *t) {
  tptk_db *k = &t->track;
  if (k->in_txn) {  /* (else none, or a batch's error rolled it all back) */
    uint64_t start = tp_clock_mono_ns();
    char err[256];
    int rc = tptk_commit(k, err, sizeof err);
    h->track_commit_ns += tp_clock_mono_ns() - start;
    if (rc != 0) {
      tp_buf *line = tp_log_begin(TP_LOG_ERROR, "track: commit failed; the iteration's events were rolled back");
      tp_log_str(line, "tenant", t->conf->id);
      tp_log_int(line, "batches", k->batches);
      tp_log_str(line, "error", err);
      tp_log_end(line);
    }
  }
  if (k->commit_failed) h->commit_failed = true;  /* cleared with the others at the iteration's end */
}

int tp__flush_batch(tp_host *h) {
  int failed = 0;
  for (int i = 0; i < h->nbatch; i++) {
    tp_tenant *t = h->batch[i];
    if (t->db.in_txn) failed += commit_brand(h, t);
    commit_track(h, t);
    t->dirty = false;
  }
  h->nbatch = 0;
  return failed;
}

/* ---- the sync: commits made durable by the host's syncer thread (store/walsync.h)
**
** Commits are numbered as they come to owe a sync (committed); a sync covers
** every commit owed when it starts (its gen), and synced is the newest gen
** made durable. An answer that rests on an owed commit waits, deferred
** (net/http.h), with the gen it needs; so does the tenant, which neither
** closes nor moves while a sync or an answer is out (t->deferred).
**
** The syncs run on a thread of their own, one per host, not on libuv's
** shared pool: that pool has 4 threads, which the backup schedule's 4 copies
** (backup.c) or 4 brands' moves (transfer.c) fill for seconds, and every
** answer of every brand would wait behind them. The thread takes jobs from a
** queue; the loop hears of the finished ones through a uv_async (or sees one
** finished first, tp__sync_reap). */

/* An answer refused because its commit could not be synced: the commit was
** made, so the write may be there after all. */
static const char NOT_SYNCED[] = "the change could not be made durable; it may not have been saved, retry";

typedef struct sync_wait {
  tph_response *res;
  uint64_t gen;
} sync_wait;

typedef struct tp_sync_job {
  tp_tenant *t;
  uint64_t gen;
  int backoff_ms;          /* after failed syncs: the thread waits this long first */
  int64_t outbox_id;       /* the last call out the covered commits may have written */
  int rc;                  /* 0, or the errno of the failed sync */
  uint64_t asked_ns;       /* when it was queued (tidepool_sync_duration_seconds) */
  atomic_int finished;
  bool reaped;             /* the loop saw it finished first (tp__sync_reap): only freed after */
  struct tp_sync_job *next;
} sync_job;

typedef struct tp_sync {
  uint64_t committed, synced;
  int failures;            /* syncs failed in a row */
  sync_job *job;           /* the sync in flight, or NULL */
  sync_wait *wait;         /* answers held, oldest first */
  int nwait, capwait;
} tp_sync;

typedef struct tp_syncer {
  uv_thread_t thread;
  uv_mutex_t lock;
  uv_cond_t wake;
  uv_async_t done;         /* the thread's word to the loop */
  sync_job *queued, *queued_tail, *finished;  /* under lock */
  bool stop;               /* under lock */
} tp_syncer;

static void sync_run(sync_job *j) {
  if (j->backoff_ms) {  /* a disk that refused: not asked again at once */
    struct timespec pause = {j->backoff_ms / 1000, (j->backoff_ms % 1000) * 1000000L};
    nanosleep(&pause, NULL);
  }
  j->rc = tpws_run(&j->t->db);
  atomic_store(&j->finished, 1);
}

static void syncer_main(void *arg) {
  tp_syncer *y = arg;
  uv_mutex_lock(&y->lock);
  for (;;) {
    while (!y->queued && !y->stop) uv_cond_wait(&y->wake, &y->lock);
    if (y->stop) break;
    sync_job *j = y->queued;
    y->queued = j->next;
    if (!y->queued) y->queued_tail = NULL;
    uv_mutex_unlock(&y->lock);
    sync_run(j);
    uv_mutex_lock(&y->lock);
    j->next = y->finished;
    y->finished = j;
    uv_async_send(&y->done);
  }
  uv_mutex_unlock(&y->lock);
}

/* The answers that waited for gen or older go, or (not ok) are refused. */
static void release(tp_tenant *t, uint64_t gen, bool ok) {
  tp_sync *s = t->sync;
  int kept = 0;
  for (int i = 0; i < s->nwait; i++) {
    sync_wait *w = &s->wait[i];
    if (w->gen > gen) {
      s->wait[kept++] = *w;
      continue;
    }
    if (!ok) tph_error(w->res, 503, "commit_failed", "%s", NOT_SYNCED);
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
    tp_log_str(line, "error", strerror(j->rc));
    tp_log_end(line);
  }
  release(t, j->gen, ok);  /* the answers that waited for j's gen or older */
  sync_kick(t->host, t);    /* commits made while it ran */
}

static void on_synced(uv_async_t *a) {
  tp_syncer *y = a->data;
  uv_mutex_lock(&y->lock);
  sync_job *done = y->finished;
  y->finished = NULL;
  uv_mutex_unlock(&y->lock);
  while (done) {
    sync_job *j = done;
    done = j->next;
    if (!j->reaped) sync_finish(j->t, j, j->rc == 0);
    free(j);
  }
}

static void syncer_closed(uv_handle_t *hd) {
  tp_syncer *y = hd->data;
  uv_cond_destroy(&y->wake);
  uv_mutex_destroy(&y->lock);
  free(y);
}

/* The host's syncer, started on first use: 0, or -1 (no thread: COMMITs stay synced by SQLite). */
static int syncer_start(tp_host *h) {
  if (h->syncer) return 0;
  tp_syncer *y = calloc(1, sizeof *y);
  if (!y) return -1;
  if (uv_mutex_init(&y->lock) != 0) {
    free(y);
    return -1;
  }
  if (uv_cond_init(&y->wake) != 0 || uv_async_init(h->loop, &y->done, on_synced) != 0) {
    uv_mutex_destroy(&y->lock);
    free(y);
    return -1;
  }
  y->done.data = y;
  uv_unref((uv_handle_t *)&y->done);  /* the loop ends when nothing else is left */
  if (uv_thread_create(&y->thread, syncer_main, y) != 0) {
    uv_close((uv_handle_t *)&y->done, syncer_closed);  /* frees y */
    return -1;
  }
  h->syncer = y;
  return 0;
}

void tp__sync_open(tp_host *h, tp_tenant *t) {
  if (!h->loop || !t->open || t->sync || syncer_start(h) != 0) return;
  tp_sync *s = calloc(1, sizeof *s);
  if (!s) return;  /* COMMIT waits for the disk as before */
  if (tpws_defer(&t->db) != 0) {  /* not FULL or EXTRA: no sync to defer */
    free(s);
    return;
  }
  t->sync = s;
  /* what is in the file now is as durable as the commits that wrote it were */
  t->outbox.durable_id = t->outbox.committed_id = t->outbox.last_id = tpob_max_id(&t->outbox);
}

/* Starts a sync of t's owed commits when none runs. False if one was owed
** and could not start: the answers waiting were then refused. */
static bool sync_kick(tp_host *h, tp_tenant *t) {
  tp_sync *s = t->sync;
  tp_syncer *y = h->syncer;
  /* detached (stopping): closing the database syncs what is owed */
  if (!s || s->job || !y || !tpws_owed(&t->db)) return true;
  sync_job *j = calloc(1, sizeof *j);
  if (!j || tpws_start(&t->db) != 0) {
    int e = j ? errno : ENOMEM;
    /* the commits stay owed (the next one tries again); the answers that
    ** waited are refused, as for a failed sync: left waiting, they would
    ** wait for a commit that may never come */
    tp_buf *line = tp_log_begin(TP_LOG_ERROR, "cannot sync the brand's commits; "
                                "their answers are refused");
    tp_log_str(line, "tenant", t->conf->id);
    tp_log_str(line, "error", strerror(e));
    tp_log_end(line);
    free(j);
    tpm_sync(h->metrics, 0, false);
    release(t, UINT64_MAX, false);  /* none runs: every answer held waits for one not started */
    return false;
  }
  s->committed++;  /* the commits tpws_start moved in flight */
  j->t = t;
  j->gen = s->committed;
  /* 50 ms after the first failure, doubling up to 1 s (a stop waits for it) */
  j->backoff_ms = s->failures ? (s->failures > 5 ? 1000 : 25 << s->failures) : 0;
  j->outbox_id = t->outbox.committed_id;  /* not a batch still open (a sync started mid-iteration) */
  j->asked_ns = tp_clock_mono_ns();
  atomic_init(&j->finished, 0);
  s->job = j;
  t->deferred++;
  uv_mutex_lock(&y->lock);
  if (y->queued_tail) y->queued_tail->next = j;
  else y->queued = j;
  y->queued_tail = j;
  uv_cond_signal(&y->wake);
  uv_mutex_unlock(&y->lock);
  return true;
}

void tp__sync_reap(tp_host *h) {
  if (!h->syncer) return;
  for (int i = 0; i < h->ntenants; i++) {
    tp_sync *s = h->tenants[i].sync;
    if (!s || !s->job || !atomic_load(&s->job->finished)) continue;
    sync_job *j = s->job;
    j->reaped = true;  /* on_synced frees it */
    sync_finish(&h->tenants[i], j, j->rc == 0);
  }
}

bool tp_host_hold(void *host, tph_response *res) {
  (void)host;
  tp_tenant *t = res->rests_on;
  tp_sync *s = t->sync;
  if (!s) return false;  /* (a failed commit's answer is never offered: net settles it first) */
  /* the commits owed now: those of a running sync, and the ones after it */
  uint64_t gen = s->committed + (tpws_owed(&t->db) ? 1 : 0);
  if (gen <= s->synced) return false;
  if (s->nwait == s->capwait) {
    int cap = s->capwait ? 2 * s->capwait : 64;
    sync_wait *more = realloc(s->wait, (size_t)cap * sizeof *more);
    if (!more) {  /* cannot wait for the disk: never acknowledged before it */
      tph_error(res, 503, "commit_failed", "%s", NOT_SYNCED);
      return false;
    }
    s->wait = more;
    s->capwait = cap;
  }
  s->wait[s->nwait++] = (sync_wait){res, gen};
  t->deferred++;
  /* owed by a commit made outside a batch (a migration); a sync that cannot
  ** start refused res with the others (503): it goes now */
  return sync_kick(t->host, t);
}

static void free_jobs(sync_job *j) {
  while (j) {
    sync_job *next = j->next;
    free(j);
    j = next;
  }
}


void tp__sync_drain(tp_host *h) {
  tp_syncer *y = h->syncer;
  if (!y) return;
  /* the thread ends after the sync it runs, if any; the rest are not made */
  uv_mutex_lock(&y->lock);
  y->stop = true;
  uv_cond_signal(&y->wake);
  uv_mutex_unlock(&y->lock);
  uv_thread_join(&y->thread);
  for (int i = 0; i < h->ntenants; i++) {
    tp_tenant *t = &h->tenants[i];
    tp_sync *s = t->sync;
    if (!s) continue;
    if (s->job) {  /* still the thread's, in one list or the other: freed below */
      s->job = NULL;
      t->deferred--;
    }
    for (int k = 0; k < s->nwait; k++) {  /* the host stopped: nobody is answered */
      tph_abandon(s->wait[k].res);
      t->deferred--;
    }
    s->nwait = 0;
  }
  free_jobs(y->queued);
  free_jobs(y->finished);
  y->queued = y->queued_tail = y->finished = NULL;
  h->syncer = NULL;
  uv_close((uv_handle_t *)&y->done, syncer_closed);  /* the host's last uv_run frees y */
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
  h->track_ns = h->track_commit_ns;  /* intake's share, less the commit its batches just cost */
  h->track_commit_ns = 0;
  if (!h->commit_failed) return;  /* the usual case: no tenant to visit */
  h->commit_failed = false;
  for (int i = 0; i < h->ntenants; i++) {
    h->tenants[i].db.commit_failed = false;
    h->tenants[i].track.commit_failed = false;
  }
}
