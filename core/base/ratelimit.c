/*
** ratelimit.c - token buckets per brand, route class and caller, see ratelimit.h.
*/
#include "base/ratelimit.h"

#include <lauxlib.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>


#define WAYS 8  /* entries of one set: two cache lines */

typedef struct entry {
  uint64_t key;                /* 0: empty */
  int64_t tat_us;              /* theoretical arrival time of the next request */
} entry;

struct tprl_table {
  size_t mask;                 /* slots - 1 */
  uint64_t seed;
  entry *slots;
};

static const char *const class_names[TPRL_NCLASSES] = {
  "read", "write", "buy", "join", "help", "claim", "admin"};
static const char *const kind_names[TPRL_NKINDS] = {"user", "address", "device", "key"};
/* what a 429 calls the identity whose bucket is empty */
static const char *const kind_whose[TPRL_NKINDS] = {"this member", "this address", "this device",
                                                     "this API key"};

tprl_table *tprl_new(size_t slots, uint64_t seed) {
  if (slots < WAYS || (slots & (slots - 1)) != 0) return NULL;
  tprl_table *t = calloc(1, sizeof *t);
  if (!t) return NULL;
  t->slots = calloc(slots, sizeof *t->slots);
  if (!t->slots) {
    free(t);
    return NULL;
  }
  t->mask = slots - 1;
  t->seed = seed;
  return t;
}

void tprl_free(tprl_table *t) {
  if (!t) return;
  free(t->slots);
  free(t);
}

int tprl_class_find(const char *name) {
  for (int i = 0; i < TPRL_NCLASSES; i++)
    if (strcmp(name, class_names[i]) == 0) return i;
  return -1;
}

const char *tprl_class_name(tprl_class cls) {
  return (unsigned)cls < TPRL_NCLASSES ? class_names[cls] : "?";
}

const char *tprl_route_classes(void) { return "read, write, buy, join, help, claim"; }

/* ---- buckets */

/* FNV-1a over the seed and the parts, then a finalizer so that nearby keys
** spread over the sets. Keyed by a secret seed: no client can aim its
** identities at another's set. Never 0 (an empty slot). */
static uint64_t key_of(uint64_t seed, const char *brand, tprl_class cls, tprl_kind kind,
                       const char *id, size_t len) {
  uint64_t h = 0xcbf29ce484222325ull ^ seed;
  for (const char *c = brand; *c; c++) h = (h ^ (unsigned char)*c) * 0x100000001b3ull;
  h = (h ^ (uint64_t)(cls * TPRL_NKINDS + kind + 1) << 8) * 0x100000001b3ull;
  for (size_t i = 0; i < len; i++) h = (h ^ (unsigned char)id[i]) * 0x100000001b3ull;
  h ^= h >> 33;
  h *= 0xff51afd7ed558ccdull;
  h ^= h >> 33;
  h *= 0xc4ceb9fe1a85ec53ull;
  h ^= h >> 33;
  return h ? h : 1;
}

/* The entry of key, or NULL; with make, an empty entry of its set or the one
** that refilled longest ago (smallest tat) becomes it, tat 0 (a full bucket). */
static entry *find(tprl_table *t, uint64_t key, bool make) {
  entry *set = &t->slots[key & t->mask & ~(size_t)(WAYS - 1)];
  entry *victim = &set[0];
  for (int i = 0; i < WAYS; i++) {
    if (set[i].key == key) return &set[i];
    if (victim->key && (!set[i].key || set[i].tat_us < victim->tat_us)) victim = &set[i];
  }
  if (!make) return NULL;
  victim->key = key;
  victim->tat_us = 0;
  return victim;
}

int64_t tprl_take(tprl_table *t, const tprl_limits *l, const char *brand, tprl_class cls,
                  const tprl_who *who, int64_t now_us, tprl_kind *refused) {
  if (!t || !l->any || (unsigned)cls >= TPRL_NCLASSES) return 0;
  const tprl_rate *rates = l->rate[cls];
  uint64_t keys[TPRL_NKINDS] = {0};
  int64_t wait = 0;
  for (int k = 0; k < TPRL_NKINDS; k++) {  /* every bucket first: a refusal takes nothing */
    if (!rates[k].interval_us || !who->id[k] || !who->len[k]) continue;
    keys[k] = key_of(t->seed, brand, cls, (tprl_kind)k, who->id[k], who->len[k]);
    entry *e = find(t, keys[k], false);
    int64_t tat = e && e->tat_us > now_us ? e->tat_us : now_us;
    int64_t over = tat - now_us - rates[k].tolerance_us;  /* > 0: no token until then */
    if (over > wait) {
      wait = over;
      if (refused) *refused = (tprl_kind)k;
    }
  }
  if (wait > 0) return wait;
  for (int k = 0; k < TPRL_NKINDS; k++) {
    if (!keys[k]) continue;
    entry *e = find(t, keys[k], true);
    e->tat_us = (e->tat_us > now_us ? e->tat_us : now_us) + rates[k].interval_us;
  }
  return 0;
}

const char *tprl_kind_whose(tprl_kind kind) { return kind_whose[kind]; }

void tprl_describe(const tprl_limits *l, char *out, size_t cap) {
  size_t n = 0;
  out[0] = '\0';
  for (int c = 0; c < TPRL_NCLASSES; c++)
    for (int k = 0; k < TPRL_NKINDS; k++) {
      const tprl_rate *r = &l->rate[c][k];
      if (!r->interval_us || n >= cap) continue;
      int w = snprintf(out + n, cap - n, "%s%s.%s 1/%lldus burst %lld", n ? ", " : "", class_names[c],
                       kind_names[k], (long long)r->interval_us,
                       (long long)(r->tolerance_us / r->interval_us + 1));
      if (w > 0) n += (size_t)w;
    }
  if (!out[0]) snprintf(out, cap, "none");
}

