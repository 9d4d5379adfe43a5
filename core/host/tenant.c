/*
** tenant.c - a tenant's state between requests: its clock, its plugins'
** slots, and the batch: the open transaction that every request, job and
** event of one loop iteration joins, committed together (DESIGN "Group commit").
*/
#include "host/host_int.h"

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
  }
  h->nbatch = 0;
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
