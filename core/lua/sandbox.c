/*
** sandbox.c - safe libraries, require, and the instruction and memory limits.
*/
#include "lua/sandbox.h"

#include <lauxlib.h>
#include <lualib.h>
#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "base/json.h"
#include "lua/api.h"
#include "lua/pattern.h"
#include "store/store.h"
#include "lua/watchdog.h"

#define LOADED_KEY "tp.loaded"

/* ---- memory
**
** A plugin's state makes and drops small objects at a high rate: a buy makes
** about 90 tables, strings and closures and frees 160, where glibc's malloc
** and free take 120 and 70 instructions. Freed blocks of up to SMALL bytes are
** kept on a list per 16-byte class instead, at most KEPT_BYTES per state, and
** taken again in a few instructions. Lua passes every block's size when it
** frees or resizes it, so a block's class is known; a small block is always
** allocated at its class's size, so it fits any request of that class.
** tpsb_release frees what is kept when the state is closed. Under
** AddressSanitizer a kept block is poisoned: a use after free is still caught.
*/
#define SMALL (TPST_SMALL_CLASSES * 16)
#define KEPT_BYTES (32u << 10)

#if defined(__SANITIZE_ADDRESS__)
#include <sanitizer/asan_interface.h>
#define POISON(p, n) ASAN_POISON_MEMORY_REGION(p, n)
#define UNPOISON(p, n) ASAN_UNPOISON_MEMORY_REGION(p, n)
#else
#define POISON(p, n) ((void)(p), (void)(n))
#define UNPOISON(p, n) ((void)(p), (void)(n))
#endif

static size_t class_of(size_t n) { return (n - 1) / 16; }  /* n in 1..SMALL */

static void *take(tp_plugin *p, size_t n) {
  if (n > SMALL) return malloc(n);
  size_t c = class_of(n), size = (c + 1) * 16;
  void *b = p->free_blocks[c];
  if (!b) return malloc(size);
  UNPOISON(b, size);
  p->free_blocks[c] = *(void **)b;
  p->free_bytes -= size;
  return b;
}

static void give_back(tp_plugin *p, void *b, size_t n) {
  if (!b) return;
  size_t c = class_of(n), size = (c + 1) * 16;
  if (n > SMALL || p->free_bytes + size > KEPT_BYTES) {
    free(b);
    return;
  }
  *(void **)b = p->free_blocks[c];
  p->free_blocks[c] = b;
  p->free_bytes += size;
  POISON(b, size);
}

void tpsb_release(tp_plugin *p) {
  for (int c = 0; c < TPST_SMALL_CLASSES; c++)
    while (p->free_blocks[c]) {
      void *b = p->free_blocks[c];
      UNPOISON(b, (size_t)(c + 1) * 16);
      p->free_blocks[c] = *(void **)b;
      free(b);
    }
  p->free_bytes = 0;
}

/* A block of old bytes at ptr resized to n (both > 0). */
static void *resize(tp_plugin *p, void *ptr, size_t old, size_t n) {
  if (old > SMALL && n > SMALL) return realloc(ptr, n);
  if (old <= SMALL && n <= SMALL && class_of(old) == class_of(n)) return ptr;  /* it fits */
  void *b = take(p, n);
  if (!b) return NULL;
  memcpy(b, ptr, old < n ? old : n);
  give_back(p, ptr, old);
  return b;
}

void *tpsb_alloc(void *ud, void *ptr, size_t osize, size_t nsize) {
  tp_plugin *p = ud;
  size_t old = ptr ? osize : 0;
  if (nsize == 0) {
    give_back(p, ptr, old);
    p->mem_bytes -= old;
    return NULL;
  }
  /* the cap binds plugin code; the host's own pushes around a call may pass it
  ** a little, since an allocation failure outside a protected call would abort */
  if (p->mem_limit && p->ctx != TP_CTX_NONE && nsize > old &&
      p->mem_bytes - old + nsize > p->mem_limit) {
    /* Lua collects garbage and asks again for the same size; refused twice,
    ** it raises, and the invocation fails even if the plugin catches that */
    if (p->refused_size == nsize) p->mem_exceeded = true;
    p->refused_size = nsize;
    return NULL;
  }
  p->refused_size = 0;
  void *np = ptr ? resize(p, ptr, old, nsize) : take(p, nsize);
  if (!np) return NULL;
  p->mem_bytes = p->mem_bytes - old + nsize;
  if (p->mem_bytes > p->mem_peak) p->mem_peak = p->mem_bytes;
  return np;
}

