/*
** The counted pattern functions (core/lua/pattern.c) against Lua's own: the same
** results and the same error messages over generated, hand-written and random
** cases; then their cost: a pattern that would backtrack for hours stops as
** soon as its budget is spent, and ordinary patterns cost little.
*/
#include <lauxlib.h>
#include <lualib.h>
#include <stdint.h>
#include <stdlib.h>
#include <time.h>

#include "lua/pattern.h"
#include "tp_test.h"

static lua_State *stock, *ours;
static int64_t charged;       /* units charged to `ours` */
static int64_t charge_limit;  /* raise past this many (0: never) */
static int cases_compared;

static void counting_charge(lua_State *L, int64_t n) {
  charged += n;
  if (charge_limit && charged > charge_limit) luaL_error(L, "budget_exceeded: pattern work");
}

/* Defined in both states. RUN(expr) evaluates "return expr" under pcall and
** serializes all it returns (types included); GM lists what a gmatch loop
** yields; REPL holds gsub's replacement values. */
static const char helper_lua[] =
  "local fmt, pack, concat, mtype = string.format, table.pack, table.concat, math.type\n"
  "local function ser(v)\n"
  "  local t = type(v)\n"
  "  if t == 'string' then return fmt('%q', v) end\n"
  "  if t == 'number' then return mtype(v) .. ':' .. tostring(v) end\n"
  "  if t == 'function' or t == 'table' then return t end\n"
  "  return tostring(v)\n"
  "end\n"
  "local function serall(r)\n"
  "  local out = {}\n"
  "  for i = 1, r.n do out[i] = ser(r[i]) end\n"
  "  return r.n .. '[' .. concat(out, ',') .. ']'\n"
  "end\n"
  "function GM(s, p, init)\n"
  "  local it, out = string.gmatch(s, p, init), {}\n"
  "  for _ = 1, 1000 do\n"
  "    local r = pack(it())\n"
  "    if r[1] == nil then break end\n"
  "    out[#out + 1] = serall(r)\n"
  "  end\n"
  "  return concat(out, ' ')\n"
  "end\n"
  "REPL = {\n"
  "  tab = { a = '[A]', b = false, ab = 1, ['1'] = 'one', hello = 'HI', [''] = 'E',\n"
  "          x = {}, l = 2.5 },\n"
  "  cat = function(...) return serall(pack(...)) end,\n"
  "  nothing = function() end,\n"
  "  no = function() return false end,\n"
  "  tbl = function() return {} end,\n"
  "  num = function() return 42 end,\n"
  "  nested = function(c) return (c:gsub('a', 'b')) .. (c:find('b') or '-') end,\n"
  "  raise = function(c) error('from repl: ' .. c) end,\n"
  "}\n"
  "local cache = {}\n"
  "function RUN(src)\n"
  "  local f = cache[src]\n"
  "  if not f then f = assert(load('return ' .. src, '=case')); cache[src] = f end\n"
  "  return serall(pack(pcall(f)))\n"
  "end\n";

static lua_State *new_state(int counted) {
  lua_State *L = luaL_newstate();
  luaL_openlibs(L);
  if (counted) {
    lua_getglobal(L, LUA_STRLIBNAME);
    tppm_open(L, -1, counting_charge);
    lua_pop(L, 1);
  }
  if (luaL_dostring(L, helper_lua) != LUA_OK) {
    fprintf(stderr, "helper: %s\n", lua_tostring(L, -1));
    lua_close(L);
    return NULL;
  }
  return L;
}

static void setup(void) {
  stock = new_state(0);
  ours = new_state(1);
  charged = 0;
  charge_limit = 0;
}

static void teardown(void) {
  lua_close(stock);
  lua_close(ours);
}

/* Prints s with bytes outside printable ASCII escaped. */
static void print_escaped(const char *s, size_t n) {
  for (size_t i = 0; i < n; i++) {
    unsigned char c = (unsigned char)s[i];
    if (c >= 32 && c < 127 && c != '\\') fputc(c, stderr);
    else fprintf(stderr, "\\%03u", c);
  }
}

