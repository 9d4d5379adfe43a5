/*
** fields.c - the config table checked field by field into a tpc_config.
**
** Strict: an unknown key, a value of the wrong type or out of range is an
** error that names its path (config.lua: tenants[2].plugins[1].name: ...),
** so a typo is found at start-up, not in production.
*/
#include "config/config_int.h"

#include <arpa/inet.h>
#include <errno.h>
#include <lauxlib.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "base/buf.h"
#include "base/suggest.h"
#include "base/tzone.h"

static int load_limits(checker *c, int idx, tpc_limits *l) {
  static const char *const keys[] = {"max_connections", "max_header_bytes", "max_headers",
      "max_body_bytes", "header_timeout_ms", "body_timeout_ms", "idle_timeout_ms",
      "shutdown_timeout_ms", "lua_instructions", "lua_memory_bytes", "load_instructions",
      "invocation_ms", "load_ms", "migration_ms", "job_max_attempts", "job_retry_base_ms",
      "job_retry_max_ms", "admin_key_failures", "page_cache_bytes", NULL};
  *l = (tpc_limits){10000, 16384, 100, 1 << 20, 10000, 30000, 60000, 10000,
                    10000000, 64 << 20, 100000000, 1000, 20000, 60000, 8, 1000, 900000, 10, 0};
  if (lua_isnil(c->L, idx)) return 0;
  if (!lua_istable(c->L, idx)) return tpc__failf(c, "must be a table");
  if (tpc__check_keys(c, idx, keys) != 0) return -1;
  return tpc__get_int(c, idx, "max_connections", l->max_connections, 1, 1000000, &l->max_connections) ||
         tpc__get_int(c, idx, "max_header_bytes", l->max_header_bytes, 1024, 1 << 20, &l->max_header_bytes) ||
         tpc__get_int(c, idx, "max_headers", l->max_headers, 8, 1000, &l->max_headers) ||
         tpc__get_int(c, idx, "max_body_bytes", l->max_body_bytes, 0, 64 << 20, &l->max_body_bytes) ||
         tpc__get_int(c, idx, "header_timeout_ms", l->header_timeout_ms, 10, 3600000, &l->header_timeout_ms) ||
         tpc__get_int(c, idx, "body_timeout_ms", l->body_timeout_ms, 10, 3600000, &l->body_timeout_ms) ||
         tpc__get_int(c, idx, "idle_timeout_ms", l->idle_timeout_ms, 10, 3600000, &l->idle_timeout_ms) ||
         tpc__get_int(c, idx, "shutdown_timeout_ms", l->shutdown_timeout_ms, 0, 3600000, &l->shutdown_timeout_ms) ||
         tpc__get_int(c, idx, "lua_instructions", l->lua_instructions, 10000, INT64_C(1) << 40, &l->lua_instructions) ||
         tpc__get_int(c, idx, "lua_memory_bytes", l->lua_memory_bytes, 1 << 20, INT64_C(1) << 40, &l->lua_memory_bytes) ||
         tpc__get_int(c, idx, "load_instructions", l->load_instructions, 10000, INT64_C(1) << 40, &l->load_instructions) ||
         tpc__get_int(c, idx, "invocation_ms", l->invocation_ms, 10, 600000, &l->invocation_ms) ||
         tpc__get_int(c, idx, "load_ms", l->load_ms, 100, 600000, &l->load_ms) ||
         tpc__get_int(c, idx, "migration_ms", l->migration_ms, 100, 86400000, &l->migration_ms) ||
         tpc__get_int(c, idx, "job_max_attempts", l->job_max_attempts, 1, 1000, &l->job_max_attempts) ||
         tpc__get_int(c, idx, "job_retry_base_ms", l->job_retry_base_ms, 1, 86400000, &l->job_retry_base_ms) ||
         tpc__get_int(c, idx, "job_retry_max_ms", l->job_retry_max_ms, 1, 86400000 * 7LL, &l->job_retry_max_ms) ||
         tpc__get_int(c, idx, "admin_key_failures", l->admin_key_failures, 1, 1000000, &l->admin_key_failures) ||
         tpc__get_int(c, idx, "page_cache_bytes", 0, 0, INT64_C(1) << 40, &l->page_cache_bytes)
             ? -1 : 0;
}

static int cmp_plugin(const void *a, const void *b) {
  return strcmp(((const tpc_plugin *)a)->name, ((const tpc_plugin *)b)->name);
}

/* Table prefixes are "<name>_": a plugin "flash" would own "flash_sale_*" tables
** too, so two enabled plugins where one name extends the other are refused. */
static int check_prefixes(checker *c, const tpc_tenant *t) {
  for (int i = 0; i < t->nplugins; i++)
    for (int j = 0; j < t->nplugins; j++) {
      const char *a = t->plugins[i].name, *b = t->plugins[j].name;
      size_t n = strlen(a);
      if (i != j && strncmp(a, b, n) == 0 && b[n] == '_')
        return tpc__failf(c, "plugins '%s' and '%s' cannot both be enabled: '%s_' tables would "
                     "include '%s' tables", a, b, a, b);
    }
  return 0;
}

