/*
** pattern.c - Lua 5.4 patterns, with every step counted (see pattern.h).
**
** Written from the reference manual (§6.4.1) and checked against the stock
** library by tests/unit/test_pattern.c. The matcher is the classic
** backtracking one: match() walks the pattern item by item and recurses only
** where it must keep a choice open (a capture, '?', the expansions of '*', '+'
** and '-'), so its C stack is bounded by MAX_DEPTH nested calls; past that
** it raises "pattern too complex", at the same depth as Lua.
**
** Counting: count() adds to a tally that is charged every TPPM_CHARGE_EVERY
** steps; each entry point charges what is left before it returns.
*/
#include "lua/pattern.h"

#include <ctype.h>
#include <stddef.h>
#include <string.h>

#include <lauxlib.h>

#define ESC '%'
#define MAX_DEPTH 200     /* nested calls of match() (Lua's MAXCCALLS) */
#define MAX_CAPTURES 32   /* Lua's LUA_MAXCAPTURES */
#define CAP_OPEN (-1)     /* a capture started and not closed yet */
#define CAP_POS (-2)      /* a position capture, "()" */
#define BULK_SHIFT 4      /* bulk byte work costs one step per 16 bytes */
#define SET_SHIFT 2       /* a set costs one more step per 4 bytes it spans */

#define uchar(c) ((unsigned char)(c))
#if defined(__GNUC__)
#define unlikely(x) __builtin_expect(!!(x), 0)
#else
#define unlikely(x) (x)
#endif

/* The charge function, boxed in a userdata: upvalue 1 of find, match, gmatch
** and gsub (a function pointer does not fit in a light userdata). */
typedef struct charge_box {
  tppm_charge_fn charge;
} charge_box;

/* One match of a pattern against a subject. */
typedef struct pm_state {
  const char *src, *src_end;  /* the subject */
  const char *p_end;          /* end of the pattern */
  lua_State *L;
  tppm_charge_fn charge;      /* NULL: count, charge nothing */
  int64_t steps;              /* counted, not charged yet */
  int depth;                  /* calls of match() left before "too complex" */
  int level;                  /* captures started */
  struct {
    const char *init;
    ptrdiff_t len;            /* or CAP_OPEN, CAP_POS */
  } cap[MAX_CAPTURES];
} pm_state;

/* gmatch's iterator state: upvalue 3 of the iterator, beside the subject and
** the pattern (upvalues 1 and 2, which keep them alive). */
typedef struct gm_state {
  size_t next;                /* offset where the next search starts */
  const char *p;              /* the pattern */
  const char *lastmatch;      /* end of the last match: no empty match there */
  pm_state ms;
} gm_state;

static const char *match(pm_state *ms, const char *s, const char *p);

/* ---- counting */

/* Charges the tally (may raise). */
static void flush(pm_state *ms) {
  int64_t n = ms->steps;
  ms->steps = 0;
  if (ms->charge && n > 0) ms->charge(ms->L, n);
}

static inline void count(pm_state *ms, int64_t n) {
  ms->steps += n;
  if (unlikely(ms->steps >= TPPM_CHARGE_EVERY)) flush(ms);
}

static tppm_charge_fn upvalue_charge(lua_State *L) {
  const charge_box *box = lua_touserdata(L, lua_upvalueindex(1));
  return box->charge;
}

static void init_state(pm_state *ms, lua_State *L, tppm_charge_fn charge, const char *s,
                       size_t ls, const char *p, size_t lp) {
  ms->L = L;
  ms->charge = charge;
  ms->steps = 0;
  ms->src = s;
  ms->src_end = s + ls;
  ms->p_end = p + lp;
  ms->depth = MAX_DEPTH;
  ms->level = 0;
}

/* Before each attempt: no captures, full depth (also after an error that a
** gmatch iterator's caller caught). */
static void reset_state(pm_state *ms) {
  ms->level = 0;
  ms->depth = MAX_DEPTH;
}

/* ---- single characters */

