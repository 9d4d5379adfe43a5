/*
** sched.c - jobs and event deliveries as rows of _tp_jobs.
*/
#include "store/sched.h"

#include <stdio.h>
#include <string.h>

static const char schema[] =
    "CREATE TABLE IF NOT EXISTS _tp_jobs ("
    " id INTEGER PRIMARY KEY AUTOINCREMENT,"  /* never reused: ids are what subscribers dedupe by */
    " kind TEXT NOT NULL CHECK (kind IN ('job', 'event')),"
    " plugin TEXT NOT NULL,"        /* owner of the job, or the event's subscriber */
    " name TEXT NOT NULL,"
    " source TEXT,"                 /* the plugin that emitted the event */
    " payload TEXT NOT NULL,"       /* JSON */
    " key TEXT,"
    " due_ms INTEGER NOT NULL,"
    " every_ms INTEGER NOT NULL DEFAULT 0,"
    " attempts INTEGER NOT NULL DEFAULT 0,"
    " max_attempts INTEGER NOT NULL,"
    " last_error TEXT,"
    " created_ms INTEGER NOT NULL,"
    " dead_ms INTEGER);"
    "CREATE INDEX IF NOT EXISTS _tp_jobs_due ON _tp_jobs(due_ms, id) WHERE dead_ms IS NULL;"
    "CREATE INDEX IF NOT EXISTS _tp_jobs_queue ON _tp_jobs(plugin, id)"
    " WHERE kind = 'event' AND dead_ms IS NULL;"
    "CREATE UNIQUE INDEX IF NOT EXISTS _tp_jobs_key ON _tp_jobs(plugin, key)"
    " WHERE key IS NOT NULL AND dead_ms IS NULL;"
    "CREATE TABLE IF NOT EXISTS _tp_clock (id INTEGER PRIMARY KEY CHECK (id = 1),"
    " now_ms INTEGER NOT NULL);";

/* A task may run when it is due and, for a delivery, heads its subscriber's queue. */
#define RUNNABLE                                                                        \
  "dead_ms IS NULL AND (kind = 'job' OR NOT EXISTS (SELECT 1 FROM _tp_jobs e"           \
  " WHERE e.kind = 'event' AND e.plugin = j.plugin AND e.dead_ms IS NULL AND e.id < j.id))"

/* The columns the handler's argument is built from (task_arg): the payload
** is stored as it was given, already JSON, and goes into the argument as it
** is, never parsed again by SQLite's json(). */
#define TASK_ARG_COLUMNS "source, key, created_ms, payload"

#define TASK_JSON                                                                        \
  "json_object('id', id, 'kind', kind, 'plugin', plugin, 'name', name, 'source', source," \
  " 'key', key, 'payload', json(payload), 'due', due_ms / 1000, 'due_ms', due_ms,"        \
  " 'every_s', every_ms / 1000, 'attempts', attempts, 'max_attempts', max_attempts,"     \
  " 'last_error', last_error, 'created_ms', created_ms, 'dead_ms', dead_ms)"

#define NEXT_DUE_SQL "SELECT due_ms FROM _tp_jobs j WHERE " RUNNABLE " ORDER BY due_ms, id LIMIT 1"
#define CLOCK_GET_SQL "SELECT now_ms FROM _tp_clock WHERE id = 1"

