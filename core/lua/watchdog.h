/*
** watchdog.h - the wall-clock deadline of an invocation: the last line of
** defence behind the instruction budget; and the moment a long invocation's
** instructions start to count.
**
** The budget counts Lua instructions and the C work the sandbox charges for
** (pattern steps, SQLite virtual-machine steps, the bytes the string, table,
** utf8, JSON and crypto functions walk). Some work hides inside a single VM
** instruction and is counted by nobody: `a == b` or `a < b` over two long
** strings, `..` of large strings in a loop. For that, and for anything a
** later change forgets to charge, one thread per process watches the clock.
**
** The loop thread arms a deadline when an invocation starts (nested calls
** between plugins keep the outermost one) and says which Lua thread and
** which SQLite connection run now. When the deadline passes, the watchdog
**   1. sets the flag that every charge point and the count hook read,
**   2. interrupts the running SQLite statement (sqlite3_interrupt is made to
**      be called from another thread), and
**   3. has the count hook of the running Lua thread set to fire at its next
**      instruction, by a signal to the loop thread whose handler calls
**      lua_sethook, as Lua's own interpreter does from its SIGINT handler.
** The hook then raises deadline_exceeded, again at every instruction, so the
** plugin cannot catch it. The watchdog reaches a Lua state only through that
** handler, on the loop thread, and only the one tpwd_running named last, so
** it never reaches a state that has stopped running or been freed.
**
** Counting later (sandbox.h, "instructions"). A count hook costs Lua a call
** at every instruction, whatever its step: 45k of a flash-sale buy's 401k
** instructions, 5% of its CPU time (tests/bench/README.md). So an invocation
** whose budget allows it runs without the hook, and the watchdog turns the count on
** (the same signal, at the hook's usual step) once the outermost invocation
** has run TPWD_COUNT_AFTER_MS, which it sees within a tick: from then on every
** thread that runs counts (tpwd_running sets the hook on each that takes
** over). What ran before is not counted: at most TPWD_COUNT_AFTER_MS +
** TPWD_TICK_MS of it.
**
** Costs on the loop thread: a lock and a clock read per invocation and per
** coroutine switch, a relaxed atomic load per hook visit, a signal for an
** invocation that runs past TPWD_COUNT_AFTER_MS. The thread wakes every
** TPWD_TICK_MS, so a deadline fires up to that much late.
*/
#ifndef TP_WATCHDOG_H
#define TP_WATCHDOG_H

#include <lua.h>
#include <sqlite3.h>
#include <stdbool.h>
#include <stdint.h>

#define TPWD_TICK_MS 5
#define TPWD_COUNT_AFTER_MS 1

/* Starts the thread (and its signal) on first use; false if it could not
** start: then no invocation may run without its count hook. */
bool tpwd_ready(void);
/* Arms a deadline ms from now for the outermost invocation (0: none) and
** names the connection its SQL runs on. Nested arms only count depth. hook is
** what the running thread gets: at the deadline with step 1; once the
** outermost invocation has run TPWD_COUNT_AFTER_MS, with the given step, on
** every thread that runs without it. */
void tpwd_arm(int64_t ms, sqlite3 *db, lua_Hook hook, int step);
/* Ends what tpwd_arm began; the outermost disarm clears the deadline. */
void tpwd_disarm(void);
/* Names the Lua thread that runs from now on; returns the one it replaces.
** Call it again with that one when control comes back. */
lua_State *tpwd_running(lua_State *L);
/* True once the armed deadline has passed (until the outermost disarm). */
bool tpwd_expired(void);
/* Milliseconds of the armed deadline (0: none), for error messages. */
int64_t tpwd_deadline_ms(void);

#endif
