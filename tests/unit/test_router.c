/*
** Router: literal and typed segments, 404/405/400, decoding, bad patterns.
*/
#include "net/router.h"
#include "tp_test.h"

static int A, B, C, D, E;
static char err[256];

static tpr_router *sample(void) {
  tpr_router *r = tpr_new();
  tpr_add(r, "GET", "/catalog/products", &A, err, sizeof err);
  tpr_add(r, "GET", "/catalog/products/{id:int}", &B, err, sizeof err);
  tpr_add(r, "POST", "/catalog/products", &C, err, sizeof err);
  tpr_add(r, "GET", "/catalog/products/featured", &D, err, sizeof err);
  tpr_add(r, "GET", "/catalog/skus/{code}/stock", &E, err, sizeof err);
  return r;
}

static tpr_result find(tpr_router *r, const char *m, const char *path, tpr_match *out) {
  return tpr_find(r, m, path, strlen(path), out);
}

static tpr_match m;

TEST(literal_route_matches_its_method) {
  tpr_router *r = sample();
  ASSERT_EQ(find(r, "GET", "/catalog/products", &m), TPR_FOUND);
  ASSERT_TRUE(m.data == &A);
  ASSERT_EQ(find(r, "POST", "/catalog/products", &m), TPR_FOUND);
  ASSERT_TRUE(m.data == &C);
  ASSERT_STR(m.pattern, "/catalog/products");
  tpr_free(r);
}

TEST(int_param_is_parsed) {
  tpr_router *r = sample();
  ASSERT_EQ(find(r, "GET", "/catalog/products/42", &m), TPR_FOUND);
  ASSERT_TRUE(m.data == &B);
  ASSERT_EQ(m.nparams, 1);
  ASSERT_STR(m.params[0].name, "id");
  ASSERT_EQ(m.params[0].type, TPR_INT);
  ASSERT_EQ(m.params[0].ival, 42);
  tpr_free(r);
}

TEST(literal_wins_over_param) {
  tpr_router *r = sample();
  ASSERT_EQ(find(r, "GET", "/catalog/products/featured", &m), TPR_FOUND);
  ASSERT_TRUE(m.data == &D);
  tpr_free(r);
}

TEST(wrong_param_type_is_bad_param_not_404) {
  tpr_router *r = sample();
  ASSERT_EQ(find(r, "GET", "/catalog/products/abc", &m), TPR_BAD_PARAM);
  ASSERT_STR(m.bad_param, "id");
  ASSERT_EQ(find(r, "GET", "/catalog/products/1234567890123456789", &m), TPR_BAD_PARAM);
  tpr_free(r);
}

TEST(string_param_is_percent_decoded) {
  tpr_router *r = sample();
  ASSERT_EQ(find(r, "GET", "/catalog/skus/tea%20001/stock", &m), TPR_FOUND);
  ASSERT_TRUE(m.data == &E);
  ASSERT_STR(m.params[0].value, "tea 001");
  ASSERT_EQ(m.params[0].len, 7);
  ASSERT_EQ(find(r, "GET", "/catalog/skus/%E8%8C%B6/stock", &m), TPR_FOUND);
  ASSERT_STR(m.params[0].value, "\xe8\x8c\xb6");  /* 茶 */
  tpr_free(r);
}

TEST(malformed_encoding_is_bad_param) {
  tpr_router *r = sample();
  ASSERT_EQ(find(r, "GET", "/catalog/skus/%zz/stock", &m), TPR_BAD_PARAM);
  ASSERT_EQ(find(r, "GET", "/catalog/skus/%00/stock", &m), TPR_BAD_PARAM);   /* NUL */
  ASSERT_EQ(find(r, "GET", "/catalog/skus/%ff/stock", &m), TPR_BAD_PARAM);   /* not UTF-8 */
  ASSERT_EQ(find(r, "GET", "/catalog/skus/%4/stock", &m), TPR_BAD_PARAM);    /* truncated */
  tpr_free(r);
}

