/*
** backup.c - online backups of a brand's database (backup.h says why one step).
*/
#define _GNU_SOURCE
#include "store/backup.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "base/buf.h"

#define STAMP_LEN 20                 /* 20261206T120000.123Z */
#define STALE_TMP_SECONDS (24 * 3600) /* a temporary file this old was left by a crash */

/* ---- files */

static int fsync_path(const char *path, int flags) {
  int fd = open(path, flags | O_CLOEXEC);
  if (fd < 0) return -1;
  int rc = fsync(fd);
  close(fd);
  return rc;
}

static void folder_of(const char *dir, const char *tenant, char *out, size_t cap) {
  snprintf(out, cap, "%s/%s", dir, tenant);
}

/* ---- names: <tenant>-YYYYMMDDTHHMMSS.mmmZ.db */

static void backup_name(const char *tenant, int64_t ms, char *out, size_t cap) {
  time_t s = (time_t)(ms / 1000);
  struct tm tm;
  gmtime_r(&s, &tm);
  char stamp[32];
  strftime(stamp, sizeof stamp, "%Y%m%dT%H%M%S", &tm);
  snprintf(out, cap, "%s-%s.%03dZ.db", tenant, stamp, (int)(ms % 1000));
}

/* The time a backup's name says, or -1 if name is not one of tenant's. */
static int64_t parse_name(const char *tenant, const char *name) {
  size_t tl = strlen(tenant), nl = strlen(name);
  if (nl != tl + 1 + STAMP_LEN + 3 || strncmp(name, tenant, tl) != 0 || name[tl] != '-' ||
      strcmp(name + nl - 3, ".db") != 0)
    return -1;
  const char *s = name + tl + 1;
  struct tm tm = {0};
  int ms;
  char t, dot, z;
  if (sscanf(s, "%4d%2d%2d%c%2d%2d%2d%c%3d%c", &tm.tm_year, &tm.tm_mon, &tm.tm_mday, &t, &tm.tm_hour,
             &tm.tm_min, &tm.tm_sec, &dot, &ms, &z) != 10 ||
      t != 'T' || dot != '.' || z != 'Z')
    return -1;
  tm.tm_year -= 1900;
  tm.tm_mon -= 1;
  return (int64_t)timegm(&tm) * 1000 + ms;
}

/* ---- copying through SQLite */

static int open_db(const char *path, int flags, sqlite3 **db, char *err, size_t errcap) {
  if (sqlite3_open_v2(path, db, flags, NULL) != SQLITE_OK) {
    snprintf(err, errcap, "cannot open %s: %s", path, *db ? sqlite3_errmsg(*db) : "out of memory");
    sqlite3_close(*db);
    *db = NULL;
    return -1;
  }
  sqlite3_busy_timeout(*db, 10000);
  return 0;
}

/* Every page of from's main database into to's, in one step: one read
** transaction on from, one write transaction on to. */
static int copy_db(sqlite3 *from, sqlite3 *to, const char *what, char *err, size_t errcap) {
  sqlite3_backup *b = sqlite3_backup_init(to, "main", from, "main");
  if (!b) {
    snprintf(err, errcap, "%s: %s", what, sqlite3_errmsg(to));
    return -1;
  }
  int rc = sqlite3_backup_step(b, -1);
  sqlite3_backup_finish(b);
  if (rc != SQLITE_DONE) {
    snprintf(err, errcap, "%s: %s", what, rc == SQLITE_READONLY ? "the destination's page size "
             "differs from the backup's and it is in WAL mode" : sqlite3_errstr(rc));
    return -1;
  }
  return 0;
}

static int integrity(sqlite3 *db, const char *what, char *err, size_t errcap) {
  sqlite3_stmt *st;
  if (sqlite3_prepare_v2(db, "PRAGMA integrity_check(1)", -1, &st, NULL) != SQLITE_OK) {
    snprintf(err, errcap, "%s: %s", what, sqlite3_errmsg(db));
    return -1;
  }
  int rc = sqlite3_step(st);
  const char *r = rc == SQLITE_ROW ? (const char *)sqlite3_column_text(st, 0) : NULL;
  int ok = r && strcmp(r, "ok") == 0;
  if (!ok) snprintf(err, errcap, "%s: integrity_check says %s", what, r ? r : sqlite3_errmsg(db));
  sqlite3_finalize(st);
  return ok ? 0 : -1;
}

int tpbk_copy(const char *from_path, const char *to_path, char *err, size_t errcap) {
  sqlite3 *from = NULL, *to = NULL;
  int rc = open_db(from_path, SQLITE_OPEN_READONLY, &from, err, errcap);
  if (rc == 0) rc = open_db(to_path, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE, &to, err, errcap);
  if (rc == 0) rc = copy_db(from, to, from_path, err, errcap);
  sqlite3_close(from);
  if (to && sqlite3_close(to) != SQLITE_OK && rc == 0) {
    snprintf(err, errcap, "cannot close %s", to_path);
    rc = -1;
  }
  return rc;
}

