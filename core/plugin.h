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
**           handler = function(req) return 200, {...} end,
**           summary = "One product", response = { type = "object" } },
**       },
**     }
** auth is "none", "optional", "user" (default) or "admin"; admin routes are
** mounted under /admin/{tenant}, the others under /v1/{tenant}. rate_class
** (read, write, buy, join, help, claim; default read for GET, write for the
** other methods) picks the brand's rate limits that count it (ratelimit.h). The optional
** doc fields (summary, description, query, headers, body, response, status)
** feed GET /v1/{tenant}/openapi.json; other unknown route keys are ignored.
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
  TP_CTX_SETUP = 16,    /* the manifest's setup, in its own transaction after migrations */
};
#define TP_CTX_COUNT 5
#define TP_CTX_TXN (TP_CTX_HANDLER | TP_CTX_JOB | TP_CTX_EVENT | TP_CTX_SETUP)
#define TP_CTX_ANY (TP_CTX_LOAD | TP_CTX_TXN)

typedef enum { TP_AUTH_NONE, TP_AUTH_OPTIONAL, TP_AUTH_USER, TP_AUTH_ADMIN } tp_auth;

struct tp_plugin;
struct tp_job_spec;

/* What a route declares about itself for the OpenAPI document (openapi.c).
** A plugin's are checked and rendered to JSON when it loads, so the document
** shows the declaration as loaded and cannot fail to encode later; the
** strings are the plugin's to free. The host's built-in routes point at
** literals. Any field may be NULL. */
typedef struct tp_route_doc {
  const char *summary;
  const char *description;
  const char *params;    /* query and header parameter objects, comma-separated JSON */
  const char *body;      /* JSON Schema of the request body */
  const char *response;  /* JSON Schema of the success body */
  int status;            /* success status; 0 means 200 */
} tp_route_doc;

typedef struct tp_route {
  struct tp_plugin *plugin;
  char method[8];
  char path[260];
  char label[320];       /* "catalog GET /v1/{tenant}/catalog/products" for logs and metrics */
  tp_auth auth;
  bool personal;         /* its bodies carry personal data: recorded runs keep neither */
  unsigned char rate_class;  /* tprl_class its rate limits count it in (ratelimit.h) */
  int handler_ref;
  void (*builtin)(void);  /* a host endpoint (tp_builtin_fn in host.h); plugin is NULL */
  tp_route_doc doc;
} tp_route;

/* Everything one invocation reads from the host, fixed when it starts. */
typedef struct tp_invocation {
  const char *request_id;
  int64_t now_ms;
  uint64_t seed;
  uint64_t rng[4];       /* xoshiro256** state, from seed */
  uint64_t draws;        /* tp.random calls so far, for the recorded run */
  char *error;           /* when not NULL: a failed handler's message and traceback go here */
  size_t error_cap;
} tp_invocation;

#define TPP_MAX_NAME 64      /* job, event and export names */

typedef struct tp_plugin {
  char name[33];
  char version[33];
  char dir[512];
  const char *sdk_dir;
  const char *tenant_id;
  const char *timezone;
  const char *token_secret;    /* the tenant's, for tp.auth.token (identity plugin only) */
  size_t token_secret_len;
  uint64_t generation;   /* 1 for the first load, +1 per reload */
  int64_t loaded_at_ms;
  lua_State *L;
  tps_db *db;
  int ctx;
  tp_invocation *inv;
  const struct tp_call *call;  /* the request being handled, for req's lazy fields */
  bool running;          /* an invocation is on the C stack: calls into it would re-enter */
  const char *caller;    /* name of the plugin whose tp.call runs us now, for tp.caller() */
  /* limits (sandbox.c) */
  size_t mem_bytes, mem_peak;
  size_t mem_limit;      /* cap while plugin code runs */
  bool mem_exceeded;     /* the cap held even after Lua's emergency collection */
  size_t refused_size;   /* the last allocation refused (Lua retries it once after a GC) */
  int64_t instructions;  /* budget of each invocation */
  int64_t budget, used;  /* of the invocation running now */
  bool exceeded;         /* budget spent: the hook raises at every instruction */
  bool timed_out;        /* the deadline passed: likewise */
  bool sql_writing;      /* tp.db is stepping a statement that writes (sandbox.c) */
  bool killed;           /* a limit ended an invocation: the state awaits its reset */
  int64_t deadline_ms;   /* of each invocation it starts (plugin_limits, limits.invocation_ms) */
  int64_t load_ms;       /* of loading (limits.load_ms) */
  int64_t migration_ms;  /* of migrating (limits.migration_ms) */
  /* the manifest */
  int msgh_ref;          /* message handler: traceback, or the error table as is */
  int config_ref;
  int req_mt_ref;        /* metatable of req: builds headers and query on demand */
  int jobs_ref, subscribe_ref, exports_ref;  /* name -> function tables */
  int setup_ref;         /* the manifest's setup function, or LUA_NOREF */
  int migrations_ref;
  tp_route *routes;
  int nroutes;
  char (*subscriptions)[TPP_MAX_NAME + 1];   /* event names, for fan-out at emit */
  int nsubscriptions;
  /* the host's services, for tp.jobs, tp.events and tp.call (api.c) */
  const struct tp_services *services;
  void *services_ud;
} tp_plugin;