/* RUN(expr) with S and P set, on top of L's stack. */
static void run_in(lua_State *L, const char *expr, const char *s, size_t ls, const char *p,
                   size_t lp) {
  lua_pushlstring(L, s, ls);
  lua_setglobal(L, "S");
  lua_pushlstring(L, p, lp);
  lua_setglobal(L, "P");
  lua_getglobal(L, "RUN");
  lua_pushstring(L, expr);
  if (lua_pcall(L, 1, 1, 0) != LUA_OK) lua_pushfstring(L, "RUN failed: %s", lua_tostring(L, -1));
}

/* Runs one case in both states; prints the first mismatches. Returns 1 if
** both agree. */
static int same(const char *expr, const char *s, size_t ls, const char *p, size_t lp) {
  static int reported;
  size_t la, lb;
  run_in(stock, expr, s, ls, p, lp);
  run_in(ours, expr, s, ls, p, lp);
  const char *a = lua_tolstring(stock, -1, &la), *b = lua_tolstring(ours, -1, &lb);
  int ok = a && b && la == lb && memcmp(a, b, la) == 0 && strncmp(a, "RUN failed", 10) != 0;
  if (!ok && reported++ < 20) {
    fprintf(stderr, "MISMATCH %s  S=\"", expr);
    print_escaped(s, ls);
    fprintf(stderr, "\" P=\"");
    print_escaped(p, lp);
    fprintf(stderr, "\"\n  stock: %s\n  ours:  %s\n", a ? a : "(null)", b ? b : "(null)");
  }
  lua_pop(stock, 1);
  lua_pop(ours, 1);
  cases_compared++;
  return ok;
}

static int same_z(const char *expr, const char *s, const char *p) {
  return same(expr, s, strlen(s), p, strlen(p));
}

/* ---- differential: every function over subjects x patterns x arguments */

#define STR(s) {s, sizeof(s) - 1}
typedef struct lstr {
  const char *s;
  size_t n;
} lstr;

static const lstr subjects[] = {
  STR(""), STR("a"), STR("aaa"), STR("ab"), STR("abc"), STR("aaab"), STR("hello world"),
  STR("  x = 10, y = 20 "), STR("key=value; other=thing"), STR("(foo(bar))baz"),
  STR("THE (quick) fox"), STR("a.b-c+d*e?f$^"), STR("a\0b\0c"), STR("[x] %d 100%"),
  STR("caf\xc3\xa9 \xff\x01\x7f"), STR("THE END\n\t"), STR("aaa bbb aaa"), STR("1 + 2 = 3"),
};

static const lstr patterns[] = {
  STR(""), STR("a"), STR("b"), STR("ab"), STR("^a"), STR("^"), STR("$"), STR("a$"), STR("^$"),
  STR("."), STR(".."), STR(".-"), STR(".*"), STR(".+"), STR(".?"), STR("a*"), STR("a+"),
  STR("a-"), STR("a?"), STR("a-b"), STR("a*b"), STR("%a+"), STR("%A+"), STR("%d+"), STR("%D"),
  STR("%s*"), STR("%S+"), STR("%w+"), STR("%W"), STR("%l+"), STR("%u+"), STR("%p"), STR("%P+"),
  STR("%c"), STR("%x+"), STR("%g+"), STR("%G"), STR("%z"), STR("%Z+"), STR("%%"), STR("%."),
  STR("[abc]+"), STR("[^abc]+"), STR("[a-c]"), STR("[%a_][%w_]*"), STR("[%]]"), STR("[]]"),
  STR("[^]]"), STR("[a-]"), STR("[-a]"), STR("[%-a]+"), STR("[]"), STR("[^"), STR("[a"),
  STR("%"), STR("a%"), STR("(a)"), STR("(a*)"), STR("()"), STR("()a()"), STR("(a)(b)"),
  STR("((a)(b))"), STR("(a)%1"), STR("(a*)%1"), STR("%1"), STR("(a)%2"), STR("%0"),
  STR("(%a+)=(%a+)"), STR("(%w+)=(%w+)"), STR("%b()"), STR("%b"), STR("%bx"), STR("%b%)"),
  STR("%f[%w]%w+"), STR("%f[%W]"), STR("%f[%a]"), STR("%f[%z]"), STR("%f"), STR("%fa"),
  STR("("), STR(")"), STR("(()"), STR("a)"), STR("%w+$"), STR("^%s*(.-)%s*$"),
  STR("(h)(e)(l)(l)(o)"), STR("$a"), STR("a^"), STR("x*$"), STR("[%w%.]+"), STR("\0"),
  STR("%z+"), STR("[%z]"), STR("[\0-\x20]+"), STR("[\x80-\xff]+"), STR("(.)%1"),
  STR("(a?)(a?)"), STR("(a-)(a-)b"), STR("()(.-)()"), STR("a.-$"), STR("[^%s]+"),
  STR("%(.-%)"), STR("(%()"), STR("[%d%+%-%*]+"), STR("[a-z-]+"), STR("[z-a]"),
};

