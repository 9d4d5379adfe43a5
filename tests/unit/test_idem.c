/*
** Idempotency-Keys (store/idem.h): a stored answer is found by the same
** request and refused to another, per user; keys are checked; an answer lives
** TPID_TTL_MS and is swept after; a body over the cap is not stored; a rolled
** back savepoint keeps nothing; a merge moves answers to the survivor; plugins
** cannot touch the table.
*/
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "store/alias.h"
#include "store/idem.h"
#include "tp_test.h"

static tps_db db;
static tpal_table aliases;
static tpid_table idem;
static char err[1024];
static char path[64];

static void open_table(void) {
  snprintf(path, sizeof path, "/tmp/tp_test_idem_%d.db", (int)getpid());
  tps_remove(path);
  tps_open(&db, path, TPC_SYNC_OFF, err, sizeof err);
  tpal_open(&aliases, db.db, err, sizeof err);
  ASSERT_EQ(tpid_open(&idem, &db, err, sizeof err), 0);
}

static void close_table(void) {
  tpid_close(&idem);
  tpal_close(&aliases);
  tps_close(&db);
  tps_remove(path);
}

static void print_of(const char *body, unsigned char out[32]) {
  ASSERT_EQ(tpid_fingerprint("p POST /v1/{tenant}/x", "POST", "/v1/t/x", 7, "", 0, body,
                             strlen(body), out), 0);
}

static int put(const char *scope, const char *key, const char *req, const char *answer,
               int64_t now) {
  unsigned char print[32];
  print_of(req, print);
  return tpid_put(&idem, scope, key, strlen(key), print, 201, answer, strlen(answer), now);
}

/* What (scope, key) finds for request req at now; the body into out. */
static tpid_found find(const char *scope, const char *key, const char *req, int64_t now,
                       char *out, size_t cap) {
  unsigned char print[32];
  print_of(req, print);
  tp_buf body;
  tp_buf_init(&body);
  int status = 0;
  tpid_found f = tpid_find(&idem, scope, key, strlen(key), print, now, &status, &body);
  snprintf(out, cap, "%d %.*s", status, (int)body.len, body.data ? body.data : "");
  tp_buf_free(&body);
  return f;
}

TEST(the_same_request_finds_its_answer_another_is_refused) {
  open_table();
  char got[256];
  ASSERT_EQ(find("ann", "k1", "{}", 1000, got, sizeof got), TPID_MISS);
  ASSERT_EQ(put("ann", "k1", "{}", "{\"id\":7}", 1000), 0);
  ASSERT_EQ(find("ann", "k1", "{}", 2000, got, sizeof got), TPID_HIT);
  ASSERT_STR(got, "201 {\"id\":7}");
  ASSERT_EQ(find("ann", "k1", "{\"qty\":2}", 2000, got, sizeof got), TPID_REUSED);
  ASSERT_EQ(find("bob", "k1", "{}", 2000, got, sizeof got), TPID_MISS);  /* keys are per user */
  ASSERT_EQ(find("", "k1", "{}", 2000, got, sizeof got), TPID_MISS);
  close_table();
}

TEST(fingerprints_separate_their_parts) {
  unsigned char a[32], b[32];
  ASSERT_EQ(tpid_fingerprint("r", "POST", "/a", 2, "b", 1, "", 0, a), 0);
  ASSERT_EQ(tpid_fingerprint("r", "POST", "/ab", 3, "", 0, "", 0, b), 0);
  ASSERT_TRUE(memcmp(a, b, 32) != 0);
  ASSERT_EQ(tpid_fingerprint("r", "POST", "/ab", 3, "", 0, "", 0, a), 0);
  ASSERT_TRUE(memcmp(a, b, 32) == 0);
}

TEST(keys_are_1_to_128_visible_ascii_characters) {
  char k[130];
  memset(k, 'k', sizeof k);
  ASSERT_TRUE(tpid_key_valid(k, 128));
  ASSERT_TRUE(!tpid_key_valid(k, 129));
  ASSERT_TRUE(!tpid_key_valid("", 0));
  ASSERT_TRUE(!tpid_key_valid("a b", 3));
  ASSERT_TRUE(!tpid_key_valid("\xc3\xbc", 2));
  ASSERT_TRUE(tpid_key_valid("buy-0001:~!", 11));
}

TEST(an_answer_expires_and_is_swept) {
  open_table();
  char got[256];
  ASSERT_EQ(put("ann", "old", "{}", "{}", 0), 0);
  ASSERT_EQ(put("ann", "new", "{}", "{}", TPID_TTL_MS), 0);
  ASSERT_EQ(find("ann", "old", "{}", TPID_TTL_MS - 1, got, sizeof got), TPID_HIT);
  ASSERT_EQ(find("ann", "old", "{}", TPID_TTL_MS, got, sizeof got), TPID_MISS);
  /* expired, the key names a new request */
  ASSERT_EQ(put("ann", "old", "{\"x\":1}", "{\"id\":2}", TPID_TTL_MS), 0);
  ASSERT_EQ(find("ann", "old", "{\"x\":1}", TPID_TTL_MS, got, sizeof got), TPID_HIT);
  ASSERT_EQ(put("bob", "gone", "{}", "{}", 1), 0);
  ASSERT_EQ(tpid_sweep(&idem, TPID_TTL_MS + 1, 10), 1);       /* bob's only */
  ASSERT_EQ(tpid_sweep(&idem, TPID_TTL_MS + 1, 10), 0);
  ASSERT_EQ(find("ann", "new", "{}", TPID_TTL_MS + 1, got, sizeof got), TPID_HIT);
  /* the writes sweep by themselves every TPID_SWEEP_EVERY */
  for (int i = 0; i < TPID_SWEEP_EVERY; i++) {
    char key[16];
    snprintf(key, sizeof key, "w%d", i);
    ASSERT_EQ(put("cy", key, "{}", "{}", 3 * TPID_TTL_MS), 0);
  }
  ASSERT_EQ(tpid_sweep(&idem, 3 * TPID_TTL_MS, 10), 0);       /* ann's went in passing */
  close_table();
}

