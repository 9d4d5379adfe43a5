/*
** test_keyguard.c - failed admin keys per address (keyguard.h): the lock after
** TPKG_FAILURES in a window, its doubling, a window that expires, a right key,
** and a table full of other addresses.
*/
#include "host/keyguard.h"

#include <stdio.h>
#include <stdlib.h>

#include "tp_test.h"

TEST(ten_failures_in_a_window_lock_for_a_minute_then_two) {
  tpkg_table *t = calloc(1, sizeof *t);
  int64_t now = 1000000;
  for (int i = 1; i < TPKG_FAILURES; i++) ASSERT_TRUE(!tpkg_failed(t, "10.0.0.1", now + i, TPKG_FAILURES));
  ASSERT_EQ(tpkg_locked(t, "10.0.0.1", now + 20), 0);
  ASSERT_TRUE(tpkg_failed(t, "10.0.0.1", now + 20, TPKG_FAILURES));
  ASSERT_EQ(tpkg_locked(t, "10.0.0.1", now + 20), TPKG_LOCK_MS / 1000);
  ASSERT_EQ(tpkg_locked(t, "10.0.0.2", now + 20), 0);         /* another address */
  now += 20 + TPKG_LOCK_MS;
  ASSERT_EQ(tpkg_locked(t, "10.0.0.1", now), 0);              /* served its time */
  for (int i = 1; i < TPKG_FAILURES; i++) tpkg_failed(t, "10.0.0.1", now, TPKG_FAILURES);
  ASSERT_TRUE(tpkg_failed(t, "10.0.0.1", now, TPKG_FAILURES));
  ASSERT_EQ(tpkg_locked(t, "10.0.0.1", now), 2 * TPKG_LOCK_MS / 1000);  /* the next lock doubles */
  free(t);
}

TEST(a_slow_guesser_and_a_right_key_start_again) {
  tpkg_table *t = calloc(1, sizeof *t);
  for (int i = 0; i < 3 * TPKG_FAILURES; i++)  /* one a window and more: never locked */
    ASSERT_TRUE(!tpkg_failed(t, "10.0.0.3", (int64_t)i * (TPKG_WINDOW_MS / 5 + 1), TPKG_FAILURES));
  for (int i = 1; i < TPKG_FAILURES; i++) tpkg_failed(t, "10.0.0.4", 5, TPKG_FAILURES);
  tpkg_succeeded(t, "10.0.0.4");
  ASSERT_TRUE(!tpkg_failed(t, "10.0.0.4", 6, TPKG_FAILURES));
  ASSERT_TRUE(!tpkg_failed(t, NULL, 7, TPKG_FAILURES));                     /* an unknown address counts too */
  free(t);
}

TEST(a_full_table_forgets_the_oldest_and_never_locks_wrongly) {
  tpkg_table *t = calloc(1, sizeof *t);
  char peer[32];
  for (int i = 0; i < 20 * TPKG_SLOTS; i++) {
    snprintf(peer, sizeof peer, "10.%d.%d.%d", (i >> 16) & 255, (i >> 8) & 255, i & 255);
    ASSERT_TRUE(!tpkg_failed(t, peer, i, TPKG_FAILURES));
  }
  for (int i = 0; i < 20 * TPKG_SLOTS; i++) {
    snprintf(peer, sizeof peer, "10.%d.%d.%d", (i >> 16) & 255, (i >> 8) & 255, i & 255);
    ASSERT_EQ(tpkg_locked(t, peer, 20 * TPKG_SLOTS), 0);
  }
  free(t);
}

int main(void) {
  RUN(ten_failures_in_a_window_lock_for_a_minute_then_two);
  RUN(a_slow_guesser_and_a_right_key_start_again);
  RUN(a_full_table_forgets_the_oldest_and_never_locks_wrongly);
  return TEST_SUMMARY();
}
