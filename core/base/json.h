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
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "base/buf.h"

#define TPJ_MAX_DEPTH 64
/* The longest JSON text the encoder writes. A value can share one subtable
** or string many times (t = {t, t} forty times over is 2^40 nodes in a few
** bytes of Lua), so the encoder's work is bounded by what it writes: past
** this it stops with an error, having spent tens of milliseconds at most. */
#define TPJ_MAX_BYTES (32u << 20)

/* Bytes written between two asks of the interrupt (below). */
#define TPJ_CHECK_BYTES (64u << 10)

/* What the encoder asks every TPJ_CHECK_BYTES it writes: true stops it with an
** error. Writing TPJ_MAX_BYTES of a value shared many times over takes tens of
** milliseconds in a release build and a second or more under the sanitizers,
** past a plugin's deadline either way: the sandbox installs the watchdog's
** deadline here (tpwd_expired), so an encoding inside an invocation ends with
** it. NULL (the default): only TPJ_MAX_BYTES stops it. */
void tpj_set_interrupt(bool (*expired)(void));

/* Loads cjson into L and registers the array/object marker metatables. */
void tpj_open(lua_State *L);
/* Encodes the value at idx (at most TPJ_MAX_BYTES). Returns 0, or -1 with a
** message in err and nothing appended to out. */
int tpj_encode(lua_State *L, int idx, tp_buf *out, char *err, size_t errcap);
/* Decodes s and pushes the value. Returns 0, or -1 with a message in err. */
int tpj_decode(lua_State *L, const char *s, size_t n, char *err, size_t errcap);
/* Sets the array marker on the table at idx. */
void tpj_mark_array(lua_State *L, int idx);

/* ---- JSON views
**
** A view is one JSON value, as tpj_encode writes it, held as its text in a
** userdata (metatable TPJ_VIEW): what tp.call_view hands a caller instead of
** a copy of the callee's tables (lua/jsonview.h gives it its Lua face). The
** encoder writes a view's text as it is, so an answer that carries a callee's
** result is encoded once, in the callee. The scanners below (member,
** element, count) read the text without decoding it; they and the exact
** decoder stay within n bytes whatever the text holds (fuzz_json). */
#define TPJ_VIEW "tp.json.view"

typedef struct tpj_view {
  size_t len;
  char text[];  /* len bytes, not NUL-terminated */
} tpj_view;

/* Pushes a new view of s[0..n) (copied). Raises on a memory error, and if L
** has no TPJ_VIEW metatable (not a plugin's state). */
void tpj_push_view(lua_State *L, const char *s, size_t n);
/* The view at idx, or NULL if the value there is not one. */
const tpj_view *tpj_to_view(lua_State *L, int idx);
/* In the object s[0..n), the member whose key is the JSON string key[0..klen)
** as the encoder writes it (quotes included). True with its value's text in
** [*v, *v + *vn). */
bool tpj_view_member(const char *s, size_t n, const char *key, size_t klen, const char **v,
                     size_t *vn);
/* In the array s[0..n), element i (1-based), as tpj_view_member. */
bool tpj_view_element(const char *s, size_t n, int64_t i, const char **v, size_t *vn);
/* The number of elements of the array s[0..n); 0 for anything else. */
int64_t tpj_view_count(const char *s, size_t n);
/* Decodes s[0..n) as tpj_encode writes it (a view's text, a job's payload):
** integers exact past 2^53, arrays marked (tpj_mark_array), [] too; an
** object's keys are strings, so a sparse table's integer keys come back as
** "5". 0, or -1 with err (text the encoder did not write: white space, other
** escapes) and nothing pushed. Raises on a memory error. */
int tpj_decode_exact(lua_State *L, const char *s, size_t n, char *err, size_t errcap);

/* Lua functions for tp.json */
int tpj_l_encode(lua_State *L);
int tpj_l_decode(lua_State *L);
int tpj_l_array(lua_State *L);
int tpj_l_object(lua_State *L);

#endif
