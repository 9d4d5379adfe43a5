/*
** test_ratelimit.c - the brands' token buckets (ratelimit.h): a burst then a
** refusal that says how long to wait, refill, buckets apart per member, brand
** and class, a refusal that takes nothing, a table flooded with identities,
** and the config's rate_limits with errors that name their path.
*/
#include "base/ratelimit.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "config/config.h"
#include "tp_test.h"

static tprl_who user_at(const char *user, const char *address) {
  tprl_who w = {{NULL}, {0}};
  w.id[TPRL_USER] = user;
  w.len[TPRL_USER] = user ? strlen(user) : 0;
  w.id[TPRL_ADDRESS] = address;
  w.len[TPRL_ADDRESS] = address ? strlen(address) : 0;
  return w;
}

/* buy: 2 a second, bursts of 3, per member; 5 a second per address */
static tprl_limits buy_limits(void);

TEST(a_device_bucket_counts_every_account_that_sends_the_device) {
  tprl_table *t = tprl_new(1024, 9);
  tprl_limits l;
  memset(&l, 0, sizeof l);
  l.rate[TPRL_BUY][TPRL_DEVICE] = (tprl_rate){1000000, 1000000};  /* 1/s, bursts of 2 */
  l.any = true;
  char id[16];
  tprl_kind refused = TPRL_KEY;
  for (int i = 0; i < 3; i++) {
    snprintf(id, sizeof id, "acct-%d", i);
    tprl_who w = user_at(id, "10.0.0.1");
    w.id[TPRL_DEVICE] = "farm-phone-1";
    w.len[TPRL_DEVICE] = strlen("farm-phone-1");
    ASSERT_EQ(tprl_take(t, &l, "shop", TPRL_BUY, &w, 0, &refused), i < 2 ? 0 : 1000000);
  }
  ASSERT_EQ(refused, TPRL_DEVICE);
  tprl_who none = user_at("acct-9", "10.0.0.1");  /* no device sent: no device bucket */
  for (int i = 0; i < 5; i++) ASSERT_EQ(tprl_take(t, &l, "shop", TPRL_BUY, &none, 0, NULL), 0);
  tprl_free(t);
}

static tprl_limits buy_limits(void) {
  tprl_limits l;
  memset(&l, 0, sizeof l);
  l.rate[TPRL_BUY][TPRL_USER] = (tprl_rate){500000, 2 * 500000};
  l.rate[TPRL_BUY][TPRL_ADDRESS] = (tprl_rate){200000, 4 * 200000};
  l.any = true;
  return l;
}

TEST(a_burst_passes_then_the_next_waits_for_its_token) {
  tprl_table *t = tprl_new(1024, 42);
  tprl_limits l = buy_limits();
  tprl_who a = user_at("m1", "10.0.0.1");
  int64_t now = 5000000;
  tprl_kind refused = TPRL_KEY;
  for (int i = 0; i < 3; i++) ASSERT_EQ(tprl_take(t, &l, "shop", TPRL_BUY, &a, now, &refused), 0);
  ASSERT_EQ(tprl_take(t, &l, "shop", TPRL_BUY, &a, now, &refused), 500000);  /* one interval */
  ASSERT_EQ(refused, TPRL_USER);
  ASSERT_EQ(tprl_take(t, &l, "shop", TPRL_BUY, &a, now + 200000, &refused), 300000);
  ASSERT_EQ(tprl_take(t, &l, "shop", TPRL_BUY, &a, now + 500000, &refused), 0);  /* refilled one */
  ASSERT_EQ(tprl_take(t, &l, "shop", TPRL_BUY, &a, now + 500000, &refused), 500000);
  ASSERT_EQ(tprl_take(t, &l, "shop", TPRL_BUY, &a, now + 10000000, &refused), 0);  /* idle: full */
  tprl_free(t);
}