/* ---- instructions */

static int hook_step = TPSB_HOOK_STEP;  /* set once, before any plugin loads */

void tpsb_set_hook_step(int step) { hook_step = step > 0 ? step : TPSB_HOOK_STEP; }

int tpsb_hook_step(void) { return hook_step; }

static void count_hook(lua_State *L, lua_Debug *ar);

/* Ends the invocation running in L for good: the hook fires again on the next
** instruction of this coroutine, so whatever catches the error, it cannot go
** on. The deadline wins when both limits are past. */
static int stop(lua_State *L, tp_plugin *p) {
  if (!p->exceeded && !p->timed_out) {
    if (tpwd_expired()) p->timed_out = true;
    else p->exceeded = true;
  }
  lua_sethook(L, count_hook, LUA_MASKCOUNT, 1);
  /* lua_pushfstring knows %I (a lua_Integer), not %lld */
  if (p->timed_out)
    return luaL_error(L, "deadline exceeded: plugin '%s' ran longer than %I ms", p->name,
                      (lua_Integer)tpwd_deadline_ms());
  return luaL_error(L, "instruction budget exceeded: plugin '%s' may run %I instructions per "
                    "invocation", p->name, (lua_Integer)p->budget);
}

static void count_hook(lua_State *L, lua_Debug *ar) {
  (void)ar;
  tp_plugin *p = tpst_owner(L);
  int step = lua_gethookcount(L);
  p->used += step;
  if (!p->exceeded && !p->timed_out && p->used <= p->budget && !tpwd_expired()) {
    if (step != hook_step) lua_sethook(L, count_hook, LUA_MASKCOUNT, hook_step);
    return;
  }
  stop(L, p);
}

void tpsb_arm(tp_plugin *p, int64_t budget) {
  p->budget = budget;
  p->used = 0;
  p->exceeded = false;
  p->timed_out = false;
  p->mem_exceeded = false;
  p->refused_size = 0;
  /* counted from its first instruction (coroutines inherit the hook when
  ** created), or from when the watchdog turns the count on (sandbox.h); the
  ** main thread loses the step 1 of an invocation that ended over budget */
  if (hook_step == 1 || budget < TPSB_COUNT_LATER_FROM || !tpwd_ready())
    lua_sethook(p->L, count_hook, LUA_MASKCOUNT, hook_step);
  else
    lua_sethook(p->L, NULL, 0, 0);
}

void tpsb_charge(lua_State *L, int64_t n) {
  tp_plugin *p = tpst_owner(L);
  if (p->ctx == TP_CTX_NONE) return;  /* the host's own use of the state */
  p->used += n;
  if (p->exceeded || p->timed_out || p->used > p->budget || tpwd_expired()) stop(L, p);
}

/* Charges bytes of C work at bytes_per bytes an instruction. */
static void charge_bytes(lua_State *L, double bytes, int bytes_per) {
  double n = bytes / bytes_per;
  tpsb_charge(L, n > 1e15 ? (int64_t)1e15 : (int64_t)n);
}

void tpsb_charge_strings(lua_State *L, int n, int bytes_per) {
  double bytes = 0;
  size_t len;
  for (int i = lua_gettop(L) - n + 1; i <= lua_gettop(L); i++) {
    if (lua_type(L, i) == LUA_TSTRING) {
      bytes += (double)(lua_tolstring(L, i, &len), len);
    } else if (lua_type(L, i) == LUA_TUSERDATA) {
      const tpj_view *v = tpj_to_view(L, i);  /* a JSON view: its text */
      if (v) bytes += (double)v->len;
    }
  }
  if (bytes >= bytes_per) charge_bytes(L, bytes, bytes_per);
}

void tpsb_enter(tp_plugin *p, int64_t deadline_ms, tpsb_frame *f) {
  f->thread = tpwd_running(p->L);
  if (p->db) f->progress = tps_set_progress(p->db, (tps_progress){tpsb_sql_progress, p});
  tpwd_arm(deadline_ms, p->db ? p->db->db : NULL, count_hook, hook_step);
}

void tpsb_leave(tp_plugin *p, tpsb_frame *f) {
  /* the watchdog may have interrupted its SQL without a charge point seeing it */
  if (tpwd_expired()) p->timed_out = true;
  tpwd_disarm();
  if (p->db) tps_set_progress(p->db, f->progress);
  tpwd_running(f->thread);
}

