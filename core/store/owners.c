/*
** owners.c - the brands' nodes after moves (owners.h).
*/
#include "store/owners.h"

#include <errno.h>
#include <fcntl.h>
#include <sqlite3.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "base/crypto.h"

#define SCHEMA                                                                              \
  "PRAGMA journal_mode=WAL;"                                                                \
  "CREATE TABLE IF NOT EXISTS owners (tenant TEXT PRIMARY KEY, node TEXT NOT NULL,"         \
  " moved_ms INTEGER NOT NULL)"

static int open_owners(const char *data_dir, bool create, sqlite3 **db, char *err, size_t errcap) {
  char path[4200];
  snprintf(path, sizeof path, "%s/tidepool.owners.db", data_dir);
  *db = NULL;
  if (!create && access(path, F_OK) != 0) return 1;  /* no moves yet */
  if (sqlite3_open(path, db) != SQLITE_OK || sqlite3_exec(*db, SCHEMA, NULL, NULL, NULL) != SQLITE_OK) {
    snprintf(err, errcap, "%s: %s", path, *db ? sqlite3_errmsg(*db) : "out of memory");
    sqlite3_close(*db);
    *db = NULL;
    return -1;
  }
  sqlite3_busy_timeout(*db, 5000);
  return 0;
}

int tpow_each(const char *data_dir, void (*fn)(void *ud, const char *tenant, const char *node), void *ud,
              char *err, size_t errcap) {
  sqlite3 *db;
  int rc = open_owners(data_dir, false, &db, err, errcap);
  if (rc != 0) return rc > 0 ? 0 : -1;
  sqlite3_stmt *st;
  rc = sqlite3_prepare_v2(db, "SELECT tenant, node FROM owners ORDER BY tenant", -1, &st, NULL) == SQLITE_OK ? 0 : -1;
  while (rc == 0 && sqlite3_step(st) == SQLITE_ROW)
    fn(ud, (const char *)sqlite3_column_text(st, 0), (const char *)sqlite3_column_text(st, 1));
  if (rc != 0) snprintf(err, errcap, "owners: %s", sqlite3_errmsg(db));
  sqlite3_finalize(st);
  sqlite3_close(db);
  return rc;
}

int tpow_set(const char *data_dir, const char *tenant, const char *node, int64_t now_ms, char *err,
             size_t errcap) {
  sqlite3 *db;
  if (open_owners(data_dir, true, &db, err, errcap) != 0) return -1;
  sqlite3_stmt *st;
  int rc = -1;
  if (sqlite3_prepare_v2(db, "INSERT OR REPLACE INTO owners VALUES (?1, ?2, ?3)", -1, &st, NULL) == SQLITE_OK) {
    sqlite3_bind_text(st, 1, tenant, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 2, node, -1, SQLITE_STATIC);
    sqlite3_bind_int64(st, 3, now_ms);
    rc = sqlite3_step(st) == SQLITE_DONE ? 0 : -1;
    sqlite3_finalize(st);
  }
  if (rc != 0) snprintf(err, errcap, "owners: %s", sqlite3_errmsg(db));
  sqlite3_close(db);
  return rc;
}

/* The id in path into out, if it is one. */
static bool read_id(const char *path, char out[33]) {
  FILE *f = fopen(path, "r");
  if (!f) return false;
  size_t n = fread(out, 1, 32, f);
  fclose(f);
  out[n] = '\0';
  return n == 32 && strspn(out, "0123456789ABCDEF") == 32;
}

int tpow_folder_id(const char *data_dir, char out[33], char *err, size_t errcap) {
  char path[4200], tmp[4220];
  snprintf(path, sizeof path, "%s/tidepool.folder", data_dir);
  if (read_id(path, out)) return 0;
  /* written whole under another name, then linked: two nodes starting at once agree on one */
  char id[33];
  tpx_random_hex(id, 16);
  snprintf(tmp, sizeof tmp, "%s.%ld.tmp", path, (long)getpid());
  int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0640);
  bool written = fd >= 0 && write(fd, id, 32) == 32 && fsync(fd) == 0;
  if (fd >= 0) close(fd);
  if (written && link(tmp, path) != 0 && errno != EEXIST) written = false;
  unlink(tmp);
  if (written && read_id(path, out)) return 0;
  snprintf(err, errcap, "cannot write %s: %s", path, strerror(errno));
  return -1;
}
