/*
** outbox.c - calls out as rows of _tp_outbox (outbox.h).
*/
#include "store/outbox.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char schema[] =
    "CREATE TABLE IF NOT EXISTS _tp_outbox ("
    " id INTEGER PRIMARY KEY AUTOINCREMENT,"
    " plugin TEXT NOT NULL,"
    " dest TEXT NOT NULL,"
    " method TEXT NOT NULL,"
    " path TEXT NOT NULL,"
    " headers TEXT NOT NULL,"        /* "Name: value\n" lines; secrets as {{secret:name}} */
    " body BLOB,"
    " key TEXT NOT NULL,"            /* the Idempotency-Key of every attempt; '': tp-<tenant>-<id> */
    " on_reply TEXT,"
    " context TEXT,"
    " attempts INTEGER NOT NULL DEFAULT 0,"
    " max_attempts INTEGER NOT NULL,"
    " due_ms INTEGER NOT NULL,"
    " leased INTEGER NOT NULL DEFAULT 0,"
    " created_ms INTEGER NOT NULL,"
    " last_error TEXT,"
    " dead_ms INTEGER);"
    "CREATE INDEX IF NOT EXISTS _tp_outbox_due ON _tp_outbox(due_ms, id) WHERE dead_ms IS NULL;";

#define NEXT_DUE_SQL "SELECT min(due_ms) FROM _tp_outbox WHERE dead_ms IS NULL"

static const struct {
  size_t offset;
  const char *sql;
} statements[] = {
  {offsetof(tpob_box, insert),
   "INSERT INTO _tp_outbox(plugin, dest, method, path, headers, body, key, on_reply, context,"
   " max_attempts, due_ms, created_ms) VALUES (?1, ?2, ?3, ?4, ?5, ?6, coalesce(?7, ''), ?8, ?9,"
   " ?10, ?11, ?11)"},
  {offsetof(tpob_box, due),
   "SELECT id FROM _tp_outbox WHERE dead_ms IS NULL AND due_ms <= ?1 AND id <= ?3"
   " ORDER BY due_ms, id LIMIT ?2"},
  {offsetof(tpob_box, row),
   "SELECT id, plugin, dest, method, path, headers, body, key, on_reply, context, attempts,"
   " max_attempts FROM _tp_outbox WHERE id = ?1"},
  {offsetof(tpob_box, lease),
   "UPDATE _tp_outbox SET attempts = attempts + 1, leased = 1, due_ms = ?2 WHERE id = ?1"},
  {offsetof(tpob_box, remove), "DELETE FROM _tp_outbox WHERE id = ?1"},
  {offsetof(tpob_box, retry),
   "UPDATE _tp_outbox SET leased = 0, due_ms = ?2, last_error = ?3 WHERE id = ?1"},
  {offsetof(tpob_box, bury),
   "UPDATE _tp_outbox SET leased = 0, dead_ms = ?2, last_error = ?3 WHERE id = ?1"},
  {offsetof(tpob_box, next_due), NEXT_DUE_SQL " AND id <= ?1"},
  {offsetof(tpob_box, count),
   "SELECT count(*) FROM _tp_outbox WHERE (dead_ms IS NOT NULL) = ?1"},
  {offsetof(tpob_box, release),
   "UPDATE _tp_outbox SET leased = 0, due_ms = ?1 WHERE leased = 1 AND dead_ms IS NULL"},
  {offsetof(tpob_box, max_id), "SELECT coalesce(max(id), 0) FROM _tp_outbox"},
};

#define NSTATEMENTS (sizeof statements / sizeof *statements)

static sqlite3_stmt **slot(tpob_box *b, size_t i) {
  return (sqlite3_stmt **)((char *)b + statements[i].offset);
}

