/*
** checker.c - the machinery fields.c checks the config with: the path of the
** key being checked (tenants[2].plugins.coupons), errors that name it, and
** typed getters with defaults and ranges (config_int.h).
*/
#include "config/config_int.h"

#include <lauxlib.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/suggest.h"

int tpc__failf(checker *c, const char *fmt, ...) {
  int n = snprintf(c->err, c->errcap, "%s: ", c->path[0] ? c->path : "config");
  va_list ap;
  va_start(ap, fmt);
  if (n >= 0 && (size_t)n < c->errcap) vsnprintf(c->err + n, c->errcap - (size_t)n, fmt, ap);
  va_end(ap);
  return -1;
}

/* Appends ".key" or "[i]" to the path; returns the old length to restore. */
size_t tpc__path_push(checker *c, const char *fmt, ...) {
  size_t old = strlen(c->path);
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(c->path + old, sizeof c->path - old, fmt, ap);
  va_end(ap);
  return old;
}

void tpc__path_pop(checker *c, size_t old) { c->path[old] = '\0'; }

/* Every key of the table at idx must be one of allowed (NULL-terminated). */
int tpc__check_keys(checker *c, int idx, const char *const *allowed) {
  idx = lua_absindex(c->L, idx);
  lua_pushnil(c->L);
  while (lua_next(c->L, idx)) {
    lua_pop(c->L, 1);
    if (lua_type(c->L, -1) != LUA_TSTRING) {
      lua_pop(c->L, 1);
      return tpc__failf(c, "keys must be names");
    }
    const char *k = lua_tostring(c->L, -1);
    bool ok = false;
    for (const char *const *a = allowed; *a; a++) ok = ok || strcmp(k, *a) == 0;
    if (!ok) {
      char hint[80];
      tpc__failf(c, "unknown key '%s'%s", k, tp_suggest_hint(k, allowed, hint, sizeof hint));
      lua_pop(c->L, 1);
      return -1;
    }
  }
  return 0;
}

/* Pushes t[key]; returns its Lua type (LUA_TNIL if absent). */
int tpc__field(checker *c, int idx, const char *key) { return lua_getfield(c->L, idx, key); }

int tpc__get_string(checker *c, int idx, const char *key, bool required, const char *def,
                    char **out) {
  int t = tpc__field(c, idx, key);
  size_t old = tpc__path_push(c, ".%s", key);
  int rc = 0;
  if (t == LUA_TNIL) {
    if (required) rc = tpc__failf(c, "is required");
    else *out = def ? strdup(def) : NULL;
  } else if (t != LUA_TSTRING) {
    rc = tpc__failf(c, "must be a string, not %s", luaL_typename(c->L, -1));
  } else {
    size_t n;
    const char *s = lua_tolstring(c->L, -1, &n);
    if (strlen(s) != n) rc = tpc__failf(c, "must not contain NUL bytes");
    else *out = strdup(s);
  }
  lua_pop(c->L, 1);
  tpc__path_pop(c, old);
  return rc;
}

int tpc__get_int(checker *c, int idx, const char *key, int64_t def, int64_t min,
                 int64_t max, int64_t *out) {
  int t = tpc__field(c, idx, key);
  size_t old = tpc__path_push(c, ".%s", key);
  int rc = 0;
  if (t == LUA_TNIL) {
    *out = def;
  } else if (!lua_isinteger(c->L, -1)) {
    rc = tpc__failf(c, "must be an integer");
  } else {
    *out = lua_tointeger(c->L, -1);
    if (*out < min || *out > max)
      rc = tpc__failf(c, "must be between %lld and %lld", (long long)min, (long long)max);
  }
  lua_pop(c->L, 1);
  tpc__path_pop(c, old);
  return rc;
}

/* Runs load(c, top) on t[key] with the key in the error path. */
int tpc__section(checker *c, int idx, const char *key, int (*load)(checker *, int, void *),
                   void *arg) {
  size_t old = tpc__path_push(c, ".%s", key);
  tpc__field(c, idx, key);
  int rc = load(c, lua_gettop(c->L), arg);
  lua_pop(c->L, 1);
  tpc__path_pop(c, old);
  return rc;
}

/* ---- values the config and its callers check alike (config.h) */

int tpc_parse_listen(const char *s, char *host, size_t cap, int *port) {
  const char *colon = strrchr(s, ':');
  if (!colon || colon == s || (size_t)(colon - s) >= cap) return -1;
  const char *h = s;
  size_t hlen = (size_t)(colon - s);
  if (h[0] == '[' && h[hlen - 1] == ']') {  /* [::1]:8080 */
    h++;
    hlen -= 2;
  }
  char *end;
  long p = strtol(colon + 1, &end, 10);
  if (colon[1] == '\0' || *end || p < 0 || p > 65535) return -1;
  memcpy(host, h, hlen);
  host[hlen] = '\0';
  *port = (int)p;
  return 0;
}

char *tpc_resolve_path(const char *dir, const char *rel) {
  if (rel[0] == '/' || !dir || !dir[0]) return strdup(rel);
  size_t n = strlen(dir) + strlen(rel) + 2;
  char *p = malloc(n);
  if (p) snprintf(p, n, "%s/%s", dir, rel);
  return p;
}

bool tpc_valid_plugin_name(const char *s) {
  size_t n = strlen(s);
  if (n == 0 || n > 32 || s[0] < 'a' || s[0] > 'z') return false;
  for (size_t i = 0; i < n; i++)
    if (!((s[i] >= 'a' && s[i] <= 'z') || (s[i] >= '0' && s[i] <= '9') || s[i] == '_'))
      return false;
  return s[n - 1] != '_';
}
