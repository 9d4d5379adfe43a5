/*
** config.c - run the host's configuration file: a Lua chunk in a state of
** its own, on a budget of memory and instructions, with env() its only window
** on the world; fields.c checks the table it returns.
*/
#include "base/suggest.h"
#include "config/config_int.h"

#include <errno.h>
#include <lauxlib.h>
#include <lualib.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/buf.h"
#include "base/luacopy.h"

/* env(name [, default]): the config's only window on the environment. */
static int config_env(lua_State *L) {
  const char *name = luaL_checkstring(L, 1);
  const char *v = getenv(name);
  if (v) lua_pushstring(L, v);
  else if (!lua_isnoneornil(L, 2)) lua_pushvalue(L, 2);
  else return luaL_error(L, "environment variable %s is not set", name);
  return 1;
}

static void open_config_env(lua_State *L) {
  luaL_requiref(L, "_G", luaopen_base, 1);
  luaL_requiref(L, LUA_STRLIBNAME, luaopen_string, 1);
  luaL_requiref(L, LUA_TABLIBNAME, luaopen_table, 1);
  luaL_requiref(L, LUA_MATHLIBNAME, luaopen_math, 1);
  lua_pop(L, 4);
  static const char *const unsafe[] = {"dofile", "loadfile", "load", "require", "collectgarbage", NULL};
  for (const char *const *u = unsafe; *u; u++) {
    lua_pushnil(L);
    lua_setglobal(L, *u);
  }
  lua_pushcfunction(L, config_env);
  lua_setglobal(L, "env");
}

/* A config is data with a little arithmetic. It runs on a budget, so that a
** runaway loop or table in it is an error at start-up, not a hung or swollen
** host. The byte count lives in the lua_State's allocator data. */
#define CONFIG_MAX_BYTES ((size_t)64 << 20)
#define CONFIG_MAX_INSTRUCTIONS 50000000
#define CONFIG_HOOK_EVERY 10000

static void *config_alloc(void *ud, void *ptr, size_t osize, size_t nsize) {
  size_t *used = ud;
  size_t old = ptr ? osize : 0;
  if (nsize == 0) {
    free(ptr);
    *used -= old;
    return NULL;
  }
  if (nsize > old && nsize - old > CONFIG_MAX_BYTES - *used) return NULL;  /* Lua: out of memory */
  void *p = realloc(ptr, nsize);
  if (p) *used = *used - old + nsize;
  return p;
}

static void config_count_hook(lua_State *L, lua_Debug *ar) {
  (void)ar;
  int *calls = lua_getextraspace(L);
  if (++*calls > CONFIG_MAX_INSTRUCTIONS / CONFIG_HOOK_EVERY)
    luaL_error(L, "the config ran more than %d Lua instructions", CONFIG_MAX_INSTRUCTIONS);
}

static lua_State *config_state(void) {
  size_t *used = calloc(1, sizeof *used);
  if (!used) return NULL;
  lua_State *L = lua_newstate(config_alloc, used);
  if (!L) free(used);
  return L;
}

static void config_state_close(lua_State *L) {
  void *used;
  lua_getallocf(L, &used);
  lua_close(L);
  free(used);
}

/* Runs the config chunk under the instruction budget; its table is left on the stack. */
static int run_config_chunk(lua_State *L, const char *text, size_t len, const char *chunkname) {
  *(int *)lua_getextraspace(L) = 0;
  lua_sethook(L, config_count_hook, LUA_MASKCOUNT, CONFIG_HOOK_EVERY);
  int rc = luaL_loadbufferx(L, text, len, chunkname, "t");
  if (rc == LUA_OK) rc = lua_pcall(L, 0, 1, 0);
  lua_sethook(L, NULL, 0, 0);
  return rc;
}

static int load_common(const char *text, size_t len, const char *chunkname, const char *dir,
                       tpc_config *cfg, char *err, size_t errcap) {
  cfg->dir = strdup(dir ? dir : ".");
  cfg->L = config_state();
  if (!cfg->L) {
    snprintf(err, errcap, "out of memory");
    return -1;
  }
  open_config_env(cfg->L);
  if (run_config_chunk(cfg->L, text, len, chunkname) != LUA_OK) {
    const char *msg = lua_tostring(cfg->L, -1);
    snprintf(err, errcap, "%s", msg ? msg : "the config raised an error that is not a string");
    return -1;
  }
  int rc = tpc__check(cfg->L, cfg, chunkname[0] == '@' ? chunkname + 1 : chunkname, err, errcap);
  lua_settop(cfg->L, 0);
  return rc;
}

int tpc_load_string(const char *text, const char *chunkname, const char *dir, tpc_config *cfg,
                    char *err, size_t errcap) {
  memset(cfg, 0, sizeof *cfg);
  cfg->path = strdup(chunkname);
  int rc = load_common(text, strlen(text), chunkname, dir, cfg, err, errcap);
  if (rc != 0) tpc_free(cfg);
  return rc;
}

