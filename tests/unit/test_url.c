/*
** test_url.c - percent-decoding and the one query-string parser (url.h),
** which req.query, the host's query check and the admin endpoints share.
*/
#include "base/url.h"

#include <stdio.h>
#include <string.h>

#include "tp_test.h"

typedef struct {
  char seen[512];
} pairs;

static int collect(void *ud, const char *k, size_t kn, const char *v, size_t vn) {
  pairs *p = ud;
  size_t n = strlen(p->seen);
  snprintf(p->seen + n, sizeof p->seen - n, "[%.*s=%.*s]", (int)kn, k, (int)vn, v);
  return 0;
}

static const char *each(const char *q, int *rc) {
  static pairs p;
  p.seen[0] = '\0';
  *rc = tp_query_each(q, strlen(q), collect, &p);
  return p.seen;
}

TEST(pairs_are_decoded_in_order) {
  int rc;
  ASSERT_STR(each("a=1&b=two+words&c=%E4%B8%8A%E6%B5%B7", &rc), "[a=1][b=two words][c=上海]");
  ASSERT_EQ(rc, 0);
  ASSERT_STR(each("flag&&x=&=v", &rc), "[flag=][x=][=v]");  /* empty parts are skipped */
  ASSERT_STR(each("", &rc), "");
  ASSERT_STR(each("k%3Dv=a%26b", &rc), "[k=v=a&b]");        /* escaped = and & stay in */
}

TEST(bad_encoding_stops_the_walk) {
  int rc;
  ASSERT_STR(each("a=1&b=%zz&c=3", &rc), "[a=1]");
  ASSERT_EQ(rc, -1);
  each("a=%00", &rc);          /* an encoded NUL */
  ASSERT_EQ(rc, -1);
  each("a=%C3", &rc);          /* not UTF-8 */
  ASSERT_EQ(rc, -1);
  each("a=%4", &rc);           /* cut short */
  ASSERT_EQ(rc, -1);
  char long_part[TP_URL_MAX_PART + 8];
  memset(long_part, 'x', sizeof long_part - 1);
  long_part[sizeof long_part - 1] = '\0';
  ASSERT_EQ(tp_query_each(long_part, strlen(long_part), NULL, NULL), -1);
  ASSERT_EQ(tp_query_each("a=1&b=2", 7, NULL, NULL), 0);
}

TEST(get_finds_the_last_value_of_a_key) {
  char out[8];
  const char *q = "limit=5&after=10&limit=7&kind=ro%75te";
  ASSERT_EQ(tp_query_get(q, strlen(q), "limit", out, sizeof out), 1);
  ASSERT_STR(out, "7");
  ASSERT_EQ(tp_query_get(q, strlen(q), "kind", out, sizeof out), 1);
  ASSERT_STR(out, "route");
  ASSERT_EQ(tp_query_get(q, strlen(q), "lim", out, sizeof out), 0);   /* a prefix is not the key */
  ASSERT_STR(out, "");
  ASSERT_EQ(tp_query_get("plugin=abcdefghij", 17, "plugin", out, sizeof out), -1);  /* longer than out */
  ASSERT_EQ(tp_query_get("x=%zz&plugin=a", 14, "plugin", out, sizeof out), -1);
}

int main(void) {
  RUN(pairs_are_decoded_in_order);
  RUN(bad_encoding_stops_the_walk);
  RUN(get_finds_the_last_value_of_a_key);
  return TEST_SUMMARY();
}
