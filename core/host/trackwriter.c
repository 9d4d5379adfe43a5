/*
** trackwriter.c - the thread that writes intake's batches (track.c) into the
** brands' analytics files, at the lowest priority the kernel has.
**
** Why a thread, and why SCHED_IDLE: an event costs a few microseconds of
** SQLite, and a flash sale's buy shares the server's core with 100,000 events
** a second. On the loop, intake had to take slices of each iteration, and
** every buy arriving meanwhile waited behind the slice and behind the
** analytics file's checkpoints. On a SCHED_IDLE thread the writes take only
** the CPU the loop leaves: when a request wakes the loop, the kernel hands the
** core back to it at once. The loop still reads and checks each batch (all or
** nothing, with field errors: that needs the brand's clock and config); the
** thread writes it, checkpoints the file and purges old events, and the
** batch's answer (deferred, net/http.h) goes once its write is done.
**
** Ownership: a brand's analytics connection (t->track) belongs to the thread
** while a batch of that brand is queued or being written; t->deferred counts
** them, and a brand is closed, moved or restored only when it is 0
** (brands.c, cluster.c). Outside those times nothing runs on the thread.
**
** Bounds: at most TW_MAX_QUEUED batches wait; the next is answered 503 busy
** with Retry-After, keeping nothing. A host without a loop (the kit, the
** campaign runner) has no thread: its batches are written at once.
**
** Checkpoints: commits never checkpoint (store/track.h's WAL hook); once the
** WAL holds TW_CKPT_FRAMES pages the thread checkpoints after the batch,
** starting the WAL over when no reader holds it, else copying what it can.
** Nothing of it blocks the loop.
*/
#define _GNU_SOURCE  /* SCHED_IDLE */
#include "host/host_int.h"

#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>

#include "base/log.h"

#define TW_MAX_QUEUED 16        /* batches waiting: 1,600 events, a few ms of writing */
#define TW_CKPT_FRAMES 1000     /* pages in the WAL that call for a checkpoint */
#define TW_PURGE_ROWS 10000     /* a purge's share: up to 14.4M events a day */

struct tp_track_batch {
  struct tp_track_batch *next;
  tp_tenant *t;
  tph_response *res;
  tptk_event *ev;               /* with its strings, in the same block */
  int n;
  int64_t now_ms;
  int64_t purge_before_ms;      /* > 0: also purge events older than this */
  /* the outcome */
  int rc;
  int inserted;
  char err[256];
};

struct tp_track_writer {
  tp_host *h;
  uv_thread_t thread;
  uv_mutex_t mu;
  uv_cond_t cv;
  uv_async_t done_async;
  tp_track_batch *todo, **todo_tail;   /* under mu */
  tp_track_batch *done, **done_tail;   /* under mu */
  int queued;                          /* todo and being written (loop's count) */
  bool stopping;                       /* under mu */
};

/* ---- the events, copied out of the scratch state */

static size_t str_size(const char *s) { return s ? strlen(s) + 1 : 0; }

static const char *copy_str(char **at, const char *s) {
  if (!s) return NULL;
  size_t n = strlen(s) + 1;
  memcpy(*at, s, n);
  const char *out = *at;
  *at += n;
  return out;
}

/* One block holding ev[0..n) and every string they point to. */
static tptk_event *pack(const tptk_event *ev, int n) {
  size_t bytes = sizeof *ev * (size_t)n;
  for (int i = 0; i < n; i++) {
    const tptk_event *e = &ev[i];
    bytes += str_size(e->id) + str_size(e->kind) + str_size(e->session) + str_size(e->device) +
             str_size(e->member) + str_size(e->product) + str_size(e->detail) + str_size(e->store) +
             str_size(e->guide) + str_size(e->content) + str_size(e->live) + str_size(e->referrer);
  }
  tptk_event *out = malloc(bytes);
  if (!out) return NULL;
  char *at = (char *)(out + n);
  for (int i = 0; i < n; i++) {
    const tptk_event *e = &ev[i];
    tptk_event *o = &out[i];
    *o = *e;
    o->id = copy_str(&at, e->id);
    o->kind = copy_str(&at, e->kind);
    o->session = copy_str(&at, e->session);
    o->device = copy_str(&at, e->device);
    o->member = copy_str(&at, e->member);
    o->product = copy_str(&at, e->product);
    o->detail = copy_str(&at, e->detail);
    o->store = copy_str(&at, e->store);
    o->guide = copy_str(&at, e->guide);
    o->content = copy_str(&at, e->content);
    o->live = copy_str(&at, e->live);
    o->referrer = copy_str(&at, e->referrer);
  }
  return out;
}

/* ---- writing (the thread, or the caller when there is none) */

static void checkpoint(tptk_db *k) {
  if (k->wal_frames < TW_CKPT_FRAMES) return;
  if (tptk_checkpoint_restart(k) != 0) tptk_checkpoint_passive(k);  /* a reader: copy what it can */
}

static void write_batch(tp_track_batch *b) {
  tptk_db *k = &b->t->track;
  b->rc = tptk_insert(k, b->ev, b->n, b->now_ms, &b->inserted, b->err, sizeof b->err);
  if (b->rc == 0) checkpoint(k);
  if (b->purge_before_ms > 0) tptk_purge(k, b->purge_before_ms, TW_PURGE_ROWS);
}

/* The lowest priority: the loop preempts it whenever it has work. Where
** SCHED_IDLE is refused, the nicest nice value. */
static void lower_priority(void) {
#ifdef SCHED_IDLE
  struct sched_param p = {.sched_priority = 0};
  if (sched_setscheduler(0, SCHED_IDLE, &p) == 0) return;
#endif
  setpriority(PRIO_PROCESS, 0, 19);  /* Linux: 0 is the calling thread */
}