/* %s is the third argument: an init, or gsub's maximum n */
static const char *const calls[] = {
  "string.find(S,P,%s)", "string.find(S,P,%s,true)", "string.match(S,P,%s)", "GM(S,P,%s)",
  "string.gsub(S,P,'<%%0>',%s)", "S:find(P,%s)",
};
static const char *const thirds[] = {"nil", "1", "2", "-1", "-3", "0", "100", "-100"};
/* with no third argument */
static const char *const fixed[] = {
  "string.gsub(S,P,'%1|')", "string.gsub(S,P,REPL.tab)", "string.gsub(S,P,REPL.cat)",
  "string.gsub(S,P,REPL.nothing)", "string.gsub(S,P,'%%%0%%')", "S:gsub(P,'x')",
  "string.gsub(S,P,REPL.nested)", "string.gsub(S,P,7)", "S:match(P)",
};

TEST(every_function_agrees_with_lua_over_subjects_and_patterns) {
  setup();
  int bad = 0, first = cases_compared;
  char expr[128];
  for (size_t si = 0; si < sizeof subjects / sizeof *subjects; si++) {
    for (size_t pi = 0; pi < sizeof patterns / sizeof *patterns; pi++) {
      const lstr *s = &subjects[si], *p = &patterns[pi];
      for (size_t c = 0; c < sizeof calls / sizeof *calls; c++) {
        for (size_t t = 0; t < sizeof thirds / sizeof *thirds; t++) {
          snprintf(expr, sizeof expr, calls[c], thirds[t]);
          bad += !same(expr, s->s, s->n, p->s, p->n);
        }
      }
      for (size_t f = 0; f < sizeof fixed / sizeof *fixed; f++)
        bad += !same(fixed[f], s->s, s->n, p->s, p->n);
    }
  }
  printf("     %d cases\n", cases_compared - first);
  ASSERT_EQ(bad, 0);
  teardown();
}

/* ---- hand-written edge cases */