static int load_plugins(checker *c, int idx, tpc_tenant *t) {
  if (lua_isnil(c->L, idx)) return 0;
  if (!lua_istable(c->L, idx)) return tpc__failf(c, "must be a table of plugin name = config");
  idx = lua_absindex(c->L, idx);
  t->plugins = calloc(TPC_MAX_PLUGINS, sizeof *t->plugins);
  lua_pushnil(c->L);
  while (lua_next(c->L, idx)) {
    /* stack: ... key value */
    if (lua_type(c->L, -2) != LUA_TSTRING || !tpc_valid_plugin_name(lua_tostring(c->L, -2))) {
      lua_pop(c->L, 2);
      return tpc__failf(c, "plugin names are lowercase identifiers ([a-z][a-z0-9_]*, at most 32)");
    }
    const char *name = lua_tostring(c->L, -2);
    size_t old = tpc__path_push(c, ".%s", name);
    if (!lua_istable(c->L, -1) && !lua_isboolean(c->L, -1)) {
      lua_pop(c->L, 2);
      return tpc__failf(c, "must be the plugin's config table (or true)");
    }
    if (t->nplugins == TPC_MAX_PLUGINS) {
      lua_pop(c->L, 2);
      return tpc__failf(c, "too many plugins (at most %d)", TPC_MAX_PLUGINS);
    }
    if (lua_isboolean(c->L, -1)) {
      bool on = lua_toboolean(c->L, -1);
      lua_pop(c->L, 1);
      if (!on) {  /* false: listed but disabled */
        tpc__path_pop(c, old);
        continue;
      }
      lua_newtable(c->L);
    }
    tpc_plugin *p = &t->plugins[t->nplugins++];
    snprintf(p->name, sizeof p->name, "%s", name);
    p->config_ref = luaL_ref(c->L, LUA_REGISTRYINDEX);
    tpc__path_pop(c, old);
  }
  qsort(t->plugins, (size_t)t->nplugins, sizeof *t->plugins, cmp_plugin);
  return check_prefixes(c, t);
}

/* A list of API keys: kept as SHA-256 digests (compared in constant time);
** the first is also kept as written when plain is given (for the CLI). */
static int load_keys(checker *c, int idx, unsigned char (*keys)[32], int *n, char **plain) {
  if (!lua_istable(c->L, idx)) return tpc__failf(c, "must be a list of strings");
  int len = (int)luaL_len(c->L, idx);
  if (len > TPC_MAX_KEYS) return tpc__failf(c, "at most %d keys", TPC_MAX_KEYS);
  for (int i = 1; i <= len; i++) {
    size_t old = tpc__path_push(c, "[%d]", i);
    lua_rawgeti(c->L, idx, i);
    size_t klen;
    const char *k = lua_type(c->L, -1) == LUA_TSTRING ? lua_tolstring(c->L, -1, &klen) : NULL;
    if (!k || klen < 16 || strlen(k) != klen) {
      lua_pop(c->L, 1);
      return tpc__failf(c, "must be a string of at least 16 bytes");
    }
    if (plain && i == 1) *plain = strdup(k);
    tpt_key_digest(k, klen, keys[(*n)++]);
    lua_pop(c->L, 1);
    tpc__path_pop(c, old);
  }
  return 0;
}

/* trusted_proxies: a list of IPv4 or IPv6 addresses, as the host sees its peers. */
static int load_proxies(checker *c, int idx, tpc_config *cfg) {
  if (!lua_istable(c->L, idx)) return tpc__failf(c, "must be a list of IP addresses");
  int len = (int)luaL_len(c->L, idx);
  if (len > TPC_MAX_PROXIES) return tpc__failf(c, "at most %d addresses", TPC_MAX_PROXIES);
  for (int i = 1; i <= len; i++) {
    size_t old = tpc__path_push(c, "[%d]", i);
    lua_rawgeti(c->L, idx, i);
    const char *a = lua_type(c->L, -1) == LUA_TSTRING ? lua_tostring(c->L, -1) : NULL;
    unsigned char buf[sizeof(struct in6_addr)];
    if (!a || strlen(a) >= sizeof cfg->trusted_proxies[0] ||
        (inet_pton(AF_INET, a, buf) != 1 && inet_pton(AF_INET6, a, buf) != 1)) {
      lua_pop(c->L, 1);
      return tpc__failf(c, "must be an IPv4 or IPv6 address, like \"127.0.0.1\"");
    }
    snprintf(cfg->trusted_proxies[cfg->ntrusted_proxies++], sizeof cfg->trusted_proxies[0], "%s", a);
    lua_pop(c->L, 1);
    tpc__path_pop(c, old);
  }
  return 0;
}

static const char *const role_names[] = {"owner", "operator", "store_manager", "finance",
                                          "developer"};