TEST(other_method_is_405_with_allow) {
  tpr_router *r = sample();
  ASSERT_EQ(find(r, "DELETE", "/catalog/products", &m), TPR_METHOD_NOT_ALLOWED);
  ASSERT_STR(m.allow, "GET, POST");
  tpr_free(r);
}

TEST(unknown_paths_are_404) {
  tpr_router *r = sample();
  ASSERT_EQ(find(r, "GET", "/catalog", &m), TPR_NOT_FOUND);
  ASSERT_EQ(find(r, "GET", "/catalog/products/", &m), TPR_NOT_FOUND);
  ASSERT_EQ(find(r, "GET", "/catalog/skus/x", &m), TPR_NOT_FOUND);
  ASSERT_EQ(find(r, "GET", "", &m), TPR_NOT_FOUND);
  ASSERT_EQ(find(r, "GET", "no-slash", &m), TPR_NOT_FOUND);
  tpr_free(r);
}

TEST(bad_patterns_are_refused_with_a_reason) {
  tpr_router *r = tpr_new();
  ASSERT_EQ(tpr_add(r, "GET", "no-slash", &A, err, sizeof err), -1);
  ASSERT_CONTAINS(err, "must start with '/'");
  ASSERT_EQ(tpr_add(r, "GET", "/a//b", &A, err, sizeof err), -1);
  ASSERT_EQ(tpr_add(r, "GET", "/a/", &A, err, sizeof err), -1);
  ASSERT_EQ(tpr_add(r, "GET", "/a/{id:float}", &A, err, sizeof err), -1);
  ASSERT_EQ(tpr_add(r, "GET", "/a/{Id}", &A, err, sizeof err), -1);
  ASSERT_EQ(tpr_add(r, "GET", "/a/{x}/{x}", &A, err, sizeof err), -1);
  ASSERT_CONTAINS(err, "appears twice");
  ASSERT_EQ(tpr_add(r, "GET", "/a b", &A, err, sizeof err), -1);
  ASSERT_EQ(tpr_add(r, "TRACE", "/a", &A, err, sizeof err), -1);
  ASSERT_EQ(tpr_add(r, "GET", "/a/{id:int}", &A, err, sizeof err), 0);
  ASSERT_EQ(tpr_add(r, "GET", "/a/{id:int}", &B, err, sizeof err), -1);
  ASSERT_CONTAINS(err, "declared twice");
  ASSERT_EQ(tpr_add(r, "POST", "/a/{code}", &B, err, sizeof err), -1);
  ASSERT_CONTAINS(err, "conflicts");
  tpr_free(r);
}

TEST(backtracks_from_a_literal_dead_end) {
  tpr_router *r = tpr_new();
  tpr_add(r, "GET", "/u/me/x", &A, err, sizeof err);
  tpr_add(r, "GET", "/u/{name}/y", &B, err, sizeof err);
  ASSERT_EQ(find(r, "GET", "/u/me/y", &m), TPR_FOUND);
  ASSERT_TRUE(m.data == &B);
  ASSERT_STR(m.params[0].value, "me");
  tpr_free(r);
}

TEST(too_deep_paths_do_not_overflow) {
  tpr_router *r = sample();
  char path[TPR_MAX_PATH + 64] = "";
  for (int i = 0; i < 100; i++) strcat(path, "/a");
  ASSERT_EQ(find(r, "GET", path, &m), TPR_NOT_FOUND);
  tpr_free(r);
}

int main(void) {
  RUN(literal_route_matches_its_method);
  RUN(int_param_is_parsed);
  RUN(literal_wins_over_param);
  RUN(wrong_param_type_is_bad_param_not_404);
  RUN(string_param_is_percent_decoded);
  RUN(malformed_encoding_is_bad_param);
  RUN(other_method_is_405_with_allow);
  RUN(unknown_paths_are_404);
  RUN(bad_patterns_are_refused_with_a_reason);
  RUN(backtracks_from_a_literal_dead_end);
  RUN(too_deep_paths_do_not_overflow);
  return TEST_SUMMARY();
}