static const char *const edge_cases[] = {
  /* arguments */
  "string.find('abc', 'b', 1.5)", "string.find('abc', 'b', '2')", "string.find('abc', 'b', 'x')",
  "string.find(nil, 'a')", "string.find('a')", "string.find('a', {})", "string.find(12345, 34)",
  "string.find('abc', 'b', math.maxinteger)", "string.find('abc', 'b', math.mininteger)",
  "string.find('abc', '', 4)", "string.find('abc', '', 5)", "string.find('abc', '', 3, true)",
  "string.find('abc', '', 4, true)", "string.find('abc', 'c', -1, 1)",
  "string.find('a+b', '+', 1, true)", "string.find('a+b', '+')", "string.find('a.b', '.', 2, false)",
  "string.match('abc', 'b', 2.0)", "string.match('abc', 'b', 4)", "string.match('abc', '()', 4)",
  "string.match('abc', '()', 5)", "string.match()", "string.gmatch('abc')",
  "string.gmatch('abc', 'b', 1.5)", "GM('abc', '', 10)", "GM('abc', '', -10)", "GM('abc', '()', 4)",
  "string.gsub('abc', 'b')", "string.gsub('abc', 'b', nil)", "string.gsub('abc', 'b', true)",
  "string.gsub('abc', 'b', 'x', 1.5)", "string.gsub('abc', 'b', nil, 'z')",
  "string.gsub('abc', '', '-', math.maxinteger)", "string.gsub('abc', '', '-', math.mininteger)",
  "string.gsub('abc', 'b', 'x', '1')", "string.gsub(123, 2, 9)", "string.gsub('abc', 'b', 1.5)",
  "('x'):gsub()", "('x'):find()", "('x'):match(nil)",
  /* empty things and anchors */
  "string.find('', '')", "string.find('', '^')", "string.find('', '$')", "string.find('', '^$')",
  "string.match('', '.*')", "string.match('', '()')", "GM('', '')", "GM('', 'x*')",
  "string.gsub('', '', 'x')", "string.gsub('', 'x*', '-')", "string.gsub('abc', '^', '>')",
  "string.gsub('abc', '$', '<')", "string.gsub('abc', '^$', '!')", "string.gsub('', '^$', '!')",
  "string.gsub('abc', '^a', '')", "string.gsub('aaa', '^a', 'b')", "GM('^a^a', '^a')",
  "GM('aaa', '^a')", "string.find('a^b', 'a^b')", "string.find('a$b', 'a$b')",
  "string.find('ab$', '$$')", "string.find('ab', '^^')", "string.find('^ab', '^^')",
  /* empty matches and lastmatch */
  "string.gsub('abc', '%w*', '-')", "string.gsub('hello world', '%w*', '<%0>')",
  "string.gsub('abc', 'x*', '-')", "string.gsub('a,b,,c', '[^,]*', '<%0>')",
  "GM('abc', '%w*')", "GM('a,b,,c', '[^,]*')", "GM('hello world from Lua', '%a+')",
  "GM('one two', '()')", "string.gsub('abc', '', '%0', 2)", "string.gsub('abc', '.', '%0%0', 0)",
  "string.gsub('abc', '.', '%0%0', -1)", "string.gsub('abc', '.-', '-')",
  /* %b and %f */
  "string.find('x(a(b)c)y', '%b()')", "string.match('((()', '%b()')", "string.match('[[]]]', '%b[]')",
  "string.match([[a'b'c]], [[%b'']])", "string.match('xax', '%bxx')", "string.match('abc', '%b')",
  "string.match('abc', '%ba')", "string.gsub('f(a(b)) g(c)', '%b()', '[]')",
  "string.find('THE (quick) fox', '%f[%a]%a+')", "string.gsub('THE (quick) fox', '%f[%a]', '|')",
  "string.gsub('THE (quick) fox', '%f[%A]', '|')", "string.find('a', '%f[%z]')",
  "string.find('abc', '%f[]')", "string.find('abc', '%f[^]')", "string.find('abc', '%f[a')",
  "string.find('abc', '%fx')", "string.find('abc', '%f')", "string.gsub('hello  world', '%f[%w]%w+', '<%0>')",
  "string.find('\\0a', '%f[%w]')", "GM('the cat, the hat', '%f[%w]%w+')",
  /* captures */
  "string.find('hello', '(l)(l)')", "string.find('hello', '()ll()')", "string.match('hello', '()')",
  "string.match('hello', '(h)(e)(l)(l)(o)()')", "string.match('key = value', '(%w+)%s*=%s*(%w+)')",
  "string.match('abc', '((a)(b)(c))')", "string.match('abc', '(a')", "string.match('abc', 'a)')",
  "string.match('abc', '(a))')", "string.match('abc', '((a)')", "string.find('abc', '(()')",
  "string.gsub('abc', '(b', 'x')", "string.gsub('abc', '(b)', '%2')", "string.gsub('abc', 'b', '%1')",
  "string.gsub('abc', '()b', '%1')", "string.gsub('abc', '(b)', '%0%1%0')", "string.gsub('abc', '()', '%1')",
  "string.match(string.rep('a', 40), string.rep('(a)', 32))",
  "string.match(string.rep('a', 40), string.rep('(a)', 33))",
  "string.match(string.rep('a', 40), string.rep('()', 33))",
  "string.find(string.rep('a', 40), string.rep('(a)', 32))",
  "string.gsub('abc', string.rep('()', 32), REPL.cat)",
  /* back references */
  "string.match('xyyx', '(.)(.)%2%1')", "string.find('abab', '(ab)%1')", "string.find('abab', '%1')",
  "string.find('abab', '(a)%2')", "string.find('abab', '(a%1)')", "string.find('abab', '(a)%0')",
  "string.find('aa', '()%1')", "string.find('aa', '(a)%9')", "string.find('he said \"hi\"', '([\"\\'])(.-)%1')",
  "GM('aa bb cd ee', '(%a)%1')", "string.gsub('aa bb cd', '(%a)%1', '<%1>')",
  /* replacement strings */
  "string.gsub('abc', 'b', '%')", "string.gsub('abc', 'b', 'x%')", "string.gsub('abc', 'b', '%x')",
  "string.gsub('abc', 'b', '%%')", "string.gsub('abc', 'b', '%%%%')", "string.gsub('abc', 'b', '100%%')",
  "string.gsub('abc', 'b', '%0%0')", "string.gsub('abc', '(b)', '%1%1')", "string.gsub('abc', '%w', '%9')",
  "string.gsub('abc', 'b', '%a')", "string.gsub('abc', 'b', '\\0%0\\0')", "string.gsub('a b', '%s', 7)",
  "string.gsub('a b', '%s', 7.5)", "string.gsub('a b', '%s', -0.0)",
  /* table and function replacements */
  "string.gsub('a b ab hello x l', '%w+', REPL.tab)", "string.gsub('a1b', '%d', REPL.tab)",
  "string.gsub('ab', '', REPL.tab)", "string.gsub('xy', 'x', REPL.tab)", "string.gsub('l', 'l', REPL.tab)",
  "string.gsub('a b', '(%w)', REPL.cat)", "string.gsub('ab', '()', REPL.cat)", "string.gsub('ab', '', REPL.cat)",
  "string.gsub('abc', '%w', REPL.nothing)", "string.gsub('abc', '%w', REPL.no)", "string.gsub('abc', '%w', REPL.tbl)",
  "string.gsub('abc', '%w', REPL.num)", "string.gsub('aXa', 'a', REPL.nested)", "string.gsub('abc', 'b', REPL.raise)",
  "string.gsub('abc', '%w', print == nil)", "string.gsub('abc', '%w', setmetatable({}, {__index = function(_, k) return k:upper() end}))",
  "string.gsub('abc', '%w', setmetatable({}, {__index = function(_, k) return false end}))",
  "string.gsub('abc', '%w', coroutine.wrap(function(c) while true do c = coroutine.yield(c .. '!') end end))",
  "string.gsub('hello world', '(o)', {o = 0})", "string.gsub('abc', '.', {a = true})",
  /* malformed patterns */
  "string.find('abc', '%')", "string.find('abc', 'a%')", "string.find('abc', '[')", "string.find('abc', '[a')",
  "string.find('abc', '[%')", "string.find('abc', '[%]')", "string.find('abc', '[^')", "string.find('abc', '[]')",
  "string.find('abc', '[^]')", "string.find(']', '[]]')", "string.find(']', '[^]]')", "string.find('abc', '[a-')",
  "string.find('abc', 'x[')", "string.find('abc', 'c[')", "string.match('abc', 'abc%')", "string.gsub('abc', '[', '')",
  "GM('abc', '[')", "GM('abc', '%')", "GM('abc', '(')", "GM('abc', ')')", "GM('abc', '%1')",
  "string.find('abc', '%g', 1, true)", "string.find('a%', '%', 1, true)",
  /* sets */
  "string.find('a-z', '[a-]+')", "string.find('-', '[%-]')", "string.find('b', '[a-c-e]')", "string.find('d', '[a-c-e]')",
  "string.find('-', '[a-c-e]')", "string.find('^', '[]^]')", "string.find('^', '[%^]')", "string.find('x', '[^%a]')",
  "string.find('5', '[^%a]')", "string.find('%', '[%%]')", "string.find('a', '[%A]')", "string.find('\\255', '[\\128-\\255]')",
  "string.find('A', '[a-Z]')", "string.find('Q', '[A-z]')", "string.find('a', '[%a-z]')", "string.find('-', '[%a-z]')",
  /* deep patterns */
  "string.find(string.rep('a', 300), string.rep('a?', 300))",
  "string.find(string.rep('a', 198), string.rep('a?', 198))",
  "string.find(string.rep('a', 199), string.rep('a?', 199))",
  "string.find(string.rep('a', 200), string.rep('a?', 200))",
  "string.find('aaa', string.rep('a*', 300))", "string.find('aaa', string.rep('a-', 199) .. 'b')",
  "string.find('aaa', string.rep('a-', 200) .. 'b')", "string.find(string.rep('a', 500), string.rep('a', 500))",
  "string.match(string.rep('a', 300), string.rep('.', 300) .. '$')",
  "string.gsub(string.rep('a', 250), string.rep('a?', 250), 'x')",
  /* method calls and other types */
  "('abc'):find('b')", "('abc'):match('(b)(c)')", "('x=1'):gsub('%d', REPL.tab)", "(5):find('5')",
  "GM(12345, '%d')", "string.rep('ab', 3):gsub('b', '%0%0', 2)",
};

