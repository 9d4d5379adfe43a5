/*
** tzone.c - local time in a named zone.
**
** glibc converts only in the process-wide TZ, so each conversion sets TZ,
** converts and restores it. That is safe because the host is single-threaded,
** and cheap enough because plugins ask for local time rarely (deciding "today").
*/
#include "base/tzone.h"

#include <stdlib.h>
#include <string.h>
#include <unistd.h>

bool tp_tz_valid(const char *zone) {
  if (strcmp(zone, "UTC") == 0) return true;
  if (!zone[0] || zone[0] == '/' || strstr(zone, "..") || strlen(zone) > 60) return false;
  char path[96] = "/usr/share/zoneinfo/";
  strcat(path, zone);
  return access(path, R_OK) == 0;
}

void tp_tz_local(const char *zone, int64_t epoch, struct tm *out, long *utc_offset) {
  const char *old = getenv("TZ");
  char *saved = old ? strdup(old) : NULL;
  setenv("TZ", zone, 1);
  tzset();
  time_t t = (time_t)epoch;
  localtime_r(&t, out);
  *utc_offset = out->tm_gmtoff;
  if (saved) {
    setenv("TZ", saved, 1);
    free(saved);
  } else {
    unsetenv("TZ");
  }
  tzset();
}