tpc_role tpc_role_parse(const char *name) {
  for (int i = 0; i < 5; i++)
    if (name && strcmp(name, role_names[i]) == 0) return (tpc_role)(1 << i);
  return 0;
}

const char *tpc_role_name(tpc_role r) {
  for (int i = 0; i < 5; i++)
    if (r == (tpc_role)(1 << i)) return role_names[i];
  return "none";
}

/* A store id as the referral plugin names stores: 1-32 of [A-Za-z0-9_-]. */
static bool store_id_valid(const char *s) {
  size_t n = strlen(s);
  if (n < 1 || n > TPC_MAX_STORE) return false;
  for (size_t i = 0; i < n; i++)
    if (!((s[i] >= 'a' && s[i] <= 'z') || (s[i] >= 'A' && s[i] <= 'Z') ||
          (s[i] >= '0' && s[i] <= '9') || s[i] == '-' || s[i] == '_'))
      return false;
  return true;
}

/* A tenant's api_keys: each a string (an owner's key) or {key, role, store}. */
static int load_tenant_keys(checker *c, int idx, void *t) {
  tpc_tenant *tt = t;
  if (lua_isnil(c->L, idx)) return 0;
  if (!lua_istable(c->L, idx)) return tpc__failf(c, "must be a list of keys");
  int len = (int)luaL_len(c->L, idx);
  if (len > TPC_MAX_KEYS) return tpc__failf(c, "at most %d keys", TPC_MAX_KEYS);
  static const char *const fields[] = {"key", "role", "store", NULL};
  for (int i = 1; i <= len; i++) {
    size_t old = tpc__path_push(c, "[%d]", i);
    lua_rawgeti(c->L, idx, i);
    int top = lua_gettop(c->L);
    char *key = NULL, *role = NULL, *store = NULL;
    int rc = 0;
    if (lua_type(c->L, top) == LUA_TSTRING) {
      key = strdup(lua_tostring(c->L, top));
    } else if (!lua_istable(c->L, top)) {
      rc = tpc__failf(c, "must be a string or {key = ..., role = ..., store = ...}");
    } else if (tpc__check_keys(c, top, fields) != 0 ||
               tpc__get_string(c, top, "key", true, NULL, &key) != 0 ||
               tpc__get_string(c, top, "role", false, "owner", &role) != 0 ||
               tpc__get_string(c, top, "store", false, NULL, &store) != 0) {
      rc = -1;
    }
    tpc_role r = role ? tpc_role_parse(role) : TPC_ROLE_OWNER;
    if (rc == 0 && (!key || strlen(key) < 16))
      rc = tpc__failf(c, "%smust be a string of at least 16 bytes", role ? "key: " : "");
    else if (rc == 0 && !r)
      rc = tpc__failf(c, "role: must be one of owner, operator, store_manager, finance, developer");
    else if (rc == 0 && (r == TPC_ROLE_STORE_MANAGER) != (store != NULL))
      rc = tpc__failf(c, store ? "store: only a store_manager's key names a store"
                               : "store: a store_manager's key must name its store");
    else if (rc == 0 && store && !store_id_valid(store))
      rc = tpc__failf(c, "store: must be 1-%d of [A-Za-z0-9_-]", TPC_MAX_STORE);
    if (rc == 0) {
      tt->key_roles[tt->napi_keys] = r;
      snprintf(tt->key_stores[tt->napi_keys], sizeof tt->key_stores[0], "%s", store ? store : "");
      tpt_key_digest(key, strlen(key), tt->api_keys[tt->napi_keys++]);
    }
    free(key);
    free(role);
    free(store);
    lua_pop(c->L, 1);
    if (rc != 0) return -1;
    tpc__path_pop(c, old);
  }
  return 0;
}

/* console = {dir, vendor_dir, session_seconds, sign_in_failures, password_iterations} */
static int load_console(checker *c, int idx, void *arg) {
  tpc_config *cfg = arg;
  static const char *const keys[] = {"dir", "vendor_dir", "session_seconds", "sign_in_failures",
                                     "password_iterations", NULL};
  bool absent = lua_isnil(c->L, idx);
  if (!absent && (!lua_istable(c->L, idx) || tpc__check_keys(c, idx, keys) != 0))
    return lua_istable(c->L, idx) ? -1 : tpc__failf(c, "must be a table");
  char *s = NULL;
  if (!absent && tpc__get_string(c, idx, "dir", false, NULL, &s) != 0) return -1;
  cfg->console_dir = s ? tpc_resolve_path(cfg->dir, s) : strdup(TP_SOURCE_DIR "/core/host/console");
  free(s);
  s = NULL;
  if (!absent && tpc__get_string(c, idx, "vendor_dir", false, NULL, &s) != 0) return -1;
  cfg->vendor_dir = s ? tpc_resolve_path(cfg->dir, s) : strdup("/usr/share/javascript");
  free(s);
  cfg->session_seconds = 8 * 3600;
  cfg->sign_in_failures = 5;
  cfg->password_iterations = 600000;
  if (absent) return 0;
  return tpc__get_int(c, idx, "session_seconds", 8 * 3600, 1, 30 * 86400, &cfg->session_seconds) ||
         tpc__get_int(c, idx, "sign_in_failures", 5, 1, 100, &cfg->sign_in_failures) ||
         tpc__get_int(c, idx, "password_iterations", 600000, 1000, 10000000,
                      &cfg->password_iterations)
             ? -1 : 0;
}

