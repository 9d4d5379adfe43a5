/*
** json.c - JSON encoding and decoding for plugin states.
*/
#include "base/json.h"

#include <errno.h>
#include <lauxlib.h>
#include <lua-cjson.h>
#include <math.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define DECODE_KEY "tp.cjson.decode"

#define BUF_MT "tp.json.buf"  /* the box of tpj_l_encode's text */

static int buf_gc(lua_State *L);

void tpj_open(lua_State *L) {
  luaL_requiref(L, "cjson", luaopen_cjson, 0);
  /* stack: cjson */
  lua_getfield(L, -1, "decode_max_depth");
  lua_pushinteger(L, TPJ_MAX_DEPTH);
  lua_call(L, 1, 0);
  lua_getfield(L, -1, "decode_invalid_numbers");
  lua_pushboolean(L, 0);  /* no NaN, Infinity or hex in request bodies */
  lua_call(L, 1, 0);
  lua_getfield(L, -1, "decode");
  lua_setfield(L, LUA_REGISTRYINDEX, DECODE_KEY);
  lua_pop(L, 1);
  /* forget package.loaded.cjson: plugins reach JSON through tp.json only */
  luaL_getsubtable(L, LUA_REGISTRYINDEX, LUA_LOADED_TABLE);
  lua_pushnil(L);
  lua_setfield(L, -2, "cjson");
  lua_pop(L, 1);
  /* protected (__metatable): a plugin that could reach a metatable the host
  ** gives out could add a __gc to it, and a finalizer runs where neither the
  ** count hook nor the watchdog can stop it */
  luaL_newmetatable(L, "tp.json.array");
  lua_pushliteral(L, "array");
  lua_setfield(L, -2, "__jsontype");
  lua_pushliteral(L, "tp.json.array");
  lua_setfield(L, -2, "__metatable");
  lua_pop(L, 1);
  luaL_newmetatable(L, BUF_MT);
  lua_pushcfunction(L, buf_gc);
  lua_setfield(L, -2, "__gc");
  lua_pushliteral(L, BUF_MT);
  lua_setfield(L, -2, "__metatable");
  lua_pop(L, 1);
  luaL_newmetatable(L, "tp.json.object");
  lua_pushliteral(L, "object");
  lua_setfield(L, -2, "__jsontype");
  lua_pushliteral(L, "tp.json.object");
  lua_setfield(L, -2, "__metatable");
  lua_pop(L, 1);
}

void tpj_mark_array(lua_State *L, int idx) {
  idx = lua_absindex(L, idx);
  luaL_getmetatable(L, "tp.json.array");
  lua_setmetatable(L, idx);
}

/* ---- encoding */

typedef struct {
  lua_State *L;
  tp_buf *out;
  size_t limit;          /* out->len may not pass it */
  size_t ask_at;         /* the next out->len at which the interrupt is asked */
  char *err;
  size_t errcap;
} encoder;

static bool (*interrupt)(void);

void tpj_set_interrupt(bool (*expired)(void)) { interrupt = expired; }

/* Every table and every string checks the length so far: each writes at
** least a byte, so the work stops within a few bytes' worth of the limit, or
** within TPJ_CHECK_BYTES of the interrupt saying stop. */
static int too_long(encoder *e) {
  if (e->out->len >= e->ask_at) {
    e->ask_at = e->out->len + TPJ_CHECK_BYTES;
    if (interrupt && interrupt()) {
      snprintf(e->err, e->errcap, "stopped after %zu bytes: the deadline passed", e->out->len);
      return -1;
    }
  }
  if (e->out->len <= e->limit) return 0;
  snprintf(e->err, e->errcap, "the JSON text would be longer than %u bytes (a value shared many "
           "times over?)", TPJ_MAX_BYTES);
  return -1;
}

static int encode_value(encoder *e, int idx, int depth);

