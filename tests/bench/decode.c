/*
** decode.c - what decoding an event costs a plugin's state: the host's exact
** decoder (tpj_decode_exact, base/json.h: a delivery's argument, a view copied
** into tables) against lua-cjson's decode of the same text, the peer. Run by
** tests/bench/decode.sh under callgrind, which counts the noinline run()'s
** instructions: the decodes and the collector's work on what they left.
**
**   decode exact|cjson N
**
** The text is an order.created delivery as the runner hands it to analytics
** (core/store/sched.c task_arg): its envelope and the order as orders shapes
** it, 1.1 KB. Each step decodes it into a fresh table and drops it; the
** collector runs in generational mode, as in a plugin's state.
*/
#include <lauxlib.h>
#include <lua.h>
#include <lualib.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <lua-cjson.h>

#include "base/json.h"

static const char ORDER[] =
    "{\"id\":123456,\"name\":\"order.created\",\"source\":\"orders\",\"attempt\":1,"
    "\"emitted_at\":1796000000,\"emitted_at_ms\":1796000000123,\"data\":{\"order\":"
    "{\"id\":123456,\"user\":\"u-000123\",\"status\":\"pending_payment\",\"items_fen\":990,"
    "\"discount_fen\":0,\"total_fen\":990,\"points\":0,\"points_fen\":0,\"paid_fen\":0,"
    "\"refund_requested_fen\":0,\"refunded_fen\":0,\"coupon_id\":null,\"attribution\":{"
    "\"referrer\":\"u-000777\",\"referrer2\":null,\"store\":\"hz-west\",\"guide\":\"g-12\","
    "\"source\":{\"source\":\"group_chat\",\"scene\":1008,\"store\":\"hz-west\",\"guide\":\"g-12\","
    "\"content\":null,\"live\":null,\"referrer\":\"u-000777\",\"at\":1795990000}},"
    "\"stock_held\":true,\"transaction_id\":null,\"late_payment\":false,\"held\":false,"
    "\"created_at\":1796000000,\"pay_deadline\":1796000300,\"paid_at\":null,\"cancelled_at\":null,"
    "\"cancel_reason\":null,\"completed_at\":null,\"refunded_at\":null,\"fulfilment\":null,"
    "\"forfeited_fen\":0,\"ships_from\":null,\"payment_due\":{\"stage\":1,\"amount_fen\":990,"
    "\"closes_at\":1796000300},\"lines\":[{\"sku\":\"tea-1\",\"product_id\":1,\"title\":\"1 kg\","
    "\"qty\":1,\"list_price_fen\":19900,\"unit_price_fen\":990,\"amount_fen\":990,\"discount_fen\":0,"
    "\"paid_fen\":990}],\"campaign\":{\"plugin\":\"flash_sale\",\"id\":\"1\","
    "\"stacks_with_coupon\":false}}}}";

__attribute__((noinline)) static int step_exact(lua_State *L) {
  char err[128];
  int rc = tpj_decode_exact(L, ORDER, sizeof ORDER - 1, err, sizeof err);
  lua_settop(L, 0);
  return rc;
}

__attribute__((noinline)) static int step_cjson(lua_State *L) {
  lua_getfield(L, LUA_REGISTRYINDEX, "decode");
  lua_pushlstring(L, ORDER, sizeof ORDER - 1);
  int rc = lua_pcall(L, 1, 1, 0);
  lua_settop(L, 0);
  return rc;
}

/* N decodes by one decoder; the collector's work on them falls in here too. */
__attribute__((noinline)) static int run(lua_State *L, int (*step)(lua_State *), int n) {
  for (int i = 0; i < n; i++)
    if (step(L) != 0) return -1;
  lua_gc(L, LUA_GCCOLLECT);
  return 0;
}

int main(int argc, char **argv) {
  if (argc != 3 || (strcmp(argv[1], "exact") != 0 && strcmp(argv[1], "cjson") != 0)) {
    fprintf(stderr, "usage: decode exact|cjson N\n");
    return 2;
  }
  int n = atoi(argv[2]);
  lua_State *L = luaL_newstate();
  luaL_openlibs(L);
  lua_gc(L, LUA_GCGEN, 0, 0);
  luaL_newmetatable(L, "tp.json.array");  /* the markers tpj_mark_array sets */
  luaL_newmetatable(L, "tp.json.object");
  lua_settop(L, 0);
  luaL_requiref(L, "cjson", luaopen_cjson, 0);
  lua_getfield(L, -1, "decode");
  lua_setfield(L, LUA_REGISTRYINDEX, "decode");
  lua_settop(L, 0);
  lua_gc(L, LUA_GCCOLLECT);
  if (run(L, argv[1][0] == 'e' ? step_exact : step_cjson, n) != 0) {
    fprintf(stderr, "decode: the text did not decode\n");
    return 1;
  }
  printf("%s: %zu bytes, %d decodes\n", argv[1], sizeof ORDER - 1, n);
  lua_close(L);
  return 0;
}
