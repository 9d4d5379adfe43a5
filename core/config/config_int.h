/*
** config_int.h - between config.c (running the file), fields.c (checking
** the table it returned) and checker.c (the machinery of that check).
*/
#ifndef TP_CONFIG_INT_H
#define TP_CONFIG_INT_H

#include <lua.h>
#include <stdbool.h>
#include <stdint.h>

#include "config/config.h"

/* Validation context: the error buffer and the key path being checked. */
typedef struct tpc__checker {
  lua_State *L;
  const tpc_config *cfg;       /* what is loaded so far (limits before tenants) */
  char *err;
  size_t errcap;
  char path[256];
} checker;

/* Formats the error for the path being checked; returns -1. */
int tpc__failf(checker *c, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Appends to the path (".key", "[3]"); returns its old length, for tpc__path_pop. */
size_t tpc__path_push(checker *c, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void tpc__path_pop(checker *c, size_t old);
/* Every key of the table at idx is in allowed (NULL-terminated), else an
** error with the closest allowed name (did you mean). */
int tpc__check_keys(checker *c, int idx, const char *const *allowed);
/* Pushes t[key] of the table at idx; returns its type. */
int tpc__field(checker *c, int idx, const char *key);
/* t[key] as a fresh string (def when absent and not required). */
int tpc__get_string(checker *c, int idx, const char *key, bool required, const char *def,
                    char **out);
/* t[key] as an integer in [min, max] (def when absent). */
int tpc__get_int(checker *c, int idx, const char *key, int64_t def, int64_t min, int64_t max,
                 int64_t *out);
/* Runs load(c, top) on t[key] with the key in the error path. */
int tpc__section(checker *c, int idx, const char *key, int (*load)(checker *, int, void *),
                 void *arg);

/* A tenant's http section (destinations.c), and freeing it. */
int tpc__load_destinations(checker *c, int idx, void *t);
void tpc__free_destinations(tpc_tenant *t);

/* Checks the table at the top of L into cfg; where names the file in errors.
** 0, or -1 with err ("config.lua: tenants[1].id: must be ..."). */
int tpc__check(lua_State *L, tpc_config *cfg, const char *where, char *err, size_t errcap);

#endif