/* Is c in class cl (the letter after '%')? An upper-case letter is the
** complement; any other character stands for itself. */
static int in_class(int c, int cl) {
  int in;
  switch (tolower(cl)) {
    case 'a': in = isalpha(c); break;
    case 'c': in = iscntrl(c); break;
    case 'd': in = isdigit(c); break;
    case 'g': in = isgraph(c); break;
    case 'l': in = islower(c); break;
    case 'p': in = ispunct(c); break;
    case 's': in = isspace(c); break;
    case 'u': in = isupper(c); break;
    case 'w': in = isalnum(c); break;
    case 'x': in = isxdigit(c); break;
    case 'z': in = (c == 0); break;  /* deprecated, still in 5.4 */
    default: return cl == c;
  }
  return isupper(cl) ? !in : in;
}

/* Is c in the set from '[' at p to its closing ']' at end? */
static int in_set(int c, const char *p, const char *end) {
  int found = 1;
  if (p[1] == '^') {
    found = 0;
    p++;
  }
  while (++p < end) {
    if (*p == ESC) {
      p++;
      if (in_class(c, uchar(*p))) return found;
    } else if (p[1] == '-' && p + 2 < end) {  /* a range; "a-]" is 'a' and '-' */
      if (uchar(p[0]) <= c && c <= uchar(p[2])) return found;
      p += 2;
    } else if (uchar(*p) == c) {
      return found;
    }
  }
  return !found;
}

/* Where the single-character item at p ends (its quantifier, if any). */
static const char *item_end(pm_state *ms, const char *p) {
  if (*p == ESC) {
    if (p + 1 >= ms->p_end) luaL_error(ms->L, "malformed pattern (ends with '%%')");
    return p + 2;
  }
  if (*p != '[') return p + 1;
  const char *set = p++;
  if (*p == '^') p++;
  do {  /* the first character is in the set even if it is ']' */
    if (p >= ms->p_end) luaL_error(ms->L, "malformed pattern (missing ']')");
    if (*p++ == ESC && p < ms->p_end) p++;  /* "%]" does not close */
  } while (*p != ']');
  count(ms, (p - set) >> SET_SHIFT);
  return p + 1;
}

/* Does the item [p, ep) match the character at s? */
static int single(pm_state *ms, const char *s, const char *p, const char *ep) {
  if (s >= ms->src_end) return 0;
  int c = uchar(*s);
  switch (*p) {
    case '.': return 1;
    case ESC: return in_class(c, uchar(p[1]));
    case '[':
      count(ms, (ep - p) >> SET_SHIFT);
      return in_set(c, p, ep - 1);
    default: return uchar(*p) == c;
  }
}

/* ---- items that are not single characters */

/* %bxy at s: the end of a balanced run, or NULL. p is at x. */
static const char *balanced(pm_state *ms, const char *s, const char *p) {
  if (p + 1 >= ms->p_end) luaL_error(ms->L, "malformed pattern (missing arguments to '%%b')");
  if (s >= ms->src_end || *s != *p) return NULL;
  const char *from = s;
  int open = *p, close = p[1], depth = 1;
  while (++s < ms->src_end) {
    if (*s == close) {
      if (--depth == 0) {
        count(ms, s - from);
        return s + 1;
      }
    } else if (*s == open) {
      depth++;
    }
  }
  count(ms, s - from);
  return NULL;
}

/* %f[set] at s: is s a frontier, where the previous character is outside the
** set and the current one inside? p is at '['; *ep is set to the item's end. */
static int frontier(pm_state *ms, const char *s, const char *p, const char **ep) {
  if (p >= ms->p_end || *p != '[') luaL_error(ms->L, "missing '[' after '%%f' in pattern");
  *ep = item_end(ms, p);
  int prev = s == ms->src ? '\0' : uchar(s[-1]);
  int cur = s < ms->src_end ? uchar(*s) : '\0';
  return !in_set(prev, p, *ep - 1) && in_set(cur, p, *ep - 1);
}

