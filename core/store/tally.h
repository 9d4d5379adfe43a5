/*
** tally.h - tally(k), an SQL aggregate the host adds to every brand's
** database: how many rows gave each small integer.
**
**   SELECT tally(CASE WHEN ... THEN 0 WHEN ... THEN 1 ELSE 2 END) FROM ...
**   -> '[3,0,12]'   (a JSON array: rows that gave 0, 1 and 2; '[]' for none)
**
** Why: counting rows per class is GROUP BY, and SQLite's GROUP BY sorts every
** row before it counts (it has no hash aggregate). Reading a few hundred
** thousand rows into a handful of classes, the sort is half the query; one
** sum() per class instead evaluates the class's expression once per sum.
** tally() evaluates it once and adds one to a counter, and the analytics
** funnel (plugins/analytics/lib/report.lua) reads a 90-day period in half the
** time with it.
**
** k is an integer from 0 to TPTALLY_MAX; NULL rows are skipped; any other
** value fails the statement ("tally() counts integers from 0 to 63"). The
** counts are 64-bit. The array runs from 0 to the largest k seen.
*/
#ifndef TP_TALLY_H
#define TP_TALLY_H

#include <sqlite3.h>

#define TPTALLY_MAX 63

/* Adds tally(k) to db. SQLITE_OK or SQLite's error code. */
int tptally_register(sqlite3 *db);

#endif
