/*
** api.h - the Lua API the host gives plugins: the global table `tp`.
**
** Every function is declared once in api.c's table (name, contexts where it is
** allowed, signature, documentation); registration and the context check are
** driven by that table, and later the LuaLS stubs and reference pages too.
*/
#ifndef TP_API_H
#define TP_API_H

#include <lua.h>

#include "plugin.h"

typedef struct tpa_fn {
  const char *module;     /* NULL for tp.<name>, else tp.<module>.<name> */
  const char *name;
  lua_CFunction fn;
  int contexts;           /* TP_CTX_* where it may be called */
  const char *signature;
  const char *doc;
} tpa_fn;

extern const tpa_fn tpa_functions[];

/* Opens the sandboxed standard libraries and the tp table in L. */
void tpa_open(lua_State *L, tp_plugin *p);
/* The plugin that owns L (kept in L's extra space). */
tp_plugin *tpa_plugin(lua_State *L);
/* Seeds an invocation's random generator. */
void tpa_seed(tp_invocation *inv, uint64_t seed);
/* True if the error value at idx is a tp.fail() error. */
int tpa_is_fail(lua_State *L, int idx);
/* Marks the table at the top of L as a tp.fail() error. */
void tpa_mark_fail(lua_State *L);
/* Raises a tp.fail() error {status, code, message} from C (never returns). */
int tpa_fail(lua_State *L, int status, const char *code, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

#endif
