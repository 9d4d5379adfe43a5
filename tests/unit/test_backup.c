/*
** Backups (store/backup.h): a backup is the database as one commit left it,
** even with a write transaction open beside it; backups are listed newest
** first by the time in their names and pruned to the newest few, with only
** stale temporary files removed; a restore puts one back and refuses a damaged
** one, leaving the destination as it was; a check restores into a scratch
** file; one process at a time holds a database's claim.
*/
#include <fcntl.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>
#include <utime.h>

#include "base/buf.h"
#include "store/backup.h"
#include "tp_test.h"

static char dir[128], db[200], bdir[200], err[1024];

static void setup(void) {
  snprintf(dir, sizeof dir, "/tmp/tp_test_backup_%d", (int)getpid());
  tp_remove_tree(dir);
  mkdir(dir, 0750);
  snprintf(db, sizeof db, "%s/leaf.db", dir);
  snprintf(bdir, sizeof bdir, "%s/backups", dir);
}

static void teardown(void) { tp_remove_tree(dir); }

static sqlite3 *open_wal(const char *path) {
  sqlite3 *c = NULL;
  if (sqlite3_open(path, &c) != SQLITE_OK || sqlite3_exec(c, "PRAGMA journal_mode=WAL", NULL, NULL, NULL)) {
    fprintf(stderr, "cannot open %s\n", path);
    exit(1);
  }
  return c;
}

static long long scalar(const char *path, const char *sql) {
  sqlite3 *c;
  sqlite3_stmt *st;
  long long v = -1;
  if (sqlite3_open_v2(path, &c, SQLITE_OPEN_READONLY, NULL) == SQLITE_OK &&
      sqlite3_prepare_v2(c, sql, -1, &st, NULL) == SQLITE_OK) {
    if (sqlite3_step(st) == SQLITE_ROW) v = sqlite3_column_int64(st, 0);
    sqlite3_finalize(st);
  }
  sqlite3_close(c);
  return v;
}

/* A database with n committed rows in t and the scheduler's table. */
static sqlite3 *make_db(int n) {
  sqlite3 *c = open_wal(db);
  char sql[256];
  snprintf(sql, sizeof sql, "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < %d) "
           "INSERT INTO t SELECT i, hex(randomblob(50)) FROM n", n);
  if (sqlite3_exec(c, "CREATE TABLE t (id INTEGER PRIMARY KEY, v TEXT);"
                      "CREATE TABLE _tp_jobs (id INTEGER PRIMARY KEY)", NULL, NULL, NULL) ||
      sqlite3_exec(c, sql, NULL, NULL, NULL)) {
    fprintf(stderr, "cannot fill %s: %s\n", db, sqlite3_errmsg(c));
    exit(1);
  }
  return c;
}

static void path_of(const char *name, char *out, size_t cap) {
  snprintf(out, cap, "%s/leaf/%s", bdir, name);
}

TEST(a_backup_is_the_database_as_one_commit_left_it) {
  setup();
  sqlite3 *w = make_db(1000);
  /* a write transaction beside the copy, as the host's batch is */
  ASSERT_EQ(sqlite3_exec(w, "BEGIN; INSERT INTO t SELECT id + 1000, v FROM t WHERE id <= 500", NULL, NULL,
                         NULL), SQLITE_OK);
  char name[TPBK_NAME_MAX], path[400];
  int64_t bytes = 0;
  ASSERT_EQ(tpbk_take(db, bdir, "leaf", 1796558400123LL, name, &bytes, err, sizeof err), 0);
  ASSERT_STR(name, "leaf-20261206T120000.123Z.db");
  ASSERT_EQ(sqlite3_exec(w, "COMMIT", NULL, NULL, NULL), SQLITE_OK);
  path_of(name, path, sizeof path);
  struct stat st;
  ASSERT_EQ(stat(path, &st), 0);
  ASSERT_EQ((int64_t)st.st_size, bytes);
  ASSERT_EQ(scalar(path, "SELECT count(*) FROM t"), 1000);
  ASSERT_EQ(scalar(db, "SELECT count(*) FROM t"), 1500);
  /* nothing but the backup is left in its folder: no temporary file */
  tpbk_entry *all;
  int n;
  ASSERT_EQ(tpbk_list(bdir, "leaf", &all, &n, err, sizeof err), 0);
  ASSERT_EQ(n, 1);
  free(all);
  sqlite3_close(w);
  /* no database, no backup */
  ASSERT_EQ(tpbk_take("/nonexistent/x.db", bdir, "x", 1000, name, &bytes, err, sizeof err), -1);
  ASSERT_CONTAINS(err, "no database");
  teardown();
}

static void touch(const char *name, long age_s) {
  char p[400];
  path_of(name, p, sizeof p);
  int fd = open(p, O_CREAT | O_WRONLY, 0640);
  ASSERT_TRUE(fd >= 0);
  close(fd);
  struct utimbuf t = {time(NULL) - age_s, time(NULL) - age_s};
  utime(p, &t);
}

