/*
** walsync.c - a tenant's commits made durable off the loop's thread
** (walsync.h).
*/
#include "store/walsync.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "store/store.h"

int tpws_defer(tps_db *d) {
  if (d->sync < TPC_SYNC_FULL) return 1;
  if (d->in_txn || sqlite3_exec(d->db, "PRAGMA synchronous=NORMAL", NULL, NULL, NULL) != SQLITE_OK)
    return -1;
  d->ws.on = true;
  return 0;
}

void tpws_committed(tps_db *d) {
  bool durable = d->ws.durable;
  d->ws.durable = true;  /* tps_set_durable(false) holds for one commit */
  if (!d->ws.on || !durable) return;
  d->ws.owed = true;
  tpdep_merge(&d->ws.next, &d->written);
}

bool tpws_meets(const tps_db *d, const tpdep_set *set) {
  return d->ws.on && (tpdep_meets(set, &d->ws.next) || tpdep_meets(set, &d->ws.inflight));
}

bool tpws_owed(const tps_db *d) { return d->ws.on && d->ws.owed; }

int tpws_start(tps_db *d) {
  if (d->ws.wal_fd < 0) {
    char path[4096];
    snprintf(path, sizeof path, "%s-wal", d->path);
    d->ws.wal_fd = open(path, O_RDONLY | O_CLOEXEC);
    if (d->ws.wal_fd < 0) return -1;
    d->ws.dir_synced = false;
  }
  d->ws.inflight = d->ws.next;
  tpdep_clear(&d->ws.next);
  d->ws.owed = false;
  return 0;
}

/* The folder holding path, synced: a WAL file SQLite just made is on disk
** only once its name is. */
static int sync_folder(const char *path) {
  char dir[4096];
  snprintf(dir, sizeof dir, "%s", path);
  char *slash = strrchr(dir, '/');
  if (slash == dir) slash[1] = '\0';
  else if (slash) *slash = '\0';
  else snprintf(dir, sizeof dir, ".");
  int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0) return errno;
  int rc = fsync(fd) == 0 ? 0 : errno;
  close(fd);
  return rc;
}

int tpws_run(tps_db *d) {
  if (fdatasync(d->ws.wal_fd) != 0) return errno;
  if (!d->ws.dir_synced) {
    int rc = sync_folder(d->path);
    if (rc != 0) return rc;
    d->ws.dir_synced = true;
  }
  return 0;
}

void tpws_done(tps_db *d, bool ok) {
  if (!ok) {  /* owed again, with what came since */
    tpdep_merge(&d->ws.next, &d->ws.inflight);
    d->ws.owed = true;
  }
  tpdep_clear(&d->ws.inflight);
}

void tpws_close(tps_db *d) {
  if (d->ws.on && d->ws.wal_fd >= 0) close(d->ws.wal_fd);  /* on: a closed tps_db is all zero */
  d->ws.wal_fd = -1;
}
