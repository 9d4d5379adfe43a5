/*
** dueindex.c - the closed brands' due times (dueindex.h).
*/
#include "store/dueindex.h"

#include <stdio.h>
#include <string.h>

int tpdi_open(tpdi_index *x, const char *path, char *err, size_t errcap) {
  memset(x, 0, sizeof *x);
  /* NORMAL: a row lost to a power cut only makes the next start read that brand's file */
  const char *schema =
      "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;"
      "CREATE TABLE IF NOT EXISTS due (id TEXT PRIMARY KEY, next_due_ms INTEGER NOT NULL,"
      " outbox_due_ms INTEGER NOT NULL, clock_ms INTEGER NOT NULL, written_ms INTEGER NOT NULL)";
  if (sqlite3_open(path, &x->db) != SQLITE_OK || sqlite3_exec(x->db, schema, NULL, NULL, NULL) != SQLITE_OK ||
      sqlite3_prepare_v2(x->db, "SELECT next_due_ms, outbox_due_ms, clock_ms, written_ms FROM due WHERE id = ?1",
                         -1, &x->get, NULL) != SQLITE_OK ||
      sqlite3_prepare_v2(x->db, "INSERT OR REPLACE INTO due VALUES (?1, ?2, ?3, ?4, ?5)", -1, &x->put,
                         NULL) != SQLITE_OK) {
    snprintf(err, errcap, "%s: %s", path, x->db ? sqlite3_errmsg(x->db) : "out of memory");
    tpdi_close(x);
    return -1;
  }
  sqlite3_busy_timeout(x->db, 1000);
  return 0;
}

void tpdi_close(tpdi_index *x) {
  sqlite3_finalize(x->get);
  sqlite3_finalize(x->put);
  sqlite3_close(x->db);
  memset(x, 0, sizeof *x);
}

int tpdi_get(tpdi_index *x, const char *id, tpdi_entry *e) {
  if (!x->db) return 0;
  sqlite3_bind_text(x->get, 1, id, -1, SQLITE_STATIC);
  int found = sqlite3_step(x->get) == SQLITE_ROW;
  if (found) {
    e->next_due_ms = sqlite3_column_int64(x->get, 0);
    e->outbox_due_ms = sqlite3_column_int64(x->get, 1);
    e->clock_ms = sqlite3_column_int64(x->get, 2);
    e->written_ms = sqlite3_column_int64(x->get, 3);
  }
  sqlite3_reset(x->get);
  sqlite3_clear_bindings(x->get);
  return found;
}

int tpdi_put(tpdi_index *x, const char *id, const tpdi_entry *e) {
  if (!x->db) return -1;
  sqlite3_bind_text(x->put, 1, id, -1, SQLITE_STATIC);
  sqlite3_bind_int64(x->put, 2, e->next_due_ms);
  sqlite3_bind_int64(x->put, 3, e->outbox_due_ms);
  sqlite3_bind_int64(x->put, 4, e->clock_ms);
  sqlite3_bind_int64(x->put, 5, e->written_ms);
  int rc = sqlite3_step(x->put) == SQLITE_DONE ? 0 : -1;
  sqlite3_reset(x->put);
  sqlite3_clear_bindings(x->put);
  return rc;
}