static const struct {
  size_t offset;
  const char *sql;
} statements[] = {
  {offsetof(tpq_queue, insert),
   "INSERT INTO _tp_jobs(kind, plugin, name, source, payload, key, due_ms, every_ms,"
   " max_attempts, created_ms) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)"},
  {offsetof(tpq_queue, replace_key),
   "DELETE FROM _tp_jobs WHERE plugin = ?1 AND key = ?2 AND dead_ms IS NULL"},
  {offsetof(tpq_queue, cancel_id),
   "DELETE FROM _tp_jobs WHERE plugin = ?1 AND id = ?2 AND kind = 'job' AND dead_ms IS NULL"},
  {offsetof(tpq_queue, cancel_key),
   "DELETE FROM _tp_jobs WHERE plugin = ?1 AND key = ?2 AND kind = 'job' AND dead_ms IS NULL"},
  {offsetof(tpq_queue, next),
   "SELECT id, kind, plugin, name, due_ms, every_ms, attempts, max_attempts, " TASK_ARG_COLUMNS
   " FROM _tp_jobs j WHERE due_ms <= ?1 AND " RUNNABLE " ORDER BY due_ms, id LIMIT 1"},
  /* ORDER BY ... LIMIT 1, not min(): it walks the due index and stops at the
  ** first runnable task, where min() under this WHERE visits every row */
  {offsetof(tpq_queue, next_due), NEXT_DUE_SQL},
  {offsetof(tpq_queue, remove), "DELETE FROM _tp_jobs WHERE id = ?1"},
  {offsetof(tpq_queue, repeat),
   /* the next slot after now: a host that was down does not replay missed runs */
   "UPDATE _tp_jobs SET due_ms = due_ms + every_ms * ((?2 - due_ms) / every_ms + 1),"
   " attempts = 0, last_error = NULL WHERE id = ?1"},
  {offsetof(tpq_queue, fail),
   "UPDATE _tp_jobs SET attempts = attempts + 1, last_error = ?2, due_ms = ?3, dead_ms = ?4"
   " WHERE id = ?1"},
  {offsetof(tpq_queue, retry),
   "UPDATE _tp_jobs SET dead_ms = NULL, attempts = 0, due_ms = ?2 WHERE id = ?1"
   " AND dead_ms IS NOT NULL"},
  {offsetof(tpq_queue, discard), "DELETE FROM _tp_jobs WHERE id = ?1"},
  {offsetof(tpq_queue, clock_get), CLOCK_GET_SQL},
  {offsetof(tpq_queue, clock_set),
   "INSERT INTO _tp_clock(id, now_ms) VALUES (1, ?1)"
   " ON CONFLICT(id) DO UPDATE SET now_ms = excluded.now_ms"},
  {offsetof(tpq_queue, count),
   "SELECT count(*) FROM _tp_jobs WHERE kind = ?1 AND (dead_ms IS NOT NULL) = ?2"},
};
#define NSTATEMENTS (sizeof statements / sizeof *statements)

static sqlite3_stmt **slot(tpq_queue *q, size_t i) {
  return (sqlite3_stmt **)((char *)q + statements[i].offset);
}

int tpq_open(tpq_queue *q, tps_db *db, char *err, size_t errcap) {
  memset(q, 0, sizeof *q);
  q->db = db;
  if (tps_exec_script(db, schema, err, errcap) != 0) return -1;
  for (size_t i = 0; i < NSTATEMENTS; i++)
    if (sqlite3_prepare_v3(db->db, statements[i].sql, -1, SQLITE_PREPARE_PERSISTENT, slot(q, i),
                           NULL) != SQLITE_OK) {
      snprintf(err, errcap, "scheduler: %s", sqlite3_errmsg(db->db));
      tpq_close(q);
      return -1;
    }
  return 0;
}

void tpq_close(tpq_queue *q) {
  for (size_t i = 0; i < NSTATEMENTS; i++) sqlite3_finalize(*slot(q, i));
  memset(q, 0, sizeof *q);
}

/* ---- running the host's statements inside a plugin's call */

/* Steps st with the host's privileges; returns the sqlite3_step code. The
** statement stays on its row for the caller (reset by finish()). */
static int step(tpq_queue *q, sqlite3_stmt *st) {
  const char *owner = q->db->owner;
  tps_set_owner(q->db, NULL);
  int rc = sqlite3_step(st);
  tps_set_owner(q->db, owner);
  return rc;
}

static int finish(sqlite3_stmt *st, int rc) {
  sqlite3_reset(st);
  sqlite3_clear_bindings(st);
  return rc;
}

static int run(tpq_queue *q, sqlite3_stmt *st, char *err, size_t errcap) {
  int rc = q->last_step = step(q, st);
  if (rc != SQLITE_DONE && err) snprintf(err, errcap, "%s", sqlite3_errmsg(q->db->db));
  return finish(st, rc == SQLITE_DONE ? 0 : -1);
}

