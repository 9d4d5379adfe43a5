/*
** test_runs.c - recorded runs: documents, redaction, truncation, arming, the
** bound on kept runs, and the instruction statistics.
*/
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "lua/api.h"
#include "net/http.h"
#include "host/runs.h"
#include "tp_test.h"

static char path[64];

static void remove_db(void) {
  char p[96];
  unlink(path);
  snprintf(p, sizeof p, "%s-wal", path);
  unlink(p);
  snprintf(p, sizeof p, "%s-shm", path);
  unlink(p);
}

TEST(counts_get_thousands_separators) {
  char s[32];
  tprun_fmt_count(s, sizeof s, 0);
  ASSERT_STR(s, "0");
  tprun_fmt_count(s, sizeof s, 999);
  ASSERT_STR(s, "999");
  tprun_fmt_count(s, sizeof s, 12345);
  ASSERT_STR(s, "12,345");
  tprun_fmt_count(s, sizeof s, 10000000);
  ASSERT_STR(s, "10,000,000");
  tprun_fmt_count(s, sizeof s, -1234);
  ASSERT_STR(s, "-1,234");
}

TEST(secrets_are_redacted_and_other_headers_kept) {
  ASSERT_TRUE(tprun_redacted("authorization", 13));
  ASSERT_TRUE(tprun_redacted("x-api-key", 9));
  ASSERT_TRUE(tprun_redacted("cookie", 6));
  ASSERT_TRUE(tprun_redacted("proxy-authorization", 19));
  ASSERT_TRUE(!tprun_redacted("content-type", 12));
  ASSERT_TRUE(!tprun_redacted("cookies", 7));
  ASSERT_TRUE(!tprun_redacted("x-api-key2", 10));
}

TEST(a_big_body_becomes_a_marker_with_its_size_and_head) {
  tp_buf b;
  tp_buf_init(&b);
  tprun_add_json_capped(&b, "{\"a\":1}", 7, 100);
  ASSERT_STR(tp_buf_cstr(&b), "{\"a\":1}");
  tp_buf_reset(&b);
  char big[2000];
  memset(big, 'x', sizeof big);
  big[0] = '"';
  big[sizeof big - 1] = '"';
  tprun_add_json_capped(&b, big, sizeof big, 1000);
  ASSERT_CONTAINS(tp_buf_cstr(&b), "{\"truncated\":true,\"bytes\":2000,\"head\":\"\\\"xxx");
  ASSERT_TRUE(b.len < 600);
  tp_buf_reset(&b);
  tprun_add_str_capped(&b, big + 1, 1998, 100);
  ASSERT_CONTAINS(tp_buf_cstr(&b), "xxx... [truncated]\"");
  ASSERT_TRUE(b.len <= 102);
  tp_buf_free(&b);
}

/* A route call with an id parameter, a query and four headers. */
static void route_input(tp_buf *out, const char *body) {
  static tp_route r = {.method = "POST", .path = "/sales/{id:int}/buy", .auth = TP_AUTH_USER};
  static tph_header hs[] = {
      {"content-type", 12, "application/json", 16},
      {"authorization", 13, "Bearer secret-token", 19},
      {"x-api-key", 9, "the-key", 7},
      {"cookie", 6, "session=1", 9},
  };
  tpr_match m;
  memset(&m, 0, sizeof m);
  m.nparams = 1;
  m.params[0] = (tpr_param){.name = "id", .type = TPR_INT, .value = "42", .len = 2, .ival = 42};
  tp_call call = {.request_id = "r1", .method = "POST", .path = "/v1/shop/sales/42/buy",
                  .path_len = 21, .query = "page=2", .query_len = 6, .headers = hs,
                  .nheaders = 4, .body = body, .body_len = strlen(body), .user = "u1",
                  .match = &m};
  tprun_route_input(out, &r, &call, true);
}

TEST(a_route_input_is_what_the_handler_saw_without_secrets) {
  tp_buf b;
  tp_buf_init(&b);
  route_input(&b, "{\"qty\":1}");
  ASSERT_STR(tp_buf_cstr(&b),
             "{\"method\":\"POST\",\"path\":\"/v1/shop/sales/42/buy\",\"route\":"
             "\"/sales/{id:int}/buy\",\"auth\":\"user\",\"params\":{\"id\":42},\"query\":"
             "\"page=2\",\"headers\":{\"content-type\":\"application/json\"},\"user\":\"u1\","
             "\"body\":{\"qty\":1},\"raw_body\":\"{\\\"qty\\\":1}\"}");
  tp_buf_free(&b);
}

