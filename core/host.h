/*
** host.h - tenants, their plugins and routes, the request pipeline, the
** scheduler and hot reload.
**
** tp_host_handle() is the HTTP server's handle hook: it routes a request to a
** tenant's plugin (or a built-in admin endpoint), authenticates it, runs the
** handler inside a savepoint of the tenant's open transaction and fills the
** response. tp_host_commit() is the end-of-iteration hook that commits every
** tenant touched in the batch, then re-arms the scheduler.
**
** The host's files:
**   host.c    opening, dispatch, authentication, commit
**   reload.c  generations: load, migrate, build routes, swap (DESIGN "Hot reload")
**   tasks.c   the services plugins call (jobs, events, tp.call) and the runner
**             that fires due jobs and delivers events, one uv timer for all
**   admin.c   the built-in admin endpoints
**   openapi.c GET /v1/{tenant}/openapi.json, generated from the mounted routes
*/
#ifndef TP_HOST_H
#define TP_HOST_H

#include <uv.h>

#include "alias.h"
#include "config.h"
#include "http.h"
#include "metrics.h"
#include "plugin.h"
#include "router.h"
#include "runs.h"
#include "sched.h"
#include "store.h"

/* One plugin enabled in a tenant's config, across its generations. */
typedef struct tp_slot {
  const tpc_plugin *conf;
  tp_plugin *current;         /* the generation serving; NULL if none ever loaded */
  uint64_t generations;       /* how many have been swapped in */
  char last_error[1024];      /* of the last failed load or reload; "" if it worked */
  int64_t last_error_ms;
} tp_slot;

typedef struct tp_tenant {
  const tpc_tenant *conf;
  struct tp_host *host;
  tps_db db;
  tpq_queue queue;
  tprun_log runs;             /* recorded runs, arming, instruction statistics */
  tpal_table aliases;         /* merged and erased member ids (alias.h) */
  tp_slot *slots;             /* sorted by plugin name, like the config */
  int nslots;
  tpr_router *routes;         /* /v1/{tenant}/... */
  tpr_router *admin;          /* /admin/{tenant}/... (built-ins first) */
  bool dirty;                 /* in the batch being committed */
  bool reset_pending;         /* a limit killed one of its plugins (tp__reset_killed) */
  bool queue_touched;         /* the batch scheduled, cancelled or emitted */
  int64_t next_due_ms;        /* earliest runnable task; INT64_MAX: none */
  int64_t clock_ms;           /* the manual clock (conf->manual_clock) */
} tp_tenant;

typedef struct tp_host {
  const tpc_config *cfg;
  tp_tenant *tenants;         /* sorted by id */
  int ntenants;
  tp_tenant **batch;          /* tenants with an open transaction */
  int nbatch;
  tpm_metrics *metrics;
  tph_server *server;         /* for the connections gauge; may be NULL */
  int plugin_failures;        /* plugins enabled in the config that are not serving */
  tpr_match match;            /* the request being dispatched (one at a time) */
  uint64_t seed_secret;       /* mixed into every invocation's random seed */
  struct tpkg_table *keyguard; /* failed admin keys per address (keyguard.h) */
  tprl_table *ratelimit;      /* the brands' rate limits (ratelimit.h) */
  uv_loop_t *loop;            /* NULL until tp_host_attach */
  uv_timer_t timer;           /* the scheduler's one timer */
  int64_t timer_due_ms;       /* wall time it is armed for; INT64_MAX: idle */
  bool running_tasks;         /* the runner is on the stack */
  bool commit_failed;         /* some tenant's commit failed since the iteration began */
  bool reset_pending;         /* some tenant's reset_pending is set */
  lua_State *scratch;         /* decodes admin request bodies */
  /* for `tidepool test`: the next invocation's seed, and what the last one cost */
  bool pin_seed;
  uint64_t pinned_seed;
  bool keep_last;
  struct tp_last_invocation {
    char plugin[33], kind[8], name[TPRUN_NAME_MAX];
    bool ok;
    int64_t used, budget, now_ms, run_id;  /* run_id 0: not recorded */
    uint64_t seed, draws;
    size_t mem_peak;
  } last;
} tp_host;