/* 1 = array, 0 = object, by marker or by keys 1..n. */
static int table_kind(lua_State *L, int idx, lua_Integer *n) {
  *n = (lua_Integer)lua_rawlen(L, idx);
  if (luaL_getmetafield(L, idx, "__jsontype") != LUA_TNIL) {
    const char *kind = lua_tostring(L, -1);  /* a plugin may set anything there */
    int array = kind && kind[0] == 'a';
    lua_pop(L, 1);
    return array;
  }
  lua_Integer count = 0;
  lua_pushnil(L);
  while (lua_next(L, idx)) {
    lua_pop(L, 1);
    if (!lua_isinteger(L, -1) || lua_tointeger(L, -1) < 1 || lua_tointeger(L, -1) > *n) {
      lua_pop(L, 1);
      return 0;
    }
    count++;
  }
  return count > 0 && count == *n;
}

static int encode_table(encoder *e, int idx, int depth) {
  lua_State *L = e->L;
  if (too_long(e)) return -1;
  if (depth >= TPJ_MAX_DEPTH) {
    snprintf(e->err, e->errcap, "table nested deeper than %d levels (a cycle?)", TPJ_MAX_DEPTH);
    return -1;
  }
  if (!lua_checkstack(L, 4)) {
    snprintf(e->err, e->errcap, "Lua stack exhausted");
    return -1;
  }
  lua_Integer n;
  if (table_kind(L, idx, &n)) {
    tp_buf_addc(e->out, '[');
    for (lua_Integer i = 1; i <= n; i++) {
      if (i > 1) tp_buf_addc(e->out, ',');
      lua_rawgeti(L, idx, i);
      int rc = encode_value(e, lua_gettop(L), depth + 1);
      lua_pop(L, 1);
      if (rc) return rc;
    }
    tp_buf_addc(e->out, ']');
    return 0;
  }
  tp_buf_addc(e->out, '{');
  bool first = true;
  lua_pushnil(L);
  while (lua_next(L, idx)) {
    /* stack: ... key value */
    if (!first) tp_buf_addc(e->out, ',');
    first = false;
    if (lua_type(L, -2) == LUA_TSTRING) {
      size_t klen;
      const char *k = lua_tolstring(L, -2, &klen);
      tp_buf_add_json_str(e->out, k, klen);
    } else if (lua_isinteger(L, -2)) {
      tp_buf_addc(e->out, '"');
      tp_buf_addi(e->out, lua_tointeger(L, -2));
      tp_buf_addc(e->out, '"');
    } else {
      snprintf(e->err, e->errcap, "cannot encode a table with %s keys", luaL_typename(L, -2));
      lua_pop(L, 2);
      return -1;
    }
    tp_buf_addc(e->out, ':');
    int rc = encode_value(e, lua_gettop(L), depth + 1);
    lua_pop(L, 1);
    if (rc) {
      lua_pop(L, 1);
      return rc;
    }
  }
  tp_buf_addc(e->out, '}');
  return 0;
}

static int encode_value(encoder *e, int idx, int depth) {
  lua_State *L = e->L;
  switch (lua_type(L, idx)) {
    case LUA_TNIL: tp_buf_adds(e->out, "null"); return 0;
    case LUA_TBOOLEAN: tp_buf_adds(e->out, lua_toboolean(L, idx) ? "true" : "false"); return 0;
    case LUA_TNUMBER:
      if (lua_isinteger(L, idx)) {
        tp_buf_addi(e->out, lua_tointeger(L, idx));
      } else {
        double v = lua_tonumber(L, idx);
        if (!isfinite(v)) {
          snprintf(e->err, e->errcap, "cannot encode %s as JSON", isnan(v) ? "NaN" : "infinity");
          return -1;
        }
        tp_buf_printf(e->out, "%.17g", v);
      }
      return 0;
    case LUA_TSTRING: {
      size_t n;
      const char *s = lua_tolstring(L, idx, &n);
      if (e->out->len + n > e->limit) {  /* before a copy that could not be kept anyway */
        e->out->len = e->limit + 1;
        return too_long(e);
      }
      tp_buf_add_json_str(e->out, s, n);
      return too_long(e);
    }
    case LUA_TTABLE: return encode_table(e, idx, depth);
    case LUA_TUSERDATA: {
      const tpj_view *v = tpj_to_view(L, idx);
      if (!v) break;
      if (e->out->len + v->len > e->limit) {
        e->out->len = e->limit + 1;
        return too_long(e);
      }
      tp_buf_add(e->out, v->text, v->len);  /* encoded once, where it was made */
      return 0;
    }
    case LUA_TLIGHTUSERDATA:
      if (!lua_touserdata(L, idx)) {
        tp_buf_adds(e->out, "null");
        return 0;
      }
      break;
    default: break;
  }
  snprintf(e->err, e->errcap, "cannot encode a %s as JSON", luaL_typename(L, idx));
  return -1;
}

