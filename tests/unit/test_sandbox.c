/*
** The sandbox's limits on work done in C: string.rep (ours) gives what Lua's
** gives; rep, sort, concat and tp.* calls are charged by their size before or
** after they run; pcall cannot keep a spent budget; the watchdog ends what no
** count sees (a comparison of long strings) in the main thread and in a
** coroutine.
*/
#include <lauxlib.h>
#include <lualib.h>
#include <stdlib.h>
#include <time.h>

#include "lua/api.h"
#include "lua/sandbox.h"
#include "lua/watchdog.h"
#include "tp_test.h"

static tp_plugin plugin;
static lua_State *L;

static void setup(void) {
  memset(&plugin, 0, sizeof plugin);
  strcpy(plugin.name, "unit");
  plugin.mem_limit = 64 << 20;
  plugin.instructions = 1000000;
  L = lua_newstate(tpsb_alloc, &plugin);
  plugin.L = L;
  tpa_open(L, &plugin);
  plugin.ctx = TP_CTX_HANDLER;
}

static void teardown(void) {
  plugin.ctx = TP_CTX_NONE;
  lua_close(L);
  tpsb_release(&plugin);
}

static double now_s(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* Runs code as an invocation with budget and deadline_ms (0: none); the
** message (or "ok") goes to out. */
static int run(const char *code, int64_t budget, int64_t deadline_ms, char *out, size_t cap) {
  tpsb_arm(&plugin, budget);
  tpsb_frame frame;
  tpsb_enter(&plugin, deadline_ms, &frame);
  int rc = luaL_loadstring(L, code);
  if (rc == LUA_OK) rc = lua_pcall(L, 0, 1, 0);
  tpsb_leave(&plugin, &frame);
  snprintf(out, cap, "%s", rc == LUA_OK ? "ok" : lua_tostring(L, -1) ? lua_tostring(L, -1) : "?");
  if (rc == LUA_OK && lua_type(L, -1) == LUA_TSTRING) snprintf(out, cap, "%s", lua_tostring(L, -1));
  lua_settop(L, 0);
  return rc;
}

TEST(rep_gives_what_luas_rep_gives) {
  setup();
  lua_State *stock = luaL_newstate();
  luaL_openlibs(stock);
  typedef struct { const char *s; size_t n; } str;
  static const str subjects[] = {{"", 0}, {"a", 1}, {"ab", 2}, {"xyz", 3}, {"\0z", 2}};
  static const str seps[] = {{NULL, 0}, {"", 0}, {",", 1}, {"--", 2}, {"\0", 1}};
  static const int counts[] = {-3, 0, 1, 2, 3, 7, 64, 1000};
  int cases = 0;
  for (size_t i = 0; i < sizeof subjects / sizeof *subjects; i++)
    for (size_t j = 0; j < sizeof seps / sizeof *seps; j++)
      for (size_t k = 0; k < sizeof counts / sizeof *counts; k++) {
        lua_State *both[2] = {L, stock};
        const char *got[2];
        size_t len[2];
        tpsb_arm(&plugin, 1000000);
        for (int b = 0; b < 2; b++) {
          lua_getglobal(both[b], "string");
          lua_getfield(both[b], -1, "rep");
          lua_pushlstring(both[b], subjects[i].s, subjects[i].n);
          lua_pushinteger(both[b], counts[k]);
          if (seps[j].s) lua_pushlstring(both[b], seps[j].s, seps[j].n);
          ASSERT_EQ(lua_pcall(both[b], seps[j].s ? 3 : 2, 1, 0), LUA_OK);
          got[b] = lua_tolstring(both[b], -1, &len[b]);
        }
        ASSERT_EQ(len[0], len[1]);
        ASSERT_TRUE(memcmp(got[0], got[1], len[0]) == 0);
        lua_settop(L, 0);
        lua_settop(stock, 0);
        cases++;
      }
  ASSERT_TRUE(cases >= 200);
  char out[512];
  ASSERT_EQ(run("return string.rep('x', 1 << 40)", 1LL << 40, 0, out, sizeof out), LUA_ERRRUN);
  ASSERT_CONTAINS(out, "resulting string too large");
  lua_close(stock);
  teardown();
}

TEST(rep_is_charged_before_it_allocates) {
  setup();
  char out[512];
  /* 100 MB would be 3 million instructions of copying: refused at once */
  double t0 = now_s();
  ASSERT_EQ(run("return #string.rep('x', 100000000)", 1000000, 0, out, sizeof out), LUA_ERRRUN);
  ASSERT_CONTAINS(out, "instruction budget exceeded");
  ASSERT_TRUE(plugin.exceeded);
  ASSERT_TRUE(plugin.mem_peak < (50 << 20));
  ASSERT_TRUE(now_s() - t0 < 1.0);
  /* small ones cost little */
  ASSERT_EQ(run("return tostring(#string.rep('ab', 10, ','))", 1000000, 0, out, sizeof out), LUA_OK);
  ASSERT_STR(out, "29");
  ASSERT_TRUE(plugin.used < 1000);
  teardown();
}

TEST(sort_concat_and_tp_calls_are_charged_by_size) {
  setup();
  char out[512];
  ASSERT_EQ(run("local t = {} for i = 1, 100000 do t[i] = -i end "
                "local before = 0 table.sort(t) return 'sorted'", 100000000, 0, out, sizeof out),
            LUA_OK);
  /* the loop is ~400k instructions; sort adds n log2 n = 1.66 million */
  ASSERT_TRUE(plugin.used >= 1600000);
  ASSERT_EQ(run("local t = {} for i = 1, 1000 do t[i] = 'x' end "
                "for _ = 1, 1e9 do table.concat(t) end", 2000000, 0, out, sizeof out), LUA_ERRRUN);
  ASSERT_CONTAINS(out, "instruction budget exceeded");
  /* tp.json.encode: the bytes it builds, one instruction each */
  ASSERT_EQ(run("return tostring(#tp.json.encode({ s = string.rep('j', 500000) }))", 100000000, 0,
                out, sizeof out), LUA_OK);
  ASSERT_STR(out, "500008");
  ASSERT_TRUE(plugin.used >= 500000);
  teardown();
}

TEST(pcall_cannot_keep_a_charged_budget) {
  setup();
  char out[512];
  ASSERT_EQ(run("local ok = pcall(string.rep, 'x', 1e9) "
                "local n = 0 for i = 1, 10 do n = n + i end return 'went on'",
                1000000, 0, out, sizeof out), LUA_ERRRUN);
  ASSERT_CONTAINS(out, "instruction budget exceeded");
  teardown();
}

static const char *const COMPARE =
    "local a = string.rep('a', 1 << 20) local b = string.rep('a', (1 << 20) - 1) .. 'a' "
    "for _ = 1, 1e12 do if a == b then end end";

TEST(the_watchdog_ends_what_no_count_sees) {
  setup();
  char out[512];
  double t0 = now_s();
  ASSERT_EQ(run(COMPARE, 1000000000, 50, out, sizeof out), LUA_ERRRUN);
  double took = now_s() - t0;
  ASSERT_CONTAINS(out, "deadline exceeded");
  ASSERT_TRUE(plugin.timed_out && !plugin.exceeded);
  ASSERT_TRUE(took >= 0.045 && took < 1.0);
  /* in a coroutine, caught by its resumer: the resumer is stopped too */
  char code[512];
  snprintf(code, sizeof code, "local co = coroutine.wrap(function() %s end) "
           "local ok = pcall(co) for _ = 1, 1e9 do end return 'went on'", COMPARE);
  t0 = now_s();
  ASSERT_EQ(run(code, 1000000000, 50, out, sizeof out), LUA_ERRRUN);
  ASSERT_CONTAINS(out, "deadline exceeded");
  ASSERT_TRUE(now_s() - t0 < 1.0);
  snprintf(code, sizeof code, "local co = coroutine.create(function() %s end) "
           "local ok = coroutine.resume(co) for _ = 1, 1e9 do end return 'went on'", COMPARE);
  ASSERT_EQ(run(code, 1000000000, 50, out, sizeof out), LUA_ERRRUN);
  ASSERT_CONTAINS(out, "deadline exceeded");
  /* the next invocation starts clean */
  ASSERT_EQ(run("return 'fine'", 1000000, 50, out, sizeof out), LUA_OK);
  ASSERT_STR(out, "fine");
  ASSERT_TRUE(!plugin.timed_out);
  teardown();
}

/* A finalizer runs with hooks off, where neither the budget nor the watchdog
** reaches: no metatable the host gives out may be reached to add a __gc. */
TEST(host_metatables_cannot_gain_a_finalizer) {
  setup();
  char out[512];
  ASSERT_EQ(run("local _, e = pcall(tp.fail, 400, 'a', 'b') return getmetatable(e)", 1000000, 0,
                out, sizeof out), LUA_OK);
  ASSERT_STR(out, "tp.fail");
  ASSERT_EQ(run("return getmetatable(tp.json.array({}))", 1000000, 0, out, sizeof out), LUA_OK);
  ASSERT_STR(out, "tp.json.array");
  ASSERT_EQ(run("return getmetatable(tp.json.object({}))", 1000000, 0, out, sizeof out), LUA_OK);
  ASSERT_STR(out, "tp.json.object");
  ASSERT_EQ(run("local _, e = pcall(tp.fail, 400, 'a', 'b') "
                "getmetatable(e).__gc = function() while true do end end", 1000000, 0, out,
                sizeof out), LUA_ERRRUN);
  ASSERT_CONTAINS(out, "attempt to index a string value");
  ASSERT_EQ(run("setmetatable(tp.json.array({}), { __gc = function() end })", 1000000, 0, out,
                sizeof out), LUA_ERRRUN);
  teardown();
}

/* Found by fuzz_sandbox: JSON of a value that shares a table or a string many
** times over is bounded by what it writes, and text that the memory cap then
** refuses does not leak (LeakSanitizer checks at exit). */
TEST(json_of_shared_values_is_bounded) {
  setup();
  char out[512];
  double t0 = now_s();
  ASSERT_EQ(run("local t = {} for i = 1, 40 do t = { t, t } end return tp.json.encode(t)",
                100000000, 0, out, sizeof out), LUA_ERRRUN);
  ASSERT_CONTAINS(out, "would be longer than 33554432 bytes");
  ASSERT_EQ(run("local s = string.rep('a', 1 << 20) local t = {} "
                "for i = 1, 2000 do t[i] = s end return tp.json.encode(t)",
                100000000, 0, out, sizeof out), LUA_ERRRUN);
  ASSERT_CONTAINS(out, "would be longer than");
  /* unbounded, the first would walk 2^40 tables: minutes, not seconds. The
  ** bound is loose because sanitizers on a loaded machine took over 2 s. */
  ASSERT_TRUE(now_s() - t0 < 20.0);
  plugin.mem_limit = 8 << 20;
  ASSERT_EQ(run("local s = string.rep('a', 1 << 20) local t = {} "
                "for i = 1, 12 do t[i] = s end return tp.json.encode(t)",
                100000000, 0, out, sizeof out), LUA_ERRMEM);
  teardown();
}

/* setmetatable attaches a copy: getmetatable answers the plugin's table,
** metamethods work, and a __gc or __mode added later never reaches the
** collector (weak tables can make a collection quadratic, with hooks off). */
TEST(setmetatable_attaches_a_frozen_copy) {
  setup();
  char out[512];
  ASSERT_EQ(run("local C = {} C.__index = C function C.hi() return 'hi' end "
                "local o = setmetatable({}, C) "
                "assert(getmetatable(o) == C and rawequal(getmetatable(o), C)) "
                "function C.later() return 'later' end "   /* found through __index = C */
                "C.__tostring = function() return 'late' end "
                "local before = tostring(o) ~= 'late' "   /* not in the copy attached before */
                "setmetatable(o, nil) assert(getmetatable(o) == nil) "
                "setmetatable(o, C) "
                "local after = tostring(o) == 'late' "    /* in the new one */
                "return o.hi() .. ' ' .. o.later() .. ' ' .. tostring(before and after)",
                1000000, 0, out, sizeof out), LUA_OK);
  ASSERT_STR(out, "hi later true");
  ASSERT_EQ(run("setmetatable({}, { __mode = 'k' })", 1000000, 0, out, sizeof out), LUA_ERRRUN);
  ASSERT_EQ(run("local mt = {} local t = setmetatable({}, mt) mt.__mode = 'k' "
                "t[{}] = 1 collectgarbage('count') "
                "local s = 'x' for i = 1, 18 do s = s .. s end "  /* some garbage: a cycle runs */
                "local n = 0 for _ in pairs(t) do n = n + 1 end return tostring(n)",
                1000000, 0, out, sizeof out), LUA_OK);
  ASSERT_STR(out, "1");  /* the key was not weak */
  ASSERT_EQ(run("local t = setmetatable({}, { __metatable = 'mine' }) "
                "assert(getmetatable(t) == 'mine') setmetatable(t, {})", 1000000, 0, out,
                sizeof out), LUA_ERRRUN);
  ASSERT_CONTAINS(out, "cannot change a protected metatable");
  teardown();
}

TEST(small_blocks_are_kept_and_taken_again) {
  tp_plugin p;
  memset(&p, 0, sizeof p);
  void *a = tpsb_alloc(&p, NULL, 0, 40);  /* the class of 33-48 bytes */
  memset(a, 1, 40);
  tpsb_alloc(&p, a, 40, 0);
  ASSERT_EQ(p.free_bytes, 48);
  void *b = tpsb_alloc(&p, NULL, 0, 48);  /* the same class: the same block */
  ASSERT_TRUE(a == b);
  ASSERT_EQ(p.free_bytes, 0);
  void *c = tpsb_alloc(&p, b, 48, 33);    /* still in its class: not moved */
  ASSERT_TRUE(c == b);
  memcpy(c, "abcdefghij", 10);
  void *d = tpsb_alloc(&p, c, 33, 300);   /* past the small ones: moved, kept whole */
  ASSERT_TRUE(d != c && memcmp(d, "abcdefghij", 10) == 0);
  ASSERT_EQ(p.free_bytes, 48);
  void *e = tpsb_alloc(&p, d, 300, 20);   /* small again */
  ASSERT_TRUE(memcmp(e, "abcdefghij", 10) == 0);
  ASSERT_EQ(p.mem_bytes, 20);             /* what Lua asked for, not the classes' sizes */
  tpsb_alloc(&p, e, 20, 0);
  ASSERT_EQ(p.mem_bytes, 0);
  void *many[2000];                       /* what is kept is bounded */
  for (int i = 0; i < 2000; i++) many[i] = tpsb_alloc(&p, NULL, 0, 64);
  for (int i = 0; i < 2000; i++) tpsb_alloc(&p, many[i], 64, 0);
  ASSERT_TRUE(p.free_bytes > 0 && p.free_bytes <= (32u << 10));
  tpsb_release(&p);                       /* and freed (ASan counts the leaks) */
  ASSERT_EQ(p.free_bytes, 0);
  for (int c2 = 0; c2 < TPST_SMALL_CLASSES; c2++) ASSERT_TRUE(p.free_blocks[c2] == NULL);
}

/* A budget of TPSB_COUNT_LATER_FROM or more runs without the count hook until
** the watchdog turns the count on (after TPWD_COUNT_AFTER_MS): a short
** invocation pays nothing and counts nothing, a runaway one is still stopped
** by its budget, not by the deadline. A smaller budget is hooked at once. */
TEST(a_large_budget_counts_from_the_first_millisecond) {
  setup();
  char out[512];
  tpsb_arm(&plugin, TPSB_COUNT_LATER_FROM);
  ASSERT_EQ(lua_gethookmask(L), 0);
  tpsb_arm(&plugin, TPSB_COUNT_LATER_FROM - 1);
  ASSERT_EQ(lua_gethookmask(L), LUA_MASKCOUNT);
  ASSERT_EQ(run("local n = 0 for i = 1, 1000 do n = n + i end return tostring(n)", TPSB_COUNT_LATER_FROM,
                5000, out, sizeof out), LUA_OK);
  ASSERT_STR(out, "500500");
  ASSERT_EQ(plugin.used, 0);
  double t0 = now_s();
  ASSERT_EQ(run("while true do end", TPSB_COUNT_LATER_FROM, 5000, out, sizeof out), LUA_ERRRUN);
  ASSERT_CONTAINS(out, "instruction budget exceeded");
  ASSERT_TRUE(plugin.exceeded && !plugin.timed_out);
  ASSERT_TRUE(now_s() - t0 < 2.5);
  teardown();
}

/* Once the count is on, a thread that takes over counts too: a coroutine made
** before (without the hook) and resumed after runs away on its own. Were it
** not hooked when it took over, only the deadline would stop it. */
TEST(a_coroutine_that_takes_over_once_the_count_is_on_counts) {
  setup();
  char out[512];
  double t0 = now_s();
  ASSERT_EQ(run("local co = coroutine.wrap(function() while true do end end) "
                "local n = 0 for i = 1, 1e7 do n = n + 1 end "  /* tens of ms: the count goes on */
                "co() return 'went on'", 100000000, 10000, out, sizeof out), LUA_ERRRUN);
  ASSERT_CONTAINS(out, "instruction budget exceeded");
  ASSERT_TRUE(plugin.exceeded && !plugin.timed_out);
  ASSERT_TRUE(now_s() - t0 < 8.0);
  teardown();
}

int main(void) {
  RUN(rep_gives_what_luas_rep_gives);
  RUN(rep_is_charged_before_it_allocates);
  RUN(sort_concat_and_tp_calls_are_charged_by_size);
  RUN(pcall_cannot_keep_a_charged_budget);
  RUN(the_watchdog_ends_what_no_count_sees);
  RUN(host_metatables_cannot_gain_a_finalizer);
  RUN(json_of_shared_values_is_bounded);
  RUN(setmetatable_attaches_a_frozen_copy);
  RUN(small_blocks_are_kept_and_taken_again);
  RUN(a_large_budget_counts_from_the_first_millisecond);
  RUN(a_coroutine_that_takes_over_once_the_count_is_on_counts);
  return TEST_SUMMARY();
}
