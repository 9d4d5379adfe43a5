/*
** deps.c - sets of owners, for what an answer rests on (deps.h).
*/
#include "store/deps.h"

#include <string.h>

const char tpdep_host[] = "(host)";  /* no plugin name has parentheses */

void tpdep_clear(tpdep_set *s) {
  s->n = 0;
  s->all = false;
}

static bool host_part(const char *o) { return strncmp(o, "_tp_", 4) == 0; }
static bool host_at_large(const char *o) { return strcmp(o, tpdep_host) == 0; }

/* The same owner, or the host at large and one of its tables. */
static bool same(const char *a, const char *b) {
  return strcmp(a, b) == 0 || (host_at_large(a) && host_part(b)) || (host_at_large(b) && host_part(a));
}

bool tpdep_has(const tpdep_set *s, const char *owner) {
  if (!owner) owner = tpdep_host;
  if (s->all) return true;
  for (int i = 0; i < s->n; i++)
    if (same(s->owner[i], owner)) return true;
  return false;
}

void tpdep_add(tpdep_set *s, const char *owner) {
  if (!owner) owner = tpdep_host;
  if (s->all) return;
  for (int i = 0; i < s->n; i++)
    if (strcmp(s->owner[i], owner) == 0) return;
  size_t len = strlen(owner);
  if (s->n == TPDEP_MAX || len >= TPDEP_NAME) {
    s->all = true;
    return;
  }
  memcpy(s->owner[s->n++], owner, len + 1);
}

void tpdep_merge(tpdep_set *into, const tpdep_set *from) {
  for (int i = 0; i < from->n; i++) tpdep_add(into, from->owner[i]);
  if (from->all) into->all = true;
}

bool tpdep_meets(const tpdep_set *a, const tpdep_set *b) {
  if (a->all) return b->all || b->n > 0;
  for (int i = 0; i < a->n; i++)
    if (tpdep_has(b, a->owner[i])) return true;
  return false;
}
