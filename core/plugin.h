/*
** plugin.h - a plugin loaded for one tenant: its own lua_State, manifest,
** routes and migrations.
**
** A plugin is a folder plugins/NAME/ whose plugin.lua returns its manifest:
**     return {
**       name = "catalog", version = "1.0.0",
**       migrations = { "CREATE TABLE catalog_products (...)", ... },
**       routes = {
**         { method = "GET", path = "/catalog/products/{id:int}", auth = "none",
**           handler = function(req) return 200, {...} end },
**       },
**     }
** auth is "none", "optional", "user" (default) or "admin"; admin routes are
** mounted under /admin/{tenant}, the others under /v1/{tenant}.
*/
#ifndef TP_PLUGIN_H
#define TP_PLUGIN_H

#include <lua.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "config.h"
#include "router.h"
#include "store.h"

/* Where a call into a plugin happens; the API checks it (api.c). */
enum {
  TP_CTX_NONE = 0,
  TP_CTX_LOAD = 1,      /* running plugin.lua */
  TP_CTX_HANDLER = 2,   /* a route handler, inside the request's transaction */
  TP_CTX_JOB = 4,       /* seams for the scheduler and events */
  TP_CTX_EVENT = 8,
};
#define TP_CTX_TXN (TP_CTX_HANDLER | TP_CTX_JOB | TP_CTX_EVENT)
#define TP_CTX_ANY (TP_CTX_LOAD | TP_CTX_TXN)

typedef enum { TP_AUTH_NONE, TP_AUTH_OPTIONAL, TP_AUTH_USER, TP_AUTH_ADMIN } tp_auth;

struct tp_plugin;

typedef struct tp_route {
  struct tp_plugin *plugin;
  char method[8];
  char path[260];
  char label[320];       /* "catalog GET /v1/{tenant}/catalog/products" for logs and metrics */
  tp_auth auth;
  int handler_ref;
} tp_route;

/* Everything one invocation reads from the host, fixed when it starts. */
typedef struct tp_invocation {
  const char *request_id;
  int64_t now_ms;
  uint64_t seed;
  uint64_t rng[4];       /* xoshiro256** state, from seed */
} tp_invocation;

typedef struct tp_plugin {
  char name[33];
  char version[33];
  char dir[512];
  const char *tenant_id;
  const char *timezone;
  lua_State *L;
  tps_db *db;
  int ctx;
  tp_invocation *inv;
  const struct tp_call *call;  /* the request being handled, for req's lazy fields */
  size_t mem_bytes, mem_peak;
  int msgh_ref;          /* message handler: traceback, or the error table as is */
  int config_ref;
  int req_mt_ref;        /* metatable of req: builds headers and query on demand */
  tp_route *routes;
  int nroutes;
} tp_plugin;

/* What a handler is called with (built by the host from the HTTP request). */
typedef struct tp_call {
  const char *request_id;
  const char *method;
  const char *path;      /* decoded path without the query */
  size_t path_len;
  const char *query;     /* raw query string, without '?' */
  size_t query_len;
  const void *headers;   /* tph_header array */
  int nheaders;
  const char *body;
  size_t body_len;
  const char *user;      /* NULL when anonymous */
  const tpr_match *match;
} tp_call;

/* The outcome of a call: a status and an encoded JSON body. */
typedef struct tp_result {
  int status;
  bool ok;               /* false: the transaction must be rolled back */
  char code[40];         /* error code when !ok or status >= 400 */
} tp_result;

/* Loads plugins/<name>/plugin.lua from the first plugin dir that has it,
** runs its migrations and builds its routes. Returns 0, or -1 with err. */
int tpp_load(tp_plugin *p, const tpc_config *cfg, const tpc_tenant *t, const tpc_plugin *pc,
             tps_db *db, char *err, size_t errcap);
void tpp_free(tp_plugin *p);

/* Calls a route's handler. Encodes the JSON answer into body. The caller
** owns the savepoint: it releases it when result.ok, rolls it back otherwise. */
void tpp_call_route(tp_plugin *p, const tp_route *r, const tp_call *call, tp_invocation *inv,
                    struct tp_buf *body, tp_result *result);

/* Validates a query string; -1 if it is not well-formed percent-encoding. */
int tpp_check_query(const char *q, size_t n);

#endif
