/*
** A brand's files carried between data folders (store/transfer.h): only the
** two file names travel, never a path; a digest and the pieces read in
** bounds are the file; a sink refuses bytes whose size or digest is not the
** source's, and a file that is no database fails its integrity check; an
** install sets aside what it replaces and drops a stale log; a set-aside
** copy has a tombstone naming the new node; a data folder keeps one id.
*/
#include <fcntl.h>
#include <openssl/sha.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "base/buf.h"
#include "store/owners.h"
#include "store/transfer.h"
#include "tp_test.h"

static char dir[128], db[200], err[1024];

static void setup(void) {
  snprintf(dir, sizeof dir, "/tmp/tp_test_transfer_%d", (int)getpid());
  tp_remove_tree(dir);
  mkdir(dir, 0750);
  snprintf(db, sizeof db, "%s/leaf.db", dir);
}

static void teardown(void) { tp_remove_tree(dir); }

/* leaf.db with n rows, closed (its WAL folded back): as a released brand's. */
static void make_db(int n) {
  sqlite3 *c;
  char sql[300];
  snprintf(sql, sizeof sql, "PRAGMA journal_mode=WAL; CREATE TABLE t (id INTEGER PRIMARY KEY, v TEXT);"
           "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < %d) "
           "INSERT INTO t SELECT i, hex(randomblob(200)) FROM n", n);
  if (sqlite3_open(db, &c) != SQLITE_OK || sqlite3_exec(c, sql, NULL, NULL, NULL) != SQLITE_OK) exit(1);
  sqlite3_close(c);
}

static void write_file(const char *path, const char *text) {
  FILE *f = fopen(path, "w");
  fputs(text, f);
  fclose(f);
}

static void sha_hex(const void *p, size_t n, char hex[65]) {
  unsigned char md[32];
  SHA256(p, n, md);
  for (int i = 0; i < 32; i++) sprintf(hex + 2 * i, "%02x", md[i]);
}

TEST(only_the_two_file_names_travel) {
  ASSERT_STR(tpxf_suffix("db", 2), ".db");
  ASSERT_STR(tpxf_suffix("analytics", 9), ".analytics.db");
  ASSERT_TRUE(tpxf_suffix("../leaf.db", 10) == NULL);
  ASSERT_TRUE(tpxf_suffix("/etc/passwd", 11) == NULL);
  ASSERT_TRUE(tpxf_suffix("db.lock", 7) == NULL);
  ASSERT_TRUE(tpxf_suffix("d", 1) == NULL);
  ASSERT_TRUE(tpxf_suffix("db", 3) == NULL);  /* "db\0": no hidden bytes */
  ASSERT_TRUE(tpxf_name(2) == NULL && tpxf_name(-1) == NULL);
}

TEST(the_digest_and_the_pieces_are_the_file) {
  setup();
  make_db(3000);
  size_t len;
  char *whole = tp_read_file(db, 64 << 20, &len);
  ASSERT_TRUE(whole && len > TPXF_CHUNK_MAX / 8);
  char hex[TPXF_HEX], want[65];
  int64_t bytes;
  ASSERT_EQ(tpxf_digest(db, &bytes, hex, err, sizeof err), 0);
  sha_hex(whole, len, want);
  ASSERT_STR(hex, want);
  ASSERT_EQ(bytes, (long long)len);
  /* pieces of an odd size, read back to back, are the file */
  tp_buf all;
  tp_buf_init(&all);
  int64_t total = 0;
  for (int64_t off = 0; off < bytes; off += 100000) ASSERT_EQ(tpxf_read(db, off, 100000, &all, &total, err, sizeof err), 0);
  ASSERT_EQ(all.len, (long long)len);
  ASSERT_EQ(total, (long long)len);
  ASSERT_TRUE(memcmp(all.data, whole, len) == 0);
  /* a length over the cap is cut to it; an offset at or past the end is 1 */
  tp_buf_reset(&all);
  ASSERT_EQ(tpxf_read(db, 0, TPXF_CHUNK_MAX * 2, &all, &total, err, sizeof err), 0);
  ASSERT_TRUE(all.len <= TPXF_CHUNK_MAX);
  ASSERT_EQ(tpxf_read(db, bytes, 10, &all, &total, err, sizeof err), 1);
  ASSERT_EQ(tpxf_read(db, -1, 10, &all, &total, err, sizeof err), 1);
  ASSERT_CONTAINS(err, "past the end");
  char missing[300];
  snprintf(missing, sizeof missing, "%s/none.db", dir);
  ASSERT_EQ(tpxf_digest(missing, &bytes, hex, err, sizeof err), 1);
  ASSERT_EQ(tpxf_read(missing, 0, 10, &all, &total, err, sizeof err), -1);
  tp_buf_free(&all);
  free(whole);
  ASSERT_TRUE(tpxf_quiescent(db));
  char wal[300];
  snprintf(wal, sizeof wal, "%s-wal", db);
  write_file(wal, "frames");
  ASSERT_TRUE(!tpxf_quiescent(db));  /* a log with writes in it: not whole */
  teardown();
}

/* Carries db into tmp through a sink, in pieces of size piece; returns
** tpxf_sink_finish's answer against want (NULL: the true digest). */
static int carry(const char *tmp, int64_t want_bytes, const char *want_hex) {
  tpxf_sink s;
  if (tpxf_sink_open(&s, tmp, err, sizeof err) != 0) return -2;
  size_t len;
  char *whole = tp_read_file(db, 64 << 20, &len);
  for (size_t off = 0; off < len; off += 65536)
    tpxf_sink_write(&s, whole + off, len - off < 65536 ? len - off : 65536);
  char hex[65];
  sha_hex(whole, len, hex);
  free(whole);
  int rc = tpxf_sink_finish(&s, want_bytes < 0 ? (int64_t)len : want_bytes, want_hex ? want_hex : hex, err, sizeof err);
  if (rc != 0) tpxf_sink_abort(&s);
  return rc;
}

