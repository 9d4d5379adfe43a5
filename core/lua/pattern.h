/*
** pattern.h - Lua 5.4's string.find, match, gmatch and gsub, with every step
** of matching charged to a budget.
**
** Why: Lua's own matcher backtracks, and its cost grows like n^k over an
** n-byte subject for a pattern with k variable-length items
** (("a"):rep(10000):find(".-.-b") runs for minutes). It runs inside one C
** call, where the instruction count hook never fires, so a plugin applying a
** pattern to user input could stall the whole host. These functions have the
** semantics of the reference manual (§6.4.1), the same results and the same
** error messages as the stock ones, and count their work: every attempt to
** match one pattern item at one subject position, every start position tried,
** every step of the expansion loops of '*', '+' and '-', every byte %b scans,
** a step more per 4 bytes of a set, and bulk work (a plain find, a back
** reference, captures, gsub's output) at one step per 16 bytes. A step costs
** a few nanoseconds, about what a few VM instructions do. The count is
** charged to whoever runs the state through a callback, which may raise to
** stop the match: the functions hold no C memory across a charge (gsub builds
** its result in a luaL_Buffer), so unwinding from it leaks nothing. A scan
** (the greedy run of x* or x+, %b) is charged when it ends, so a budget may
** be overshot by up to the subject's length.
**
** The one difference from the stock library is the cost model; a pattern
** nested more than 200 levels deep raises "pattern too complex" as Lua does.
*/
#ifndef TP_PATTERN_H
#define TP_PATTERN_H

#include <stdint.h>

#include <lua.h>

/* Steps counted between two calls of the charge function. */
#define TPPM_CHARGE_EVERY 1024

/* Charges n units of work to whoever runs L. Called from inside the string
** functions, with L their running thread; raises a Lua error (and does not
** return) when the budget is spent, and otherwise leaves L's stack as it
** found it (gsub has a luaL_Buffer on it). */
typedef void (*tppm_charge_fn)(lua_State *L, int64_t n);

/* Replaces find, match, gmatch and gsub in the string table at strtable_idx
** with the counted versions. They call charge every TPPM_CHARGE_EVERY steps
** with the steps since the last call, and once more when they return with the
** remainder (a gmatch iterator: at the end of each step of the iteration).
** With charge NULL nothing is charged and they only match. The string
** metatable's __index is the string table, so ("x"):find(...) uses them too. */
void tppm_open(lua_State *L, int strtable_idx, tppm_charge_fn charge);

#endif