static void bind_text(sqlite3_stmt *st, int i, const char *s, size_t n) {
  if (s) sqlite3_bind_text(st, i, s, (int)n, SQLITE_TRANSIENT);
  else sqlite3_bind_null(st, i);
}

static int insert(tpq_queue *q, const char *kind, const char *plugin, const char *name,
                  const char *source, const char *payload, size_t len, const char *key,
                  int64_t due_ms, int64_t every_ms, int64_t max_attempts, int64_t now_ms,
                  char *err, size_t errcap) {
  sqlite3_stmt *st = q->insert;
  sqlite3_bind_text(st, 1, kind, -1, SQLITE_STATIC);
  sqlite3_bind_text(st, 2, plugin, -1, SQLITE_TRANSIENT);
  sqlite3_bind_text(st, 3, name, -1, SQLITE_TRANSIENT);
  bind_text(st, 4, source, source ? strlen(source) : 0);
  bind_text(st, 5, payload, len);
  bind_text(st, 6, key, key ? strlen(key) : 0);
  sqlite3_bind_int64(st, 7, due_ms);
  sqlite3_bind_int64(st, 8, every_ms);
  sqlite3_bind_int64(st, 9, max_attempts);
  sqlite3_bind_int64(st, 10, now_ms);
  return run(q, st, err, errcap);
}

/* ---- what plugins do */

int tpq_schedule(tpq_queue *q, const char *plugin, const tpq_job *spec, int64_t now_ms,
                 int64_t *id, char *err, size_t errcap) {
  /* A key names one pending job: scheduling it again replaces it. The insert
  ** goes first, since a key is mostly new (an order's unpaid timeout); only a
  ** clash with the pending job's key pays for the delete. A refused insert
  ** leaves nothing behind: SQLite undoes the statement, not the transaction. */
  int rc = insert(q, "job", plugin, spec->name, NULL, spec->payload, spec->payload_len, spec->key,
                  spec->due_ms, spec->every_ms, spec->max_attempts, now_ms, err, errcap);
  if (rc != 0 && spec->key && q->last_step == SQLITE_CONSTRAINT_UNIQUE) {
    sqlite3_bind_text(q->replace_key, 1, plugin, -1, SQLITE_TRANSIENT);
    sqlite3_bind_text(q->replace_key, 2, spec->key, -1, SQLITE_TRANSIENT);
    if (run(q, q->replace_key, err, errcap) != 0) return -1;
    rc = insert(q, "job", plugin, spec->name, NULL, spec->payload, spec->payload_len, spec->key,
                spec->due_ms, spec->every_ms, spec->max_attempts, now_ms, err, errcap);
  }
  if (rc != 0) return -1;
  *id = sqlite3_last_insert_rowid(q->db->db);
  return 0;
}

int tpq_cancel(tpq_queue *q, const char *plugin, int64_t id, const char *key, int *n, char *err,
               size_t errcap) {
  sqlite3_stmt *st = key ? q->cancel_key : q->cancel_id;
  sqlite3_bind_text(st, 1, plugin, -1, SQLITE_TRANSIENT);
  if (key) sqlite3_bind_text(st, 2, key, -1, SQLITE_TRANSIENT);
  else sqlite3_bind_int64(st, 2, id);
  if (run(q, st, err, errcap) != 0) return -1;
  *n = sqlite3_changes(q->db->db);
  return 0;
}

int tpq_emit(tpq_queue *q, const char *source, const char *name, const char *data, size_t len,
             const char *const *subscribers, int nsubscribers, int64_t now_ms,
             int max_attempts, char *err, size_t errcap) {
  for (int i = 0; i < nsubscribers; i++)
    if (insert(q, "event", subscribers[i], name, source, data, len, NULL, now_ms, 0, max_attempts,
               now_ms, err, errcap) != 0)
      return -1;
  return 0;
}

/* ---- what the host does */

