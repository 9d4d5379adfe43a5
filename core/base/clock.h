/*
** clock.h - the host's clock.
**
** Lua never reads the system clock: it sees tp_clock_wall_ms() through now().
** The scheduler's test clock (a later seam) replaces this source per tenant.
*/
#ifndef TP_CLOCK_H
#define TP_CLOCK_H

#include <stddef.h>
#include <stdint.h>

int64_t tp_clock_wall_ms(void);       /* UTC epoch milliseconds */
uint64_t tp_clock_mono_ns(void);      /* monotonic, for durations */
/* 2026-11-23T11:08:32.123Z */
void tp_clock_format_iso(int64_t epoch_ms, char *out, size_t cap);

#endif