int tpj_encode(lua_State *L, int idx, tp_buf *out, char *err, size_t errcap) {
  size_t mark = out->len;
  encoder e = {L, out, mark + TPJ_MAX_BYTES, mark + TPJ_CHECK_BYTES, err, errcap};
  int rc = encode_value(&e, lua_absindex(L, idx), 0);
  if (rc) out->len = mark;
  return rc;
}

/* ---- views */

void tpj_push_view(lua_State *L, const char *s, size_t n) {
  if (luaL_getmetatable(L, TPJ_VIEW) != LUA_TTABLE) luaL_error(L, "JSON views are not open here");
  tpj_view *v = lua_newuserdatauv(L, sizeof *v + n, 0);
  v->len = n;
  if (n) memcpy(v->text, s, n);
  lua_insert(L, -2);
  lua_setmetatable(L, -2);
}

const tpj_view *tpj_to_view(lua_State *L, int idx) { return luaL_testudata(L, idx, TPJ_VIEW); }

/* One past the string that opens at s[i] ('"'), or n. */
static size_t skip_string(const char *s, size_t n, size_t i) {
  for (i++; i < n; i++) {
    if (s[i] == '\\') i++;
    else if (s[i] == '"') return i + 1;
  }
  return n;
}

/* One past the value that starts at s[i], or n. The encoder writes no
** white space, so a scalar runs to the next ',', '}' or ']'. */
static size_t skip_value(const char *s, size_t n, size_t i) {
  if (i >= n) return n;
  if (s[i] == '"') return skip_string(s, n, i);
  if (s[i] != '{' && s[i] != '[') {
    while (i < n && s[i] != ',' && s[i] != '}' && s[i] != ']') i++;
    return i;
  }
  size_t depth = 0;
  while (i < n) {
    char c = s[i];
    if (c == '"') {
      i = skip_string(s, n, i);
      continue;
    }
    if (c == '{' || c == '[') depth++;
    else if ((c == '}' || c == ']') && --depth == 0) return i + 1;
    i++;
  }
  return n;
}

bool tpj_view_member(const char *s, size_t n, const char *key, size_t klen, const char **v,
                     size_t *vn) {
  if (n < 2 || s[0] != '{') return false;
  for (size_t i = 1; i < n && s[i] == '"';) {
    size_t kend = skip_string(s, n, i);
    if (kend >= n || s[kend] != ':') return false;
    size_t vs = kend + 1, ve = skip_value(s, n, vs);
    if (kend - i == klen && memcmp(s + i, key, klen) == 0) {
      *v = s + vs;
      *vn = ve - vs;
      return ve > vs;
    }
    if (ve >= n || s[ve] != ',') return false;
    i = ve + 1;
  }
  return false;
}

bool tpj_view_element(const char *s, size_t n, int64_t i, const char **v, size_t *vn) {
  if (n < 2 || s[0] != '[' || s[1] == ']' || i < 1) return false;
  for (size_t pos = 1; pos < n; i--) {
    size_t end = skip_value(s, n, pos);
    if (i == 1) {
      *v = s + pos;
      *vn = end - pos;
      return end > pos;
    }
    if (end >= n || s[end] != ',') return false;
    pos = end + 1;
  }
  return false;
}

int64_t tpj_view_count(const char *s, size_t n) {
  if (n < 2 || s[0] != '[' || s[1] == ']') return 0;
  int64_t count = 0;
  for (size_t pos = 1; pos < n;) {
    size_t end = skip_value(s, n, pos);
    count++;
    if (end >= n || s[end] != ',') break;
    pos = end + 1;
  }
  return count;
}