TEST(backups_are_listed_newest_first_and_pruned_to_the_newest) {
  setup();
  sqlite3_close(make_db(10));
  char name[TPBK_NAME_MAX];
  int64_t bytes, at[] = {1796558400000LL, 1796558460500LL, 1796558401999LL};
  for (int i = 0; i < 3; i++) ASSERT_EQ(tpbk_take(db, bdir, "leaf", at[i], name, &bytes, err, sizeof err), 0);
  touch("leafy-20261206T120000.000Z.db", 0);     /* another brand's name, a prefix of it */
  touch("leaf-2026.db", 0);                      /* not a backup's name */
  touch(".leaf-20261206T130000.000Z.db.tmp", 0); /* a copy being written now */
  touch(".leaf-20261201T130000.000Z.db.tmp", 3 * 86400);  /* one a crash left */
  tpbk_entry *all;
  int n;
  ASSERT_EQ(tpbk_list(bdir, "leaf", &all, &n, err, sizeof err), 0);
  ASSERT_EQ(n, 3);
  ASSERT_EQ(all[0].taken_ms, 1796558460500LL);
  ASSERT_EQ(all[1].taken_ms, 1796558401999LL);
  ASSERT_EQ(all[2].taken_ms, 1796558400000LL);
  ASSERT_STR(all[1].name, "leaf-20261206T120001.999Z.db");
  ASSERT_TRUE(all[0].bytes > 0);
  free(all);
  ASSERT_EQ(tpbk_prune(bdir, "leaf", 2, err, sizeof err), 1);
  ASSERT_EQ(tpbk_list(bdir, "leaf", &all, &n, err, sizeof err), 0);
  ASSERT_EQ(n, 2);
  ASSERT_EQ(all[1].taken_ms, 1796558401999LL);
  free(all);
  char p[400];
  path_of(".leaf-20261206T130000.000Z.db.tmp", p, sizeof p);
  ASSERT_EQ(access(p, F_OK), 0);
  path_of(".leaf-20261201T130000.000Z.db.tmp", p, sizeof p);
  ASSERT_TRUE(access(p, F_OK) != 0);
  path_of("leafy-20261206T120000.000Z.db", p, sizeof p);
  ASSERT_EQ(access(p, F_OK), 0);
  /* a brand with no folder yet has no backups */
  ASSERT_EQ(tpbk_list(bdir, "nobody", &all, &n, err, sizeof err), 0);
  ASSERT_EQ(n, 0);
  teardown();
}

TEST(a_restore_puts_a_backup_back_and_refuses_a_damaged_one) {
  setup();
  sqlite3 *w = make_db(300);
  char name[TPBK_NAME_MAX], path[400];
  int64_t bytes;
  ASSERT_EQ(tpbk_take(db, bdir, "leaf", 1796558400000LL, name, &bytes, err, sizeof err), 0);
  ASSERT_EQ(sqlite3_exec(w, "DELETE FROM t WHERE id > 100", NULL, NULL, NULL), SQLITE_OK);
  sqlite3_close(w);
  path_of(name, path, sizeof path);
  ASSERT_EQ(tpbk_restore(path, db, err, sizeof err), 0);
  ASSERT_EQ(scalar(db, "SELECT count(*) FROM t"), 300);
  /* damaged: pages overwritten in the middle of the file */
  char bad[420];
  snprintf(bad, sizeof bad, "%s/damaged.db", dir);
  ASSERT_EQ(tpbk_restore(path, bad, err, sizeof err), 0);  /* a copy to damage */
  int fd = open(bad, O_WRONLY);
  char junk[8192];
  memset(junk, 0x5a, sizeof junk);
  ASSERT_EQ(pwrite(fd, junk, sizeof junk, 8192), (ssize_t)sizeof junk);
  close(fd);
  ASSERT_EQ(tpbk_restore(bad, db, err, sizeof err), -1);
  ASSERT_TRUE(strstr(err, "integrity_check") || strstr(err, "malformed") || strstr(err, "not a database"));
  ASSERT_EQ(scalar(db, "SELECT count(*) FROM t"), 300);  /* as it was */
  teardown();
}

TEST(a_check_restores_into_a_scratch_file_and_opens_it) {
  setup();
  sqlite3_close(make_db(50));
  char name[TPBK_NAME_MAX], path[400], out[512] = "";
  int64_t bytes;
  ASSERT_EQ(tpbk_take(db, bdir, "leaf", 1796558400000LL, name, &bytes, err, sizeof err), 0);
  path_of(name, path, sizeof path);
  ASSERT_EQ(tpbk_check(path, out, sizeof out, err, sizeof err), 0);
  ASSERT_CONTAINS(out, "ok: restored into a scratch file and opened: 2 tables");
  /* a SQLite file that is no tidepool database */
  char other[420];
  snprintf(other, sizeof other, "%s/other.db", dir);
  sqlite3 *c;
  ASSERT_EQ(sqlite3_open(other, &c), SQLITE_OK);
  ASSERT_EQ(sqlite3_exec(c, "CREATE TABLE x (a)", NULL, NULL, NULL), SQLITE_OK);
  sqlite3_close(c);
  ASSERT_EQ(tpbk_check(other, out, sizeof out, err, sizeof err), -1);
  ASSERT_CONTAINS(err, "no tidepool database");
  ASSERT_EQ(tpbk_check("/nonexistent.db", out, sizeof out, err, sizeof err), -1);
  ASSERT_CONTAINS(err, "cannot read");
  teardown();
}

TEST(one_claim_per_database) {
  setup();
  int a = tpbk_claim(db, err, sizeof err);
  ASSERT_TRUE(a >= 0);
  ASSERT_EQ(tpbk_claim(db, err, sizeof err), -1);  /* another open file: refused, even in-process */
  char pid[32];
  snprintf(pid, sizeof pid, "(pid %d)", (int)getpid());
  ASSERT_CONTAINS(err, pid);
  tpbk_unclaim(a);
  int b = tpbk_claim(db, err, sizeof err);
  ASSERT_TRUE(b >= 0);
  tpbk_unclaim(b);
  teardown();
}

int main(void) {
  RUN(a_backup_is_the_database_as_one_commit_left_it);
  RUN(backups_are_listed_newest_first_and_pruned_to_the_newest);
  RUN(a_restore_puts_a_backup_back_and_refuses_a_damaged_one);
  RUN(a_check_restores_into_a_scratch_file_and_opens_it);
  RUN(one_claim_per_database);
  return TEST_SUMMARY();
}