static void run(void *arg) {
  tp_track_writer *w = arg;
  lower_priority();
  uv_mutex_lock(&w->mu);
  for (;;) {
    while (!w->todo && !w->stopping) uv_cond_wait(&w->cv, &w->mu);
    tp_track_batch *b = w->todo;
    if (!b) break;  /* stopping, and nothing left */
    w->todo = b->next;
    if (!w->todo) w->todo_tail = &w->todo;
    uv_mutex_unlock(&w->mu);
    write_batch(b);
    uv_mutex_lock(&w->mu);
    b->next = NULL;
    *w->done_tail = b;
    w->done_tail = &b->next;
    uv_async_send(&w->done_async);
  }
  uv_mutex_unlock(&w->mu);
}

/* ---- answering (the loop) */

static void answer(tp_track_batch *b) {
  tp_tenant *t = b->t;
  tph_response *res = b->res;
  if (b->rc != 0) {
    tp_buf *line = tp_log_begin(TP_LOG_ERROR, "track: the events could not be written");
    tp_log_str(line, "tenant", t->conf->id);
    tp_log_str(line, "error", b->err);
    tp_log_end(line);
    res->retry_after = 1;
    tph_error(res, 503, "unavailable", "the events could not be written; send the batch again");
  } else {
    res->status = 200;
    tp_buf_printf(&res->body, "{\"accepted\":%d,\"duplicates\":%d}", b->inserted, b->n - b->inserted);
    t->track.accepted += b->inserted;
    t->track.duplicates += b->n - b->inserted;
  }
}

static void finish(tp_host *h, tp_track_batch *b) {
  answer(b);
  b->t->deferred--;
  h->track_writer->queued--;
  tph_resume(b->res);
  free(b->ev);
  free(b);
}

static tp_track_batch *take_done(tp_track_writer *w) {
  uv_mutex_lock(&w->mu);
  tp_track_batch *list = w->done;
  w->done = NULL;
  w->done_tail = &w->done;
  uv_mutex_unlock(&w->mu);
  return list;
}

static void on_done(uv_async_t *a) {
  tp_track_writer *w = a->data;
  tp_track_batch *b = take_done(w);
  while (b) {
    tp_track_batch *next = b->next;
    finish(w->h, b);
    b = next;
  }
}

/* ---- the host's side */

bool tp__track_writer_full(const tp_host *h) {
  return h->track_writer && h->track_writer->queued >= TW_MAX_QUEUED;
}

void tp__track_write(tp_host *h, tp_tenant *t, const tptk_event *ev, int n, int64_t now_ms,
                     int64_t purge_before_ms, tph_response *res) {
  tp_track_writer *w = h->track_writer;
  if (!w) {  /* no thread: at once */
    tp_track_batch b = {.t = t, .res = res, .ev = (tptk_event *)ev, .n = n, .now_ms = now_ms,
                        .purge_before_ms = purge_before_ms};
    write_batch(&b);
    answer(&b);
    return;
  }
  tp_track_batch *b = calloc(1, sizeof *b);
  tptk_event *copy = b ? pack(ev, n) : NULL;
  if (!copy) {
    free(b);
    res->retry_after = 1;
    tph_error(res, 503, "out_of_memory", "the host is out of memory; send the batch again");
    return;
  }
  *b = (tp_track_batch){.t = t, .res = res, .ev = copy, .n = n, .now_ms = now_ms,
                        .purge_before_ms = purge_before_ms};
  res->deferred = true;
  t->deferred++;  /* the brand stays open until it is answered (brands.c) */
  w->queued++;
  uv_mutex_lock(&w->mu);
  *w->todo_tail = b;
  w->todo_tail = &b->next;
  uv_cond_signal(&w->cv);
  uv_mutex_unlock(&w->mu);
}

static void on_closed(uv_handle_t *hd) { free(hd->data); }

/* Without a thread (it could not start), batches are written on the loop. */
void tp__track_writer_start(tp_host *h) {
  tp_track_writer *w = calloc(1, sizeof *w);
  if (!w) return;
  w->h = h;
  w->todo_tail = &w->todo;
  w->done_tail = &w->done;
  if (uv_mutex_init(&w->mu) != 0) {
    free(w);
    return;
  }
  if (uv_cond_init(&w->cv) == 0) {
    if (uv_async_init(h->loop, &w->done_async, on_done) == 0) {
      w->done_async.data = w;
      if (uv_thread_create(&w->thread, run, w) == 0) {
        h->track_writer = w;
        return;
      }
      uv_cond_destroy(&w->cv);
      uv_mutex_destroy(&w->mu);
      uv_close((uv_handle_t *)&w->done_async, on_closed);  /* frees w */
      tp_log_msg(TP_LOG_WARN, "track", "no writer thread: intake writes on the loop");
      return;
    }
    uv_cond_destroy(&w->cv);
  }
  uv_mutex_destroy(&w->mu);
  free(w);
}

/* Writes what is queued, joins the thread, and answers the batches (their
** answers go out in the loop's last turn, or are dropped with their
** connections: a client sends such a batch again, and its events are then
** duplicates). */
void tp__track_writer_stop(tp_host *h) {
  tp_track_writer *w = h->track_writer;
  if (!w) return;
  uv_mutex_lock(&w->mu);
  w->stopping = true;
  uv_cond_signal(&w->cv);
  uv_mutex_unlock(&w->mu);
  uv_thread_join(&w->thread);
  tp_track_batch *b = take_done(w);
  while (b) {
    tp_track_batch *next = b->next;
    finish(h, b);
    b = next;
  }
  h->track_writer = NULL;
  uv_cond_destroy(&w->cv);
  uv_mutex_destroy(&w->mu);
  uv_close((uv_handle_t *)&w->done_async, on_closed);
}