static void add_field_str(tp_buf *b, const char *name, sqlite3_stmt *st, int col) {
  tp_buf_printf(b, ",\"%s\":", name);
  if (sqlite3_column_type(st, col) == SQLITE_NULL) {
    tp_buf_adds(b, "null");
  } else {
    const char *s = (const char *)sqlite3_column_text(st, col);
    tp_buf_add_json_str(b, s, (size_t)sqlite3_column_bytes(st, col));
  }
}

/* The handler's argument from the row at st (the `next` statement): a job's
** {id, name, attempt, due, due_ms, key, payload}, an event delivery's {id,
** name, source, attempt, emitted_at, emitted_at_ms, data}; the payload is
** spliced in as stored. */
static void task_arg(sqlite3_stmt *st, tpq_task *t) {
  tp_buf *b = &t->arg;
  tp_buf_init(b);
  tp_buf_printf(b, "{\"id\":%lld", (long long)t->id);
  add_field_str(b, "name", st, 3);
  if (t->event) add_field_str(b, "source", st, 8);
  tp_buf_printf(b, ",\"attempt\":%d", t->attempts + 1);
  if (t->event) {
    int64_t created = sqlite3_column_int64(st, 10);
    tp_buf_printf(b, ",\"emitted_at\":%lld,\"emitted_at_ms\":%lld,\"data\":",
                  (long long)(created / 1000), (long long)created);
  } else {
    tp_buf_printf(b, ",\"due\":%lld,\"due_ms\":%lld", (long long)(t->due_ms / 1000),
                  (long long)t->due_ms);
    add_field_str(b, "key", st, 9);
    tp_buf_adds(b, ",\"payload\":");
  }
  tp_buf_add(b, sqlite3_column_text(st, 11), (size_t)sqlite3_column_bytes(st, 11));
  tp_buf_addc(b, '}');
}

int64_t tpq_next_due(tpq_queue *q) {
  int64_t due = INT64_MAX;
  if (step(q, q->next_due) == SQLITE_ROW && sqlite3_column_type(q->next_due, 0) != SQLITE_NULL)
    due = sqlite3_column_int64(q->next_due, 0);
  finish(q->next_due, 0);
  return due;
}

int tpq_next(tpq_queue *q, int64_t now_ms, tpq_task *t) {
  sqlite3_stmt *st = q->next;
  sqlite3_bind_int64(st, 1, now_ms);
  int rc = step(q, st);
  if (rc != SQLITE_ROW) return finish(st, rc == SQLITE_DONE ? 0 : -1);
  t->id = sqlite3_column_int64(st, 0);
  t->event = strcmp((const char *)sqlite3_column_text(st, 1), "event") == 0;
  tp_copy_str(t->plugin, sizeof t->plugin, (const char *)sqlite3_column_text(st, 2));
  tp_copy_str(t->name, sizeof t->name, (const char *)sqlite3_column_text(st, 3));
  t->due_ms = sqlite3_column_int64(st, 4);
  t->every_ms = sqlite3_column_int64(st, 5);
  t->attempts = sqlite3_column_int(st, 6);
  t->max_attempts = sqlite3_column_int(st, 7);
  task_arg(st, t);
  return finish(st, 1);
}

void tpq_task_free(tpq_task *t) { tp_buf_free(&t->arg); }

int tpq_done(tpq_queue *q, const tpq_task *t, int64_t now_ms) {
  sqlite3_stmt *st = t->every_ms > 0 ? q->repeat : q->remove;
  sqlite3_bind_int64(st, 1, t->id);
  if (t->every_ms > 0) sqlite3_bind_int64(st, 2, now_ms);
  return run(q, st, NULL, 0);
}