static int load_tenant_plugins(checker *c, int idx, void *t) { return load_plugins(c, idx, t); }

/* The campaign a script file runs as: "campaign_" and the file's base name,
** which must itself be a plugin name of at most TPC_MAX_CAMPAIGN_NAME. */
static int campaign_name(const char *path, char *name, size_t cap, char *err, size_t errcap) {
  const char *base = strrchr(path, '/') ? strrchr(path, '/') + 1 : path;
  size_t n = strlen(base);
  char stem[64];
  if (n < 5 || strcmp(base + n - 4, ".lua") != 0 || n - 4 >= sizeof stem) {
    snprintf(err, errcap, "'%s' must name a .lua file", path);
    return -1;
  }
  snprintf(stem, sizeof stem, "%.*s", (int)(n - 4), base);
  if (!tpc_valid_plugin_name(stem) || strlen(stem) > TPC_MAX_CAMPAIGN_NAME) {
    snprintf(err, errcap, "'%s': a campaign is named after its file, so the base name must be "
             "[a-z][a-z0-9_]* of at most %d bytes, not ending in _", path, TPC_MAX_CAMPAIGN_NAME);
    return -1;
  }
  snprintf(name, cap, "campaign_%s", stem);
  return 0;
}

static int add_campaign(lua_State *L, const char *dir, tpc_tenant *t, const char *path,
                        int64_t instructions, int64_t memory, char *err, size_t errcap) {
  char name[33];
  if (campaign_name(path, name, sizeof name, err, errcap) != 0) return -1;
  tpc_plugin *p = NULL;
  for (int i = 0; i < t->nplugins; i++)
    if (strcmp(t->plugins[i].name, name) == 0) p = &t->plugins[i];
  if (p && !p->script) {
    snprintf(err, errcap, "'%s' would run as '%s', which is a plugin of this tenant", path, name);
    return -1;
  }
  if (!p) {
    if (!t->plugins) t->plugins = calloc(TPC_MAX_PLUGINS, sizeof *t->plugins);
    if (t->nplugins == TPC_MAX_PLUGINS) {
      snprintf(err, errcap, "too many plugins and campaigns (at most %d)", TPC_MAX_PLUGINS);
      return -1;
    }
    p = &t->plugins[t->nplugins++];
    snprintf(p->name, sizeof p->name, "%s", name);
    lua_newtable(L);  /* a campaign takes its settings from its script, not the config */
    p->config_ref = luaL_ref(L, LUA_REGISTRYINDEX);
    p->instructions = instructions;
    p->memory_bytes = memory;
  }
  free(p->script);
  p->script = dir ? tpc_resolve_path(dir, path) : strdup(path);
  qsort(t->plugins, (size_t)t->nplugins, sizeof *t->plugins, cmp_plugin);
  return 0;
}

int tpc_add_campaign(tpc_config *cfg, tpc_tenant *t, const char *path, char *err, size_t errcap) {
  return add_campaign(cfg->L, NULL, t, path, cfg->limits.lua_instructions,
                      cfg->limits.lua_memory_bytes, err, errcap);
}

/* campaigns = { "campaigns/double11.lua", ... }: each runs as a plugin of its own. */
static int load_campaigns(checker *c, int idx, void *arg) {
  tpc_tenant *t = arg;
  if (lua_isnil(c->L, idx)) return 0;
  if (!lua_istable(c->L, idx)) return tpc__failf(c, "must be a list of campaign script paths");
  int n = (int)luaL_len(c->L, idx);
  for (int i = 1; i <= n; i++) {
    size_t old = tpc__path_push(c, "[%d]", i);
    lua_rawgeti(c->L, idx, i);
    const char *path = lua_type(c->L, -1) == LUA_TSTRING ? lua_tostring(c->L, -1) : NULL;
    char name[33], e[512];
    int rc = !path ? tpc__failf(c, "must be a path")
             : campaign_name(path, name, sizeof name, e, sizeof e) != 0 ? tpc__failf(c, "%s", e)
             : 0;
    for (int j = 0; rc == 0 && j < t->nplugins; j++)
      if (strcmp(t->plugins[j].name, name) == 0)
        rc = tpc__failf(c, t->plugins[j].script ? "another campaign is already named '%s'"
                                           : "'%s' is a plugin of this tenant", name);
    if (rc == 0 && add_campaign(c->L, c->cfg->dir, t, path, c->cfg->limits.lua_instructions,
                                c->cfg->limits.lua_memory_bytes, e, sizeof e) != 0)
      rc = tpc__failf(c, "%s", e);
    lua_pop(c->L, 1);
    if (rc != 0) return -1;
    tpc__path_pop(c, old);
  }
  return check_prefixes(c, t);
}

