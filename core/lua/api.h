/*
** api.h - the Lua API the host gives plugins: the global table `tp`.
**
** Every function is declared once in api.c's table (name, contexts where it is
** allowed, signature, LuaLS types, documentation); registration and the
** context check are driven by that table, and so are the LuaLS stubs
** (sdk/types/tp.lua) and the reference (sdk/reference.md) that apidoc.c
** renders (`tidepool api`). The tables a plugin receives or returns (req, a
** job, an event, the manifest, a route) are declared beside it in tpa_shapes.
*/
#ifndef TP_API_H
#define TP_API_H

#include <lua.h>

#include "lua/state.h"

typedef struct tpa_fn {
  const char *module;     /* NULL for tp.<name>, else tp.<module>.<name> */
  const char *name;
  lua_CFunction fn;
  int contexts;           /* TP_CTX_* where it may be called */
  const char *signature;
  const char *doc;
  /* LuaLS annotation lines without the leading "---", '\n'-separated:
  ** "@param name type description" (name? when optional, ... for varargs) and
  ** "@return type [name] [# description]". Types contain no spaces. */
  const char *types;
} tpa_fn;

extern const tpa_fn tpa_functions[];   /* ends with a NULL name */

/* One field of a table the host hands to plugin code or reads from it. A row
** with a NULL name opens class cls and carries its documentation; the rows
** after it, with the same cls, are its fields. type is a LuaLS type without
** spaces ("string?" when the field may be absent). Classes named tp or
** tp.<module> add fields to the API tables (tp.json.null). */
typedef struct tpa_field {
  const char *cls;
  const char *name;
  const char *type;
  const char *doc;
} tpa_field;

extern const tpa_field tpa_shapes[];   /* ends with a NULL cls */

/* "load", "handler", "job", "event": the name of context bit i (TP_CTX_*). */
extern const char *const tpa_context_names[TP_CTX_COUNT];

/* Opens the sandboxed standard libraries and the tp table in L. */
void tpa_open(lua_State *L, tp_plugin *p);
/* Seeds an invocation's random generator. */
void tpa_seed(tp_invocation *inv, uint64_t seed);
#endif