static tprun_info info_for(const tp_invocation *inv, const char *reason, bool ok) {
  return (tprun_info){.tenant = "shop", .plugin = "sale", .version = "1.0.0", .generation = 2,
                      .kind = "route", .name = "POST /sales/{id:int}/buy", .request_id = "r1",
                      .reason = reason, .at_ms = 1000, .inv = inv, .ok = ok,
                      .status = ok ? 200 : 500, .code = ok ? NULL : "internal_error",
                      .error = ok ? NULL : "boom\nstack traceback:", .body = "{\"x\":1}",
                      .body_len = 7, .used = 250000, .budget = 1000000, .step = 10000,
                      .mem_peak = 4096, .mem_cap = 65536, .ms = 1.5};
}

TEST(a_document_holds_time_seed_outcome_and_costs) {
  tp_invocation inv = {.now_ms = 1700000000123};
  tpa_seed(&inv, 9007199254740993ull);  /* above 2^53: kept exactly, as a string */
  inv.draws = 3;
  tprun_info info = info_for(&inv, "error", false);
  tp_buf b;
  tp_buf_init(&b);
  tprun_document(&b, &info, "{}", 2);
  const char *doc = tp_buf_cstr(&b);
  ASSERT_CONTAINS(doc, "\"format\":\"tidepool-run/1\",\"tenant\":\"shop\",\"plugin\":\"sale\","
                       "\"version\":\"1.0.0\",\"generation\":2,\"kind\":\"route\"");
  ASSERT_CONTAINS(doc, "\"host\":{\"now_ms\":1700000000123,\"seed\":\"9007199254740993\","
                       "\"random_draws\":3}");
  ASSERT_CONTAINS(doc, "\"outcome\":{\"ok\":false,\"status\":500,\"code\":\"internal_error\","
                       "\"limit\":null,\"error\":\"boom\\nstack traceback:\",\"body\":{\"x\":1}}");
  ASSERT_CONTAINS(doc, "\"instructions\":{\"used\":250000,\"budget\":1000000,\"percent\":25.000,"
                       "\"counted_every\":10000}");
  ASSERT_CONTAINS(doc, "\"memory\":{\"peak_bytes\":4096,\"cap_bytes\":65536}");
  tp_buf_free(&b);
}

TEST(arming_counts_down_and_can_be_limited_to_a_route) {
  tprun_log l;
  memset(&l, 0, sizeof l);
  ASSERT_TRUE(!tprun_arm_take(&l, "sale", "route", "GET /x"));
  ASSERT_EQ(tprun_arm_set(&l, "sale", "POST /buy", 2), 0);
  ASSERT_TRUE(!tprun_arm_take(&l, "sale", "route", "GET /x"));
  ASSERT_TRUE(!tprun_arm_take(&l, "sale", "job", "POST /buy"));
  ASSERT_TRUE(!tprun_arm_take(&l, "other", "route", "POST /buy"));
  ASSERT_TRUE(tprun_arm_take(&l, "sale", "route", "POST /buy"));
  ASSERT_TRUE(tprun_arm_take(&l, "sale", "route", "POST /buy"));
  ASSERT_TRUE(!tprun_arm_take(&l, "sale", "route", "POST /buy"));
  ASSERT_EQ(l.narms, 0);
  ASSERT_EQ(tprun_arm_set(&l, "sale", NULL, 1), 0);
  ASSERT_TRUE(tprun_arm_take(&l, "sale", "job", "expire"));
  ASSERT_EQ(tprun_arm_set(&l, "sale", NULL, 5), 0);
  ASSERT_EQ(tprun_arm_set(&l, "sale", NULL, 0), 0);  /* disarmed */
  ASSERT_TRUE(!tprun_arm_take(&l, "sale", "event", "x"));
  for (int i = 0; i < TPRUN_MAX_ARMS; i++) {
    char name[16];
    snprintf(name, sizeof name, "p%d", i);
    ASSERT_EQ(tprun_arm_set(&l, name, NULL, 1), 0);
  }
  ASSERT_EQ(tprun_arm_set(&l, "one_more", NULL, 1), -1);
}