/* plugin_limits = { name = { instructions = N, memory_bytes = N, deadline_ms = N } } */
static int load_plugin_limits(checker *c, int idx, void *arg) {
  static const char *const keys[] = {"instructions", "memory_bytes", "deadline_ms", NULL};
  tpc_tenant *t = arg;
  for (int i = 0; i < t->nplugins; i++) {
    t->plugins[i].instructions = c->cfg->limits.lua_instructions;
    t->plugins[i].memory_bytes = c->cfg->limits.lua_memory_bytes;
  }
  if (lua_isnil(c->L, idx)) return 0;
  if (!lua_istable(c->L, idx)) return tpc__failf(c, "must be a table of plugin name = limits");
  lua_pushnil(c->L);
  while (lua_next(c->L, idx)) {
    const char *name = lua_type(c->L, -2) == LUA_TSTRING ? lua_tostring(c->L, -2) : "";
    tpc_plugin *p = NULL;
    for (int i = 0; i < t->nplugins; i++)
      if (strcmp(t->plugins[i].name, name) == 0) p = &t->plugins[i];
    size_t old = tpc__path_push(c, ".%s", name);
    int top = lua_gettop(c->L);
    int rc = !p ? tpc__failf(c, "is not an enabled plugin of this tenant")
             : !lua_istable(c->L, top) ? tpc__failf(c, "must be a table")
             : tpc__check_keys(c, top, keys) != 0 ||
                     tpc__get_int(c, top, "instructions", p->instructions, 10000, INT64_C(1) << 40,
                             &p->instructions) != 0 ||
                     tpc__get_int(c, top, "memory_bytes", p->memory_bytes, 1 << 20, INT64_C(1) << 40,
                             &p->memory_bytes) != 0 ||
                     tpc__get_int(c, top, "deadline_ms", c->cfg->limits.invocation_ms, 10, 600000,
                             &p->deadline_ms) != 0
                 ? -1 : 0;
    tpc__path_pop(c, old);
    if (rc != 0) {
      lua_pop(c->L, 2);
      return -1;
    }
    lua_pop(c->L, 1);
  }
  return 0;
}

/* rate_limits (ratelimit.h): its error names the path below the section. */
static int load_rate_limits(checker *c, int idx, void *t) {
  char e[512];
  if (tprl_load(c->L, idx, &((tpc_tenant *)t)->rate_limits, e, sizeof e) == 0) return 0;
  char *colon = strstr(e, ": ");
  if (!colon) return tpc__failf(c, "%s", e);
  tpc__path_push(c, "%.*s", (int)(colon - e), e);
  return tpc__failf(c, "%s", colon + 2);
}

/* clock = "wall" | "manual"; *manual keeps its value when the key is absent. */
static int get_clock(checker *c, int idx, bool *manual) {
  char *s = NULL;
  if (tpc__get_string(c, idx, "clock", false, *manual ? "manual" : "wall", &s) != 0) return -1;
  int rc = 0;
  if (strcmp(s, "manual") == 0) *manual = true;
  else if (strcmp(s, "wall") == 0) *manual = false;
  else rc = tpc__failf(c, "clock: must be \"wall\" or \"manual\"");
  free(s);
  return rc;
}

static int load_tenant(checker *c, int idx, tpc_tenant *t, bool manual_clock) {
  static const char *const keys[] = {"id", "token_secret", "api_keys", "timezone", "clock",
                                     "plugins", "campaigns", "plugin_limits", "rate_limits",
                                     "http", "track_retention_days", NULL};
  if (!lua_istable(c->L, idx)) return tpc__failf(c, "must be a table");
  if (tpc__check_keys(c, idx, keys) != 0) return -1;
  char *id = NULL, *tz = NULL;
  t->node = -1;
  if (tpc__get_string(c, idx, "id", true, NULL, &id) != 0) return -1;
  if (!tpt_valid_tenant_id(id, strlen(id)) || strlen(id) > 32 || strcmp(id, "reload") == 0 ||
      strcmp(id, "cluster") == 0) {  /* /admin/reload and /admin/cluster/... are the host's */
    free(id);
    return tpc__failf(c, "id: must be 1-32 characters of [A-Za-z0-9_-], and not \"reload\" or \"cluster\"");
  }
  snprintf(t->id, sizeof t->id, "%s", id);
  free(id);
  if (tpc__get_string(c, idx, "token_secret", true, NULL, &t->token_secret) != 0) return -1;
  t->token_secret_len = strlen(t->token_secret);
  if (t->token_secret_len < 16) return tpc__failf(c, "token_secret: must be at least 16 bytes");
  if (tpc__get_string(c, idx, "timezone", false, "Asia/Shanghai", &tz) != 0) return -1;
  snprintf(t->timezone, sizeof t->timezone, "%s", tz);
  bool tz_ok = strlen(tz) < sizeof t->timezone && tp_tz_valid(tz);
  free(tz);
  if (!tz_ok) return tpc__failf(c, "timezone: unknown zone '%s'", t->timezone);
  int64_t days;
  if (tpc__get_int(c, idx, "track_retention_days", 90, 3, 3650, &days) != 0) return -1;
  t->track_retention_days = (int)days;
  t->manual_clock = manual_clock;
  if (get_clock(c, idx, &t->manual_clock) != 0) return -1;
  return tpc__section(c, idx, "api_keys", load_tenant_keys, t) ||
         tpc__section(c, idx, "plugins", load_tenant_plugins, t) ||
         tpc__section(c, idx, "campaigns", load_campaigns, t) ||
         tpc__section(c, idx, "plugin_limits", load_plugin_limits, t) ||
         tpc__section(c, idx, "rate_limits", load_rate_limits, t) ||
         tpc__section(c, idx, "http", tpc__load_destinations, t)
             ? -1 : 0;
}

