/* tally.c - the tally(k) aggregate (tally.h). */
#include "store/tally.h"

#include <stdint.h>
#include <stdio.h>

typedef struct tally {
  int64_t n[TPTALLY_MAX + 1];
  int len;                   /* the largest k seen + 1 (SQLite zeroes it: 0, none yet) */
} tally;

static void tally_step(sqlite3_context *ctx, int argc, sqlite3_value **argv) {
  (void)argc;
  int type = sqlite3_value_type(argv[0]);
  if (type == SQLITE_NULL) return;
  sqlite3_int64 k = sqlite3_value_int64(argv[0]);
  if (type != SQLITE_INTEGER || k < 0 || k > TPTALLY_MAX) {
    sqlite3_result_error(ctx, "tally() counts integers from 0 to 63", -1);
    return;
  }
  tally *t = sqlite3_aggregate_context(ctx, sizeof *t);
  if (!t) {
    sqlite3_result_error_nomem(ctx);
    return;
  }
  t->n[k]++;
  if (k >= t->len) t->len = (int)k + 1;
}

static void tally_final(sqlite3_context *ctx) {
  tally *t = sqlite3_aggregate_context(ctx, 0);
  char out[(TPTALLY_MAX + 1) * 21 + 3];
  size_t len = 0;
  out[len++] = '[';
  for (int k = 0; t && k < t->len; k++)
    len += (size_t)snprintf(out + len, sizeof out - len, k ? ",%lld" : "%lld", (long long)t->n[k]);
  out[len++] = ']';
  sqlite3_result_text(ctx, out, (int)len, SQLITE_TRANSIENT);
}

int tptally_register(sqlite3 *db) {
  return sqlite3_create_function(db, "tally", 1, SQLITE_UTF8 | SQLITE_DETERMINISTIC, NULL, NULL,
                                 tally_step, tally_final);
}