/* %1..%9 at s: the end of a repeat of that capture, or NULL. */
static const char *backref(pm_state *ms, const char *s, int digit) {
  int l = digit - '1';
  if (l < 0 || l >= ms->level || ms->cap[l].len == CAP_OPEN)
    luaL_error(ms->L, "invalid capture index %%%d", l + 1);
  size_t len = (size_t)ms->cap[l].len;  /* a position capture never repeats */
  if ((size_t)(ms->src_end - s) < len) return NULL;
  count(ms, (int64_t)(len >> BULK_SHIFT));
  return memcmp(ms->cap[l].init, s, len) == 0 ? s + len : NULL;
}

/* '(' at s: opens capture 'level' and matches the rest (p) after it. */
static const char *open_capture(pm_state *ms, const char *s, const char *p, ptrdiff_t what) {
  int l = ms->level;
  if (l >= MAX_CAPTURES) luaL_error(ms->L, "too many captures");
  ms->cap[l].init = s;
  ms->cap[l].len = what;
  ms->level = l + 1;
  const char *end = match(ms, s, p);
  if (!end) ms->level--;
  return end;
}

/* ')' at s: closes the innermost open capture and matches the rest. */
static const char *close_capture(pm_state *ms, const char *s, const char *p) {
  int l = ms->level - 1;
  while (l >= 0 && ms->cap[l].len != CAP_OPEN) l--;
  if (l < 0) luaL_error(ms->L, "invalid pattern capture");
  ms->cap[l].len = s - ms->cap[l].init;
  const char *end = match(ms, s, p);
  if (!end) ms->cap[l].len = CAP_OPEN;
  return end;
}

/* item* (and item+, after its first): as many as possible, then fewer.
** Each turn of the loops here and in expand_min calls match(), which counts
** a step unless the pattern is done, and then the loop ends. */
static const char *expand_max(pm_state *ms, const char *s, const char *p, const char *ep) {
  ptrdiff_t n = 0;
  while (single(ms, s + n, p, ep)) n++;
  count(ms, n);
  for (; n >= 0; n--) {
    const char *end = match(ms, s + n, ep + 1);
    if (end) return end;
  }
  return NULL;
}

/* item-: as few as possible, then more. */
static const char *expand_min(pm_state *ms, const char *s, const char *p, const char *ep) {
  for (;;) {
    const char *end = match(ms, s, ep + 1);
    if (end) return end;
    if (!single(ms, s, p, ep)) return NULL;
    s++;
  }
}

/*
** Matches the pattern from p on against the subject from s: the end of the
** match, or NULL. Loops over items that need no choice and recurses for the
** rest; every item tried at a position is a step.
*/
static const char *match(pm_state *ms, const char *s, const char *p) {
  if (unlikely(ms->depth-- == 0)) luaL_error(ms->L, "pattern too complex");
  while (p < ms->p_end) {
    count(ms, 1);
    switch (*p) {
      case '(':
        if (p[1] == ')') s = open_capture(ms, s, p + 2, CAP_POS);
        else s = open_capture(ms, s, p + 1, CAP_OPEN);
        goto done;
      case ')':
        s = close_capture(ms, s, p + 1);
        goto done;
      case '$':
        if (p + 1 < ms->p_end) break;  /* not at the end: a plain '$' */
        if (s != ms->src_end) s = NULL;
        goto done;
      case ESC:
        if (p[1] == 'b') {
          s = balanced(ms, s, p + 2);
          if (!s) goto done;
          p += 4;
          continue;
        }
        if (p[1] == 'f') {
          const char *ep;
          if (!frontier(ms, s, p + 2, &ep)) {
            s = NULL;
            goto done;
          }
          p = ep;
          continue;
        }
        if (p[1] >= '0' && p[1] <= '9') {
          s = backref(ms, s, uchar(p[1]));
          if (!s) goto done;
          p += 2;
          continue;
        }
        break;  /* a class such as %a, or an escaped character */
      default:
        break;
    }
    /* a single-character item, perhaps with a quantifier */
    const char *ep = item_end(ms, p);
    int q = ep < ms->p_end ? *ep : '\0';
    if (!single(ms, s, p, ep)) {
      if (q == '*' || q == '?' || q == '-') {  /* zero of them will do */
        p = ep + 1;
        continue;
      }
      s = NULL;
      goto done;
    }
    switch (q) {
      case '?': {
        const char *end = match(ms, s + 1, ep + 1);
        if (end) {
          s = end;
          goto done;
        }
        p = ep + 1;  /* without it, then */
        continue;
      }
      case '+': s = expand_max(ms, s + 1, p, ep); goto done;
      case '*': s = expand_max(ms, s, p, ep); goto done;
      case '-': s = expand_min(ms, s, p, ep); goto done;
      default: s++; p = ep; continue;
    }
  }
done:
  ms->depth++;
  return s;
}