static int load_tenants(checker *c, int idx, tpc_config *cfg, bool manual_clock) {
  if (!lua_istable(c->L, idx)) return tpc__failf(c, "must be a list of tenant tables");
  int n = (int)luaL_len(c->L, idx);
  if (n < 1 || n > TPC_MAX_TENANTS) return tpc__failf(c, "must list 1 to %d tenants", TPC_MAX_TENANTS);
  cfg->tenants = calloc((size_t)n, sizeof *cfg->tenants);
  for (int i = 1; i <= n; i++) {
    size_t old = tpc__path_push(c, "[%d]", i);
    lua_rawgeti(c->L, idx, i);
    tpc_tenant *t = &cfg->tenants[cfg->ntenants++];
    int rc = load_tenant(c, lua_gettop(c->L), t, manual_clock);
    lua_pop(c->L, 1);
    if (rc != 0) return -1;
    for (int j = 0; j < cfg->ntenants - 1; j++)
      if (strcmp(cfg->tenants[j].id, t->id) == 0) return tpc__failf(c, "duplicate tenant id '%s'", t->id);
    tpc__path_pop(c, old);
  }
  return 0;
}

static int load_plugin_dirs(checker *c, int idx, tpc_config *cfg) {
  if (lua_isnil(c->L, idx)) {
    cfg->plugin_dirs = calloc(1, sizeof(char *));
    cfg->plugin_dirs[0] = tpc_resolve_path(cfg->dir, "plugins");
    cfg->nplugin_dirs = 1;
    return 0;
  }
  if (!lua_istable(c->L, idx)) return tpc__failf(c, "must be a list of directories");
  int n = (int)luaL_len(c->L, idx);
  if (n < 1 || n > 16) return tpc__failf(c, "must list 1 to 16 directories");
  cfg->plugin_dirs = calloc((size_t)n, sizeof(char *));
  for (int i = 1; i <= n; i++) {
    lua_rawgeti(c->L, idx, i);
    if (lua_type(c->L, -1) != LUA_TSTRING) {
      lua_pop(c->L, 1);
      return tpc__failf(c, "[%d]: must be a string", i);
    }
    cfg->plugin_dirs[cfg->nplugin_dirs++] = tpc_resolve_path(cfg->dir, lua_tostring(c->L, -1));
    lua_pop(c->L, 1);
  }
  return 0;
}

/* open_tenants = {lazy = true, idle_seconds = 300} (config.h) */
static int load_open_tenants(checker *c, int idx, void *arg) {
  static const char *const keys[] = {"lazy", "idle_seconds", NULL};
  tpc_config *cfg = arg;
  cfg->idle_seconds = 300;
  if (lua_isnil(c->L, idx)) return 0;
  if (!lua_istable(c->L, idx)) return tpc__failf(c, "must be a table {lazy, idle_seconds}");
  if (tpc__check_keys(c, idx, keys) != 0) return -1;
  int type = tpc__field(c, idx, "lazy");
  cfg->lazy_tenants = lua_toboolean(c->L, -1);
  lua_pop(c->L, 1);
  if (type != LUA_TNIL && type != LUA_TBOOLEAN) return tpc__failf(c, "lazy: must be true or false");
  return tpc__get_int(c, idx, "idle_seconds", 300, 1, 86400 * 30, &cfg->idle_seconds);
}