TEST(a_body_over_the_cap_is_not_stored) {
  open_table();
  static char big[TPID_MAX_BODY + 2];
  memset(big, 'x', sizeof big - 1);
  unsigned char print[32];
  print_of("{}", print);
  ASSERT_EQ(tpid_put(&idem, "ann", "big", 3, print, 201, big, TPID_MAX_BODY + 1, 0), -1);
  ASSERT_EQ(tpid_put(&idem, "ann", "fits", 4, print, 201, big, TPID_MAX_BODY, 0), 0);
  char got[64];
  ASSERT_EQ(find("ann", "big", "{}", 0, got, sizeof got), TPID_MISS);
  ASSERT_EQ(find("ann", "fits", "{}", 0, got, sizeof got), TPID_HIT);
  close_table();
}

TEST(a_rolled_back_request_keeps_nothing) {
  open_table();
  char got[64];
  ASSERT_EQ(tps_batch_begin(&db), 0);
  ASSERT_EQ(tps_savepoint(&db), 0);
  ASSERT_EQ(put("ann", "k", "{}", "{}", 0), 0);
  ASSERT_EQ(tps_rollback_to(&db), 0);
  ASSERT_EQ(find("ann", "k", "{}", 0, got, sizeof got), TPID_MISS);
  ASSERT_EQ(tps_savepoint(&db), 0);
  ASSERT_EQ(put("ann", "k", "{}", "{}", 0), 0);
  ASSERT_EQ(tps_release(&db), 0);
  ASSERT_EQ(find("ann", "k", "{}", 0, got, sizeof got), TPID_HIT);  /* seen before the commit */
  ASSERT_EQ(tps_commit(&db, err, sizeof err), 0);
  ASSERT_EQ(find("ann", "k", "{}", 0, got, sizeof got), TPID_HIT);
  close_table();
}

TEST(a_merge_moves_answers_to_the_survivor_and_an_erasure_drops_them) {
  open_table();
  char got[64];
  ASSERT_EQ(put("from", "k1", "{}", "{\"from\":1}", 0), 0);
  ASSERT_EQ(put("from", "k2", "{}", "{\"from\":2}", 0), 0);
  ASSERT_EQ(put("into", "k1", "{}", "{\"into\":1}", 0), 0);
  ASSERT_EQ(tpal_set(&aliases, "from", "into", 0, err, sizeof err), 0);
  ASSERT_EQ(find("into", "k1", "{}", 0, got, sizeof got), TPID_HIT);
  ASSERT_STR(got, "201 {\"into\":1}");                        /* the survivor's stays */
  ASSERT_EQ(find("into", "k2", "{}", 0, got, sizeof got), TPID_HIT);
  ASSERT_STR(got, "201 {\"from\":2}");
  ASSERT_EQ(find("from", "k2", "{}", 0, got, sizeof got), TPID_MISS);
  ASSERT_EQ(find("from", "k1", "{}", 0, got, sizeof got), TPID_MISS);
  ASSERT_EQ(put("eve", "k", "{}", "{}", 0), 0);
  ASSERT_EQ(tpal_set(&aliases, "eve", NULL, 0, err, sizeof err), 0);
  ASSERT_EQ(find("eve", "k", "{}", 0, got, sizeof got), TPID_MISS);
  close_table();
}

TEST(plugins_cannot_touch_the_table) {
  open_table();
  tps_set_owner(&db, "a");
  ASSERT_EQ(tps_exec_script(&db, "DELETE FROM _tp_idempotency", err, sizeof err), -1);
  ASSERT_EQ(tps_exec_script(&db, "SELECT * FROM _tp_idempotency", err, sizeof err), -1);
  ASSERT_EQ(put("ann", "k", "{}", "{}", 0), 0);                /* through the host */
  tps_set_owner(&db, NULL);
  char got[64];
  ASSERT_EQ(find("ann", "k", "{}", 0, got, sizeof got), TPID_HIT);
  close_table();
}

int main(void) {
  RUN(the_same_request_finds_its_answer_another_is_refused);
  RUN(fingerprints_separate_their_parts);
  RUN(keys_are_1_to_128_visible_ascii_characters);
  RUN(an_answer_expires_and_is_swept);
  RUN(a_body_over_the_cap_is_not_stored);
  RUN(a_rolled_back_request_keeps_nothing);
  RUN(a_merge_moves_answers_to_the_survivor_and_an_erasure_drops_them);
  RUN(plugins_cannot_touch_the_table);
  return TEST_SUMMARY();
}
