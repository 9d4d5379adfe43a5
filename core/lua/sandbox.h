/*
** sandbox.h - what a plugin's Lua state may do, and how much of it.
**
** Libraries: base (dofile/loadfile refused; load only text, with an explicit
** environment), string (no dump), table, math, utf8, coroutine and the host
** API. io, os, debug and package are absent; touching them, or string.dump,
** raises a clear "sandbox_violation" error. require() resolves only inside the
** plugin's folder and the SDK. setmetatable attaches a copy of the metatable
** as it is then (getmetatable still answers the plugin's table) and refuses
** __gc and __mode: finalizers run at arbitrary moments with hooks disabled,
** and weak tables can make one collection cost the square of their size, both
** out of any budget or deadline; the copy keeps them from being added later.
** The metatables the host gives out (tp.fail errors, JSON markers, req) are
** protected with __metatable for the same reason.
**
** Limits, all enforced by the host rather than trusted to the plugin:
**   instructions  a count hook charges every invocation against its budget,
**                 and so does C work the plugin starts (below). Once the
**                 budget is spent the hook fires on every instruction and
**                 raises again, so pcall cannot swallow it: budget_exceeded.
**                 A budget of TPSB_COUNT_LATER_FROM or more (the default's)
**                 counts Lua's instructions from the invocation's first
**                 millisecond on (watchdog.h, "Counting later"): a hook costs
**                 Lua a call per instruction (a flash-sale buy: 11% of its
**                 instructions, 5% of its CPU time), and
**                 the handlers that stay under a millisecond, nearly all of
**                 them, then pay nothing for it. What a budget guarantees
**                 holds in the safe direction: what is counted is never more
**                 than what ran, so no invocation within its budget fails;
**                 one that runs away is stopped after its budget plus at most
**                 TPWD_COUNT_AFTER_MS + TPWD_TICK_MS of uncounted work. A
**                 smaller budget, and `tidepool test`, count from the first
**                 instruction.
**   memory        the allocator refuses to grow the state past its cap while
**                 plugin code runs (Lua then raises "not enough memory").
**   wall clock    the watchdog (watchdog.h) ends an invocation that runs past
**                 its deadline whatever it is doing: deadline_exceeded.
** Any of them ends the invocation with a rollback. The host then replaces the
** plugin's state by a fresh load (tp__reset_killed), so nothing the killed
** invocation left in module tables survives.
**
** What C work costs. Lua counts only its own instructions; a plugin can make C
** work for a long time with a few of them. So the sandbox charges, as
** instructions:
**   pattern matching   every step of find, match, gmatch and gsub (pattern.h:
**                      our own matcher, with Lua's semantics, that can stop)
**   SQL                every SQLite virtual-machine step (a progress handler,
**                      which also interrupts the statement), and n x m for
**                      like, glob, instr, replace, trim (store.h)
**   bytes              one instruction per TPSB_COPY_BYTES bytes that rep,
**                      format, concat, upper, sub ... build, per
**                      TPSB_PARSE_BYTES that utf8, load and every tp.* function
**                      (JSON, crypto) read or build; n log n for sort, one per
**                      element for unpack, move, insert, remove
** What is left (a comparison of two long strings inside one instruction) is
** the watchdog's.
*/
#ifndef TP_SANDBOX_H
#define TP_SANDBOX_H

#include <lua.h>
#include <stdbool.h>

#include "lua/state.h"

/* How many instructions run between two visits of the hook. The count of an
** invocation is known to this step: p->used is rounded down to it. */
#define TPSB_HOOK_STEP 10000

/* Budgets from this size on are counted from the invocation's first
** millisecond (above); smaller ones from its first instruction. */
#define TPSB_COUNT_LATER_FROM 10000000

/* Bytes of C work that cost one instruction: copying or filling memory runs
** at several bytes a nanosecond, parsing, encoding or hashing at about one,
** and a Lua instruction takes a nanosecond or two. */
#define TPSB_COPY_BYTES 64   /* rep, format, concat, sub, upper, tp.call copies */
#define TPSB_PARSE_BYTES 1   /* utf8, load, and every tp.* function (JSON, crypto) */

/* The lua_Alloc of every plugin state (ud is the tp_plugin): counts its
** bytes against the cap, and keeps freed small blocks for reuse. */
void *tpsb_alloc(void *ud, void *ptr, size_t osize, size_t nsize);
/* Frees the blocks tpsb_alloc keeps for p; after lua_close(p->L). */
void tpsb_release(tp_plugin *p);

/* Opens the safe libraries, the denials and require in L. */
void tpsb_open(lua_State *L);

/* Starts an invocation with a fresh budget of instructions. */
void tpsb_arm(tp_plugin *p, int64_t budget);

/* Charges n instructions of C work to the invocation running in L (nothing
** outside one); raises budget_exceeded or deadline_exceeded once a limit is
** past, for good (see above). */
void tpsb_charge(lua_State *L, int64_t n);

/* Charges the strings and JSON views among the n values at the top of L's
** stack, one instruction per bytes_per bytes: what a C function read or built. */
void tpsb_charge_strings(lua_State *L, int n, int bytes_per);

/* What an invocation changes while it runs, restored when it ends. */
typedef struct tpsb_frame {
  lua_State *thread;           /* the Lua thread the watchdog watched before */
  tps_progress progress;       /* the store's progress function before */
} tpsb_frame;

/* Around every call into plugin code (after tpsb_arm): names p's thread to
** the watchdog, arms the deadline (the outermost call's counts; 0: none) and
** charges p's SQL through the store's progress function. Around p's
** migrations (ctx none, no budget) the SQL meets the deadline only, and
** p->timed_out says whether it passed. */
void tpsb_enter(tp_plugin *p, int64_t deadline_ms, tpsb_frame *f);
void tpsb_leave(tp_plugin *p, tpsb_frame *f);
/* The store's progress function while p runs (ud is p). */
int tpsb_sql_progress(void *ud, int64_t steps);
/* True if the last invocation of p was ended by a limit. */
bool tpsb_killed(const tp_plugin *p);

/* The hook's step for every plugin state of the process (default
** TPSB_HOOK_STEP). `tidepool test` sets 1 so that instruction counts are
** exact, at the price of a hook call per instruction; a server keeps the
** default. */
void tpsb_set_hook_step(int step);
int tpsb_hook_step(void);

#endif