/* Opens every tenant's database and loads its plugins. A plugin that fails is
** reported and left out; only an unusable database fails the host. */
int tp_host_open(tp_host *h, const tpc_config *cfg, char *err, size_t errcap);
/* Starts the scheduler on loop (jobs due now, or after a restart, fire). */
void tp_host_attach(tp_host *h, uv_loop_t *loop);
/* Stops the scheduler's timer (before the loop's last run) and closes all. */
void tp_host_detach(tp_host *h);
void tp_host_close(tp_host *h);

void tp_host_handle(void *host, const tph_request *req, tph_response *res);
void tp_host_commit(void *host);
void tp_host_finished(void *host, const tph_response *res, double seconds);
/* Every answer of the iteration is out: commit failures are forgotten. */
void tp_host_iteration_end(void *host);

/* Reloads plugin (NULL: all) of tenant (NULL: all). Appends the outcome as
** JSON {"reloaded":[...],"failed":[...]} to out when given and logs it.
** Returns the number of plugins that failed. */
int tp_host_reload(tp_host *h, const char *tenant, const char *plugin, tp_buf *out);

/* ---- internal to the host's files */

typedef void (*tp_builtin_fn)(tp_host *h, tp_tenant *t, const tph_request *req, tph_response *res);

int64_t tp__now(const tp_tenant *t);          /* the tenant's clock, ms */
tp_slot *tp__slot(tp_tenant *t, const char *plugin);
void tp__flush_batch(tp_host *h);             /* commits every open transaction now */
int tp__join_batch(tp_host *h, tp_tenant *t); /* BEGIN if needed; 0 or -1 */
uint64_t tp__seed(const tp_host *h, int64_t now_ms, const char *id);
int tp__install(tp_host *h, tp_tenant *t, tp_slot *s, double *ms);   /* reload.c */
/* Loads afresh every plugin whose invocation a limit ended. Called
** once nothing of theirs is on the stack: after a request, after the runner. */
void tp__reset_killed(tp_host *h);
extern const tp_services tp__services;       /* tasks.c */
void tp__arm_timer(tp_host *h);
int tp__advance(tp_host *h, tp_tenant *t, int64_t to_ms, int *ran, int *failed);
void tp__after_commit(tp_host *h, tp_tenant *t);
/* Mounts the host's built-in routes on a tenant's new routers: the admin
** endpoints on admin and GET /openapi.json on routes. Every place that builds
** routers calls this, so no set of routers lacks them. admin.c */
int tp__add_builtins(tpr_router *routes, tpr_router *admin, char *err, size_t errcap);
int tp__add_openapi(tpr_router *routes, char *err, size_t errcap);   /* openapi.c */
/* After a top-level invocation of p (kind "route", "job" or "event") has
** closed its savepoint: notes its instructions, and says whether its run is
** to be recorded: "error" when it failed, "armed" when recording was asked
** for, else NULL. (host.c) */
const char *tp__run_reason(tp_host *h, tp_tenant *t, tp_plugin *p, const tp_invocation *inv,
                           const char *kind, const char *name, bool failed);
/* Records the run: info's plugin fields and costs are filled from p; input
** is the JSON the plugin saw. Returns the run's id, 0 if it could not be
** written (logged). */
int64_t tp__record_run(tp_host *h, tp_tenant *t, tp_plugin *p, tprun_info *info,
                       const char *input, size_t input_len);
bool tp__check_admin(tp_tenant *t, const tph_request *req, tph_response *res);
bool tp__metrics_allowed(tp_host *h, const tph_request *req);   /* admin.c */
void tp__refuse_unknown_admin(tp_host *h, const tph_request *req, const char *tid, size_t tlen,
                              tph_response *res);                /* admin.c */
void tp__host_reload_endpoint(tp_host *h, const tph_request *req, tph_response *res);

#endif