TEST(hand_written_edge_cases_agree_with_lua) {
  setup();
  int bad = 0, first = cases_compared;
  for (size_t i = 0; i < sizeof edge_cases / sizeof *edge_cases; i++)
    bad += !same_z(edge_cases[i], "", "");
  printf("     %d cases\n", cases_compared - first);
  ASSERT_EQ(bad, 0);
  teardown();
}

/* ---- random patterns over random subjects */

static uint64_t rng = 0x9e3779b97f4a7c15ull;

static uint32_t next_rand(void) {
  rng ^= rng << 13;
  rng ^= rng >> 7;
  rng ^= rng << 17;
  return (uint32_t)(rng >> 16);
}

static const char *const tokens[] = {
  "a", "b", "c", " ", ".", "%a", "%d", "%s", "%w", "%A", "%S", "%p", "%z", "[ab]", "[^a]",
  "[a-c]", "[%d%s]", "[%]]", "[^]", "(", ")", "()", "*", "+", "-", "?", "^", "$", "%b()",
  "%bab", "%f[%w]", "%f[%s]", "%f[^a]", "%1", "%2", "%0", "%", "[", "]", "%%", "%(", "%.",
  "a*", "b-", ".?", "%w+", "(a)", "(.-)", "\0",
};
static const char subject_chars[] = "aab c(1)b.\0";