TEST(a_sink_refuses_bytes_that_are_not_the_sources) {
  setup();
  make_db(500);
  char tmp[300];
  snprintf(tmp, sizeof tmp, "%s/.leaf.db.incoming", dir);
  ASSERT_EQ(carry(tmp, -1, "00000000000000000000000000000000000000000000000000000000000000ff"), -1);
  ASSERT_CONTAINS(err, "digest_mismatch");
  ASSERT_TRUE(access(tmp, F_OK) != 0);  /* aborted: gone */
  ASSERT_EQ(carry(tmp, 12345, NULL), -1);
  ASSERT_CONTAINS(err, "size_mismatch");
  ASSERT_EQ(carry(tmp, -1, NULL), 0);
  ASSERT_EQ(tpxf_check_db(tmp, err, sizeof err), 0);
  char side[320];
  snprintf(side, sizeof side, "%s-wal", tmp);
  ASSERT_TRUE(access(side, F_OK) != 0);  /* the check left no log beside it */
  /* the right size and digest of bytes that are no database: the integrity check says so */
  char junk[300];
  snprintf(junk, sizeof junk, "%s/junk.db", dir);
  write_file(junk, "SQLite format 3 but not really");
  ASSERT_EQ(tpxf_check_db(junk, err, sizeof err), -1);
  ASSERT_CONTAINS(err, "integrity_check");
  teardown();
}

TEST(an_install_sets_aside_what_it_replaces_and_drops_a_stale_log) {
  setup();
  char final[300], tmp[300], wal[320], shm[320];
  snprintf(final, sizeof final, "%s/moss.db", dir);
  snprintf(tmp, sizeof tmp, "%s/.moss.db.incoming", dir);
  snprintf(wal, sizeof wal, "%s-wal", final);
  snprintf(shm, sizeof shm, "%s-shm", final);
  write_file(final, "an older copy");
  write_file(wal, "an older copy's log");
  write_file(shm, "its index");
  write_file(tmp, "the new file");
  ASSERT_EQ(tpxf_install(tmp, final, 1765000000123, err, sizeof err), 0);
  char *now = tp_read_file(final, 100, NULL);
  ASSERT_STR(now, "the new file");
  free(now);
  ASSERT_TRUE(access(wal, F_OK) != 0 && access(shm, F_OK) != 0 && access(tmp, F_OK) != 0);
  char aside[400];
  snprintf(aside, sizeof aside, "%s.replaced-20251206T054640.123Z", final);
  ASSERT_TRUE(access(aside, F_OK) == 0);
  teardown();
}

TEST(a_copy_set_aside_has_a_tombstone_naming_the_new_node) {
  setup();
  make_db(10);
  char analytics[300], out[200], aside[200];
  snprintf(analytics, sizeof analytics, "%s/leaf.analytics.db", dir);
  write_file(analytics, "events");
  ASSERT_EQ(tpxf_tombstone(dir, "leaf", out, sizeof out), 0);
  ASSERT_EQ(tpxf_set_aside(dir, "leaf", "b", 1765000000123, aside, sizeof aside, err, sizeof err), 0);
  ASSERT_STR(aside, "leaf.db.moved-20251206T054640.123Z");
  ASSERT_TRUE(access(db, F_OK) != 0 && access(analytics, F_OK) != 0);
  char moved[400];
  snprintf(moved, sizeof moved, "%s/leaf.analytics.db.moved-20251206T054640.123Z", dir);
  ASSERT_TRUE(access(moved, F_OK) == 0);
  ASSERT_EQ(tpxf_tombstone(dir, "leaf", out, sizeof out), 1);
  ASSERT_STR(out, "moved to node b at 20251206T054640.123Z");
  ASSERT_EQ(tpxf_tombstone(dir, "moss", out, sizeof out), 0);
  ASSERT_EQ(tpxf_clear_tombstone(dir, "leaf", err, sizeof err), 0);
  ASSERT_EQ(tpxf_tombstone(dir, "leaf", out, sizeof out), 0);
  ASSERT_EQ(tpxf_clear_tombstone(dir, "leaf", err, sizeof err), 0);  /* none: fine */
  teardown();
}

TEST(a_data_folder_keeps_one_id) {
  setup();
  char a[33], b[33];
  ASSERT_EQ(tpow_folder_id(dir, a, err, sizeof err), 0);
  ASSERT_EQ(strlen(a), 32);
  ASSERT_EQ(tpow_folder_id(dir, b, err, sizeof err), 0);
  ASSERT_STR(a, b);
  char other[200];
  snprintf(other, sizeof other, "%s/other", dir);
  mkdir(other, 0750);
  ASSERT_EQ(tpow_folder_id(other, b, err, sizeof err), 0);
  ASSERT_TRUE(strcmp(a, b) != 0);
  snprintf(other, sizeof other, "%s/none/deeper", dir);
  ASSERT_EQ(tpow_folder_id(other, b, err, sizeof err), -1);
  teardown();
}

int main(void) {
  RUN(only_the_two_file_names_travel);
  RUN(the_digest_and_the_pieces_are_the_file);
  RUN(a_sink_refuses_bytes_that_are_not_the_sources);
  RUN(an_install_sets_aside_what_it_replaces_and_drops_a_stale_log);
  RUN(a_copy_set_aside_has_a_tombstone_naming_the_new_node);
  RUN(a_data_folder_keeps_one_id);
  return TEST_SUMMARY();
}