int tpbk_take(const char *db_path, const char *dir, const char *tenant, int64_t now_ms,
              char *name, int64_t *bytes, char *err, size_t errcap) {
  char folder[PATH_MAX], tmp[PATH_MAX + TPBK_NAME_MAX + 8], final[PATH_MAX + TPBK_NAME_MAX + 2];
  folder_of(dir, tenant, folder, sizeof folder);
  if (tp_mkdir_p(folder) != 0) {
    snprintf(err, errcap, "cannot create %s: %s", folder, strerror(errno));
    return -1;
  }
  if (access(db_path, F_OK) != 0) {
    snprintf(err, errcap, "no database at %s", db_path);
    return -1;
  }
  backup_name(tenant, now_ms, name, TPBK_NAME_MAX);
  snprintf(tmp, sizeof tmp, "%s/.%s.tmp", folder, name);
  snprintf(final, sizeof final, "%s/%s", folder, name);
  unlink(tmp);
  int rc = tpbk_copy(db_path, tmp, err, errcap);
  if (rc == 0 && fsync_path(tmp, O_RDONLY) != 0) {
    snprintf(err, errcap, "cannot sync %s: %s", tmp, strerror(errno));
    rc = -1;
  }
  if (rc == 0 && rename(tmp, final) != 0) {
    snprintf(err, errcap, "cannot rename %s: %s", tmp, strerror(errno));
    rc = -1;
  }
  if (rc != 0) {
    unlink(tmp);
    return -1;
  }
  fsync_path(folder, O_RDONLY | O_DIRECTORY);  /* the rename itself */
  struct stat st;
  *bytes = stat(final, &st) == 0 ? (int64_t)st.st_size : 0;
  return 0;
}

/* ---- the list and retention */

static int newest_first(const void *a, const void *b) {
  int64_t x = ((const tpbk_entry *)a)->taken_ms, y = ((const tpbk_entry *)b)->taken_ms;
  return x < y ? 1 : x > y ? -1 : 0;
}

int tpbk_list(const char *dir, const char *tenant, tpbk_entry **out, int *n, char *err, size_t errcap) {
  char folder[PATH_MAX];
  folder_of(dir, tenant, folder, sizeof folder);
  *out = NULL;
  *n = 0;
  DIR *d = opendir(folder);
  if (!d) {
    if (errno == ENOENT) return 0;
    snprintf(err, errcap, "cannot read %s: %s", folder, strerror(errno));
    return -1;
  }
  int cap = 0;
  struct dirent *e;
  while ((e = readdir(d))) {
    int64_t ms = parse_name(tenant, e->d_name);
    if (ms < 0) continue;
    if (*n == cap) {
      cap = cap ? cap * 2 : 16;
      tpbk_entry *grown = realloc(*out, (size_t)cap * sizeof **out);
      if (!grown) {
        closedir(d);
        free(*out);
        *out = NULL;
        *n = 0;
        snprintf(err, errcap, "out of memory");
        return -1;
      }
      *out = grown;
    }
    tpbk_entry *b = &(*out)[(*n)++];
    tp_copy_str(b->name, sizeof b->name, e->d_name);
    b->taken_ms = ms;
    char path[PATH_MAX + TPBK_NAME_MAX + 2];
    snprintf(path, sizeof path, "%s/%s", folder, b->name);
    struct stat st;
    b->bytes = stat(path, &st) == 0 ? (int64_t)st.st_size : 0;
  }
  closedir(d);
  if (*n > 1) qsort(*out, (size_t)*n, sizeof **out, newest_first);
  return 0;
}

/* Temporary files a crash left (not one a copy is writing now: those are young). */
static void remove_stale_tmp(const char *folder) {
  DIR *d = opendir(folder);
  if (!d) return;
  struct dirent *e;
  time_t now = time(NULL);
  while ((e = readdir(d))) {
    size_t l = strlen(e->d_name);
    if (e->d_name[0] != '.' || l < 5 || strcmp(e->d_name + l - 4, ".tmp") != 0) continue;
    char path[PATH_MAX + 260];
    snprintf(path, sizeof path, "%s/%s", folder, e->d_name);
    struct stat st;
    if (stat(path, &st) == 0 && now - st.st_mtime > STALE_TMP_SECONDS) unlink(path);
  }
  closedir(d);
}

int tpbk_prune(const char *dir, const char *tenant, int keep, char *err, size_t errcap) {
  tpbk_entry *all;
  int n;
  if (tpbk_list(dir, tenant, &all, &n, err, errcap) != 0) return -1;
  char folder[PATH_MAX];
  folder_of(dir, tenant, folder, sizeof folder);
  int removed = 0;
  for (int i = keep < 0 ? 0 : keep; i < n; i++) {
    char path[PATH_MAX + TPBK_NAME_MAX + 2];
    snprintf(path, sizeof path, "%s/%s", folder, all[i].name);
    if (unlink(path) == 0) removed++;
  }
  free(all);
  remove_stale_tmp(folder);
  return removed;
}

