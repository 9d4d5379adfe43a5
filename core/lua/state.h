/*
** state.h - a plugin's Lua state as every layer of lua/ sees it: the
** plugin, its routes, an invocation, the services the host lends it, a call
** and its result; the owner of a lua_State; and the tp.fail error.
**
** lua/ is built upward from here: sandbox.c (limits) and req.c (the req
** table) use only this; invoke.c calls into plugin code; api.c is the tp
** table (tp.call goes through invoke.c); plugin.c loads a plugin and its
** manifest (routedoc.c reads the routes' documentation).
*/
#ifndef TP_STATE_H
#define TP_STATE_H

#include <lua.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "base/buf.h"
#include "net/router.h"
#include "store/outbox.h"
#include "store/sched.h"
#include "store/store.h"

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
  bool body_required;    /* body declares required fields: a request must send one */
  const char *response;  /* JSON Schema of the success body */
  const char *errors;    /* the error responses: "409":{...},"404":{...} (OpenAPI) */
  int status;            /* success status; 0 means 200 */
  int also[3];           /* its other success statuses (status = {201, 200}), 0 after the last */
} tp_route_doc;

typedef struct tp_route {
  struct tp_plugin *plugin;
  char method[8];
  char path[260];
  char label[320];       /* "catalog GET /v1/{tenant}/catalog/products" for logs and metrics */
  tp_auth auth;
  bool personal;         /* its bodies carry personal data: recorded runs keep neither */
  unsigned char rate_class;  /* tprl_class its rate limits count it in (ratelimit.h) */
  bool idempotent;       /* the host answers a repeated Idempotency-Key (store/idem.h) */
  bool csv;              /* its handler may answer a string: text/csv */
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

/* Size classes of the small blocks a state's allocator keeps (sandbox.c). */
#define TPST_SMALL_CLASSES 16

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
  tp_buf view_text;      /* the JSON views pushed here are encoded into (tpjv_push), kept */
  /* limits (sandbox.c) */
  size_t mem_bytes, mem_peak;
  void *free_blocks[TPST_SMALL_CLASSES];  /* freed small blocks kept for reuse (sandbox.c) */
  size_t free_bytes;
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
  int personal_jobs_ref;                     /* job name -> true, or LUA_NOREF */
  int setup_ref;         /* the manifest's setup function, or LUA_NOREF */
  int migrations_ref;
  tp_route *routes;
  int nroutes;
  char (*subscriptions)[TPQ_MAX_NAME + 1];   /* event names, for fan-out at emit */
  int nsubscriptions;
  char (*export_names)[TPQ_MAX_NAME + 1];    /* the manifest's exports, for tp.exporters */
  int nexports;
  char (*track_kinds)[33];   /* the events it declares for POST /track (manifest `track`) */
  int ntrack_kinds;
  /* the host's services, for tp.jobs, tp.events and tp.call (api.c) */
  const struct tp_services *services;
  void *services_ud;
} tp_plugin;

/* What the host does for a plugin's API calls (host/services.c). Each
** returns 0, or -1 with a message in err; they run inside the caller's
** transaction. */
typedef struct tp_services {
  /* schedules job name of p; returns its id */
  int (*schedule)(void *ud, tp_plugin *p, const tpq_job *spec, int64_t *id,
                  char *err, size_t errcap);
  /* cancels p's pending job by id (key NULL) or by key; *n = jobs cancelled */
  int (*cancel)(void *ud, tp_plugin *p, int64_t id, const char *key, int *n, char *err,
                size_t errcap);
  /* how many plugins of the tenant subscribe to event name: asked before the
  ** data is encoded, so an event nobody hears costs no encoding and no row */
  int (*subscribers)(void *ud, const char *name);
  /* writes event name (JSON data, stored as given) to the outbox for every
  ** subscriber */
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
  /* writes call into the outbox, made once the transaction commits (tp.http);
  ** NULL where the host makes no calls */
  int (*http)(void *ud, tp_plugin *p, const tpob_call *call, int64_t *id, char *err, size_t errcap);
  /* whether p may call destination dest (tp.http.allowed) */
  bool (*http_allowed)(void *ud, tp_plugin *p, const char *dest);
  /* the value of secret name of destination dest, which must list p
  ** (tp.crypto.rsa_sign, aes_gcm_decrypt): for the C that uses it, never
  ** for the plugin's Lua. NULL with err otherwise. */
  const char *(*secret)(void *ud, tp_plugin *p, const char *dest, const char *name, size_t *len,
                        char *err, size_t errcap);
} tp_services;

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
  bool csv;              /* the body is CSV text (a csv route returned a string) */
} tp_result;

/* Makes p the owner of L and registers the tp.fail metatable. */
void tpst_open(lua_State *L, tp_plugin *p);
/* The plugin that owns L (kept in L's extra space). */
tp_plugin *tpst_owner(lua_State *L);
/* t[key] without metamethods: manifests and error tables come from plugin
** code, and an __index that raises outside a protected call would abort the
** host. Pushes the value; returns its type. */
int tpst_rawfield(lua_State *L, int idx, const char *key);
/* True if the error value at idx is a tp.fail() error. */
int tpst_is_fail(lua_State *L, int idx);
/* Marks the table at the top of L as a tp.fail() error. */
void tpst_mark_fail(lua_State *L);
/* Raises a tp.fail() error {status, code, message} from C (never returns). */
int tpst_fail(lua_State *L, int status, const char *code, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
/* The message handler for calls into plugin code (lua_pcall's msgh). */
int tpst_msgh(lua_State *L);

#endif
