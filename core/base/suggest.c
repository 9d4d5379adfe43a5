/*
** suggest.c - the closest known name by Levenshtein distance (suggest.h).
*/
#include "base/suggest.h"

#include <stdio.h>
#include <string.h>

#define MAX_WORD 64  /* longer names are never typos worth a suggestion */

static size_t distance(const char *a, size_t na, const char *b, size_t nb) {
  size_t prev[MAX_WORD + 1], cur[MAX_WORD + 1];
  for (size_t j = 0; j <= nb; j++) prev[j] = j;
  for (size_t i = 1; i <= na; i++) {
    cur[0] = i;
    for (size_t j = 1; j <= nb; j++) {
      size_t best = prev[j] + 1, ins = cur[j - 1] + 1, sub = prev[j - 1] + (a[i - 1] != b[j - 1]);
      if (ins < best) best = ins;
      if (sub < best) best = sub;
      cur[j] = best;
    }
    memcpy(prev, cur, (nb + 1) * sizeof *prev);
  }
  return prev[nb];
}

const char *tp_suggest(const char *word, const char *const *known) {
  size_t n = strlen(word);
  if (n > MAX_WORD) return NULL;
  size_t third = n / 3, allowed = third < 1 ? 1 : third > 3 ? 3 : third;
  const char *best = NULL;
  size_t best_d = allowed + 1;
  for (const char *const *k = known; *k; k++) {
    size_t kn = strlen(*k);
    if (kn > MAX_WORD) continue;
    size_t d = distance(word, n, *k, kn);
    if (d < best_d) {
      best = *k;
      best_d = d;
    }
  }
  return best;
}

const char *tp_suggest_hint(const char *word, const char *const *known, char *out, size_t cap) {
  const char *best = tp_suggest(word, known);
  if (best) snprintf(out, cap, " (did you mean '%s'?)", best);
  else if (cap) out[0] = '\0';
  return out;
}
