/*
** users.c - console users in the brand's database (users.h). Rare
** statements: each is prepared when it runs.
*/
#include "store/users.h"

#include <stdio.h>
#include <string.h>

static const char schema[] =
    "CREATE TABLE IF NOT EXISTS _tp_console_users ("
    " name TEXT PRIMARY KEY, role INTEGER NOT NULL, store TEXT NOT NULL DEFAULT '',"
    " hash TEXT NOT NULL, failures INTEGER NOT NULL DEFAULT 0,"
    " locked_until_ms INTEGER NOT NULL DEFAULT 0, created_ms INTEGER NOT NULL)";

int tpcu_open(sqlite3 *db, char *err, size_t errcap) {
  char *msg = NULL;
  if (sqlite3_exec(db, schema, NULL, NULL, &msg) != SQLITE_OK) {
    snprintf(err, errcap, "console users: %s", msg ? msg : sqlite3_errmsg(db));
    sqlite3_free(msg);
    return -1;
  }
  return 0;
}

bool tpcu_valid_name(const char *s) {
  size_t n = strlen(s);
  if (n < 1 || n > TPCU_MAX_NAME) return false;
  for (size_t i = 0; i < n; i++) {
    char ch = s[i];
    if (!((ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9') ||
          ch == '.' || ch == '_' || ch == '@' || ch == '-'))
      return false;
  }
  return true;
}

static void copy_col(sqlite3_stmt *st, int col, char *out, size_t cap) {
  const unsigned char *s = sqlite3_column_text(st, col);
  snprintf(out, cap, "%s", s ? (const char *)s : "");
}

int tpcu_get(sqlite3 *db, const char *name, tpcu_user *u) {
  sqlite3_stmt *st;
  if (sqlite3_prepare_v2(db, "SELECT name, role, store, hash, failures, locked_until_ms, "
                         "created_ms FROM _tp_console_users WHERE name = ?", -1, &st, NULL) != SQLITE_OK)
    return -1;
  sqlite3_bind_text(st, 1, name, -1, SQLITE_STATIC);
  int rc = sqlite3_step(st), found = rc == SQLITE_ROW ? 1 : rc == SQLITE_DONE ? 0 : -1;
  if (found == 1) {
    memset(u, 0, sizeof *u);
    copy_col(st, 0, u->name, sizeof u->name);
    u->role = sqlite3_column_int(st, 1);
    copy_col(st, 2, u->store, sizeof u->store);
    copy_col(st, 3, u->hash, sizeof u->hash);
    u->failures = sqlite3_column_int(st, 4);
    u->locked_until_ms = sqlite3_column_int64(st, 5);
    u->created_ms = sqlite3_column_int64(st, 6);
  }
  sqlite3_finalize(st);
  return found;
}

int tpcu_put(sqlite3 *db, const tpcu_user *u) {
  sqlite3_stmt *st;
  if (sqlite3_prepare_v2(db, "INSERT OR REPLACE INTO _tp_console_users (name, role, store, hash, "
                         "failures, locked_until_ms, created_ms) VALUES (?, ?, ?, ?, 0, 0, ?)",
                         -1, &st, NULL) != SQLITE_OK)
    return -1;
  sqlite3_bind_text(st, 1, u->name, -1, SQLITE_STATIC);
  sqlite3_bind_int(st, 2, u->role);
  sqlite3_bind_text(st, 3, u->store, -1, SQLITE_STATIC);
  sqlite3_bind_text(st, 4, u->hash, -1, SQLITE_STATIC);
  sqlite3_bind_int64(st, 5, u->created_ms);
  int rc = sqlite3_step(st);
  sqlite3_finalize(st);
  return rc == SQLITE_DONE ? 0 : -1;
}

/* Runs sql with name bound as ?1 (and i as ?2, j as ?3); changed rows or -1. */
static int run(sqlite3 *db, const char *sql, const char *name, int64_t i, int64_t j) {
  sqlite3_stmt *st;
  if (sqlite3_prepare_v2(db, sql, -1, &st, NULL) != SQLITE_OK) return -1;
  sqlite3_bind_text(st, 1, name, -1, SQLITE_STATIC);
  if (sqlite3_bind_parameter_count(st) >= 2) sqlite3_bind_int64(st, 2, i);
  if (sqlite3_bind_parameter_count(st) >= 3) sqlite3_bind_int64(st, 3, j);
  int rc = sqlite3_step(st);
  sqlite3_finalize(st);
  return rc == SQLITE_DONE ? sqlite3_changes(db) : -1;
}

int tpcu_delete(sqlite3 *db, const char *name) {
  return run(db, "DELETE FROM _tp_console_users WHERE name = ?1", name, 0, 0);
}

int tpcu_list(sqlite3 *db, tp_buf *out) {
  sqlite3_stmt *st;
  if (sqlite3_prepare_v2(db, "SELECT name, role, store, locked_until_ms, created_ms FROM "
                         "_tp_console_users ORDER BY name", -1, &st, NULL) != SQLITE_OK)
    return -1;
  static const char *const roles[] = {"owner", "operator", "store_manager", "finance", "developer"};
  tp_buf_adds(out, "[");
  int rc, n = 0;
  while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
    const char *name = (const char *)sqlite3_column_text(st, 0);
    const char *store = (const char *)sqlite3_column_text(st, 2);
    int role = sqlite3_column_int(st, 1), r = 0;
    while (r < 4 && role != (1 << r)) r++;
    tp_buf_adds(out, n++ ? ",{\"name\":" : "{\"name\":");
    tp_buf_add_json_str(out, name ? name : "", name ? strlen(name) : 0);
    tp_buf_printf(out, ",\"role\":\"%s\",\"store\":", roles[r]);
    if (store && store[0]) tp_buf_add_json_str(out, store, strlen(store));
    else tp_buf_adds(out, "null");
    tp_buf_printf(out, ",\"locked_until_ms\":%lld,\"created_ms\":%lld}",
                  (long long)sqlite3_column_int64(st, 3), (long long)sqlite3_column_int64(st, 4));
  }
  tp_buf_adds(out, "]");
  sqlite3_finalize(st);
  return rc == SQLITE_DONE ? 0 : -1;
}

int tpcu_failed(sqlite3 *db, const char *name, int max, int64_t now_ms, int64_t lock_ms) {
  if (run(db, "UPDATE _tp_console_users SET failures = failures + 1 WHERE name = ?1", name, 0, 0) < 0)
    return -1;
  tpcu_user u;
  if (tpcu_get(db, name, &u) != 1) return -1;
  if (u.failures >= max &&
      run(db, "UPDATE _tp_console_users SET failures = 0, locked_until_ms = ?2 WHERE name = ?1",
          name, now_ms + lock_ms, 0) < 0)
    return -1;
  return u.failures;
}

int tpcu_succeeded(sqlite3 *db, const char *name) {
  return run(db, "UPDATE _tp_console_users SET failures = 0 WHERE name = ?1 AND failures <> 0",
             name, 0, 0) < 0 ? -1 : 0;
}
