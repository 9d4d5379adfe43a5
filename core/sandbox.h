/*
** sandbox.h - what a plugin's Lua state may do, and how much of it.
**
** Libraries: base (dofile/loadfile refused; load only text, with an explicit
** environment), string (no dump), table, math, utf8, coroutine and the host
** API. io, os, debug and package are absent; touching them, or string.dump,
** raises a clear "sandbox_violation" error. require() resolves only inside the
** plugin's folder and the SDK. Metatables with __gc are refused: finalizers
** run at arbitrary moments with hooks disabled, out of any budget.
**
** Limits, both enforced by the host rather than trusted to the plugin:
**   instructions  a count hook charges every invocation against its budget.
**                 Once the budget is spent the hook fires on every instruction
**                 and raises again, so pcall cannot swallow it.
**   memory        the allocator refuses to grow the state past its cap while
**                 plugin code runs (Lua then raises "not enough memory").
** Either ends the invocation with a rollback; the state stays usable.
*/
#ifndef TP_SANDBOX_H
#define TP_SANDBOX_H

#include <lua.h>

#include "plugin.h"

/* How many instructions run between two visits of the hook. The count of an
** invocation is known to this step: p->used is rounded down to it. */
#define TPSB_HOOK_STEP 10000

/* The lua_Alloc of every plugin state (ud is the tp_plugin). */
void *tpsb_alloc(void *ud, void *ptr, size_t osize, size_t nsize);

/* Opens the safe libraries, the denials and require in L. */
void tpsb_open(lua_State *L);

/* Starts an invocation with a fresh budget of instructions. */
void tpsb_arm(tp_plugin *p, int64_t budget);

/* The hook's step for every plugin state of the process (default
** TPSB_HOOK_STEP). `tidepool test` sets 1 so that instruction counts are
** exact, at the price of a hook call per instruction; a server keeps the
** default. */
void tpsb_set_hook_step(int step);
int tpsb_hook_step(void);

#endif