int tpob_open(tpob_box *b, tps_db *db, char *err, size_t errcap) {
  memset(b, 0, sizeof *b);
  b->db = db;
  b->durable_id = INT64_MAX;
  if (tps_exec_script(db, schema, err, errcap) != 0) return -1;
  for (size_t i = 0; i < NSTATEMENTS; i++)
    if (sqlite3_prepare_v3(db->db, statements[i].sql, -1, SQLITE_PREPARE_PERSISTENT, slot(b, i),
                           NULL) != SQLITE_OK) {
      snprintf(err, errcap, "outbox: %s", sqlite3_errmsg(db->db));
      tpob_close(b);
      return -1;
    }
  return 0;
}

void tpob_close(tpob_box *b) {
  for (size_t i = 0; i < NSTATEMENTS; i++) sqlite3_finalize(*slot(b, i));
  memset(b, 0, sizeof *b);
}

/* Steps st with the host's privileges (a plugin's authorizer refuses _tp_
** tables); the statement stays on its row until finish. */
static int step(tpob_box *b, sqlite3_stmt *st) {
  const char *owner = b->db->owner;
  tps_set_owner(b->db, NULL);
  int rc = sqlite3_step(st);
  tps_set_owner(b->db, owner);
  return rc;
}

static int finish(sqlite3_stmt *st, int rc) {
  sqlite3_reset(st);
  sqlite3_clear_bindings(st);
  return rc;
}

static int run(tpob_box *b, sqlite3_stmt *st) {
  return finish(st, step(b, st) == SQLITE_DONE ? 0 : -1);
}

int tpob_add(tpob_box *b, const char *plugin, const tpob_call *call, int64_t now_ms, int64_t *id,
             char *err, size_t errcap) {
  sqlite3_stmt *st = b->insert;
  sqlite3_bind_text(st, 1, plugin, -1, SQLITE_STATIC);
  sqlite3_bind_text(st, 2, call->dest, -1, SQLITE_STATIC);
  sqlite3_bind_text(st, 3, call->method, -1, SQLITE_STATIC);
  sqlite3_bind_text(st, 4, call->path, -1, SQLITE_STATIC);
  sqlite3_bind_text(st, 5, call->headers ? call->headers : "", -1, SQLITE_STATIC);
  if (call->body) sqlite3_bind_blob(st, 6, call->body, (int)call->body_len, SQLITE_STATIC);
  if (call->key) sqlite3_bind_text(st, 7, call->key, -1, SQLITE_STATIC);
  if (call->on_reply) sqlite3_bind_text(st, 8, call->on_reply, -1, SQLITE_STATIC);
  if (call->context) sqlite3_bind_text(st, 9, call->context, -1, SQLITE_STATIC);
  sqlite3_bind_int(st, 10, call->max_attempts);
  sqlite3_bind_int64(st, 11, now_ms);
  if (run(b, st) != 0) {
    snprintf(err, errcap, "outbox: %s", sqlite3_errmsg(b->db->db));
    return -1;
  }
  *id = sqlite3_last_insert_rowid(b->db->db);
  if (*id > b->last_id) b->last_id = *id;
  return 0;
}

static const char *text(sqlite3_stmt *st, int i) { return (const char *)sqlite3_column_text(st, i); }