TEST(members_brands_and_classes_have_buckets_of_their_own) {
  tprl_table *t = tprl_new(1024, 42);
  tprl_limits l = buy_limits();
  int64_t now = 1;
  tprl_who m1 = user_at("m1", "10.0.0.1"), m2 = user_at("m2", "10.0.0.2");
  for (int i = 0; i < 3; i++) ASSERT_EQ(tprl_take(t, &l, "shop", TPRL_BUY, &m1, now, NULL), 0);
  ASSERT_TRUE(tprl_take(t, &l, "shop", TPRL_BUY, &m1, now, NULL) > 0);
  ASSERT_EQ(tprl_take(t, &l, "shop", TPRL_BUY, &m2, now, NULL), 0);   /* another member */
  ASSERT_EQ(tprl_take(t, &l, "other", TPRL_BUY, &m1, now, NULL), 0);  /* another brand */
  for (int i = 0; i < 100; i++)  /* a class without limits */
    ASSERT_EQ(tprl_take(t, &l, "shop", TPRL_READ, &m1, now, NULL), 0);
  tprl_who anonymous = user_at(NULL, "10.0.0.3");  /* no user: only the address counts */
  for (int i = 0; i < 5; i++) ASSERT_EQ(tprl_take(t, &l, "shop", TPRL_BUY, &anonymous, now, NULL), 0);
  tprl_kind refused = TPRL_KEY;
  ASSERT_EQ(tprl_take(t, &l, "shop", TPRL_BUY, &anonymous, now, &refused), 200000);
  ASSERT_EQ(refused, TPRL_ADDRESS);
  tprl_free(t);
}

TEST(a_refused_request_takes_no_token_from_the_other_buckets) {
  tprl_table *t = tprl_new(1024, 7);
  tprl_limits l = buy_limits();
  tprl_who scalper = user_at("m1", "10.0.0.9"), neighbour = user_at("m2", "10.0.0.9");
  for (int i = 0; i < 3; i++) ASSERT_EQ(tprl_take(t, &l, "shop", TPRL_BUY, &scalper, 0, NULL), 0);
  for (int i = 0; i < 50; i++) ASSERT_TRUE(tprl_take(t, &l, "shop", TPRL_BUY, &scalper, 0, NULL) > 0);
  /* the address gave 3 of its 5 tokens, not 53 */
  ASSERT_EQ(tprl_take(t, &l, "shop", TPRL_BUY, &neighbour, 0, NULL), 0);
  ASSERT_EQ(tprl_take(t, &l, "shop", TPRL_BUY, &neighbour, 0, NULL), 0);
  ASSERT_TRUE(tprl_take(t, &l, "shop", TPRL_BUY, &neighbour, 0, NULL) > 0);
  tprl_free(t);
}

TEST(a_table_flooded_with_identities_forgets_and_never_refuses_wrongly) {
  tprl_table *t = tprl_new(TPRL_SLOTS, 3);
  tprl_limits l;
  memset(&l, 0, sizeof l);
  l.rate[TPRL_BUY][TPRL_USER] = (tprl_rate){60000000, 0};  /* one a minute, no burst */
  l.any = true;
  char id[32];
  for (int i = 0; i < 8 * TPRL_SLOTS; i++) {  /* each member's first buy passes */
    snprintf(id, sizeof id, "member-%d", i);
    tprl_who w = user_at(id, NULL);
    ASSERT_EQ(tprl_take(t, &l, "shop", TPRL_BUY, &w, i, NULL), 0);
  }
  int remembered = 0;  /* the newest are still refused their second */
  for (int i = 8 * TPRL_SLOTS - 100; i < 8 * TPRL_SLOTS; i++) {
    snprintf(id, sizeof id, "member-%d", i);
    tprl_who w = user_at(id, NULL);
    remembered += tprl_take(t, &l, "shop", TPRL_BUY, &w, 8 * TPRL_SLOTS, NULL) > 0;
  }
  ASSERT_TRUE(remembered >= 95);
  tprl_free(t);
  ASSERT_TRUE(tprl_new(1000, 0) == NULL);  /* not a power of two */
}

static tpc_config cfg;
static char err[1024];

#define TENANT "{ id = 'leaf', token_secret = 'sixteen-bytes-ok!'"

static int load(const char *text) {
  return tpc_load_string(text, "=test.conf", "/etc/tp", &cfg, err, sizeof err);
}