/* Interrupting a statement that writes makes SQLite roll back the whole
** transaction, which is the batch of every request of this loop iteration
** (they would all answer 503 commit_failed). So a write that runs out of
** budget finishes, and the hook ends the plugin right after it; only the
** deadline, the hard stop, interrupts a write. */
int tpsb_sql_progress(void *ud, int64_t steps) {
  tp_plugin *p = ud;
  if (p->ctx == TP_CTX_NONE) return tpwd_expired();  /* its migrations: the deadline only */
  p->used += steps;  /* one instruction per step */
  if (p->timed_out) return 1;
  if (tpwd_expired()) {
    p->timed_out = true;
    return 1;
  }
  if (p->used > p->budget) p->exceeded = true;
  return p->exceeded && !p->sql_writing;
}

bool tpsb_killed(const tp_plugin *p) { return p->exceeded || p->timed_out || p->mem_exceeded; }

/* ---- denials */

/* A function that only explains why it is not there (upvalue 1: message). */
static int deny_call(lua_State *L) {
  return tpst_fail(L, 500, "sandbox_violation", "%s", lua_tostring(L, lua_upvalueindex(1)));
}

static void push_denial(lua_State *L, const char *what, const char *hint) {
  lua_pushfstring(L, "%s is not available to plugins%s%s", what, hint[0] ? ": " : "", hint);
  lua_pushcclosure(L, deny_call, 1);
}

/* io.open, os.time ...: upvalue 1 is the library name, upvalue 2 the hint. */
static int deny_index(lua_State *L) {
  const char *lib = lua_tostring(L, lua_upvalueindex(1));
  const char *hint = lua_tostring(L, lua_upvalueindex(2));
  const char *key = lua_type(L, 2) == LUA_TSTRING ? lua_tostring(L, 2) : "?";
  return tpst_fail(L, 500, "sandbox_violation", "%s.%s is not available to plugins: %s", lib, key,
                  hint);
}

static void deny_library(lua_State *L, const char *lib, const char *hint) {
  lua_newtable(L);
  lua_createtable(L, 0, 2);
  lua_pushstring(L, lib);
  lua_pushstring(L, hint);
  lua_pushcclosure(L, deny_index, 2);
  lua_setfield(L, -2, "__index");
  lua_pushliteral(L, "sandboxed");
  lua_setfield(L, -2, "__metatable");
  lua_setmetatable(L, -2);
  lua_setglobal(L, lib);
}

/* load(chunk [, chunkname [, mode [, env]]]): text only, env required.
** Upvalue 1 is the original load. */
static int sandboxed_load(lua_State *L) {
  luaL_checkany(L, 1);
  if (lua_type(L, 1) == LUA_TSTRING && lua_tostring(L, 1)[0] == LUA_SIGNATURE[0])
    return tpst_fail(L, 500, "sandbox_violation", "load: binary chunks (bytecode) are not "
                    "allowed; load Lua source text");
  const char *mode = luaL_optstring(L, 3, "t");
  if (strcmp(mode, "t") != 0)
    return tpst_fail(L, 500, "sandbox_violation", "load: mode must be \"t\" (text only)");
  if (lua_gettop(L) < 4 || !lua_istable(L, 4))
    return tpst_fail(L, 500, "sandbox_violation", "load needs an explicit environment table: "
                    "load(text, name, \"t\", env)");
  lua_settop(L, 4);
  lua_pushliteral(L, "t");
  lua_replace(L, 3);
  lua_pushvalue(L, lua_upvalueindex(1));
  lua_insert(L, 1);
  /* stack: load chunk name "t" env */
  lua_call(L, 4, LUA_MULTRET);
  return lua_gettop(L);
}

/* Marks the metatables setmetatable attached: true if the plugin may replace
** it, false if the plugin's own __metatable protects it. No plugin can reach
** a copy, so none can forge the mark. */
static const char frozen_key = 0;

/* Refuses to replace a metatable that is protected, as Lua does. */
static int check_replaceable(lua_State *L) {
  if (!lua_getmetatable(L, 1)) return 0;
  bool ours = lua_rawgetp(L, -1, &frozen_key) != LUA_TNIL;
  bool replaceable = lua_toboolean(L, -1);
  lua_pop(L, 1);
  lua_pushliteral(L, "__metatable");
  bool guarded = lua_rawget(L, -2) != LUA_TNIL;
  lua_pop(L, 2);
  if (ours ? !replaceable : guarded) return luaL_error(L, "cannot change a protected metatable");
  return 0;
}