static size_t random_pattern(char *out, size_t cap) {
  size_t n = 0;
  int items = 1 + (int)(next_rand() % 7), quantifiers = 0;
  for (int i = 0; i < items; i++) {
    const char *t = tokens[next_rand() % (sizeof tokens / sizeof *tokens)];
    size_t tl = t[0] ? strlen(t) : 1;  /* the "\0" token is one NUL byte */
    int q = strpbrk(t, "*+-?") != NULL;
    if (quantifiers + q > 3 || n + tl > cap) continue;  /* keep stock Lua fast */
    quantifiers += q;
    memcpy(out + n, t, tl);
    n += tl;
  }
  return n;
}

static size_t random_subject(char *out) {
  size_t n = next_rand() % 13;
  for (size_t i = 0; i < n; i++) out[i] = subject_chars[next_rand() % (sizeof subject_chars - 1)];
  return n;
}

TEST(random_patterns_agree_with_lua) {
  static const char *const rcalls[] = {
    "string.find(S,P)", "string.find(S,P,3)", "string.find(S,P,-2)", "string.match(S,P)",
    "GM(S,P)", "string.gsub(S,P,'<%0>')", "string.gsub(S,P,'%1')", "string.gsub(S,P,REPL.cat,2)",
    "string.gsub(S,P,REPL.tab)",
  };
  setup();
  int bad = 0, first = cases_compared;
  char p[64], s[16];
  for (int i = 0; i < 4000; i++) {
    size_t lp = random_pattern(p, sizeof p);
    for (int k = 0; k < 2; k++) {
      size_t ls = random_subject(s);
      const char *call = rcalls[next_rand() % (sizeof rcalls / sizeof *rcalls)];
      bad += !same(call, s, ls, p, lp);
    }
  }
  printf("     %d cases\n", cases_compared - first);
  ASSERT_EQ(bad, 0);
  teardown();
}