/* ---- captures to Lua */

/* Capture i of the match [s, e) (i 0 with no captures: the whole match).
** A position capture is pushed and CAP_POS returned; otherwise *cap and the
** length are set. */
static ptrdiff_t get_capture(pm_state *ms, int i, const char *s, const char *e,
                             const char **cap) {
  if (i >= ms->level) {
    if (i != 0) luaL_error(ms->L, "invalid capture index %%%d", i + 1);
    *cap = s;
    return e - s;
  }
  ptrdiff_t len = ms->cap[i].len;
  *cap = ms->cap[i].init;
  if (len == CAP_OPEN) luaL_error(ms->L, "unfinished capture");
  if (len == CAP_POS) lua_pushinteger(ms->L, (ms->cap[i].init - ms->src) + 1);
  return len;
}

static void push_capture(pm_state *ms, int i, const char *s, const char *e) {
  const char *cap;
  ptrdiff_t len = get_capture(ms, i, s, e, &cap);
  if (len == CAP_POS) return;
  count(ms, len >> BULK_SHIFT);
  lua_pushlstring(ms->L, cap, (size_t)len);
}

/* Pushes the captures (with none and s not NULL, the whole match [s, e)). */
static int push_captures(pm_state *ms, const char *s, const char *e) {
  int n = (ms->level == 0 && s) ? 1 : ms->level;
  luaL_checkstack(ms->L, n, "too many captures");
  for (int i = 0; i < n; i++) push_capture(ms, i, s, e);
  return n;
}

/* ---- find and match */

/* Lua 5.4's posrelatI: a 1-based start, negative from the end, at least 1. */
static size_t start_pos(lua_Integer pos, size_t len) {
  if (pos > 0) return (size_t)pos;
  if (pos == 0 || pos < -(lua_Integer)len) return 1;
  return len + (size_t)pos + 1;
}

/* Does p hold any of ^$*+?.([%- (else find may search it as plain text)? */
static int has_specials(pm_state *ms, const char *p, size_t lp) {
  count(ms, (int64_t)(lp >> BULK_SHIFT));
  for (size_t i = 0; i < lp; i++) {
    switch (p[i]) {
      case '^': case '$': case '*': case '+': case '?': case '.': case '(': case '[':
      case '%': case '-':
        return 1;
      default:
        break;
    }
  }
  return 0;
}

/* The first p of length lp in s of length ls, or NULL: memchr for its first
** byte, then compare the rest. */
static const char *plain_find(pm_state *ms, const char *s, size_t ls, const char *p, size_t lp) {
  if (lp == 0) return s;
  if (lp > ls) return NULL;
  const char *from = s, *last = s + (ls - lp);  /* last possible start */
  while (from <= last) {
    const char *at = memchr(from, *p, (size_t)(last - from) + 1);
    count(ms, 1 + (((at ? at : last) - from) >> BULK_SHIFT));
    if (!at) return NULL;
    count(ms, (int64_t)(lp >> BULK_SHIFT));
    if (memcmp(at + 1, p + 1, lp - 1) == 0) return at;
    from = at + 1;
  }
  return NULL;
}