static void refuse_field(lua_State *L, const char *field, const char *why) {
  lua_pushstring(L, field);
  if (lua_rawget(L, 2) != LUA_TNIL)
    tpst_fail(L, 500, "sandbox_violation", "%s metamethods are not allowed in plugins: %s", field,
             why);
  lua_pop(L, 1);
}

/* setmetatable(t, mt) attaches a copy of mt as it is now, and getmetatable(t)
** still answers mt. Lua reads __gc and __mode from a metatable whenever it
** collects, so a plugin could add them to mt after the fact: a finalizer runs
** with hooks off, where no limit reaches, and weak tables can make one
** collection cost the square of their size. Both are refused here, and the
** copy keeps them out for good. */
static int sandboxed_setmetatable(lua_State *L) {
  luaL_checktype(L, 1, LUA_TTABLE);
  int kind = lua_type(L, 2);
  luaL_argexpected(L, kind == LUA_TNIL || kind == LUA_TTABLE, 2, "nil or table");
  lua_settop(L, 2);
  check_replaceable(L);
  if (kind == LUA_TNIL) {
    lua_setmetatable(L, 1);
    return 1;
  }
  refuse_field(L, "__gc", "finalizers would run outside the instruction budget");
  refuse_field(L, "__mode", "the collector's work on weak tables cannot be bounded");
  lua_createtable(L, 0, 4);
  lua_pushnil(L);
  while (lua_next(L, 2)) {  /* stack: t mt copy key value */
    lua_pushvalue(L, -2);
    lua_insert(L, -2);
    lua_rawset(L, 3);
  }
  lua_pushliteral(L, "__metatable");
  bool guarded = lua_rawget(L, 2) != LUA_TNIL;
  lua_pop(L, 1);
  if (!guarded) {  /* getmetatable(t) answers mt */
    lua_pushvalue(L, 2);
    lua_setfield(L, 3, "__metatable");
  }
  lua_pushboolean(L, !guarded);
  lua_rawsetp(L, 3, &frozen_key);
  lua_setmetatable(L, 1);
  lua_settop(L, 1);
  return 1;
}

/* collectgarbage("count") only: the collector belongs to the host. */
static int sandboxed_collectgarbage(lua_State *L) {
  const char *opt = luaL_optstring(L, 1, "collect");
  if (strcmp(opt, "count") != 0)
    return tpst_fail(L, 500, "sandbox_violation", "collectgarbage(\"%s\") is not available to "
                    "plugins; only collectgarbage(\"count\")", opt);
  tp_plugin *p = tpst_owner(L);
  lua_pushnumber(L, (lua_Number)p->mem_bytes / 1024.0);
  return 1;
}

static void wrap_global(lua_State *L, const char *name, lua_CFunction fn) {
  lua_getglobal(L, name);
  lua_pushcclosure(L, fn, 1);
  lua_setglobal(L, name);
}

/* ---- C work, charged by its size */

/* Runs the library's own function (upvalue 1: a C function with no upvalues
** of its own, as all of Lua's library functions are) on this very frame, so
** the wrapper costs no second call; its results are the top ones. */
static int call_original(lua_State *L) {
  return lua_tocfunction(L, lua_upvalueindex(1))(L);
}

static double str_len(lua_State *L, int idx) {
  size_t n = 0;
  if (lua_type(L, idx) == LUA_TSTRING) lua_tolstring(L, idx, &n);
  return (double)n;
}

/* Elements i..j of a range, as the functions that walk one default them. */
static double range(lua_State *L, int i_idx, int j_idx, double len) {
  double i = lua_isnoneornil(L, i_idx) ? 1 : (double)luaL_optinteger(L, i_idx, 1);
  double j = lua_isnoneornil(L, j_idx) ? len : (double)luaL_optinteger(L, j_idx, 0);
  if (i < 0) i += len + 1;
  if (j < 0) j += len + 1;
  return j >= i ? j - i + 1 : 0;
}

static double table_len(lua_State *L, int idx) {
  return lua_type(L, idx) == LUA_TTABLE ? (double)lua_rawlen(L, idx) : 0;
}