/* Text the encoder wrote back into tables (json.h): no white space, escapes
** as tp_buf_add_json_str writes them, so integers stay exact past 2^53 and
** arrays keep their marker, [] included, which cjson's decode would lose.
** Anything else is an error, not a guess. */
typedef struct view_decoder {
  lua_State *L;
  const char *s;
  size_t n, i;
  int depth;
} view_decoder;

static int vd_value(view_decoder *d);

static void vd_utf8(luaL_Buffer *b, unsigned cp) {
  if (cp < 0x80) {
    luaL_addchar(b, (char)cp);
  } else if (cp < 0x800) {
    luaL_addchar(b, (char)(0xc0 | cp >> 6));
    luaL_addchar(b, (char)(0x80 | (cp & 0x3f)));
  } else {
    luaL_addchar(b, (char)(0xe0 | cp >> 12));
    luaL_addchar(b, (char)(0x80 | (cp >> 6 & 0x3f)));
    luaL_addchar(b, (char)(0x80 | (cp & 0x3f)));
  }
}

static int vd_string(view_decoder *d) {
  size_t start = ++d->i, j = start;
  while (j < d->n && d->s[j] != '"' && d->s[j] != '\\') j++;
  if (j < d->n && d->s[j] == '"') {  /* nothing escaped: one piece */
    lua_pushlstring(d->L, d->s + start, j - start);
    d->i = j + 1;
    return 0;
  }
  luaL_Buffer b;
  luaL_buffinit(d->L, &b);
  luaL_addlstring(&b, d->s + start, j - start);
  for (d->i = j; d->i < d->n;) {
    char c = d->s[d->i++];
    if (c == '"') {
      luaL_pushresult(&b);
      return 0;
    }
    if (c != '\\') {
      luaL_addchar(&b, c);
      continue;
    }
    if (d->i >= d->n) break;
    c = d->s[d->i++];
    switch (c) {
      case '"': case '\\': case '/': luaL_addchar(&b, c); break;
      case 'n': luaL_addchar(&b, '\n'); break;
      case 'r': luaL_addchar(&b, '\r'); break;
      case 't': luaL_addchar(&b, '\t'); break;
      case 'b': luaL_addchar(&b, '\b'); break;
      case 'f': luaL_addchar(&b, '\f'); break;
      case 'u': {
        unsigned cp = 0;
        for (int k = 0; k < 4; k++, d->i++) {
          char h = d->i < d->n ? d->s[d->i] : 'x';
          int v = h >= '0' && h <= '9' ? h - '0' : h >= 'a' && h <= 'f' ? h - 'a' + 10
                : h >= 'A' && h <= 'F' ? h - 'A' + 10 : -1;
          if (v < 0) return -1;
          cp = cp << 4 | (unsigned)v;
        }
        if (cp >= 0xd800 && cp <= 0xdfff) return -1;  /* the encoder writes no surrogates */
        vd_utf8(&b, cp);
        break;
      }
      default: return -1;
    }
  }
  return -1;
}

static int vd_number(view_decoder *d) {
  size_t start = d->i;
  bool integral = true;
  for (; d->i < d->n; d->i++) {
    char c = d->s[d->i];
    if (c == '.' || c == 'e' || c == 'E') integral = false;
    else if (!(c >= '0' && c <= '9') && c != '-' && c != '+') break;
  }
  char num[64];
  size_t len = d->i - start;
  if (len == 0 || len >= sizeof num) return -1;
  memcpy(num, d->s + start, len);
  num[len] = '\0';
  char *end;
  errno = 0;
  if (integral) {
    long long v = strtoll(num, &end, 10);
    if (*end == '\0' && errno == 0) {
      lua_pushinteger(d->L, (lua_Integer)v);
      return 0;
    }
    errno = 0;
  }
  double v = strtod(num, &end);
  if (*end != '\0' || !isfinite(v)) return -1;
  if (v == floor(v) && fabs(v) <= 9007199254740992.0) lua_pushinteger(d->L, (lua_Integer)v);
  else lua_pushnumber(d->L, v);
  return 0;
}