static int find_aux(lua_State *L, int find) {
  size_t ls, lp;
  const char *s = luaL_checklstring(L, 1, &ls);
  const char *p = luaL_checklstring(L, 2, &lp);
  size_t init = start_pos(luaL_optinteger(L, 3, 1), ls) - 1;
  pm_state ms;
  if (init > ls) {  /* starts after the end: nothing to find */
    luaL_pushfail(L);
    return 1;
  }
  init_state(&ms, L, upvalue_charge(L), s, ls, p, lp);
  if (find && (lua_toboolean(L, 4) || !has_specials(&ms, p, lp))) {
    const char *at = plain_find(&ms, s + init, ls - init, p, lp);
    flush(&ms);
    if (at) {
      lua_pushinteger(L, (at - s) + 1);
      lua_pushinteger(L, (lua_Integer)((size_t)(at - s) + lp));
      return 2;
    }
    luaL_pushfail(L);
    return 1;
  }
  int anchor = *p == '^';
  if (anchor) p++;  /* p_end stays */
  for (const char *from = s + init;; from++) {
    count(&ms, 1);
    reset_state(&ms);
    const char *e = match(&ms, from, p);
    if (e) {
      int n;
      if (find) {
        lua_pushinteger(L, (from - s) + 1);
        lua_pushinteger(L, e - s);
        n = push_captures(&ms, NULL, NULL) + 2;
      } else {
        n = push_captures(&ms, from, e);
      }
      flush(&ms);
      return n;
    }
    if (anchor || from >= ms.src_end) break;
  }
  flush(&ms);
  luaL_pushfail(L);
  return 1;
}

/* string.find(s, pattern [, init [, plain]]) */
static int l_find(lua_State *L) { return find_aux(L, 1); }

/* string.match(s, pattern [, init]) */
static int l_match(lua_State *L) { return find_aux(L, 0); }

/* ---- gmatch */

/* The iterator: the next match from where the last one ended, never an empty
** match where the last match ended. */
static int gmatch_next(lua_State *L) {
  gm_state *gm = lua_touserdata(L, lua_upvalueindex(3));
  pm_state *ms = &gm->ms;
  size_t len = (size_t)(ms->src_end - ms->src);
  ms->L = L;  /* the iterator may run in another coroutine */
  for (size_t i = gm->next; i <= len; i++) {
    const char *from = ms->src + i;
    count(ms, 1);
    reset_state(ms);
    const char *e = match(ms, from, gm->p);
    if (e && e != gm->lastmatch) {
      gm->lastmatch = e;
      gm->next = (size_t)(e - ms->src);
      int n = push_captures(ms, from, e);
      flush(ms);
      return n;
    }
  }
  gm->next = len + 1;
  flush(ms);
  return 0;
}

/* string.gmatch(s, pattern [, init]); a '^' is an ordinary character here. */
static int l_gmatch(lua_State *L) {
  size_t ls, lp;
  const char *s = luaL_checklstring(L, 1, &ls);
  const char *p = luaL_checklstring(L, 2, &lp);
  size_t init = start_pos(luaL_optinteger(L, 3, 1), ls) - 1;
  tppm_charge_fn charge = upvalue_charge(L);
  lua_settop(L, 2);
  gm_state *gm = lua_newuserdatauv(L, sizeof *gm, 0);
  /* stack: s pattern state */
  init_state(&gm->ms, L, charge, s, ls, p, lp);
  gm->next = init > ls ? ls + 1 : init;
  gm->p = p;
  gm->lastmatch = NULL;
  lua_pushcclosure(L, gmatch_next, 3);
  return 1;
}

/* ---- gsub */

/* Appends the replacement string (argument 3) for the match [s, e), with
** %0..%9 and %% expanded. */
static void add_template(pm_state *ms, luaL_Buffer *b, const char *s, const char *e) {
  lua_State *L = ms->L;
  size_t l;
  const char *t = lua_tolstring(L, 3, &l);
  const char *esc;
  while ((esc = memchr(t, ESC, l)) != NULL) {
    luaL_addlstring(b, t, (size_t)(esc - t));
    int c = uchar(esc[1]);  /* the string's terminating '\0' after a final '%' */
    if (c == ESC) {
      luaL_addchar(b, ESC);
    } else if (c == '0') {
      luaL_addlstring(b, s, (size_t)(e - s));
    } else if (c >= '1' && c <= '9') {
      const char *cap;
      ptrdiff_t len = get_capture(ms, c - '1', s, e, &cap);
      if (len == CAP_POS) luaL_addvalue(b);  /* the position get_capture pushed */
      else luaL_addlstring(b, cap, (size_t)len);
    } else {
      luaL_error(L, "invalid use of '%c' in replacement string", ESC);
    }
    l -= (size_t)(esc + 2 - t);
    t = esc + 2;
  }
  luaL_addlstring(b, t, l);
}

