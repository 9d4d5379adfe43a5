/*
** alias.c - merged and erased user ids (_tp_aliases), see alias.h.
*/
#include "store/alias.h"

#include <stdio.h>
#include <string.h>

static const char schema[] =
    "CREATE TABLE IF NOT EXISTS _tp_aliases ("
    " id TEXT PRIMARY KEY,"
    " survivor TEXT,"                 /* NULL: erased */
    " since_ms INTEGER NOT NULL,"
    " CHECK (survivor IS NULL OR survivor <> id)) WITHOUT ROWID;"
    "CREATE INDEX IF NOT EXISTS _tp_aliases_survivor ON _tp_aliases(survivor);";

int tpal_open(tpal_table *a, sqlite3 *db, char *err, size_t errcap) {
  memset(a, 0, sizeof *a);
  a->db = db;
  char *msg = NULL;
  if (sqlite3_exec(db, schema, NULL, NULL, &msg) != SQLITE_OK ||
      sqlite3_prepare_v3(db, "SELECT survivor FROM _tp_aliases WHERE id = ?", -1,
                         SQLITE_PREPARE_PERSISTENT, &a->resolve, NULL) != SQLITE_OK) {
    snprintf(err, errcap, "aliases: %s", msg ? msg : sqlite3_errmsg(db));
    sqlite3_free(msg);
    return -1;
  }
  return 0;
}

void tpal_close(tpal_table *a) {
  sqlite3_finalize(a->resolve);
  a->resolve = NULL;
}

tpal_result tpal_resolve(tpal_table *a, const char *user, char out[TPT_MAX_ID + 1]) {
  sqlite3_stmt *st = a->resolve;
  sqlite3_bind_text(st, 1, user, -1, SQLITE_STATIC);
  int rc = sqlite3_step(st);
  tpal_result r = TPAL_SELF;
  if (rc == SQLITE_ROW) {
    const unsigned char *s = sqlite3_column_text(st, 0);
    int n = sqlite3_column_bytes(st, 0);
    if (!s) {
      r = TPAL_ERASED;
    } else if (n > 0 && n <= TPT_MAX_ID) {
      memcpy(out, s, (size_t)n);
      out[n] = '\0';
      r = TPAL_ALIAS;
    } else {
      r = TPAL_ERROR;
    }
  } else if (rc != SQLITE_DONE) {
    r = TPAL_ERROR;
  }
  sqlite3_reset(st);
  sqlite3_clear_bindings(st);
  return r;
}

/* Runs one statement with up to three text parameters and an integer ?4. */
static int run(tpal_table *a, const char *sql, const char *p1, const char *p2, int64_t p3,
               char *err, size_t errcap) {
  sqlite3_stmt *st;
  if (sqlite3_prepare_v2(a->db, sql, -1, &st, NULL) != SQLITE_OK) {
    snprintf(err, errcap, "aliases: %s", sqlite3_errmsg(a->db));
    return -1;
  }
  sqlite3_bind_text(st, 1, p1, -1, SQLITE_STATIC);
  if (p2) sqlite3_bind_text(st, 2, p2, -1, SQLITE_STATIC);
  sqlite3_bind_int64(st, 3, p3);
  int rc = sqlite3_step(st);
  int found = rc == SQLITE_ROW;
  if (rc != SQLITE_ROW && rc != SQLITE_DONE) {
    snprintf(err, errcap, "aliases: %s", sqlite3_errmsg(a->db));
    sqlite3_finalize(st);
    return -1;
  }
  sqlite3_finalize(st);
  return found;
}

int tpal_set(tpal_table *a, const char *from, const char *into, int64_t now_ms, char *err,
             size_t errcap) {
  if (into && strcmp(from, into) == 0) {
    snprintf(err, errcap, "a user cannot be an alias of itself");
    return -1;
  }
  if (into) {
    int taken = run(a, "SELECT 1 FROM _tp_aliases WHERE id = ?1", into, NULL, 0, err, errcap);
    if (taken < 0) return -1;
    if (taken) {
      snprintf(err, errcap, "'%s' was itself merged or erased: it cannot survive a merge", into);
      return -1;
    }
  }
  if (run(a, "INSERT INTO _tp_aliases (id, survivor, since_ms) VALUES (?1, ?2, ?3)"
             " ON CONFLICT (id) DO UPDATE SET survivor = ?2, since_ms = ?3",
          from, into, now_ms, err, errcap) < 0)
    return -1;
  /* one hop: whatever pointed at from now points where from does */
  return run(a, "UPDATE _tp_aliases SET survivor = ?2 WHERE survivor = ?1", from, into, now_ms,
             err, errcap) < 0 ? -1 : 0;
}

int tpal_unset(tpal_table *a, const char *from, int *removed, char *err, size_t errcap) {
  *removed = 0;
  if (run(a, "DELETE FROM _tp_aliases WHERE id = ?1", from, NULL, 0, err, errcap) < 0) return -1;
  *removed = sqlite3_changes(a->db) > 0;
  return 0;
}
