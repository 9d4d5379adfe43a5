/*
** Track: the analytics file's group commit (store/track.h). The batches of an
** iteration share one transaction, each all or nothing in a savepoint; only
** tptk_commit makes them visible; an error that rolls the whole transaction
** back loses the batches kept before it and says so (commit_failed); the
** purge and the loop's checkpoint wait for the commit.
*/
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "store/track.h"
#include "tp_test.h"

static tptk_db k;
static sqlite3 *reader;  /* another connection: sees only what was committed */
static char path[64], err[256];

static void open_track(void) {
  snprintf(path, sizeof path, "/tmp/tp_test_track_%d.db", (int)getpid());
  unlink(path);
  memset(&k, 0, sizeof k);
  tptk_open(&k, path, err, sizeof err);
  sqlite3_open(path, &reader);
}

static void close_track(void) {
  sqlite3_close(reader);
  tptk_close(&k);
  tps_remove(path);
}

static long long count_events(void) {
  sqlite3_stmt *st = NULL;
  long long n = -1;
  if (sqlite3_prepare_v2(reader, "SELECT count(*) FROM analytics_events", -1, &st, NULL) == SQLITE_OK &&
      sqlite3_step(st) == SQLITE_ROW)
    n = sqlite3_column_int64(st, 0);
  sqlite3_finalize(st);
  return n;
}

/* A batch of n page views whose ids start with prefix. */
static int put(const char *prefix, int n, int *inserted) {
  static char ids[TPTK_MAX_BATCH][32];
  tptk_event ev[TPTK_MAX_BATCH];
  memset(ev, 0, sizeof ev);
  for (int i = 0; i < n; i++) {
    snprintf(ids[i], sizeof ids[i], "%s-%d", prefix, i);
    ev[i].id = ids[i];
    ev[i].kind = "page_view";
    ev[i].session = "s1";
    ev[i].device = "d1";
    ev[i].at_ms = 1000;
  }
  return tptk_insert(&k, ev, n, 2000, inserted, err, sizeof err);
}

/* A statement failing on the event with id `id`: ABORT undoes that statement,
** ROLLBACK the whole transaction (as an I/O error or a full disk would). */
static void fail_on(const char *id, const char *how) {
  char sql[300];
  snprintf(sql, sizeof sql, "CREATE TRIGGER fail_%s BEFORE INSERT ON analytics_events WHEN new.id = '%s' "
           "BEGIN SELECT RAISE(%s, 'refused'); END", how, id, how);
  sqlite3_exec(reader, sql, NULL, NULL, NULL);
}

TEST(batches_share_one_commit_and_a_bad_one_undoes_only_itself) {
  open_track();
  fail_on("b-3", "ABORT");
  int in = 0;
  ASSERT_EQ(put("a", 5, &in), 0);
  ASSERT_EQ(in, 5);
  ASSERT_EQ(put("b", 5, &in), -1);  /* its fourth event fails: none of it stays */
  ASSERT_EQ(in, 0);
  ASSERT_EQ(put("c", 5, &in), 0);
  ASSERT_EQ(put("a", 5, &in), 0);  /* a's again: duplicates, in the same transaction */
  ASSERT_EQ(in, 0);
  ASSERT_EQ(count_events(), 0);  /* nothing is visible, or counted, before the commit */
  ASSERT_EQ(k.accepted, 0);
  ASSERT_TRUE(k.in_txn);
  ASSERT_EQ(k.batches, 3);
  ASSERT_EQ(tptk_commit(&k, err, sizeof err), 0);
  ASSERT_EQ(count_events(), 10);  /* a and c whole, no part of b */
  ASSERT_TRUE(!k.in_txn && !k.commit_failed);
  ASSERT_EQ(k.accepted, 10);      /* counted at the commit */
  ASSERT_EQ(k.duplicates, 5);
  ASSERT_EQ(tptk_commit(&k, err, sizeof err), 0);  /* nothing open: nothing to do */
  close_track();
}

TEST(a_rollback_of_the_whole_transaction_loses_the_batches_kept) {
  open_track();
  fail_on("doom-0", "ROLLBACK");
  int in = 0;
  ASSERT_EQ(put("a", 5, &in), 0);
  ASSERT_TRUE(!k.commit_failed);
  ASSERT_EQ(put("doom", 2, &in), -1);  /* takes a's with it */
  ASSERT_TRUE(k.commit_failed);        /* a's answer must not say 200 */
  ASSERT_TRUE(!k.in_txn);
  ASSERT_EQ(tptk_commit(&k, err, sizeof err), 0);
  ASSERT_EQ(count_events(), 0);
  ASSERT_EQ(k.accepted, 0);            /* what was lost is not counted */
  k.commit_failed = false;             /* the host clears it at the iteration's end */
  ASSERT_EQ(put("a", 5, &in), 0);      /* a new transaction takes them again */
  ASSERT_EQ(in, 5);
  ASSERT_EQ(tptk_commit(&k, err, sizeof err), 0);
  ASSERT_EQ(count_events(), 5);
  ASSERT_EQ(k.accepted, 5);
  ASSERT_TRUE(!k.commit_failed);
  close_track();
}

TEST(a_failed_first_batch_loses_nothing_else) {
  open_track();
  fail_on("doom-0", "ROLLBACK");
  int in = 0;
  ASSERT_EQ(put("doom", 2, &in), -1);  /* alone in its transaction: its own 503 says it */
  ASSERT_TRUE(!k.commit_failed);
  close_track();
}

TEST(the_purge_and_the_loops_checkpoint_wait_for_the_commit) {
  open_track();
  int in = 0;
  ASSERT_EQ(put("a", 5, &in), 0);
  ASSERT_EQ(tptk_purge(&k, 5000, 100), -1);
  ASSERT_EQ(tptk_checkpoint_restart(&k), -1);
  ASSERT_EQ(tptk_commit(&k, err, sizeof err), 0);
  ASSERT_EQ(tptk_purge(&k, 5000, 100), 5);  /* every event is before 5000 ms */
  ASSERT_EQ(count_events(), 0);
  ASSERT_EQ(tptk_checkpoint_restart(&k), 0);
  close_track();
}

int main(void) {
  RUN(batches_share_one_commit_and_a_bad_one_undoes_only_itself);
  RUN(a_rollback_of_the_whole_transaction_loses_the_batches_kept);
  RUN(a_failed_first_batch_loses_nothing_else);
  RUN(the_purge_and_the_loops_checkpoint_wait_for_the_commit);
  return TEST_SUMMARY();
}
