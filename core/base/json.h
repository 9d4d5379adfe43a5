/*
** json.h - JSON between the wire and a plugin's Lua state.
**
** Decoding uses lua-cjson, then turns every integral number that fits in 2^53
** into a Lua integer, so that money in fen arrives as an integer (cjson alone
** would hand the plugin 990.0). Encoding is ours: integers are written exactly
** (cjson prints 14 significant digits), strings are valid UTF-8 on output,
** and a table is an array when it is marked with tp.json.array() or its keys
** are exactly 1..n. An empty unmarked table is an object: {}.
*/
#ifndef TP_JSON_H
#define TP_JSON_H

#include <lua.h>
#include <stddef.h>

#include "base/buf.h"

#define TPJ_MAX_DEPTH 64
/* The longest JSON text the encoder writes. A value can share one subtable
** or string many times (t = {t, t} forty times over is 2^40 nodes in a few
** bytes of Lua), so the encoder's work is bounded by what it writes: past
** this it stops with an error, having spent tens of milliseconds at most. */
#define TPJ_MAX_BYTES (32u << 20)

/* Loads cjson into L and registers the array/object marker metatables. */
void tpj_open(lua_State *L);
/* Encodes the value at idx (at most TPJ_MAX_BYTES). Returns 0, or -1 with a
** message in err and nothing appended to out. */
int tpj_encode(lua_State *L, int idx, tp_buf *out, char *err, size_t errcap);
/* Decodes s and pushes the value. Returns 0, or -1 with a message in err. */
int tpj_decode(lua_State *L, const char *s, size_t n, char *err, size_t errcap);
/* Sets the array marker on the table at idx. */
void tpj_mark_array(lua_State *L, int idx);

/* Lua functions for tp.json */
int tpj_l_encode(lua_State *L);
int tpj_l_decode(lua_State *L);
int tpj_l_array(lua_State *L);
int tpj_l_object(lua_State *L);

#endif