/* What the host does for a plugin's API calls (implemented in host.c). Each
** returns 0, or -1 with a message in err; they run inside the caller's
** transaction. */
typedef struct tp_services {
  /* schedules job name of p; returns its id */
  int (*schedule)(void *ud, tp_plugin *p, const struct tp_job_spec *spec, int64_t *id,
                  char *err, size_t errcap);
  /* cancels p's pending job by id (key NULL) or by key; *n = jobs cancelled */
  int (*cancel)(void *ud, tp_plugin *p, int64_t id, const char *key, int *n, char *err,
                size_t errcap);
  /* writes event name (JSON data) to the outbox for every subscriber */
  int (*emit)(void *ud, tp_plugin *p, const char *name, const char *json, size_t len, int *n,
              char *err, size_t errcap);
  /* the current generation of a peer plugin of the same tenant, or NULL */
  tp_plugin *(*peer)(void *ud, tp_plugin *p, const char *name);
  /* a limit ended an invocation of p: its state is to be replaced by a fresh
  ** load once nothing of it is on the stack (may be NULL: nobody resets) */
  void (*killed)(void *ud, tp_plugin *p);
  /* the i-th plugin serving this tenant (by name), NULL past the last: tp.exporters */
  tp_plugin *(*peer_at)(void *ud, int i);
  /* the tenant's member aliases (alias.h): tp.auth */
  struct tpal_table *(*aliases)(void *ud);
} tp_services;

typedef struct tp_job_spec {
  const char *name;
  const char *payload;   /* JSON */
  size_t payload_len;
  int64_t due_ms;
  int64_t every_ms;      /* 0: once */
  const char *key;       /* NULL, or unique among the plugin's pending jobs */
  int64_t max_attempts;  /* 0: the host's default */
} tp_job_spec;

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

/* Loads plugins/<name>/plugin.lua from the first plugin dir that has it into a
** fresh state and reads its manifest (routes, jobs, subscriptions, exports),
** under the load instruction budget. Nothing touches the database yet.
** Returns 0, or -1 with err. */
int tpp_load(tp_plugin *p, const tpc_config *cfg, const tpc_tenant *t, const tpc_plugin *pc,
             tps_db *db, char *err, size_t errcap);
/* Runs the manifest's pending migrations in their own transaction (no batch
** may be open). Returns 0, or -1 with err and nothing applied. */
int tpp_migrate(tp_plugin *p, char *err, size_t errcap);
void tpp_free(tp_plugin *p);
/* True if p has a job handler (kind "jobs"), subscription ("subscribe") or export ("exports")
** name; L is the thread of p that is running (it may be a coroutine). */
bool tpp_has_handler(tp_plugin *p, lua_State *L, const char *kind, const char *name);

/* Calls a route's handler. Encodes the JSON answer into body. The caller
** owns the savepoint: it releases it when result.ok, rolls it back otherwise. */
void tpp_call_route(tp_plugin *p, const tp_route *r, const tp_call *call, tp_invocation *inv,
                    struct tp_buf *body, tp_result *result);

/* Runs a job (kind "jobs", ctx TP_CTX_JOB) or an event delivery ("subscribe",
** TP_CTX_EVENT): the handler gets the JSON object arg decoded into a table.
** The caller owns the savepoint. Returns 0, or -1 with the error (message,
** traceback or the limit that was hit) in err. */
int tpp_call_task(tp_plugin *p, const char *kind, const char *name, const char *arg,
                  size_t arg_len, tp_invocation *inv, int ctx, char *err, size_t errcap);

/* Calls callee's export name with the nargs values at from[first..] copied
** as plain data; its results are copied back onto from. Runs in the caller's
** context and invocation. Returns the number of results, -1 with err on an
** error (a tp.fail error is copied onto from and -2 returned instead). */
/* The manifest's setup function, if any, as ctx setup of inv; the caller owns
** the transaction. 0, or -1 with err ("code: message" for tp.fail). */
bool tpp_has_setup(const tp_plugin *p);
int tpp_setup(tp_plugin *p, tp_invocation *inv, char *err, size_t errcap);
int tpp_call_export(tp_plugin *callee, const char *name, lua_State *from, int first, int nargs,
                    tp_invocation *inv, int ctx, char *err, size_t errcap);

/* Validates a query string; -1 if it is not well-formed percent-encoding. */
int tpp_check_query(const char *q, size_t n);

#endif
