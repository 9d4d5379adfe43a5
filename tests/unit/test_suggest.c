/*
** test_suggest.c - "did you mean" (suggest.h), by sdk/tp/suggest.lua's rule.
*/
#include "base/suggest.h"

#include <string.h>

#include "tp_test.h"

static const char *const manifest[] = {"name", "version", "description", "migrations", "routes",
                                       "jobs", "subscribe", "exports", "setup", NULL};

TEST(a_typo_finds_its_name) {
  ASSERT_STR(tp_suggest("rutes", manifest), "routes");
  ASSERT_STR(tp_suggest("verison", manifest), "version");
  ASSERT_STR(tp_suggest("subscibe", manifest), "subscribe");
  ASSERT_STR(tp_suggest("job", manifest), "jobs");
}

TEST(a_stranger_finds_none) {
  ASSERT_TRUE(tp_suggest("handler", manifest) == NULL);
  ASSERT_TRUE(tp_suggest("x", manifest) == NULL);
  ASSERT_TRUE(tp_suggest("", manifest) == NULL);
}

TEST(the_allowance_is_a_third_of_the_word) {
  static const char *const names[] = {"abcdefghi", NULL};
  ASSERT_STR(tp_suggest("abcdefxyz", names), "abcdefghi");       /* 3 edits of 9 */
  ASSERT_TRUE(tp_suggest("abcdefxy", names) == NULL);            /* 3 edits of 8: 2 allowed */
  static const char *const longer[] = {"abcdefghijklmnop", NULL};
  ASSERT_TRUE(tp_suggest("abcdefghijklwxyz", longer) == NULL);   /* never more than 3 */
}

TEST(ties_go_to_the_first_and_the_hint_reads_well) {
  static const char *const names[] = {"cat", "car", NULL};
  ASSERT_STR(tp_suggest("cax", names), "cat");
  char hint[80];
  ASSERT_STR(tp_suggest_hint("rutes", manifest, hint, sizeof hint), " (did you mean 'routes'?)");
  ASSERT_STR(tp_suggest_hint("zzzzzz", manifest, hint, sizeof hint), "");
}

int main(void) {
  RUN(a_typo_finds_its_name);
  RUN(a_stranger_finds_none);
  RUN(the_allowance_is_a_third_of_the_word);
  RUN(ties_go_to_the_first_and_the_hint_reads_well);
  return TEST_SUMMARY();
}