/* Appends the replacement for the match [s, e) as argument 3 (of type tr)
** says; false or nil from a table or function keeps the match. Returns
** whether anything was replaced. */
static int add_value(pm_state *ms, luaL_Buffer *b, const char *s, const char *e, int tr) {
  lua_State *L = ms->L;
  switch (tr) {
    case LUA_TFUNCTION: {
      lua_pushvalue(L, 3);
      int n = push_captures(ms, s, e);
      lua_call(L, n, 1);
      break;
    }
    case LUA_TTABLE:
      push_capture(ms, 0, s, e);
      lua_gettable(L, 3);
      break;
    default:  /* a string or a number */
      add_template(ms, b, s, e);
      return 1;
  }
  if (!lua_toboolean(L, -1)) {
    lua_pop(L, 1);
    luaL_addlstring(b, s, (size_t)(e - s));
    return 0;
  }
  if (!lua_isstring(L, -1))
    return luaL_error(L, "invalid replacement value (a %s)", luaL_typename(L, -1));
  luaL_addvalue(b);
  return 1;
}

/* string.gsub(s, pattern, repl [, n]) */
static int l_gsub(lua_State *L) {
  size_t ls, lp;
  const char *src = luaL_checklstring(L, 1, &ls);
  const char *p = luaL_checklstring(L, 2, &lp);
  int tr = lua_type(L, 3);
  lua_Integer max_n = luaL_optinteger(L, 4, (lua_Integer)ls + 1);
  luaL_argexpected(L, tr == LUA_TNUMBER || tr == LUA_TSTRING || tr == LUA_TFUNCTION ||
                   tr == LUA_TTABLE, 3, "string/function/table");
  const char *lastmatch = NULL;
  lua_Integer n = 0;
  int changed = 0, anchor = *p == '^';
  pm_state ms;
  luaL_Buffer b;
  luaL_buffinit(L, &b);
  init_state(&ms, L, upvalue_charge(L), src, ls, p, lp);
  if (anchor) p++;
  while (n < max_n) {
    count(&ms, 1);
    reset_state(&ms);
    const char *e = match(&ms, src, p);
    if (e && e != lastmatch) {
      size_t before = luaL_bufflen(&b);
      n++;
      changed |= add_value(&ms, &b, src, e, tr);
      count(&ms, (int64_t)((luaL_bufflen(&b) - before) >> BULK_SHIFT));
      src = lastmatch = e;
    } else if (src < ms.src_end) {  /* no match here: keep one character */
      luaL_addchar(&b, *src++);
    } else {
      break;
    }
    if (anchor) break;
  }
  if (!changed) {
    lua_pushvalue(L, 1);  /* the subject itself */
  } else {
    count(&ms, (ms.src_end - src) >> BULK_SHIFT);
    luaL_addlstring(&b, src, (size_t)(ms.src_end - src));
    luaL_pushresult(&b);
  }
  flush(&ms);
  lua_pushinteger(L, n);
  return 2;
}

/* ---- the library */

void tppm_open(lua_State *L, int strtable_idx, tppm_charge_fn charge) {
  static const luaL_Reg fns[] = {
    {"find", l_find}, {"match", l_match}, {"gmatch", l_gmatch}, {"gsub", l_gsub}, {NULL, NULL}};
  int t = lua_absindex(L, strtable_idx);
  lua_pushvalue(L, t);
  charge_box *box = lua_newuserdatauv(L, sizeof *box, 0);
  box->charge = charge;
  /* stack: strtable box */
  luaL_setfuncs(L, fns, 1);
  lua_pop(L, 1);
}
