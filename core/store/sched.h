/*
** sched.h - the durable scheduler: jobs and event deliveries as rows.
**
** Both live in one table of the tenant's database, _tp_jobs, written in the
** transaction that scheduled them, so they exist exactly when it commits and
** they survive restarts:
**   kind 'job'    a plugin's job: runs at due_ms, optionally every every_ms
**   kind 'event'  one delivery of an emitted event to one subscribing plugin
** A task that fails is retried at base * 2^(attempt-1) (capped), and after
** max_attempts it is dead-lettered (dead_ms set) until an operator retries it.
** Jobs run in due order. Deliveries run in emission order per subscriber: a
** delivery runs only when no earlier live delivery to the same plugin is
** waiting, so a failing subscriber holds back only its own queue.
**
** The functions run their SQL with the host's privileges, inside whatever
** transaction the caller has open (the batch of the request or of the tick).
*/
#ifndef TP_SCHED_H
#define TP_SCHED_H

#include <stdbool.h>
#include <stdint.h>

#include "base/buf.h"
#include "store/store.h"

#define TPQ_MAX_NAME 64  /* job and event names (a plugin's exports keep the same rule) */

/* A job to schedule: what tp.jobs.schedule asks for. */
typedef struct tpq_job {
  const char *name;
  const char *payload;   /* JSON */
  size_t payload_len;
  int64_t due_ms;
  int64_t every_ms;      /* 0: once */
  const char *key;       /* NULL, or unique among the plugin's pending jobs */
  int64_t max_attempts;  /* 0: the host's default */
} tpq_job;

typedef struct tpq_queue {
  tps_db *db;
  sqlite3_stmt *insert, *replace_key, *cancel_id, *cancel_key, *next, *next_due, *remove,
      *repeat, *fail, *retry, *discard, *clock_get, *clock_set, *count;
  int last_step;  /* what the last statement's sqlite3_step returned */
} tpq_queue;

/* A task taken from the queue, with the handler's argument as JSON. */
typedef struct tpq_task {
  int64_t id;
  bool event;
  char plugin[33];
  char name[TPQ_MAX_NAME + 1];
  int64_t due_ms, every_ms;
  int attempts, max_attempts;
  tp_buf arg;            /* {"id","name","attempt",..., "payload"|"data"} */
} tpq_task;

typedef struct tpq_retry_policy {
  int64_t base_ms, max_ms;
} tpq_retry_policy;

/* Creates the tables if needed and prepares the statements. */
int tpq_open(tpq_queue *q, tps_db *db, char *err, size_t errcap);
void tpq_close(tpq_queue *q);

int tpq_schedule(tpq_queue *q, const char *plugin, const tpq_job *spec, int64_t now_ms,
                 int64_t *id, char *err, size_t errcap);
/* Cancels plugin's pending job by id (key NULL) or key; *n = rows removed. */
int tpq_cancel(tpq_queue *q, const char *plugin, int64_t id, const char *key, int *n, char *err,
               size_t errcap);
/* One delivery row for each subscriber. */
int tpq_emit(tpq_queue *q, const char *source, const char *name, const char *data, size_t len,
             const char *const *subscribers, int nsubscribers, int64_t now_ms,
             int max_attempts, char *err, size_t errcap);

/* The earliest due time of a task that could run, or INT64_MAX. */
int64_t tpq_next_due(tpq_queue *q);
/* Takes the next task due at or before now_ms: 1 found, 0 none, -1 error. */
int tpq_next(tpq_queue *q, int64_t now_ms, tpq_task *task);
void tpq_task_free(tpq_task *task);
/* The task succeeded: removed, or rescheduled after now if it repeats. */
int tpq_done(tpq_queue *q, const tpq_task *task, int64_t now_ms);
/* The task failed: retried later, or dead-lettered. *dead tells which. */
int tpq_failed(tpq_queue *q, const tpq_task *task, const char *error, int64_t now_ms,
               tpq_retry_policy policy, bool *dead);

/* Appends a JSON array of tasks: kind "job"/"event", dead or pending. */
int tpq_list(tpq_queue *q, const char *kind, bool dead, int limit, tp_buf *out);
/* Counts pending or dead tasks of a kind. */
int64_t tpq_count(tpq_queue *q, const char *kind, bool dead);
/* A dead task runs again at now with fresh attempts: 1 done, 0 no such dead task. */
int tpq_retry(tpq_queue *q, int64_t id, int64_t now_ms);
/* Removes a task (pending or dead): 1 done, 0 no such task. */
int tpq_discard(tpq_queue *q, int64_t id);

/* Without a queue: tpq_next_due and tpq_clock_get of the database db (a
** closed brand's file, read-only); INT64_MAX and 0 where it has no tables yet. */
void tpq_peek(sqlite3 *db, int64_t *next_due, int64_t *clock_ms);

/* The manual clock's saved time (0 if never saved). */
int64_t tpq_clock_get(tpq_queue *q);
int tpq_clock_set(tpq_queue *q, int64_t now_ms);

#endif