/* Every string it returns, charged after the call: the work that built them
** is bounded by the memory cap, and their size is only known now. */
static int charge_results(lua_State *L, int n) {
  tpsb_charge_strings(L, n, TPSB_COPY_BYTES);
  return n;
}

static int c_built(lua_State *L) { return charge_results(L, call_original(L)); }

/* string.rep, written here: Lua's copies s once per repetition (20 million
** calls of memcpy for rep("x", 2e7)); this one copies s and sep once and then
** doubles what it has, so its work is the bytes it builds, charged first. */
static int c_rep(lua_State *L) {
  size_t l, lsep;
  const char *s = luaL_checklstring(L, 1, &l);
  lua_Integer n = luaL_checkinteger(L, 2);
  const char *sep = luaL_optlstring(L, 3, "", &lsep);
  if (n <= 0 || (l == 0 && lsep == 0)) {
    lua_pushliteral(L, "");
    return 1;
  }
  size_t unit = l + lsep;
  if (unit < l || unit > (size_t)INT_MAX / (lua_Unsigned)n)
    return luaL_error(L, "resulting string too large");
  size_t total = (size_t)n * unit - lsep;
  tpsb_charge(L, (int64_t)(total / TPSB_COPY_BYTES));
  luaL_Buffer b;
  char *out = luaL_buffinitsize(L, &b, total);
  memcpy(out, s, l);
  if (n > 1) memcpy(out + l, sep, lsep);
  /* out holds whole periods of "s sep"; the first total bytes of that
  ** periodic string are the answer */
  for (size_t filled = n > 1 ? unit : l; filled < total;) {
    size_t c = filled < total - filled ? filled : total - filled;
    memcpy(out + filled, out, c);
    filled += c;
  }
  luaL_pushresultsize(&b, total);
  return 1;
}

static int c_byte(lua_State *L) {  /* string.byte(s [, i [, j]]): j defaults to i */
  double len = str_len(L, 1);
  lua_Integer i = luaL_optinteger(L, 2, 1);
  lua_Integer j = luaL_optinteger(L, 3, i);
  double a = i < 0 ? (double)i + len + 1 : (double)i, b = j < 0 ? (double)j + len + 1 : (double)j;
  tpsb_charge(L, (int64_t)fmax(0, fmin(b, len) - fmax(a, 1) + 1));
  return call_original(L);
}

static int c_args(lua_State *L) {  /* string.char, utf8.char: one per argument */
  tpsb_charge(L, lua_gettop(L));
  return charge_results(L, call_original(L));
}

static int c_walk(lua_State *L) {  /* utf8.len, codepoint, offset, string.unpack: the string */
  charge_bytes(L, str_len(L, 1), TPSB_PARSE_BYTES);
  return call_original(L);
}

static int c_concat(lua_State *L) {
  double n = range(L, 3, 4, table_len(L, 1));
  tpsb_charge(L, (int64_t)fmin(n, 1e15));
  return charge_results(L, call_original(L));
}

static int c_sort(lua_State *L) {
  double n = table_len(L, 1);
  tpsb_charge(L, n > 1 ? (int64_t)(n * log2(n)) : 0);
  return call_original(L);
}

static int c_unpack(lua_State *L) {
  tpsb_charge(L, (int64_t)fmin(range(L, 2, 3, table_len(L, 1)), 1e15));
  return call_original(L);
}

static int c_shift(lua_State *L) {  /* table.insert and table.remove move what follows */
  tpsb_charge(L, (int64_t)table_len(L, 1));
  return call_original(L);
}

static int c_move(lua_State *L) {  /* table.move(a1, f, e, t [, a2]) */
  double f = (double)luaL_checkinteger(L, 2), e = (double)luaL_checkinteger(L, 3);
  tpsb_charge(L, e >= f ? (int64_t)fmin(e - f + 1, 1e15) : 0);
  return call_original(L);
}

static int c_read(lua_State *L) {  /* load, rawequal: the strings they read */
  charge_bytes(L, str_len(L, 1) + str_len(L, 2), TPSB_PARSE_BYTES);
  return call_original(L);
}

typedef struct charged_fn {
  const char *lib;       /* NULL: a global */
  const char *name;
  lua_CFunction wrap;
} charged_fn;