/* ---- restore and check */

int tpbk_restore(const char *from, const char *to, char *err, size_t errcap) {
  if (access(from, R_OK) != 0) {
    snprintf(err, errcap, "cannot read %s: %s", from, strerror(errno));
    return -1;
  }
  sqlite3 *src = NULL, *dst = NULL;
  int rc = open_db(from, SQLITE_OPEN_READONLY, &src, err, errcap);
  if (rc == 0) rc = integrity(src, from, err, errcap);  /* never restore a damaged file */
  if (rc == 0) rc = open_db(to, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE, &dst, err, errcap);
  if (rc == 0) rc = copy_db(src, dst, to, err, errcap);
  if (rc == 0) rc = integrity(dst, to, err, errcap);
  if (rc == 0 && sqlite3_exec(dst, "PRAGMA wal_checkpoint(TRUNCATE)", NULL, NULL, NULL) != SQLITE_OK) {
    snprintf(err, errcap, "%s: %s", to, sqlite3_errmsg(dst));
    rc = -1;
  }
  sqlite3_close(src);
  sqlite3_close(dst);
  return rc;
}

static int64_t count_of(sqlite3 *db, const char *sql) {
  sqlite3_stmt *st;
  int64_t v = -1;
  if (sqlite3_prepare_v2(db, sql, -1, &st, NULL) != SQLITE_OK) return -1;
  if (sqlite3_step(st) == SQLITE_ROW) v = sqlite3_column_int64(st, 0);
  sqlite3_finalize(st);
  return v;
}

int tpbk_check(const char *path, char *out, size_t outcap, char *err, size_t errcap) {
  const char *tmpdir = getenv("TMPDIR");
  char scratch[PATH_MAX], db[PATH_MAX + 16];
  snprintf(scratch, sizeof scratch, "%s/tidepool-check-XXXXXX", tmpdir && *tmpdir ? tmpdir : "/tmp");
  if (!mkdtemp(scratch)) {
    snprintf(err, errcap, "cannot create a scratch folder: %s", strerror(errno));
    return -1;
  }
  snprintf(db, sizeof db, "%s/check.db", scratch);
  int rc = tpbk_restore(path, db, err, errcap);
  sqlite3 *c = NULL;
  if (rc == 0) rc = open_db(db, SQLITE_OPEN_READONLY, &c, err, errcap);
  if (rc == 0) {
    int64_t tables = count_of(c, "SELECT count(*) FROM sqlite_master WHERE type = 'table'");
    int64_t jobs = count_of(c, "SELECT count(*) FROM _tp_jobs");
    int64_t pages = count_of(c, "PRAGMA page_count"), size = count_of(c, "PRAGMA page_size");
    if (tables <= 0 || jobs < 0) {
      snprintf(err, errcap, "%s: restored, but it is no tidepool database (%lld tables%s)", path,
               (long long)tables, jobs < 0 ? ", no _tp_jobs" : "");
      rc = -1;
    } else {
      snprintf(out, outcap, "ok: restored into a scratch file and opened: %lld tables, %lld pages "
               "(%.1f MB), %lld jobs pending or dead", (long long)tables, (long long)pages,
               (double)(pages * size) / 1e6, (long long)jobs);
    }
  }
  sqlite3_close(c);
  tp_remove_tree(scratch);
  return rc;
}

/* ---- the claim */

int tpbk_claim(const char *db_path, char *err, size_t errcap) {
  char lock[PATH_MAX + 8];
  snprintf(lock, sizeof lock, "%s.lock", db_path);
  int fd = open(lock, O_RDWR | O_CREAT | O_CLOEXEC, 0640);
  if (fd < 0) {
    snprintf(err, errcap, "cannot open %s: %s", lock, strerror(errno));
    return -1;
  }
  if (flock(fd, LOCK_EX | LOCK_NB) != 0) {
    int e = errno;
    char pid[24] = "";
    ssize_t r = pread(fd, pid, sizeof pid - 1, 0);
    pid[r > 0 ? r : 0] = '\0';
    pid[strcspn(pid, "\n")] = '\0';
    close(fd);
    if (e == EWOULDBLOCK)
      snprintf(err, errcap, "another process (pid %s) serves %s: it holds %s", pid[0] ? pid : "?",
               db_path, lock);
    else
      snprintf(err, errcap, "cannot lock %s: %s", lock, strerror(e));
    return -1;
  }
  char pid[24];
  int len = snprintf(pid, sizeof pid, "%ld\n", (long)getpid());
  if (ftruncate(fd, 0) != 0 || pwrite(fd, pid, (size_t)len, 0) != len) { /* only informative */ }
  return fd;
}

void tpbk_unclaim(int fd) {
  if (fd >= 0) close(fd);  /* closing the descriptor lets the lock go */
}
