/*
** test_tzone.c - local time in a named zone (tzone.h): the kept hours give
** what glibc gives, across daylight saving, half-hour and 45-minute zones, at
** a change of offset and around it, and ask for no file once an hour is kept.
*/
#include "base/tzone.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tp_test.h"

/* glibc's answer, TZ switched for this one conversion */
static void reference(const char *zone, int64_t epoch, struct tm *out) {
  const char *old = getenv("TZ");
  char saved[128] = "";
  if (old) snprintf(saved, sizeof saved, "%s", old);
  setenv("TZ", zone, 1);
  tzset();
  time_t t = (time_t)epoch;
  localtime_r(&t, out);
  if (old) setenv("TZ", saved, 1);
  else unsetenv("TZ");
  tzset();
}

static int same(const char *zone, int64_t epoch) {
  struct tm want, got;
  long off;
  reference(zone, epoch, &want);
  tp_tz_local(zone, epoch, &got, &off);
  int ok = want.tm_year == got.tm_year && want.tm_mon == got.tm_mon && want.tm_mday == got.tm_mday &&
           want.tm_hour == got.tm_hour && want.tm_min == got.tm_min && want.tm_sec == got.tm_sec &&
           want.tm_wday == got.tm_wday && want.tm_yday == got.tm_yday &&
           want.tm_isdst == got.tm_isdst && want.tm_gmtoff == off && got.tm_gmtoff == off;
  if (!ok)
    fprintf(stderr, "%s at %lld: want %04d-%02d-%02d %02d:%02d:%02d %+ld (dst %d), got "
            "%04d-%02d-%02d %02d:%02d:%02d %+ld (dst %d)\n", zone, (long long)epoch,
            want.tm_year + 1900, want.tm_mon + 1, want.tm_mday, want.tm_hour, want.tm_min,
            want.tm_sec, (long)want.tm_gmtoff, want.tm_isdst, got.tm_year + 1900, got.tm_mon + 1,
            got.tm_mday, got.tm_hour, got.tm_min, got.tm_sec, off, got.tm_isdst);
  return ok;
}

static const char *const zones[] = {"Asia/Shanghai", "UTC", "America/New_York", "Europe/London",
                                    "Australia/Lord_Howe", "Asia/Kolkata", "Asia/Kathmandu",
                                    "Pacific/Chatham", "America/St_Johns", "Africa/Casablanca"};
#define NZONES (sizeof zones / sizeof *zones)

/* Every second of the hour of a change of offset and the hours beside it,
** asked twice (the second time from the kept hours), in each zone. */
TEST(the_seconds_around_a_change_of_offset) {
  /* 2026-03-08 07:00 UTC: New York springs forward; 2026-10-03 15:30 UTC:
  ** Lord Howe's half hour forward, inside an hour; 2026-04-04 14:00 UTC:
  ** Chatham falls back from +13:45 */
  static const int64_t changes[] = {1772953200, 1791041400, 1775311200};
  for (size_t c = 0; c < sizeof changes / sizeof *changes; c++)
    for (size_t z = 0; z < NZONES; z++)
      for (int pass = 0; pass < 2; pass++)
        for (int64_t t = changes[c] - 3600 - (changes[c] % 3600); t < changes[c] + 7200; t += 7)
          ASSERT_TRUE(same(zones[z], t));
}

/* Instants spread over 1900-2100, before 1970 included, in every zone. */
TEST(instants_over_two_centuries) {
  uint64_t x = 88172645463325252u;
  for (int i = 0; i < 20000; i++) {
    x ^= x << 13, x ^= x >> 7, x ^= x << 17;
    int64_t t = (int64_t)(x % 6311390400u) - 2208988800;  /* 1900-01-01 .. 2100-01-01 */
    ASSERT_TRUE(same(zones[(size_t)i % NZONES], t));
    ASSERT_TRUE(same(zones[(size_t)i % NZONES], t + 1));  /* the same hour: kept now */
  }
}

/* A kept hour asks for no file: with TZ's zone files out of reach (a zone
** name glibc cannot load falls back to UTC), a kept Shanghai hour still says
** +8. */
TEST(a_kept_hour_reads_no_file) {
  struct tm tm;
  long off;
  int64_t t = 1796601600;  /* 2026-12-07 00:00 UTC */
  tp_tz_local("Asia/Shanghai", t, &tm, &off);
  ASSERT_EQ(off, 8 * 3600);
  setenv("TZDIR", "/nonexistent", 1);
  tp_tz_local("Asia/Shanghai", t + 1800, &tm, &off);
  ASSERT_EQ(off, 8 * 3600);
  ASSERT_EQ(tm.tm_hour, 8);
  ASSERT_EQ(tm.tm_min, 30);
  tp_tz_local("Asia/Shanghai", t + 86400, &tm, &off);  /* not kept: read, and not found */
  ASSERT_EQ(off, 0);
  unsetenv("TZDIR");
}

int main(void) {
  RUN(the_seconds_around_a_change_of_offset);
  RUN(instants_over_two_centuries);
  RUN(a_kept_hour_reads_no_file);
  return TEST_SUMMARY();
}