static const charged_fn charged[] = {
    {LUA_STRLIBNAME, "rep", c_rep},       {LUA_STRLIBNAME, "format", c_built},
    {LUA_STRLIBNAME, "upper", c_built},   {LUA_STRLIBNAME, "lower", c_built},
    {LUA_STRLIBNAME, "reverse", c_built}, {LUA_STRLIBNAME, "sub", c_built},
    {LUA_STRLIBNAME, "pack", c_built},    {LUA_STRLIBNAME, "unpack", c_walk},
    {LUA_STRLIBNAME, "byte", c_byte},     {LUA_STRLIBNAME, "char", c_args},
    {LUA_TABLIBNAME, "concat", c_concat}, {LUA_TABLIBNAME, "sort", c_sort},
    {LUA_TABLIBNAME, "unpack", c_unpack}, {LUA_TABLIBNAME, "insert", c_shift},
    {LUA_TABLIBNAME, "remove", c_shift},  {LUA_TABLIBNAME, "move", c_move},
    {LUA_UTF8LIBNAME, "char", c_args},    {LUA_UTF8LIBNAME, "len", c_walk},
    {LUA_UTF8LIBNAME, "codepoint", c_walk}, {LUA_UTF8LIBNAME, "offset", c_walk},
    {NULL, "rawequal", c_read},
    {NULL, "load", c_read},               {NULL, NULL, NULL}};

static void charge_libraries(lua_State *L) {
  for (const charged_fn *c = charged; c->name; c++) {
    if (c->lib) lua_getglobal(L, c->lib);
    else lua_pushglobaltable(L);
    lua_getfield(L, -1, c->name);
    lua_pushcclosure(L, c->wrap, 1);
    lua_setfield(L, -2, c->name);
    lua_pop(L, 1);
  }
}

/* ---- coroutines: the watchdog must know which thread runs */

/* Runs the function at 1 with the rest as arguments while co is the thread
** the watchdog watches; a limit passed inside co is raised here too. */
static int run_watched(lua_State *L, lua_State *co) {
  lua_State *prev = tpwd_running(co);
  int rc = lua_pcall(L, lua_gettop(L) - 1, LUA_MULTRET, 0);
  tpwd_running(prev);
  tp_plugin *p = tpst_owner(L);
  if (p->exceeded || p->timed_out) stop(L, p);
  if (rc != LUA_OK) return lua_error(L);
  return lua_gettop(L);
}

/* coroutine.resume (upvalue 1: the original). */
static int watched_resume(lua_State *L) {
  lua_State *co = lua_tothread(L, 1);
  if (!co) return luaL_typeerror(L, 1, "coroutine");
  lua_pushvalue(L, lua_upvalueindex(1));
  lua_insert(L, 1);
  return run_watched(L, co);
}

/* What coroutine.wrap returns (upvalue 1: the original wrapper, 2: its thread). */
static int watched_wrapped(lua_State *L) {
  lua_pushvalue(L, lua_upvalueindex(1));
  lua_insert(L, 1);
  return run_watched(L, lua_tothread(L, lua_upvalueindex(2)));
}

/* coroutine.wrap (upvalue 1: the original): its function's thread is its
** only upvalue. */
static int watched_wrap(lua_State *L) {
  lua_pushvalue(L, lua_upvalueindex(1));
  lua_insert(L, 1);
  lua_call(L, lua_gettop(L) - 1, 1);
  /* stack: wrapper */
  if (!lua_getupvalue(L, -1, 1) || !lua_isthread(L, -1))
    return luaL_error(L, "coroutine.wrap: unexpected wrapper");
  lua_pushcclosure(L, watched_wrapped, 2);
  return 1;
}

static void watch_coroutines(lua_State *L) {
  lua_getglobal(L, LUA_COLIBNAME);
  lua_getfield(L, -1, "resume");
  lua_pushcclosure(L, watched_resume, 1);
  lua_setfield(L, -2, "resume");
  lua_getfield(L, -1, "wrap");
  lua_pushcclosure(L, watched_wrap, 1);
  lua_setfield(L, -2, "wrap");
  lua_pop(L, 1);
}

/* ---- require: the plugin's folder, then the SDK */

static bool valid_module_name(const char *s, size_t n) {
  if (n == 0 || n > 128 || s[0] == '.' || s[n - 1] == '.') return false;
  for (size_t i = 0; i < n; i++) {
    char c = s[i];
    bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              c == '_' || (c == '.' && s[i + 1] != '.');
    if (!ok) return false;
  }
  return true;
}

