/*
** tzone.c - local time in a named zone.
**
** glibc converts only in the process-wide TZ: a conversion sets TZ, calls
** tzset, which reads the zone's file again (two opens, four stats, the reads
** and the closes), converts, and sets TZ back, which reads /etc/localtime
** again. Plugins ask for local time on hot paths (a coupon claim's "today",
** a flash sale's daily slots, points, analytics' local day): a coupon claim
** took 74 us of CPU with it and 48 us without (tests/bench/README.md).
**
** So each conversion's zone and UTC hour are kept with the hour's offset, if
** the offset is the same at the hour's first and last second: no zone changes
** its offset and back within an hour. Another instant of that hour is then
** broken down by gmtime_r of epoch + offset, which is what localtime_r does
** with a known offset, with no TZ and no file. An hour with a change inside
** is converted the slow way every time. The slow way stays for a miss: it is
** once per zone and hour asked.
**
** Only the loop thread converts (tp.localtime, campaigns' "today"): setenv is
** not safe beside other threads' getenv, and the kept hours are not locked.
*/
#include "base/tzone.h"

#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define HOUR 3600
#define KEPT 64  /* zone-hours kept, by a hash of both */

typedef struct {
  char zone[64];  /* "": nothing kept here */
  int64_t hour;   /* epoch / HOUR, rounded down */
  long offset;    /* seconds east of UTC, the whole hour */
  int isdst;
} kept_hour;

static kept_hour kept[KEPT];

bool tp_tz_valid(const char *zone) {
  if (strcmp(zone, "UTC") == 0) return true;
  if (!zone[0] || zone[0] == '/' || strstr(zone, "..") || strlen(zone) > 60) return false;
  char path[96] = "/usr/share/zoneinfo/";
  strcat(path, zone);
  return access(path, R_OK) == 0;
}

/* Breaks the n epochs down in zone with one switch of TZ (the slow way). */
static void in_zone(const char *zone, const time_t *epochs, struct tm *out, int n) {
  const char *old = getenv("TZ");
  char *saved = old ? strdup(old) : NULL;
  setenv("TZ", zone, 1);
  tzset();
  for (int i = 0; i < n; i++) localtime_r(&epochs[i], &out[i]);
  if (saved) {
    setenv("TZ", saved, 1);
    free(saved);
  } else {
    unsetenv("TZ");
  }
  tzset();
}

static int64_t hour_of(int64_t epoch) {
  return epoch >= 0 ? epoch / HOUR : -((-epoch + HOUR - 1) / HOUR);
}

static kept_hour *place_of(const char *zone, int64_t hour) {
  uint64_t h = 1469598103934665603u;  /* FNV-1a */
  for (const char *c = zone; *c; c++) h = (h ^ (unsigned char)*c) * 1099511628211u;
  h ^= (uint64_t)hour * 0x9e3779b97f4a7c15u;
  return &kept[(h >> 32) % KEPT];
}

void tp_tz_local(const char *zone, int64_t epoch, struct tm *out, long *utc_offset) {
  int64_t hour = hour_of(epoch);
  kept_hour *k = place_of(zone, hour);
  if (k->hour == hour && k->zone[0] && strcmp(k->zone, zone) == 0) {
    time_t local = (time_t)(epoch + k->offset);
    gmtime_r(&local, out);
    out->tm_gmtoff = k->offset;
    out->tm_isdst = k->isdst;
    out->tm_zone = NULL;  /* the abbreviation is not kept; nothing here reads it */
    *utc_offset = k->offset;
    return;
  }
  time_t t[3] = {(time_t)(hour * HOUR), (time_t)(hour * HOUR + HOUR - 1), (time_t)epoch};
  struct tm tm[3];
  in_zone(zone, t, tm, 3);
  *out = tm[2];
  *utc_offset = tm[2].tm_gmtoff;
  bool steady = tm[0].tm_gmtoff == tm[1].tm_gmtoff && tm[0].tm_isdst == tm[1].tm_isdst;
  if (steady && strlen(zone) < sizeof k->zone) {
    strcpy(k->zone, zone);
    k->hour = hour;
    k->offset = tm[0].tm_gmtoff;
    k->isdst = tm[0].tm_isdst;
  }
}
