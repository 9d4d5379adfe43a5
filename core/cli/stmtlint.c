/*
** stmtlint.c - statements whose text a plugin builds at every call (stmtlint.h),
** found among the source's tokens (luatok.h).
*/
#include "cli/stmtlint.h"

#include <stdbool.h>
#include <string.h>

#include "cli/luatok.h"

static bool is_name(const tplt_toks *ts, int i, const char *name) {
  return i >= 0 && i < ts->n && ts->t[i].kind == 'n' && (!name || strcmp(ts->t[i].text, name) == 0);
}

/* ".." at i (and not "..."). */
static bool is_join(const tplt_toks *ts, int i) {
  return tplt_is_sym(ts, i, '.') && tplt_is_sym(ts, i + 1, '.') && !tplt_is_sym(ts, i + 2, '.');
}

/* A name in capitals (digits and _ aside): a constant by Lua's habit. */
static bool is_capitals(const char *name) {
  bool capital = false;
  for (; *name; name++) {
    if (*name >= 'a' && *name <= 'z') return false;
    capital |= *name >= 'A' && *name <= 'Z';
  }
  return capital;
}

/* At i, a string or a constant's name (a.b.NAME): the token past it, else -1. */
static int constant(const tplt_toks *ts, int i) {
  if (i < ts->n && ts->t[i].kind == 's') return i + 1;
  if (!is_name(ts, i, NULL)) return -1;
  while (tplt_is_sym(ts, i + 1, '.') && is_name(ts, i + 2, NULL)) i += 2;
  return is_capitals(ts->t[i].text) ? i + 1 : -1;
}

/* At i, the call tp.db.exec( (or query, one): the token past "(", else -1. */
static int db_call(const tplt_toks *ts, int i) {
  if (!is_name(ts, i, "tp") || tplt_is_sym(ts, i - 1, '.') || tplt_is_sym(ts, i - 1, ':') ||
      !tplt_is_sym(ts, i + 1, '.') || !is_name(ts, i + 2, "db") || !tplt_is_sym(ts, i + 3, '.') ||
      !tplt_is_sym(ts, i + 5, '('))
    return -1;
  return is_name(ts, i + 4, "exec") || is_name(ts, i + 4, "query") || is_name(ts, i + 4, "one") ? i + 6
                                                                                                 : -1;
}

/* At i, the call's first argument: whether it joins only constants. */
static bool joins_constants(const tplt_toks *ts, int i) {
  for (int joins = 0;; joins++, i += 2) {
    if ((i = constant(ts, i)) < 0) return false;
    if (!is_join(ts, i)) return joins > 0 && (tplt_is_sym(ts, i, ',') || tplt_is_sym(ts, i, ')'));
  }
}

int tpst_scan(const char *src, tpst_found_fn found, void *ud) {
  tplt_toks ts = {0};
  tplt_tokenize(src, &ts);
  int count = 0;
  for (int i = 0; i < ts.n; i++) {
    int arg = db_call(&ts, i);
    if (arg < 0 || !joins_constants(&ts, arg)) continue;
    count++;
    if (found) found(ud, ts.t[i].line);
  }
  tplt_free(&ts);
  return count;
}