/* Finds name ("lib.util") as <dir>/lib/util.lua; 0 with path filled if found. */
static int find_module(const char *dir, const char *name, char *path, size_t cap) {
  if (!dir) return -1;
  int n = snprintf(path, cap, "%s/", dir);
  for (const char *c = name; *c && n > 0 && (size_t)n < cap - 5; c++) path[n++] = *c == '.' ? '/' : *c;
  if (n <= 0 || (size_t)n >= cap - 5) return -1;
  memcpy(path + n, ".lua", 5);
  return access(path, R_OK) == 0 ? 0 : -1;
}

static int l_require(lua_State *L) {
  size_t n;
  const char *name = luaL_checklstring(L, 1, &n);
  tp_plugin *p = tpst_owner(L);
  if (!valid_module_name(name, n))
    return luaL_error(L, "require: '%s' is not a module name (letters, digits, _ and dots)", name);
  luaL_getsubtable(L, LUA_REGISTRYINDEX, LOADED_KEY);
  /* stack: name loaded */
  if (lua_getfield(L, 2, name) != LUA_TNIL) {
    if (lua_islightuserdata(L, -1)) return luaL_error(L, "require: '%s' requires itself (a cycle)", name);
    return 1;
  }
  lua_pop(L, 1);
  char path[1024];
  if (find_module(p->dir, name, path, sizeof path) != 0 &&
      find_module(p->sdk_dir, name, path, sizeof path) != 0)
    return luaL_error(L, "require: module '%s' not found in the plugin's folder (%s) or the SDK "
                      "(%s)", name, p->dir, p->sdk_dir ? p->sdk_dir : "none");
  if (luaL_loadfilex(L, path, "t") != LUA_OK) return lua_error(L);
  lua_pushlightuserdata(L, L);  /* "being loaded", to catch cycles */
  lua_setfield(L, 2, name);
  /* stack: name loaded chunk */
  lua_pushvalue(L, 1);
  lua_pushstring(L, path);
  if (lua_pcall(L, 2, 1, 0) != LUA_OK) {  /* a module that failed may be required again */
    lua_pushnil(L);
    lua_setfield(L, 2, name);
    return lua_error(L);
  }
  if (lua_isnil(L, -1)) {
    lua_pop(L, 1);
    lua_pushboolean(L, 1);
  }
  lua_pushvalue(L, -1);
  lua_setfield(L, 2, name);
  return 1;
}

/* ---- opening */

void tpsb_open(lua_State *L) {
  static const luaL_Reg libs[] = {
      {LUA_GNAME, luaopen_base},         {LUA_STRLIBNAME, luaopen_string},
      {LUA_TABLIBNAME, luaopen_table},   {LUA_MATHLIBNAME, luaopen_math},
      {LUA_UTF8LIBNAME, luaopen_utf8},   {LUA_COLIBNAME, luaopen_coroutine},
      {NULL, NULL}};
  for (const luaL_Reg *lib = libs; lib->func; lib++) {
    luaL_requiref(L, lib->name, lib->func, 1);
    lua_pop(L, 1);
  }
  push_denial(L, "dofile", "plugins read no files; use require for modules");
  lua_setglobal(L, "dofile");
  push_denial(L, "loadfile", "plugins read no files; use require for modules");
  lua_setglobal(L, "loadfile");
  lua_getglobal(L, LUA_STRLIBNAME);
  push_denial(L, "string.dump", "bytecode is not allowed");
  lua_setfield(L, -2, "dump");
  lua_pop(L, 1);
  deny_library(L, "io", "plugins keep data in the store (tp.db)");
  deny_library(L, "os", "time comes from the host (tp.now, tp.localtime)");
  deny_library(L, "debug", "it would break the sandbox");
  deny_library(L, "package", "use require, which looks in the plugin's folder and the SDK");
  lua_getglobal(L, LUA_STRLIBNAME);
  tppm_open(L, lua_gettop(L), tpsb_charge);  /* find, match, gmatch, gsub: every step counted */
  lua_pop(L, 1);
  charge_libraries(L);
  watch_coroutines(L);
  wrap_global(L, "load", sandboxed_load);
  lua_pushcfunction(L, sandboxed_setmetatable);
  lua_setglobal(L, "setmetatable");
  lua_pushcfunction(L, sandboxed_collectgarbage);
  lua_setglobal(L, "collectgarbage");
  lua_pushcfunction(L, l_require);
  lua_setglobal(L, "require");
}