int tpob_take(tpob_box *b, const char *tenant, int64_t now_ms, int max,
              int64_t (*take)(void *ud, const tpob_row *row), void *ud) {
  if (max <= 0) return 0;
  int64_t *ids = malloc((size_t)max * sizeof *ids);
  if (!ids) return -1;
  int n = 0, leased = 0, rc;
  sqlite3_bind_int64(b->due, 1, now_ms);
  sqlite3_bind_int(b->due, 2, max);
  sqlite3_bind_int64(b->due, 3, b->durable_id);
  while ((rc = step(b, b->due)) == SQLITE_ROW) ids[n++] = sqlite3_column_int64(b->due, 0);
  finish(b->due, rc);
  for (int i = 0; rc == SQLITE_DONE && i < n; i++) {
    sqlite3_stmt *st = b->row;
    sqlite3_bind_int64(st, 1, ids[i]);
    if (step(b, st) != SQLITE_ROW) {
      finish(st, 0);
      continue;
    }
    tpob_row row = {.id = ids[i], .plugin = text(st, 1), .dest = text(st, 2), .method = text(st, 3),
                    .path = text(st, 4), .headers = text(st, 5),
                    .body = sqlite3_column_blob(st, 6), .body_len = (size_t)sqlite3_column_bytes(st, 6),
                    .key = text(st, 7), .on_reply = text(st, 8), .context = text(st, 9),
                    .attempts = sqlite3_column_int(st, 10), .max_attempts = sqlite3_column_int(st, 11)};
    char key[160];
    if (row.key && !row.key[0]) {  /* the default key names the call: the same on every attempt */
      snprintf(key, sizeof key, "tp-%s-%lld", tenant, (long long)row.id);
      row.key = key;
    }
    int64_t lease_ms = take(ud, &row);
    finish(st, 0);
    if (lease_ms <= 0) continue;
    sqlite3_bind_int64(b->lease, 1, ids[i]);
    sqlite3_bind_int64(b->lease, 2, now_ms + lease_ms);
    if (run(b, b->lease) != 0) {
      free(ids);
      return -1;
    }
    leased++;
  }
  free(ids);
  return rc == SQLITE_DONE ? leased : -1;
}

int tpob_remove(tpob_box *b, int64_t id) {
  sqlite3_bind_int64(b->remove, 1, id);
  return run(b, b->remove);
}

int tpob_retry(tpob_box *b, int64_t id, int64_t due_ms, const char *error) {
  sqlite3_bind_int64(b->retry, 1, id);
  sqlite3_bind_int64(b->retry, 2, due_ms);
  sqlite3_bind_text(b->retry, 3, error, -1, SQLITE_STATIC);
  return run(b, b->retry);
}

int tpob_bury(tpob_box *b, int64_t id, int64_t now_ms, const char *error) {
  sqlite3_bind_int64(b->bury, 1, id);
  sqlite3_bind_int64(b->bury, 2, now_ms);
  sqlite3_bind_text(b->bury, 3, error, -1, SQLITE_STATIC);
  return run(b, b->bury);
}

int64_t tpob_max_id(tpob_box *b) {
  int64_t id = 0;
  if (step(b, b->max_id) == SQLITE_ROW) id = sqlite3_column_int64(b->max_id, 0);
  finish(b->max_id, 0);
  return id;
}

void tpob_committed(tpob_box *b) {
  if (b->last_id <= b->committed_id) return;  /* nothing added since: nothing to read */
  b->committed_id = b->last_id = tpob_max_id(b);
}

int64_t tpob_next_due(tpob_box *b) {
  int64_t due = INT64_MAX;
  sqlite3_bind_int64(b->next_due, 1, b->durable_id);
  if (step(b, b->next_due) == SQLITE_ROW && sqlite3_column_type(b->next_due, 0) != SQLITE_NULL)
    due = sqlite3_column_int64(b->next_due, 0);
  finish(b->next_due, 0);
  return due;
}

int64_t tpob_peek(sqlite3 *db) {
  sqlite3_stmt *st;
  int64_t due = INT64_MAX;
  if (sqlite3_prepare_v2(db, NEXT_DUE_SQL, -1, &st, NULL) != SQLITE_OK) return due;  /* no table yet */
  if (sqlite3_step(st) == SQLITE_ROW && sqlite3_column_type(st, 0) != SQLITE_NULL) due = sqlite3_column_int64(st, 0);
  sqlite3_finalize(st);
  return due;
}

int64_t tpob_count(tpob_box *b, bool dead) {
  sqlite3_bind_int(b->count, 1, dead);
  int64_t n = step(b, b->count) == SQLITE_ROW ? sqlite3_column_int64(b->count, 0) : 0;
  finish(b->count, 0);
  return n;
}

int tpob_release_leases(tpob_box *b, int64_t now_ms) {
  sqlite3_bind_int64(b->release, 1, now_ms);
  return run(b, b->release);
}