/* cluster.nodes = {name = "host:port", ...} */
static int load_nodes(checker *c, int idx, void *arg) {
  tpc_config *cfg = arg;
  if (!lua_istable(c->L, idx)) return tpc__failf(c, "must be a table {name = \"host:port\", ...}");
  cfg->nodes = calloc(TPC_MAX_NODES, sizeof *cfg->nodes);
  lua_pushnil(c->L);
  while (lua_next(c->L, idx)) {
    const char *name = lua_type(c->L, -2) == LUA_TSTRING ? lua_tostring(c->L, -2) : NULL;
    const char *addr = lua_type(c->L, -1) == LUA_TSTRING ? lua_tostring(c->L, -1) : NULL;
    char host[64];
    int port;
    int rc = !name || !tpc_valid_plugin_name(name)
                 ? tpc__failf(c, "node names are 1-32 of a-z, 0-9 and _, starting with a letter")
             : !addr || tpc_parse_listen(addr, host, sizeof host, &port) != 0 || port == 0 ||
                     strlen(addr) >= sizeof cfg->nodes[0].listen
                 ? tpc__failf(c, "%s: must be \"host:port\" with a port, where the front reaches it", name)
             : cfg->nnodes == TPC_MAX_NODES ? tpc__failf(c, "at most %d nodes", TPC_MAX_NODES)
                                            : 0;
    if (rc != 0) {
      lua_pop(c->L, 2);
      return -1;
    }
    tpc_node *n = &cfg->nodes[cfg->nnodes++];
    snprintf(n->name, sizeof n->name, "%s", name);
    snprintf(n->listen, sizeof n->listen, "%s", addr);
    lua_pop(c->L, 1);
  }
  return cfg->nnodes ? 0 : tpc__failf(c, "names no node");
}

/* cluster.owners = {tenant = node, ...}: every tenant, each to a node */
static int load_owners(checker *c, int idx, void *arg) {
  tpc_config *cfg = arg;
  if (!lua_istable(c->L, idx)) return tpc__failf(c, "must be a table {tenant = \"node\", ...}");
  const char **ids = calloc((size_t)cfg->ntenants + 1, sizeof *ids);
  const char *nodes[TPC_MAX_NODES + 1];
  for (int i = 0; i < cfg->ntenants; i++) ids[i] = cfg->tenants[i].id;
  for (int i = 0; i < cfg->nnodes; i++) nodes[i] = cfg->nodes[i].name;
  nodes[cfg->nnodes] = NULL;
  int rc = tpc__check_keys(c, idx, ids);  /* every key a tenant (did you mean) */
  for (int i = 0; i < cfg->ntenants && rc == 0; i++) {
    tpc_tenant *t = &cfg->tenants[i];
    int type = tpc__field(c, idx, t->id);
    const char *node = type == LUA_TSTRING ? lua_tostring(c->L, -1) : NULL;
    for (int k = 0; node && k < cfg->nnodes; k++)
      if (strcmp(cfg->nodes[k].name, node) == 0) t->node = k;
    char hint[80];
    if (type == LUA_TNIL) rc = tpc__failf(c, "tenant '%s' has no node: every tenant is served by one", t->id);
    else if (t->node < 0)
      rc = tpc__failf(c, "%s: '%s' is no node of cluster.nodes%s", t->id, node ? node : "?",
                      node ? tp_suggest_hint(node, nodes, hint, sizeof hint) : "");
    lua_pop(c->L, 1);
  }
  free(ids);
  return rc;
}

/* cluster = {nodes = {...}, owners = {...}} (config.h) */
static int load_cluster(checker *c, int idx, void *arg) {
  static const char *const keys[] = {"nodes", "owners", NULL};
  if (lua_isnil(c->L, idx)) return 0;
  if (!lua_istable(c->L, idx)) return tpc__failf(c, "must be a table {nodes, owners}");
  if (tpc__check_keys(c, idx, keys) != 0) return -1;
  return tpc__section(c, idx, "nodes", load_nodes, arg) || tpc__section(c, idx, "owners", load_owners, arg);
}

/* backup = {dir = "backups", every_seconds = 86400, keep = 7} (store/backup.h) */
static int load_backup(checker *c, int idx, void *arg) {
  static const char *const keys[] = {"dir", "every_seconds", "keep", NULL};
  tpc_config *cfg = arg;
  if (lua_isnil(c->L, idx)) return 0;
  if (!lua_istable(c->L, idx)) return tpc__failf(c, "must be a table {dir, every_seconds, keep}");
  if (tpc__check_keys(c, idx, keys) != 0) return -1;
  char *dir = NULL;
  if (tpc__get_string(c, idx, "dir", true, NULL, &dir) != 0) return -1;
  cfg->backup.dir = tpc_resolve_path(cfg->dir, dir);
  free(dir);
  return tpc__get_int(c, idx, "every_seconds", 86400, 0, 366 * 86400, &cfg->backup.every_seconds) ||
         tpc__get_int(c, idx, "keep", 7, 1, 10000, &cfg->backup.keep);
}

