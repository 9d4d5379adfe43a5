/*
** Scheduler rows: due order, per-subscriber event order, back-off and dead
** letters, repeats, keys, and that plugins cannot touch the table.
*/
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "store/sched.h"
#include "tp_test.h"

static tps_db db;
static tpq_queue q;
static char err[1024];
static char path[64];
static const tpq_retry_policy policy = {1000, 8000};

static void open_queue(void) {
  snprintf(path, sizeof path, "/tmp/tp_test_sched_%d.db", (int)getpid());
  unlink(path);
  tps_open(&db, path, TPC_SYNC_OFF, err, sizeof err);
  tpq_open(&q, &db, err, sizeof err);
}

static void close_queue(void) {
  tpq_close(&q);
  tps_close(&db);
  char p[80];
  unlink(path);
  snprintf(p, sizeof p, "%s-wal", path);
  unlink(p);
  snprintf(p, sizeof p, "%s-shm", path);
  unlink(p);
}

static int64_t schedule(const char *plugin, const char *name, int64_t due, int64_t every,
                        const char *key) {
  tpq_job spec = {.name = name, .payload = "{\"n\":1}", .payload_len = 7, .due_ms = due,
                      .every_ms = every, .key = key, .max_attempts = 3};
  int64_t id = -1;
  tpq_schedule(&q, plugin, &spec, 0, &id, err, sizeof err);
  return id;
}

/* Takes the next task due at now: its name, or "" if none. */
static const char *next_name(int64_t now, tpq_task *t) {
  static char name[160];
  name[0] = '\0';
  if (tpq_next(&q, now, t) == 1) snprintf(name, sizeof name, "%s/%s", t->plugin, t->name);
  return name;
}

TEST(jobs_run_in_due_order_and_not_before) {
  open_queue();
  schedule("a", "late", 3000, 0, NULL);
  schedule("a", "early", 1000, 0, NULL);
  schedule("b", "middle", 2000, 0, NULL);
  ASSERT_EQ(tpq_next_due(&q), 1000);
  tpq_task t;
  ASSERT_STR(next_name(999, &t), "");
  const char *order[] = {"a/early", "b/middle", "a/late"};
  for (int i = 0; i < 3; i++) {
    ASSERT_STR(next_name(5000, &t), order[i]);
    ASSERT_CONTAINS(tp_buf_cstr(&t.arg), "\"payload\":{\"n\":1}");
    ASSERT_CONTAINS(tp_buf_cstr(&t.arg), "\"attempt\":1");
    ASSERT_EQ(tpq_done(&q, &t, 5000), 0);
    tpq_task_free(&t);
  }
  ASSERT_STR(next_name(5000, &t), "");
  ASSERT_EQ(tpq_next_due(&q), INT64_MAX);
  close_queue();
}

TEST(failures_back_off_then_dead_letter) {
  open_queue();
  int64_t id = schedule("a", "flaky", 0, 0, NULL);
  tpq_task t;
  bool dead;
  int64_t now = 0;
  int64_t waits[] = {1000, 2000};
  for (int i = 0; i < 2; i++) {
    ASSERT_STR(next_name(now, &t), "a/flaky");
    ASSERT_EQ(tpq_failed(&q, &t, "boom", now, policy, &dead), 0);
    ASSERT_TRUE(!dead);
    tpq_task_free(&t);
    ASSERT_EQ(tpq_next_due(&q), now + waits[i]);  /* doubles per attempt */
    now += waits[i];
  }
  ASSERT_STR(next_name(now, &t), "a/flaky");
  ASSERT_CONTAINS(tp_buf_cstr(&t.arg), "\"attempt\":3");
  tpq_failed(&q, &t, "boom for the last time", now, policy, &dead);
  tpq_task_free(&t);
  ASSERT_TRUE(dead);
  ASSERT_EQ(tpq_next_due(&q), INT64_MAX);
  ASSERT_EQ(tpq_count(&q, "job", true), 1);
  tp_buf list;
  tp_buf_init(&list);
  tpq_list(&q, "job", true, 10, &list);
  ASSERT_CONTAINS(tp_buf_cstr(&list), "boom for the last time");
  ASSERT_CONTAINS(tp_buf_cstr(&list), "\"attempts\":3");
  tp_buf_free(&list);
  ASSERT_EQ(tpq_retry(&q, id, 9000), 1);
  ASSERT_EQ(tpq_retry(&q, id, 9000), 0);  /* no longer dead */
  ASSERT_STR(next_name(9000, &t), "a/flaky");
  ASSERT_CONTAINS(tp_buf_cstr(&t.arg), "\"attempt\":1");
  tpq_task_free(&t);
  close_queue();
}

