/*
** luacopy.h - copy plain data between two Lua states.
**
** Plugins share nothing, so every value that crosses from one state to
** another (configuration, later the arguments of calls between plugins) is
** copied: nil, booleans, numbers, strings and tables of those. A JSON view
** (json.h) arrives as the tables it holds, decoded in the receiving state.
** Functions, other userdata, threads and cycles are refused rather than
** silently dropped.
*/
#ifndef TP_LUACOPY_H
#define TP_LUACOPY_H

#include <lua.h>
#include <stddef.h>

#define TP_COPY_MAX_DEPTH 64

/* Copies the value at idx in from onto the top of to. Returns 0, or -1 with a
** message in err (and nothing pushed on to). */
int tp_lua_copy(lua_State *from, int idx, lua_State *to, char *err, size_t errcap);

#endif
