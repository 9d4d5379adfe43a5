/*
** tp_test.h - a minimal unit test harness in the style of libuv's ASSERT_*.
**
** TEST(name) defines a test; RUN(name) runs it; a failed assertion prints file,
** line and both values, marks the test failed and returns from it. main()
** ends with TEST_SUMMARY(), which prints "N passed, N failed".
*/
#ifndef TP_TEST_H
#define TP_TEST_H

#include <stdio.h>
#include <string.h>

static int tp_test_passed, tp_test_failed, tp_test_ok;

#define TEST(name) static void name(void)
#define RUN(name)                                        \
  do {                                                   \
    tp_test_ok = 1;                                      \
    name();                                              \
    if (tp_test_ok) tp_test_passed++;                    \
    else tp_test_failed++;                               \
    printf("%s %s\n", tp_test_ok ? "ok  " : "FAIL", #name); \
  } while (0)

#define TP_FAIL_(fmt, ...)                                                \
  do {                                                                    \
    fprintf(stderr, "%s:%d: " fmt "\n", __FILE__, __LINE__, __VA_ARGS__); \
    tp_test_ok = 0;                                                       \
    return;                                                               \
  } while (0)

#define ASSERT_TRUE(c) \
  do { if (!(c)) TP_FAIL_("expected true: %s", #c); } while (0)
#define ASSERT_EQ(a, b)                                                                 \
  do {                                                                                  \
    long long a_ = (long long)(a), b_ = (long long)(b);                                 \
    if (a_ != b_) TP_FAIL_("%s == %s: %lld != %lld", #a, #b, a_, b_);                   \
  } while (0)
#define ASSERT_STR(a, b)                                                                \
  do {                                                                                  \
    const char *a_ = (a), *b_ = (b);                                                    \
    if (!a_ || !b_ || strcmp(a_, b_) != 0)                                              \
      TP_FAIL_("%s == %s: \"%s\" != \"%s\"", #a, #b, a_ ? a_ : "(null)", b_ ? b_ : "(null)"); \
  } while (0)
#define ASSERT_CONTAINS(hay, needle)                                                    \
  do {                                                                                  \
    const char *h_ = (hay), *n_ = (needle);                                             \
    if (!h_ || !strstr(h_, n_)) TP_FAIL_("\"%s\" does not contain \"%s\"", h_ ? h_ : "(null)", n_); \
  } while (0)

#define TEST_SUMMARY()                                           \
  (printf("%d passed, %d failed\n", tp_test_passed, tp_test_failed), \
   tp_test_failed ? 1 : 0)

#endif
