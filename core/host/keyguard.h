/*
** keyguard.h - slows down guessing of admin keys.
**
** Every wrong or missing X-Api-Key is counted against the client's address.
** limits.admin_key_failures (default TPKG_FAILURES) of them within
** TPKG_WINDOW_MS lock the address out of every
** admin route of every tenant (and the host's own) for TPKG_LOCK_MS, doubled
** for each lock that follows (up to TPKG_LOCK_MAX_MS); while locked even the
** right key is refused, so a guesser learns nothing, and the answer is 429
** too_many_attempts with Retry-After. A right key clears the address's count.
** The table is in memory, a fixed number of addresses (the oldest entry makes
** room): a restart or a flood of addresses forgets, never refuses wrongly.
*/
#ifndef TP_KEYGUARD_H
#define TP_KEYGUARD_H

#include <stdbool.h>
#include <stdint.h>

#define TPKG_SLOTS 1024
#define TPKG_FAILURES 10
#define TPKG_WINDOW_MS (60 * 1000)
#define TPKG_LOCK_MS (60 * 1000)
#define TPKG_LOCK_MAX_MS (60 * 60 * 1000)

typedef struct tpkg_entry {
  char peer[48];
  int failures;              /* within the window */
  int locks;                 /* locks in a row (doubles the next) */
  int64_t window_start_ms;
  int64_t locked_until_ms;
  int64_t last_ms;
} tpkg_entry;

typedef struct tpkg_table {
  tpkg_entry slots[TPKG_SLOTS];
} tpkg_table;

/* Seconds the address stays locked at now_ms (0: not locked). */
int64_t tpkg_locked(const tpkg_table *t, const char *peer, int64_t now_ms);
/* Counts a failed attempt; returns true when it is the max-th in the window,
** which locks the address now. */
bool tpkg_failed(tpkg_table *t, const char *peer, int64_t now_ms, int64_t max);
/* A right key: the address's count and lock streak start again. */
void tpkg_succeeded(tpkg_table *t, const char *peer);

#endif