static int load_root(checker *c, tpc_config *cfg) {
  static const char *const keys[] = {"listen", "data_dir", "plugin_dirs", "sdk_dir",
                                     "synchronous", "log_level", "clock", "admin_keys",
                                     "trusted_proxies", "backup", "cluster", "open_tenants", "limits", "tenants",
                                     "console", NULL};
  static const char *const syncs[] = {"off", "normal", "full", "extra"};
  lua_State *L = c->L;
  if (!lua_istable(L, -1)) return tpc__failf(c, "the file must return a table");
  int root = lua_gettop(L);
  if (tpc__check_keys(c, root, keys) != 0) return -1;
  char *s = NULL;
  if (tpc__get_string(c, root, "listen", false, "127.0.0.1:8080", &s) != 0) return -1;
  int rc = tpc_parse_listen(s, cfg->listen_host, sizeof cfg->listen_host, &cfg->listen_port);
  free(s);
  if (rc != 0) return tpc__failf(c, "listen: must be \"host:port\"");
  if (tpc__get_string(c, root, "data_dir", false, "data", &s) != 0) return -1;
  cfg->data_dir = tpc_resolve_path(cfg->dir, s);
  free(s);
  if (tpc__get_string(c, root, "synchronous", false, "full", &s) != 0) return -1;
  rc = -1;
  for (int i = 0; i < 4; i++)
    if (strcmp(s, syncs[i]) == 0) {
      cfg->synchronous = (tpc_sync)i;
      rc = 0;
    }
  free(s);
  if (rc != 0) return tpc__failf(c, "synchronous: must be one of off, normal, full, extra");
  if (tpc__get_string(c, root, "log_level", false, "info", &s) != 0) return -1;
  rc = strcmp(s, "debug") && strcmp(s, "info") && strcmp(s, "warn") && strcmp(s, "error");
  snprintf(cfg->log_level, sizeof cfg->log_level, "%.7s", s);
  free(s);
  if (rc != 0) return tpc__failf(c, "log_level: must be one of debug, info, warn, error");
  bool manual_clock = false;
  if (get_clock(c, root, &manual_clock) != 0) return -1;
  size_t kold = tpc__path_push(c, ".admin_keys");
  rc = tpc__field(c, root, "admin_keys") == LUA_TNIL
           ? 0 : load_keys(c, lua_gettop(L), cfg->admin_keys, &cfg->nadmin_keys, &cfg->cli_admin_key);
  lua_pop(L, 1);
  if (rc != 0) return -1;
  tpc__path_pop(c, kold);
  kold = tpc__path_push(c, ".trusted_proxies");
  rc = tpc__field(c, root, "trusted_proxies") == LUA_TNIL ? 0 : load_proxies(c, lua_gettop(L), cfg);
  lua_pop(L, 1);
  if (rc != 0) return -1;
  tpc__path_pop(c, kold);

  if (tpc__section(c, root, "backup", load_backup, cfg) != 0 ||
      tpc__section(c, root, "open_tenants", load_open_tenants, cfg) != 0)
    return -1;

  const char *sections[] = {"plugin_dirs", "limits", "tenants"};
  for (int i = 0; i < 3; i++) {
    size_t old = tpc__path_push(c, ".%s", sections[i]);
    tpc__field(c, root, sections[i]);
    int top = lua_gettop(L);
    rc = i == 0 ? load_plugin_dirs(c, top, cfg)
       : i == 1 ? load_limits(c, top, &cfg->limits)
       : lua_isnil(L, top) ? tpc__failf(c, "is required") : load_tenants(c, top, cfg, manual_clock);
    lua_pop(L, 1);
    if (rc != 0) return -1;
    tpc__path_pop(c, old);
  }
  if (tpc__section(c, root, "cluster", load_cluster, cfg) != 0) return -1;
  if (tpc__section(c, root, "console", load_console, cfg) != 0) return -1;
  /* require() also looks in the SDK; by default the sdk/ beside the first plugin dir */
  if (tpc__get_string(c, root, "sdk_dir", false, NULL, &s) != 0) return -1;
  if (s) {
    cfg->sdk_dir = tpc_resolve_path(cfg->dir, s);
    free(s);
  } else {
    /* the sdk/ beside whichever plugin dir has one, in their order: a brand's
    ** own folder first (without an sdk/) must not hide the one beside plugins/ */
    for (int i = 0; i < cfg->nplugin_dirs && !cfg->sdk_dir; i++) {
      char *sdk = tpc_resolve_path(cfg->plugin_dirs[i], "../sdk");
      char *tp = tpc_resolve_path(sdk, "tp");
      if (tp_is_dir(tp)) cfg->sdk_dir = sdk;
      else free(sdk);
      free(tp);
    }
    if (!cfg->sdk_dir) cfg->sdk_dir = tpc_resolve_path(cfg->plugin_dirs[0], "../sdk");
  }
  return 0;
}

int tpc__check(lua_State *L, tpc_config *cfg, const char *where, char *err, size_t errcap) {
  checker c = {.L = L, .cfg = cfg, .err = err, .errcap = errcap};
  snprintf(c.path, sizeof c.path, "%s", where);
  return load_root(&c, cfg);
}