int tpc_load(const char *path, tpc_config *cfg, char *err, size_t errcap) {
  memset(cfg, 0, sizeof *cfg);
  size_t len;
  char *text = tp_read_file(path, 8u << 20, &len);
  if (!text) {
    snprintf(err, errcap, errno == EFBIG ? "%s: config file larger than 8 MiB"
                                         : "%s: cannot open config file", path);
    return -1;
  }
  char *dir = strdup(path);
  char *slash = strrchr(dir, '/');
  if (slash) *slash = '\0';
  else strcpy(dir, ".");
  char chunk[1024];
  snprintf(chunk, sizeof chunk, "@%s", path);
  cfg->path = strdup(path);
  int rc = load_common(text, len, chunk, dir, cfg, err, errcap);
  free(text);
  free(dir);
  if (rc != 0) tpc_free(cfg);
  return rc;
}

void tpc_free(tpc_config *cfg) {
  for (int i = 0; i < cfg->ntenants + cfg->nforeign; i++) {
    free(cfg->tenants[i].token_secret);
    for (int j = 0; j < cfg->tenants[i].nplugins; j++) free(cfg->tenants[i].plugins[j].script);
    free(cfg->tenants[i].plugins);
    tpc__free_destinations(&cfg->tenants[i]);
  }
  free(cfg->tenants);
  for (int i = 0; i < cfg->nplugin_dirs; i++) free(cfg->plugin_dirs[i]);
  free(cfg->plugin_dirs);
  free(cfg->data_dir);
  free(cfg->sdk_dir);
  free(cfg->backup.dir);
  free(cfg->nodes);
  free(cfg->console_dir);
  free(cfg->vendor_dir);
  free(cfg->cli_admin_key);
  free(cfg->dir);
  free(cfg->path);
  if (cfg->L) config_state_close(cfg->L);
  memset(cfg, 0, sizeof *cfg);
}

static bool tenant_is(const tpc_tenant *t, const char *id, size_t n) {
  return strlen(t->id) == n && memcmp(t->id, id, n) == 0;
}

const tpc_tenant *tpc_find_tenant(const tpc_config *cfg, const char *id, size_t n) {
  for (int i = 0; i < cfg->ntenants; i++)
    if (tenant_is(&cfg->tenants[i], id, n)) return &cfg->tenants[i];
  return NULL;
}

void tpc_tenant_file(const char *dir, const char *id, const char *suffix, char *out, size_t cap) {
  snprintf(out, cap, "%s/%s%s", dir, id, suffix);
}

int tpc_set_owner(tpc_config *cfg, const char *tenant, const char *node) {
  tpc_tenant *t = NULL;
  for (int i = 0; i < cfg->ntenants + cfg->nforeign; i++)
    if (strcmp(cfg->tenants[i].id, tenant) == 0) t = &cfg->tenants[i];
  for (int i = 0; t && i < cfg->nnodes; i++)
    if (strcmp(cfg->nodes[i].name, node) == 0) {
      t->node = i;
      return 0;
    }
  return -1;
}

int tpc_select_node(tpc_config *cfg, const char *name, char *err, size_t errcap) {
  if (cfg->nnodes == 0) {
    snprintf(err, errcap, "%s has no cluster = {nodes, owners}: --node needs one", cfg->path);
    return -1;
  }
  int self = -1;
  for (int i = 0; i < cfg->nnodes; i++)
    if (strcmp(cfg->nodes[i].name, name) == 0) self = i;
  if (self < 0) {
    const char *known[TPC_MAX_NODES + 1];
    for (int i = 0; i < cfg->nnodes; i++) known[i] = cfg->nodes[i].name;
    known[cfg->nnodes] = NULL;
    char hint[80];
    snprintf(err, errcap, "%s: cluster.nodes has no node '%s'%s", cfg->path, name,
             tp_suggest_hint(name, known, hint, sizeof hint));
    return -1;
  }
  int total = cfg->ntenants + cfg->nforeign, mine = 0;
  for (int i = 0; i < total; i++)  /* a stable partition: this node's first, in their order */
    if (cfg->tenants[i].node == self) {
      tpc_tenant t = cfg->tenants[i];
      memmove(&cfg->tenants[mine + 1], &cfg->tenants[mine], (size_t)(i - mine) * sizeof t);
      cfg->tenants[mine++] = t;
    }
  cfg->ntenants = mine;
  cfg->nforeign = total - mine;
  cfg->self = &cfg->nodes[self];
  return 0;
}

int tpc_push_plugin_config(const tpc_config *cfg, const tpc_plugin *p, lua_State *L,
                           char *err, size_t errcap) {
  lua_rawgeti(cfg->L, LUA_REGISTRYINDEX, p->config_ref);
  int rc = tp_lua_copy(cfg->L, -1, L, err, errcap);
  lua_pop(cfg->L, 1);
  return rc;
}