/* ---- the config: rate_limits = { buy = { user = { per_second = 2, burst = 5 } } } */

#define MAX_COUNT 1000000

static int fail(char *err, size_t errcap, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static int fail(char *err, size_t errcap, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(err, errcap, fmt, ap);
  va_end(ap);
  return -1;
}

/* Reads an integer field in [1, MAX_COUNT]: 1 set, 0 absent, -1 bad. */
static int count_field(lua_State *L, int idx, const char *name, int64_t *out, char *err,
                       size_t errcap, const char *path) {
  int type = lua_getfield(L, idx, name);
  int rc = 0;
  if (type != LUA_TNIL) {
    if (!lua_isinteger(L, -1) || lua_tointeger(L, -1) < 1 || lua_tointeger(L, -1) > MAX_COUNT) {
      snprintf(err, errcap, "%s.%s: must be an integer between 1 and %d", path, name, MAX_COUNT);
      rc = -1;
    } else {
      *out = lua_tointeger(L, -1);
      rc = 1;
    }
  }
  lua_pop(L, 1);
  return rc;
}

/* { per_second = N | per_minute = N, burst = B } at idx into r. */
static int load_rate(lua_State *L, int idx, tprl_rate *r, char *err, size_t errcap,
                     const char *path) {
  if (!lua_istable(L, idx)) {
    snprintf(err, errcap, "%s: must be a table like { per_second = 5, burst = 10 }", path);
    return -1;
  }
  lua_pushnil(L);
  while (lua_next(L, idx)) {
    lua_pop(L, 1);
    const char *k = lua_type(L, -1) == LUA_TSTRING ? lua_tostring(L, -1) : "";
    if (strcmp(k, "per_second") && strcmp(k, "per_minute") && strcmp(k, "burst")) {
      snprintf(err, errcap, "%s: unknown key '%s' (per_second, per_minute, burst)", path, k);
      lua_pop(L, 1);
      return -1;
    }
  }
  int64_t second = 0, minute = 0, burst = 0;
  int s = count_field(L, idx, "per_second", &second, err, errcap, path);
  int m = s < 0 ? -1 : count_field(L, idx, "per_minute", &minute, err, errcap, path);
  int b = m < 0 ? -1 : count_field(L, idx, "burst", &burst, err, errcap, path);
  if (b < 0) return -1;
  if (s + m != 1) {
    snprintf(err, errcap, "%s: give one of per_second or per_minute", path);
    return -1;
  }
  int64_t count = s ? second : minute;
  r->interval_us = (s ? INT64_C(1000000) : INT64_C(60000000)) / count;
  if (!b) burst = count;  /* by default a whole period's worth may come at once */
  r->tolerance_us = (burst - 1) * r->interval_us;
  return 0;
}

int tprl_load(lua_State *L, int idx, tprl_limits *l, char *err, size_t errcap) {
  memset(l, 0, sizeof *l);
  idx = lua_absindex(L, idx);
  if (lua_isnil(L, idx)) return 0;
  if (!lua_istable(L, idx)) {
    snprintf(err, errcap, ": must be a table of route class = { user = ..., address = ... }");
    return -1;
  }
  lua_pushnil(L);
  while (lua_next(L, idx)) {
    /* stack: ... class limits */
    const char *name = lua_type(L, -2) == LUA_TSTRING ? lua_tostring(L, -2) : "?";
    int cls = tprl_class_find(name);
    char path[96];
    snprintf(path, sizeof path, ".%.40s", name);
    int rc = 0;
    if (cls < 0)
      rc = fail(err, errcap, "%s: unknown route class (classes: %s, admin)", path,
                    tprl_route_classes());
    else if (!lua_istable(L, -1))
      rc = fail(err, errcap, "%s: must be a table like { user = { per_second = 2 } }", path);
    int limits = lua_gettop(L);
    lua_pushnil(L);
    while (rc == 0 && lua_next(L, limits)) {
      /* stack: ... class limits kind rate */
      const char *kname = lua_type(L, -2) == LUA_TSTRING ? lua_tostring(L, -2) : "?";
      char kpath[160];
      snprintf(kpath, sizeof kpath, "%s.%.40s", path, kname);
      int kind = -1;
      for (int k = 0; k < TPRL_NKINDS; k++)
        if (strcmp(kname, kind_names[k]) == 0) kind = k;
      if (kind < 0)
        rc = fail(err, errcap, "%s: unknown key (user, address, device, key)", kpath);
      else if (kind == TPRL_KEY && cls != TPRL_ADMIN)
        rc = fail(err, errcap, "%s: only admin routes are limited per API key", kpath);
      else if ((kind == TPRL_USER || kind == TPRL_DEVICE) && cls == TPRL_ADMIN)
        rc = fail(err, errcap, "%s: admin routes have no member or device: limit them per key "
                  "or address", kpath);
      else
        rc = load_rate(L, lua_gettop(L), &l->rate[cls][kind], err, errcap, kpath);
      lua_pop(L, 1);
      if (rc != 0) lua_pop(L, 1);  /* the key lua_next left */
      l->any = true;
    }
    lua_pop(L, 1);
    if (rc != 0) {
      lua_pop(L, 1);
      memset(l, 0, sizeof *l);
      return -1;
    }
  }
  return 0;
}
