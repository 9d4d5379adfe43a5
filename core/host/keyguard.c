/*
** keyguard.c - failed admin key attempts per address, see keyguard.h.
*/
#include "host/keyguard.h"

#include <string.h>

static uint64_t hash(const char *s) {
  uint64_t h = 0xcbf29ce484222325ull;
  for (; *s; s++) h = (h ^ (unsigned char)*s) * 0x100000001b3ull;
  return h;
}

/* The entry of peer, or NULL; with make, a free or the least recently used
** entry of its neighbourhood becomes it. */
static tpkg_entry *find(tpkg_table *t, const char *peer, bool make) {
  uint64_t h = hash(peer);
  tpkg_entry *victim = NULL;
  for (int i = 0; i < 8; i++) {  /* a small neighbourhood: a lookup stays cheap */
    tpkg_entry *e = &t->slots[(h + (uint64_t)i) % TPKG_SLOTS];
    if (e->peer[0] && strcmp(e->peer, peer) == 0) return e;
    /* room: an empty entry, else the one used longest ago */
    if (!victim || (victim->peer[0] && (!e->peer[0] || e->last_ms < victim->last_ms))) victim = e;
  }
  if (!make) return NULL;
  memset(victim, 0, sizeof *victim);
  size_t n = strlen(peer);
  if (n >= sizeof victim->peer) n = sizeof victim->peer - 1;
  memcpy(victim->peer, peer, n);
  return victim;
}

/* An unknown address ("" or NULL) is one address of its own. */
static const char *name_of(const char *peer) { return peer && peer[0] ? peer : "-"; }

int64_t tpkg_locked(const tpkg_table *t, const char *peer, int64_t now_ms) {
  tpkg_entry *e = find((tpkg_table *)t, name_of(peer), false);
  if (!e || e->locked_until_ms <= now_ms) return 0;
  return (e->locked_until_ms - now_ms + 999) / 1000;
}

bool tpkg_failed(tpkg_table *t, const char *peer, int64_t now_ms, int64_t max) {
  tpkg_entry *e = find(t, name_of(peer), true);
  e->last_ms = now_ms;
  if (now_ms - e->window_start_ms > TPKG_WINDOW_MS) {
    e->window_start_ms = now_ms;
    e->failures = 0;
  }
  if (++e->failures < max) return false;
  int64_t lock = TPKG_LOCK_MS;
  for (int i = 0; i < e->locks && lock < TPKG_LOCK_MAX_MS; i++) lock *= 2;
  if (lock > TPKG_LOCK_MAX_MS) lock = TPKG_LOCK_MAX_MS;
  e->locked_until_ms = now_ms + lock;
  e->locks++;
  e->failures = 0;
  e->window_start_ms = now_ms;
  return true;
}

void tpkg_succeeded(tpkg_table *t, const char *peer) {
  tpkg_entry *e = find(t, name_of(peer), false);
  if (e) memset(e, 0, sizeof *e);
}
