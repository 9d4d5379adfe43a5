/*
** stmtlint.h - statements whose text a plugin builds at every call.
**
** The host prepares each statement once per plugin and finds it again by its
** text (store.h, tps_prepare_cached). A text that joins constants inside a
** function,
**     tp.db.one("SELECT " .. COLUMNS .. " FROM shop_items WHERE id = ?", id)
** is a new string at every call: Lua copies it, hashes it in full to look it
** up and compares it in full with the cached one, 5-12k instructions a call
** for a SELECT of 15 to 40 columns (tests/bench/README.md, "The same waste in
** the join and the help"). Built once at the top of the module it costs
** nothing. `tidepool check` warns of each such call (check.h).
**
** The scan reads Lua source as tokens (luatok.h), so comments and strings
** are not code: it finds the calls of tp.db.exec, tp.db.query and tp.db.one
** whose first argument joins with ".." nothing but string literals and
** constant names (a name whose last part is in capitals: COLUMNS,
** store.COLUMNS). Any other operand (a variable, a call, a field in lower
** case) may change from call to call, and such a call is not reported. Since tp.db cannot be called while a
** module loads, every call found runs at a call of its function.
*/
#ifndef TP_STMTLINT_H
#define TP_STMTLINT_H

/* Called with each such call's line (1-based) in src. */
typedef void (*tpst_found_fn)(void *ud, int line);

/* Scans src (NUL-terminated Lua source); returns how many calls it found. */
int tpst_scan(const char *src, tpst_found_fn found, void *ud);

#endif