/* ---- cost */

static double now_s(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* Runs code in `ours` with a budget of limit units (0: none); the error, or
** NULL, in err. Returns the seconds it took. */
static double run_budget(const char *code, int64_t limit, char *err, size_t errcap) {
  charged = 0;
  charge_limit = limit;
  double t0 = now_s();
  int rc = luaL_dostring(ours, code);
  double dt = now_s() - t0;
  err[0] = '\0';
  if (rc != LUA_OK) snprintf(err, errcap, "%s", lua_tostring(ours, -1));
  lua_settop(ours, 0);
  charge_limit = 0;
  return dt;
}

#define BUDGET 2000000

static const char *const runaway[] = {
  "local s = string.rep('a', 200000) return s:find('.-b')",
  "local s = string.rep('a', 200000) return s:find('.-.-b')",
  "local s = string.rep('a', 200000) return s:find('.-.-.-b')",
  "local s = string.rep('a', 200000) return s:find('a*a*a*b')",
  "local s = string.rep('a', 200000) return s:match('(.*)%1b')",
  "local s = string.rep('a', 200000) return s:gsub('.-.-b', 'x')",
  "local s = string.rep('a', 200000) return s:gsub('.-b', REPL.cat)",
  "local s = string.rep('a', 200000) for x in s:gmatch('.-.-b') do end",
  "local s = string.rep('a', 200000) for x in s:gmatch('a-b') do end",
  "local s = string.rep('(', 100000) .. string.rep(')', 99999) return s:match('%b()x')",
  "local s = string.rep('(', 200000) return s:match('%b()')",
  "local s = string.rep('a', 200000) return s:find(string.rep('[' .. string.rep('b', 64) .. ']*', 3) .. 'c')",
  "local s = string.rep('a', 200000) return s:find(string.rep('a', 100000) .. 'b', 1, true)",
};

TEST(runaway_patterns_stop_when_the_budget_is_spent) {
  setup();
  char err[256];
  for (size_t i = 0; i < sizeof runaway / sizeof *runaway; i++) {
    double dt = run_budget(runaway[i], BUDGET, err, sizeof err);
    if (getenv("TP_VERBOSE") || dt >= 1.0 || !strstr(err, "budget_exceeded"))
      fprintf(stderr, "%s: %.3f s, %lld units, error \"%s\"\n", runaway[i], dt,
              (long long)charged, err);
    ASSERT_CONTAINS(err, "budget_exceeded: pattern work");
    ASSERT_TRUE(dt < 1.0);
    ASSERT_TRUE(charged > BUDGET);
    /* bulk work (a scan of the subject) is charged when it ends: 200000 more at most */
    ASSERT_TRUE(charged <= BUDGET + TPPM_CHARGE_EVERY + 200000);
  }
  /* the state is still usable, and nothing leaked (ASan checks at close) */
  ASSERT_EQ(run_budget("assert(('ab'):gsub('b', 'c') == 'ac')", 0, err, sizeof err) >= 0, 1);
  ASSERT_STR(err, "");
  teardown();
}

/* Runs code with no budget; returns the units charged. */
static int64_t cost_of(const char *code) {
  char err[256];
  run_budget(code, 0, err, sizeof err);
  if (err[0]) fprintf(stderr, "%s: %s\n", code, err);
  return err[0] ? -1 : charged;
}

TEST(the_charge_covers_the_steps_actually_taken) {
  setup();
  const int64_t n = 1000, m = 200;
  /* every start position, then every length of .- before giving up */
  ASSERT_TRUE(cost_of("assert(not string.rep('a', 1000):find('.-b'))") >= (n + 1) * (n + 2) / 2);
  ASSERT_TRUE(cost_of("assert(string.rep('a', 1000):gsub('.-b', 'x') == string.rep('a', 1000))") >=
              (n + 1) * (n + 2) / 2);
  ASSERT_TRUE(cost_of("for _ in string.rep('a', 1000):gmatch('.-b') do error('?') end") >=
              (n + 1) * (n + 2) / 2);
  /* two variable items: about m^3/6 */
  ASSERT_TRUE(cost_of("assert(not string.rep('a', 200):find('.-.-b'))") >= m * m * m / 6);
  /* %b scans to the end from every '(' */
  ASSERT_TRUE(cost_of("assert(not string.rep('(', 1000):match('%b()'))") >= n * (n - 1) / 2);
  /* a plain find is memchr work: about one unit per 16 bytes */
  int64_t plain = cost_of("assert(not string.rep('x', 1000000):find('needle', 1, true))");
  ASSERT_TRUE(plain >= 1000000 / 32 && plain <= 1000000 / 8);
  plain = cost_of("assert(not string.rep('x', 1000000):find('needle'))");
  ASSERT_TRUE(plain >= 1000000 / 32 && plain <= 1000000 / 8);
  teardown();
}

TEST(ordinary_patterns_cost_little) {
  setup();
  int64_t c = cost_of("assert(('hello world'):find('o w') == 5)");
  ASSERT_TRUE(c > 0 && c < 100);
  c = cost_of("assert(('key=value; other=thing'):match('(%w+)=(%w+)') == 'key')");
  ASSERT_TRUE(c > 0 && c < 200);
  c = cost_of("assert(select(2, ('a,b,c'):gsub(',', ';')) == 2)");
  ASSERT_TRUE(c > 0 && c < 100);
  teardown();
}

TEST(methods_on_strings_use_the_counted_functions) {
  setup();
  ASSERT_EQ(cost_of("assert(getmetatable('').__index == string)"), 0);
  ASSERT_TRUE(cost_of("assert(('abc'):find('b') == 2)") > 0);
  ASSERT_TRUE(cost_of("assert(('abc'):match('%a+') == 'abc')") > 0);
  ASSERT_TRUE(cost_of("for w in ('a b'):gmatch('%a') do end") > 0);
  ASSERT_TRUE(cost_of("assert(('abc'):gsub('b', 'x') == 'axc')") > 0);
  teardown();
}

TEST(nothing_is_charged_without_a_charge_function) {
  lua_State *L = luaL_newstate();
  luaL_openlibs(L);
  lua_getglobal(L, LUA_STRLIBNAME);
  tppm_open(L, -1, NULL);
  lua_pop(L, 1);
  charged = 0;
  ASSERT_EQ(luaL_dostring(L, "assert(('key=value'):gsub('(%w+)=(%w+)', '%2=%1') == 'value=key')"
                             "assert(not string.rep('a', 300):find('.-.-b'))"), LUA_OK);
  ASSERT_EQ(charged, 0);
  ASSERT_EQ(lua_gettop(L), 0);
  lua_close(L);
}

TEST(a_gmatch_iterator_charges_the_thread_that_runs_it) {
  setup();
  /* made in one coroutine, run in another; the budget stops it there */
  char err[256];
  run_budget("local it = coroutine.wrap(function() coroutine.yield(string.rep('a', 100000):gmatch('.-.-b')) end)()\n"
             "local co = coroutine.create(function() for _ in it do end end)\n"
             "local ok, e = coroutine.resume(co)\n"
             "assert(not ok) error(e, 0)",
             BUDGET, err, sizeof err);
  ASSERT_CONTAINS(err, "budget_exceeded");
  teardown();
}

int main(void) {
  RUN(every_function_agrees_with_lua_over_subjects_and_patterns);
  RUN(hand_written_edge_cases_agree_with_lua);
  RUN(random_patterns_agree_with_lua);
  RUN(runaway_patterns_stop_when_the_budget_is_spent);
  RUN(the_charge_covers_the_steps_actually_taken);
  RUN(ordinary_patterns_cost_little);
  RUN(methods_on_strings_use_the_counted_functions);
  RUN(nothing_is_charged_without_a_charge_function);
  RUN(a_gmatch_iterator_charges_the_thread_that_runs_it);
  printf("%d cases compared with stock Lua\n", cases_compared);
  return TEST_SUMMARY();
}