TEST(the_newest_runs_are_kept_and_listed_newest_first) {
  snprintf(path, sizeof path, "/tmp/tp_test_runs_%d.db", (int)getpid());
  remove_db();
  tps_db db;
  tprun_log l;
  char err[256];
  ASSERT_EQ(tps_open(&db, path, TPC_SYNC_OFF, err, sizeof err), 0);
  ASSERT_EQ(tprun_open(&l, &db, err, sizeof err), 0);
  tp_invocation inv = {.now_ms = 5};
  tpa_seed(&inv, 7);
  int64_t id = 0;
  for (int i = 0; i < TPRUN_KEEP + 30; i++) {
    tprun_info info = info_for(&inv, i % 2 ? "armed" : "error", i % 2);
    if (i % 3 == 0) info.kind = "job";
    ASSERT_EQ(tprun_record(&l, &info, "{\"n\":1}", 7, &id), 0);
  }
  ASSERT_EQ(id, TPRUN_KEEP + 30);
  tp_buf b;
  tp_buf_init(&b);
  ASSERT_EQ(tprun_get(&l, 30, &b), 0);  /* dropped */
  ASSERT_EQ(tprun_get(&l, 31, &b), 1);  /* the oldest kept */
  ASSERT_CONTAINS(tp_buf_cstr(&b), "{\"id\":31,\"format\":\"tidepool-run/1\"");
  tp_buf_reset(&b);
  ASSERT_EQ(tprun_list(&l, NULL, NULL, 2, 0, &b), 0);
  ASSERT_CONTAINS(tp_buf_cstr(&b), "{\"runs\":[{\"id\":230,");
  ASSERT_CONTAINS(tp_buf_cstr(&b), "},{\"id\":229,");
  ASSERT_CONTAINS(tp_buf_cstr(&b), "\"budget_percent\":25.000");
  ASSERT_CONTAINS(tp_buf_cstr(&b), "],\"next\":229}");
  tp_buf_reset(&b);
  ASSERT_EQ(tprun_list(&l, "sale", "job", 1, 229, &b), 0);
  ASSERT_CONTAINS(tp_buf_cstr(&b), "{\"runs\":[{\"id\":226,");  /* i = 225: a job */
  tp_buf_reset(&b);
  ASSERT_EQ(tprun_list(&l, NULL, NULL, 5, 36, &b), 0);  /* the last page: no next */
  ASSERT_CONTAINS(tp_buf_cstr(&b), "{\"id\":31,");
  ASSERT_CONTAINS(tp_buf_cstr(&b), "],\"next\":null}");
  tp_buf_reset(&b);
  ASSERT_EQ(tprun_list(&l, "nobody", NULL, 10, 0, &b), 0);
  ASSERT_STR(tp_buf_cstr(&b), "{\"runs\":[],\"next\":null}");
  tp_buf_free(&b);
  tprun_close(&l);
  tps_close(&db);
  remove_db();
}

TEST(statistics_keep_peaks_per_generation_and_merge) {
  tprun_stats s = {0}, total = {0};
  tprun_stats_note(&s, "sale", 1, "route", "POST /buy", 500, 1000);
  tprun_stats_note(&s, "sale", 1, "route", "POST /buy", 300, 1000);
  tprun_stats_note(&s, "sale", 1, "job", "expire", 40, 1000);
  ASSERT_EQ(s.n, 2);
  ASSERT_EQ(s.items[0].peak, 500);
  ASSERT_EQ(s.items[0].last, 300);
  ASSERT_EQ(s.items[0].calls, 2);
  tprun_stats_note(&s, "sale", 2, "route", "POST /buy", 100, 1000);  /* a reload */
  ASSERT_EQ(s.items[0].peak, 100);
  ASSERT_EQ(s.items[0].calls, 1);
  tprun_stats_merge(&total, &s);
  tprun_stats_merge(&total, &s);
  ASSERT_EQ(total.items[0].calls, 2);
  tp_buf b;
  tp_buf_init(&b);
  tprun_stats_table(&total, &b);
  ASSERT_STR(tp_buf_cstr(&b),
             "instructions per invocation (peak of the tests' calls):\n"
             "  sale job expire       peak 40 instr  4.0 % of 1,000  (2 calls)\n"
             "  sale route POST /buy  peak 100 instr  10.0 % of 1,000  (2 calls)\n");
  tp_buf_reset(&b);
  tprun_stats_metrics(&s, "shop", &b);
  ASSERT_CONTAINS(tp_buf_cstr(&b),
                  "tidepool_instructions_peak{tenant=\"shop\",plugin=\"sale\",kind=\"route\","
                  "name=\"POST /buy\"} 100\n");
  ASSERT_CONTAINS(tp_buf_cstr(&b),
                  "tidepool_instruction_budget{tenant=\"shop\",plugin=\"sale\",kind=\"job\","
                  "name=\"expire\"} 1000\n");
  tp_buf_free(&b);
  tprun_stats_free(&s);
  tprun_stats_free(&total);
}

int main(void) {
  RUN(counts_get_thousands_separators);
  RUN(secrets_are_redacted_and_other_headers_kept);
  RUN(a_big_body_becomes_a_marker_with_its_size_and_head);
  RUN(a_route_input_is_what_the_handler_saw_without_secrets);
  RUN(a_document_holds_time_seed_outcome_and_costs);
  RUN(arming_counts_down_and_can_be_limited_to_a_route);
  RUN(the_newest_runs_are_kept_and_listed_newest_first);
  RUN(statistics_keep_peaks_per_generation_and_merge);
  return TEST_SUMMARY();
}