TEST(the_config_sets_rates_per_class_and_caller) {
  ASSERT_EQ(load("return { tenants = { " TENANT ", rate_limits = {"
                 " buy = { user = { per_second = 2, burst = 5 }, address = { per_minute = 600 } },"
                 " admin = { key = { per_second = 10 } } } } } }"), 0);
  const tprl_limits *l = &cfg.tenants[0].rate_limits;
  ASSERT_TRUE(l->any);
  ASSERT_EQ(l->rate[TPRL_BUY][TPRL_USER].interval_us, 500000);
  ASSERT_EQ(l->rate[TPRL_BUY][TPRL_USER].tolerance_us, 4 * 500000);
  ASSERT_EQ(l->rate[TPRL_BUY][TPRL_ADDRESS].interval_us, 100000);
  ASSERT_EQ(l->rate[TPRL_BUY][TPRL_ADDRESS].tolerance_us, 599 * 100000);  /* a minute's worth */
  ASSERT_EQ(l->rate[TPRL_ADMIN][TPRL_KEY].interval_us, 100000);
  ASSERT_EQ(l->rate[TPRL_READ][TPRL_ADDRESS].interval_us, 0);
  char text[256];
  tprl_describe(l, text, sizeof text);
  ASSERT_STR(text, "buy.user 1/500000us burst 5, buy.address 1/100000us burst 600, "
                   "admin.key 1/100000us burst 10");
  tpc_free(&cfg);
  ASSERT_EQ(load("return { tenants = { " TENANT " } } }"), 0);
  ASSERT_TRUE(!cfg.tenants[0].rate_limits.any);
  tprl_describe(&cfg.tenants[0].rate_limits, text, sizeof text);
  ASSERT_STR(text, "none");
  tpc_free(&cfg);
}

TEST(config_errors_name_the_path) {
  ASSERT_EQ(load("return { tenants = { " TENANT ", rate_limits = { biy = {} } } } }"), -1);
  ASSERT_CONTAINS(err, "tenants[1].rate_limits.biy: unknown route class (classes: read, write, buy");
  ASSERT_EQ(load("return { tenants = { " TENANT ", rate_limits = { buy = { user = { per_second = 0 } } } } } }"), -1);
  ASSERT_CONTAINS(err, "tenants[1].rate_limits.buy.user.per_second: must be an integer between 1 and");
  ASSERT_EQ(load("return { tenants = { " TENANT ", rate_limits = { buy = { user = { burst = 3 } } } } } }"), -1);
  ASSERT_CONTAINS(err, "rate_limits.buy.user: give one of per_second or per_minute");
  ASSERT_EQ(load("return { tenants = { " TENANT ", rate_limits = { buy = { user = { per_second = 1, per_minute = 1 } } } } } }"), -1);
  ASSERT_CONTAINS(err, "give one of per_second or per_minute");
  ASSERT_EQ(load("return { tenants = { " TENANT ", rate_limits = { buy = { user = { per_hour = 1 } } } } } }"), -1);
  ASSERT_CONTAINS(err, "rate_limits.buy.user: unknown key 'per_hour'");
  ASSERT_EQ(load("return { tenants = { " TENANT ", rate_limits = { buy = { devise = { per_second = 1 } } } } } }"), -1);
  ASSERT_CONTAINS(err, "rate_limits.buy.devise: unknown key (user, address, device, key)");
  ASSERT_EQ(load("return { tenants = { " TENANT ", rate_limits = { buy = { key = { per_second = 1 } } } } } }"), -1);
  ASSERT_CONTAINS(err, "rate_limits.buy.key: only admin routes are limited per API key");
  ASSERT_EQ(load("return { tenants = { " TENANT ", rate_limits = { admin = { user = { per_second = 1 } } } } } }"), -1);
  ASSERT_CONTAINS(err, "rate_limits.admin.user: admin routes have no member");
  ASSERT_EQ(load("return { tenants = { " TENANT ", rate_limits = { admin = { device = { per_second = 1 } } } } } }"), -1);
  ASSERT_CONTAINS(err, "rate_limits.admin.device: admin routes have no member or device");
  ASSERT_EQ(load("return { tenants = { " TENANT ", rate_limits = 5 } } }"), -1);
  ASSERT_CONTAINS(err, "tenants[1].rate_limits: must be a table");
}

int main(void) {
  RUN(a_burst_passes_then_the_next_waits_for_its_token);
  RUN(members_brands_and_classes_have_buckets_of_their_own);
  RUN(a_refused_request_takes_no_token_from_the_other_buckets);
  RUN(a_device_bucket_counts_every_account_that_sends_the_device);
  RUN(a_table_flooded_with_identities_forgets_and_never_refuses_wrongly);
  RUN(the_config_sets_rates_per_class_and_caller);
  RUN(config_errors_name_the_path);
  return TEST_SUMMARY();
}
