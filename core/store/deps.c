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

bool tpdep_has(const tpdep_set *s, const char *owner) {
  if (!owner) owner = tpdep_host;
  if (s->all) return true;
  for (int i = 0; i < s->n; i++)
    if (strcmp(s->owner[i], owner) == 0) return true;
  return false;
}

void tpdep_add(tpdep_set *s, const char *owner) {
  if (!owner) owner = tpdep_host;
  if (s->all || tpdep_has(s, owner)) return;
  size_t len = strlen(owner);
  if (s->n == TPDEP_MAX || len >= TPDEP_NAME) {
    s->all = true;
    return;
  }
  memcpy(s->owner[s->n++], owner, len + 1);
}

bool tpdep_meets(const tpdep_set *a, const tpdep_set *b) {
  if (a->all) return b->all || b->n > 0;
  for (int i = 0; i < a->n; i++)
    if (tpdep_has(b, a->owner[i])) return true;
  return false;
}