int tpq_failed(tpq_queue *q, const tpq_task *t, const char *error, int64_t now_ms,
               tpq_retry_policy policy, bool *dead) {
  int attempt = t->attempts + 1;
  *dead = attempt >= t->max_attempts;
  int64_t delay = policy.base_ms;
  for (int i = 1; i < attempt && delay < policy.max_ms; i++) delay *= 2;
  if (delay > policy.max_ms) delay = policy.max_ms;
  sqlite3_stmt *st = q->fail;
  sqlite3_bind_int64(st, 1, t->id);
  sqlite3_bind_text(st, 2, error, -1, SQLITE_TRANSIENT);
  sqlite3_bind_int64(st, 3, *dead ? t->due_ms : now_ms + delay);
  if (*dead) sqlite3_bind_int64(st, 4, now_ms);
  else sqlite3_bind_null(st, 4);
  return run(q, st, NULL, 0);
}

/* ---- for operators */

int tpq_list(tpq_queue *q, const char *kind, bool dead, int limit, tp_buf *out) {
  static const char sql[] =
      "SELECT coalesce(json_group_array(json(o)), '[]') FROM (SELECT " TASK_JSON " AS o"
      " FROM _tp_jobs WHERE kind = ?1 AND (dead_ms IS NOT NULL) = ?2"
      " ORDER BY CASE WHEN ?2 THEN -dead_ms ELSE due_ms END, id LIMIT ?3)";
  sqlite3_stmt *st;
  if (sqlite3_prepare_v2(q->db->db, sql, -1, &st, NULL) != SQLITE_OK) return -1;
  sqlite3_bind_text(st, 1, kind, -1, SQLITE_STATIC);
  sqlite3_bind_int(st, 2, dead);
  sqlite3_bind_int(st, 3, limit);
  int rc = step(q, st);
  if (rc == SQLITE_ROW)
    tp_buf_add(out, (const char *)sqlite3_column_text(st, 0), (size_t)sqlite3_column_bytes(st, 0));
  sqlite3_finalize(st);
  return rc == SQLITE_ROW ? 0 : -1;
}

int64_t tpq_count(tpq_queue *q, const char *kind, bool dead) {
  sqlite3_bind_text(q->count, 1, kind, -1, SQLITE_STATIC);
  sqlite3_bind_int(q->count, 2, dead);
  int64_t n = step(q, q->count) == SQLITE_ROW ? sqlite3_column_int64(q->count, 0) : 0;
  finish(q->count, 0);
  return n;
}

int tpq_retry(tpq_queue *q, int64_t id, int64_t now_ms) {
  sqlite3_bind_int64(q->retry, 1, id);
  sqlite3_bind_int64(q->retry, 2, now_ms);
  if (run(q, q->retry, NULL, 0) != 0) return -1;
  return sqlite3_changes(q->db->db) > 0;
}

int tpq_discard(tpq_queue *q, int64_t id) {
  sqlite3_bind_int64(q->discard, 1, id);
  if (run(q, q->discard, NULL, 0) != 0) return -1;
  return sqlite3_changes(q->db->db) > 0;
}

/* One integer from sql on db, or def (no row, NULL, or no such table yet). */
static int64_t peek_int(sqlite3 *db, const char *sql, int64_t def) {
  sqlite3_stmt *st;
  int64_t v = def;
  if (sqlite3_prepare_v2(db, sql, -1, &st, NULL) != SQLITE_OK) return def;
  if (sqlite3_step(st) == SQLITE_ROW && sqlite3_column_type(st, 0) != SQLITE_NULL) v = sqlite3_column_int64(st, 0);
  sqlite3_finalize(st);
  return v;
}

void tpq_peek(sqlite3 *db, int64_t *next_due, int64_t *clock_ms) {
  *next_due = peek_int(db, NEXT_DUE_SQL, INT64_MAX);
  *clock_ms = peek_int(db, CLOCK_GET_SQL, 0);
}

int64_t tpq_clock_get(tpq_queue *q) {
  int64_t ms = step(q, q->clock_get) == SQLITE_ROW ? sqlite3_column_int64(q->clock_get, 0) : 0;
  finish(q->clock_get, 0);
  return ms;
}

int tpq_clock_set(tpq_queue *q, int64_t now_ms) {
  sqlite3_bind_int64(q->clock_set, 1, now_ms);
  return run(q, q->clock_set, NULL, 0);
}