static bool vd_word(view_decoder *d, const char *w) {
  size_t len = strlen(w);
  if (d->n - d->i < len || memcmp(d->s + d->i, w, len) != 0) return false;
  d->i += len;
  return true;
}

/* A container's members are decoded onto the stack and set once their count
** is known, into a table made that size: one filled from empty rehashes at
** every power of two, which took a third of a decode (an order of 40 fields
** rehashed six times). Past VD_CHUNK members the table is made for the first
** chunk and grows from there, so the stack holds at most a chunk per level. */
#define VD_CHUNK 64

/* Sets the n members pending above the table at t (pairs, or values from
** index k) and pops them. Pairs go in order: a key given twice keeps its last. */
static void vd_flush(lua_State *L, int t, int n, bool array, lua_Integer k) {
  if (array) {
    for (int i = n; i > 0; i--) lua_rawseti(L, t, k + i - 1);  /* pops the last */
    return;
  }
  for (int i = 0; i < n; i++) {
    lua_pushvalue(L, t + 1 + 2 * i);
    lua_pushvalue(L, t + 2 + 2 * i);
    lua_rawset(L, t);
  }
  lua_settop(L, t);
}

/* Makes the table for the n members pending above base, sized for them, under
** them at base + 1, marked when an array. */
static void vd_table(lua_State *L, int base, int n, bool array) {
  lua_createtable(L, array ? n : 0, array ? 0 : n);
  if (array) tpj_mark_array(L, -1);
  lua_insert(L, base + 1);
}

static int vd_container(view_decoder *d, bool array) {
  lua_State *L = d->L;
  int per = array ? 1 : 2;  /* stack slots a member takes */
  if (++d->depth > TPJ_MAX_DEPTH || !lua_checkstack(L, per * VD_CHUNK + 4)) return -1;
  int base = lua_gettop(L);
  bool made = false;    /* the table is at base + 1 */
  int pending = 0;      /* members above it (or above base) not set yet */
  lua_Integer next = 1; /* an array's index for the first pending value */
  char close = array ? ']' : '}';
  d->i++;
  if (d->i < d->n && d->s[d->i] == close) {
    d->i++;
    vd_table(L, base, 0, array);
    d->depth--;
    return 0;
  }
  for (;;) {
    if (!array) {
      if (d->i >= d->n || d->s[d->i] != '"' || vd_string(d) != 0) return -1;
      if (d->i >= d->n || d->s[d->i++] != ':') return -1;
    }
    if (vd_value(d) != 0) return -1;
    if (++pending == VD_CHUNK) {
      if (!made) vd_table(L, base, VD_CHUNK, array);
      made = true;
      vd_flush(L, base + 1, pending, array, next);
      next += pending;
      pending = 0;
    }
    if (d->i >= d->n) return -1;
    char c = d->s[d->i++];
    if (c == close) break;
    if (c != ',') return -1;
  }
  if (!made) vd_table(L, base, pending, array);
  vd_flush(L, base + 1, pending, array, next);
  d->depth--;
  return 0;
}

static int vd_value(view_decoder *d) {
  if (d->i >= d->n) return -1;
  switch (d->s[d->i]) {
    case '{': return vd_container(d, false);
    case '[': return vd_container(d, true);
    case '"': return vd_string(d);
    case 't': if (!vd_word(d, "true")) return -1; lua_pushboolean(d->L, 1); return 0;
    case 'f': if (!vd_word(d, "false")) return -1; lua_pushboolean(d->L, 0); return 0;
    case 'n': if (!vd_word(d, "null")) return -1; lua_pushlightuserdata(d->L, NULL); return 0;
    default: return vd_number(d);
  }
}

int tpj_decode_exact(lua_State *L, const char *s, size_t n, char *err, size_t errcap) {
  int top = lua_gettop(L);
  view_decoder d = {L, s, n, 0, 0};
  if (vd_value(&d) != 0 || d.i != n) {
    lua_settop(L, top);
    snprintf(err, errcap, "not JSON as the host writes it (at byte %zu)", d.i);
    return -1;
  }
  return 0;
}