TEST(events_keep_order_per_subscriber_only) {
  open_queue();
  const char *subs[] = {"a", "b"};
  tpq_emit(&q, "src", "e1", "{}", 2, subs, 2, 100, 3, err, sizeof err);
  tpq_emit(&q, "src", "e2", "{}", 2, subs, 2, 100, 3, err, sizeof err);
  tpq_task t;
  bool dead;
  ASSERT_STR(next_name(100, &t), "a/e1");
  tpq_failed(&q, &t, "a is down", 100, policy, &dead);  /* a waits a second */
  tpq_task_free(&t);
  ASSERT_STR(next_name(100, &t), "b/e1");  /* b is not held back by a */
  tpq_done(&q, &t, 100);
  tpq_task_free(&t);
  ASSERT_STR(next_name(100, &t), "b/e2");
  ASSERT_CONTAINS(tp_buf_cstr(&t.arg), "\"source\":\"src\"");
  tpq_done(&q, &t, 100);
  tpq_task_free(&t);
  ASSERT_STR(next_name(100, &t), "");      /* a/e2 must wait behind a/e1 */
  ASSERT_EQ(tpq_next_due(&q), 1100);
  ASSERT_STR(next_name(1100, &t), "a/e1");
  tpq_done(&q, &t, 1100);
  tpq_task_free(&t);
  ASSERT_STR(next_name(1100, &t), "a/e2");
  tpq_task_free(&t);
  close_queue();
}

TEST(repeats_skip_missed_slots_and_keys_replace) {
  open_queue();
  schedule("a", "hourly", 1000, 1000, "tick");
  schedule("a", "hourly", 1500, 1000, "tick");  /* same key: replaces */
  ASSERT_EQ(tpq_count(&q, "job", false), 1);
  tpq_task t;
  ASSERT_STR(next_name(4700, &t), "a/hourly");
  tpq_done(&q, &t, 4700);  /* due 1500, ran at 4700: next slot after now is 5500 */
  tpq_task_free(&t);
  ASSERT_EQ(tpq_next_due(&q), 5500);
  int n;
  ASSERT_EQ(tpq_cancel(&q, "b", 0, "tick", &n, err, sizeof err), 0);
  ASSERT_EQ(n, 0);  /* another plugin's key */
  ASSERT_EQ(tpq_cancel(&q, "a", 0, "tick", &n, err, sizeof err), 0);
  ASSERT_EQ(n, 1);
  ASSERT_EQ(tpq_next_due(&q), INT64_MAX);
  close_queue();
}

TEST(plugins_cannot_touch_the_queue) {
  open_queue();
  tps_set_owner(&db, "a");
  ASSERT_EQ(tps_exec_script(&db, "DELETE FROM _tp_jobs", err, sizeof err), -1);
  int64_t id = schedule("a", "still-allowed", 0, 0, NULL);  /* through the host, as the owner */
  tps_set_owner(&db, NULL);
  ASSERT_TRUE(id > 0);
  ASSERT_EQ(tpq_count(&q, "job", false), 1);
  close_queue();
}

/* The handler's argument is built by the host around the payload as it was
** stored: the same bytes, not re-encoded by SQLite's json(). */
TEST(arguments_carry_the_payload_as_stored) {
  open_queue();
  static const char payload[] = "{\"n\": 1, \"s\": \"\u00fc\", \"big\": 12345678901234567890}";
  tpq_job spec = {.name = "j", .payload = payload, .payload_len = sizeof payload - 1,
                  .due_ms = 2500, .key = "a\"b", .max_attempts = 3};
  int64_t id = -1;
  ASSERT_EQ(tpq_schedule(&q, "p", &spec, 0, &id, err, sizeof err), 0);
  tpq_task t;
  ASSERT_STR(next_name(2500, &t), "p/j");
  char want[512];
  snprintf(want, sizeof want, "{\"id\":%lld,\"name\":\"j\",\"attempt\":1,\"due\":2,\"due_ms\":2500,"
           "\"key\":\"a\\\"b\",\"payload\":%s}", (long long)id, payload);
  ASSERT_STR(tp_buf_cstr(&t.arg), want);
  tpq_done(&q, &t, 2500);
  tpq_task_free(&t);
  spec.key = NULL;
  ASSERT_EQ(tpq_schedule(&q, "p", &spec, 0, &id, err, sizeof err), 0);
  ASSERT_STR(next_name(2500, &t), "p/j");
  ASSERT_CONTAINS(tp_buf_cstr(&t.arg), "\"key\":null,");
  tpq_done(&q, &t, 2500);
  tpq_task_free(&t);
  const char *subs[] = {"s"};
  ASSERT_EQ(tpq_emit(&q, "src", "e.v", payload, sizeof payload - 1, subs, 1, 3999, 3, err,
                     sizeof err), 0);
  ASSERT_STR(next_name(3999, &t), "s/e.v");
  id = t.id;
  snprintf(want, sizeof want, "{\"id\":%lld,\"name\":\"e.v\",\"source\":\"src\",\"attempt\":1,"
           "\"emitted_at\":3,\"emitted_at_ms\":3999,\"data\":%s}", (long long)id, payload);
  ASSERT_STR(tp_buf_cstr(&t.arg), want);
  tpq_task_free(&t);
  close_queue();
}

int main(void) {
  RUN(jobs_run_in_due_order_and_not_before);
  RUN(failures_back_off_then_dead_letter);
  RUN(events_keep_order_per_subscriber_only);
  RUN(repeats_skip_missed_slots_and_keys_replace);
  RUN(plugins_cannot_touch_the_queue);
  RUN(arguments_carry_the_payload_as_stored);
  return TEST_SUMMARY();
}
