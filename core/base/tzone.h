/*
** tzone.h - a brand's time zone.
**
** Instants are UTC epochs everywhere; "10:00" and "today" in a campaign are
** evaluated in the tenant's zone (Asia/Shanghai unless configured), using the
** system's tz database (Debian: tzdata).
*/
#ifndef TP_TZONE_H
#define TP_TZONE_H

#include <stdbool.h>
#include <stdint.h>
#include <time.h>

bool tp_tz_valid(const char *zone);
/* Breaks epoch (seconds) down in zone; *utc_offset gets seconds east of UTC. */
void tp_tz_local(const char *zone, int64_t epoch, struct tm *out, long *utc_offset);

#endif
