/*
** watchdog.h - the wall-clock deadline of an invocation: the last line of
** defence behind the instruction budget.
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
**   3. sets the count hook of the running Lua thread to fire at its next
**      instruction, as Lua's own interpreter does from its SIGINT handler.
** The hook then raises deadline_exceeded, again at every instruction, so the
** plugin cannot catch it. The watchdog touches a Lua state only under the
** lock the loop thread holds while it changes what is running, so it never
** reaches a state that has stopped running or been freed.
**
** Costs on the loop thread: a lock and a clock read per invocation and per
** coroutine switch, a relaxed atomic load per hook visit. The thread wakes
** every TPWD_TICK_MS, so a deadline fires up to that much late.
*/
#ifndef TP_WATCHDOG_H
#define TP_WATCHDOG_H

#include <lua.h>
#include <sqlite3.h>
#include <stdbool.h>
#include <stdint.h>

#define TPWD_TICK_MS 5

/* Arms a deadline ms from now for the outermost invocation (0: none) and
** names the connection its SQL runs on. Starts the thread on first use.
** Nested arms only count depth. hook is what the running thread gets. */
void tpwd_arm(int64_t ms, sqlite3 *db, lua_Hook hook);
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