/* ---- decoding */

/* Replaces integral floats (|v| <= 2^53) in the table at idx by integers. */
static void integerize(lua_State *L, int idx, int depth) {
  if (depth > TPJ_MAX_DEPTH || !lua_checkstack(L, 4)) return;
  lua_pushnil(L);
  while (lua_next(L, idx)) {
    /* stack: ... key value */
    if (lua_type(L, -1) == LUA_TNUMBER && !lua_isinteger(L, -1)) {
      double v = lua_tonumber(L, -1);
      if (v == floor(v) && fabs(v) <= 9007199254740992.0) {
        lua_pushvalue(L, -2);
        lua_pushinteger(L, (lua_Integer)v);
        lua_rawset(L, idx);
      }
    } else if (lua_type(L, -1) == LUA_TTABLE) {
      integerize(L, lua_gettop(L), depth + 1);
    }
    lua_pop(L, 1);
  }
}

static int decode_protected(lua_State *L) {
  /* stack: decode text */
  lua_call(L, 1, 1);
  if (lua_type(L, -1) == LUA_TTABLE) integerize(L, lua_gettop(L), 0);
  else if (lua_type(L, -1) == LUA_TNUMBER && !lua_isinteger(L, -1)) {
    double v = lua_tonumber(L, -1);
    if (v == floor(v) && fabs(v) <= 9007199254740992.0) {
      lua_pop(L, 1);
      lua_pushinteger(L, (lua_Integer)v);
    }
  }
  return 1;
}

int tpj_decode(lua_State *L, const char *s, size_t n, char *err, size_t errcap) {
  lua_pushcfunction(L, decode_protected);
  lua_getfield(L, LUA_REGISTRYINDEX, DECODE_KEY);
  lua_pushlstring(L, s, n);
  if (lua_pcall(L, 2, 1, 0) != LUA_OK) {
    const char *msg = lua_tostring(L, -1);
    snprintf(err, errcap, "%s", msg ? msg : "invalid JSON");
    lua_pop(L, 1);
    return -1;
  }
  return 0;
}

/* ---- tp.json */

/* The text is built in a tp_buf held by a userdata whose __gc frees it:
** pushing the result may be refused by the memory cap, and the error
** unwinds past this function. */
static int buf_gc(lua_State *L) {
  tp_buf_free(lua_touserdata(L, 1));
  return 0;
}

int tpj_l_encode(lua_State *L) {
  luaL_checkany(L, 1);
  lua_settop(L, 1);
  tp_buf *b = lua_newuserdatauv(L, sizeof *b, 0);
  tp_buf_init(b);
  luaL_setmetatable(L, BUF_MT);
  char err[256];
  if (tpj_encode(L, 1, b, err, sizeof err) != 0) {
    tp_buf_free(b);
    return luaL_error(L, "tp.json.encode: %s", err);
  }
  lua_pushlstring(L, b->data ? b->data : "", b->len);
  tp_buf_free(b);
  return 1;
}

int tpj_l_decode(lua_State *L) {
  size_t n;
  const tpj_view *view = tpj_to_view(L, 1);  /* a view decodes to tables of its own */
  const char *s = view ? (n = view->len, view->text) : luaL_checklstring(L, 1, &n);
  char err[256];
  if ((view ? tpj_decode_exact : tpj_decode)(L, s, n, err, sizeof err) != 0) {
    lua_pushnil(L);
    lua_pushstring(L, err);
    return 2;
  }
  return 1;
}

static int mark(lua_State *L, const char *kind) {
  if (lua_isnoneornil(L, 1)) {
    lua_settop(L, 0);
    lua_newtable(L);
  }
  luaL_checktype(L, 1, LUA_TTABLE);
  luaL_getmetatable(L, kind);
  lua_setmetatable(L, 1);
  lua_settop(L, 1);
  return 1;
}

int tpj_l_array(lua_State *L) { return mark(L, "tp.json.array"); }
int tpj_l_object(lua_State *L) { return mark(L, "tp.json.object"); }
