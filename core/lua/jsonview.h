/*
** jsonview.h - the Lua face of a JSON view (base/json.h): what tp.call_view
** hands its caller instead of a copy of the callee's tables.
**
** Why: a campaign that creates an order answers it, and reads one or two of
** its fields on the way. Copying the order's tables into the campaign's state
** cost more than all the campaign's own Lua (60k instructions of a 520k buy,
** allocation and collection included). A view is the order's JSON, encoded
** once in the orders plugin: the caller's state holds one block of text, and
** the answer carries it as it is.
**
** tp.json.view(t) makes one in the plugin's own state: the orders plugin's
** new order is its event's data and its answer, encoded once for both.
**
** In Lua a view reads like a table that cannot change:
**   v.key, v[i]   a scalar as tp.json.decode gives it (null: tp.json.null), a
**                 view of a nested object or array, or nil; an object's
**                 integer key is looked up as its decimal string, as JSON has it
**                 (a key that held invalid UTF-8 is found by those bytes, not
**                 by the U+FFFD the encoder wrote for them)
**   #v            an array's length; 0 for an object
**   pairs(v)      iterates tp.json.decode(v), decoded at the call
**   v.key = x     raises: tp.json.decode(v) gives tables to change
**   tostring(v)   its JSON text
** type(v) is "userdata". A lookup reads the text up to the member it finds,
** and is charged by those bytes as the tp.* functions are: walking a long
** array by v[i] reads it again for every i, so a plugin that walks one
** decodes it once (pairs, tp.json.decode). tp.json.encode, an
** answer, a job's or an event's data write a view's text as it is; a tp.call
** argument or result arrives in the other plugin as the tables it holds.
*/
#ifndef TP_JSONVIEW_H
#define TP_JSONVIEW_H

#include <lua.h>
#include <stddef.h>
#include <stdint.h>

/* Registers the TPJ_VIEW metatable in L (after tpj_open). */
void tpjv_open(lua_State *L);

/* Pushes onto to a view of the table or view at src[idx] (src may be to): a
** table is encoded in src and only its text is copied into to. Returns the
** bytes encoded (0 for a view, copied as it is), or -1 with err. Raises on
** a memory error in to. tp.call_view's results and tp.json.view both. */
int64_t tpjv_push(lua_State *src, int idx, lua_State *to, char *err, size_t errcap);

/* tp.json.view(t) -> a view of t's JSON, encoded now: for a value a plugin
** both answers and hands on (an event's data, a tp.call_view result), which
** then costs one encoding, not one per use. A view is returned as it is. */
int tpjv_l_view(lua_State *L);

#endif
