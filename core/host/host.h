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
** The host's files, from the bottom up (host_int.h declares what they share;
** none calls a file above it, tools/layers.sh holds them to it):
**   metrics.c, keyguard.c, runs.c   counters, failed-key table, recorded-run table
**   body.c      the JSON body of a host endpoint, on the scratch state
**   tenant.c    a tenant's clock, slots and the batch (group commit), synced by a worker
**   record.c    which invocations to record, and recording them
**   services.c  what plugins ask of the host: jobs, events, peers (tp_services)
**   reload.c    generations: load, migrate, build routers, swap (DESIGN "Hot reload")
**   brands.c    opening and closing a brand: at start, or on demand and when idle
**   runner.c    fires due jobs and delivers events, one uv timer for all tenants
**   roles.c     which roles may call which admin route: one table
**   gate.c      who may come in: client address, admin keys and console sessions
**               with their roles, user tokens, rate limits
**   callout.c   one call out: its headers and signature, the reply it makes
**   sender.c    makes the calls out (tp.http) after commit, with access tokens
**   backup.c    each brand's database copied on schedule by a worker
**   cluster.c   a brand's move between the nodes of a cluster: release, adopt
**   tryout.c    a campaign script checked on a copy of the brand's data (a child process)
**   console.c   the web console: its files, sign-in and sessions, console users
**   admin.c     the built-in admin endpoints and GET /metrics
**   openapi.c   GET /v1/{tenant}/openapi.json, generated from the mounted routes
**   host.c      opening, dispatch, commit: the pipeline, on top
*/
#ifndef TP_HOST_H
#define TP_HOST_H

#include <uv.h>

#include "store/alias.h"
#include "store/idem.h"
#include "config/config.h"
#include "net/http.h"
#include "host/metrics.h"
#include "lua/plugin.h"
#include "net/router.h"
#include "host/runs.h"
#include "store/sched.h"
#include "store/outbox.h"
#include "store/store.h"
#include "store/track.h"
#include "store/dueindex.h"

/* One plugin enabled in a tenant's config, across its generations. */
typedef struct tp_slot {
  const tpc_plugin *conf;
  tp_plugin *current;         /* the generation serving; NULL if none ever loaded */
  uint64_t generations;       /* how many have been swapped in */
  char last_error[4096];      /* of the last failed load or reload; "" if it worked */
  int64_t last_error_ms;
} tp_slot;

typedef struct tp_tenant {
  const tpc_tenant *conf;
  struct tp_host *host;
  tps_db db;
  tpq_queue queue;
  tprun_log runs;             /* recorded runs, arming, instruction statistics */
  tpal_table aliases;         /* merged and erased member ids (alias.h) */
  tpid_table idem;            /* answers of Idempotency-Keys (idem.h) */
  tpob_box outbox;            /* calls out waiting to be made (outbox.h) */
  tptk_db track;              /* the analytics database, its own connection (track.h) */
  struct tp_ckpt_job *track_ckpt;  /* the worker's checkpoint in flight, or NULL (host/track.c) */
  bool open;                  /* its database and plugins are open (host/brands.c) */
  bool owned;                 /* this node serves it (always, without a cluster) */
  int owner;                  /* in a cluster: its node in cfg->nodes */
  int64_t paused_ms;          /* moving between nodes since then (503); 0: not (host/cluster.c) */
  struct tp_pull *adopting;   /* its files being pulled from another machine (host/transfer.c) */
  int64_t last_used_ms;       /* its last request, task or call out (wall clock) */
  int calls_out;              /* its calls out in flight (sender.c) */
  int deferred;               /* its answers waiting for a worker (console.c's password checks,
                              ** the commits' sync) */
  struct tp_sync *sync;       /* its commits made durable off the loop (tenant.c); NULL: in COMMIT */
  int claim;                  /* the lock that says this process serves it (store/backup.h) */
  struct tp_backup_job *backup_job;  /* the copy in flight, or NULL (host/backup.c) */
  int64_t backup_last_ms;     /* when the newest backup was taken; 0: none */
  bool backup_known;          /* backup_last_ms was read from the backups on disk (backup.c) */
  int64_t backup_failed_ms;   /* when the last failed one began */
  char backup_error[256];     /* why it failed; "" after a success */
  tp_slot *slots;             /* sorted by plugin name, like the config */
  int nslots;
  tpr_router *routes;         /* /v1/{tenant}/... */
  tpr_router *admin;          /* /admin/{tenant}/... (built-ins first) */
  bool dirty;                 /* in the batch being committed */
  bool reset_pending;         /* a limit killed one of its plugins (tp__reset_killed) */
  bool queue_touched;         /* the batch scheduled, cancelled or emitted */
  bool outbox_touched;        /* the batch wrote the outbox: the sender looks after commit */
  int64_t outbox_due_ms;      /* earliest live call out; INT64_MAX: none */
  int64_t next_due_ms;        /* earliest runnable task; INT64_MAX: none */
  int64_t clock_ms;           /* the manual clock (conf->manual_clock) */
} tp_tenant;

/* Who is calling an admin route: a key's or a console session's role and,
** for a store manager, its store (host/roles.c admits or refuses). */
typedef struct tp_principal {
  int role;                   /* tpc_role */
  char store[TPC_MAX_STORE + 1];
  bool session;               /* signed in to the console (writes need its CSRF token) */
} tp_principal;

#define TP_HOST_MAX_BUILTINS 32

typedef struct tp_host {
  const tpc_config *cfg;
  tp_route *builtins[TP_HOST_MAX_BUILTINS];  /* mounted first on every tenant's routers */
  int nbuiltins;
  tp_tenant *tenants;         /* sorted by id */
  int ntenants;
  tp_tenant **batch;          /* tenants with an open transaction */
  int nbatch;
  tpm_metrics *metrics;
  tph_server *server;         /* for the connections gauge; may be NULL */
  int plugin_failures;        /* plugins enabled in the config that are not serving */
  tpr_match match;            /* the request being dispatched (one at a time) */
  tp_principal principal;     /* who calls the admin route being dispatched */
  struct tpse_table *sessions;  /* signed-in console browsers (base/session.h) */
  struct tphs_cache *files;   /* the console's files (net/static.h) */
  struct tp_signin *signins;  /* password checks on a worker (console.c) */
  struct tp_tryout *tryouts;  /* campaign checks running as child processes (tryout.c) */
  uint64_t seed_secret;       /* mixed into every invocation's random seed */
  struct tpkg_table *keyguard; /* failed admin keys per address (keyguard.h) */
  tprl_table *ratelimit;      /* the brands' rate limits (ratelimit.h) */
  uint64_t track_ns;          /* time intake (track.c) took in this loop iteration */
  uint64_t track_commit_ns;   /* its commits at this iteration's end: the next one's share */
  uv_loop_t *loop;            /* NULL until tp_host_attach */
  struct tp_syncer *syncer;   /* the thread that syncs brands' commits (tenant.c); NULL: none */
  struct tp_sender *sender;   /* makes the calls out (sender.c); NULL until attached */
  struct tp_backups *backups; /* the backup schedule (backup.c); NULL when none */
  struct tp_xfer *transfers;  /* brands' files being read for a move (transfer.c) */
  int nserving;               /* how many */
  char folder[33];            /* the data folder's id (store/owners.h); "" unknown */
  int open_tenants;           /* brands open now (brands.c) */
  tpdi_index due_index;       /* closed brands' due times (lazy brands; store/dueindex.h) */
  uv_timer_t idle_timer;      /* closes idle brands (open_tenants.lazy) */
  bool idle_timer_on;
  bool outbox_touched;        /* some tenant's outbox_touched is set */
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
/* hooks.hold: holds res back until the commits it rests on are on disk
** (store/walsync.h); false when they are or none is owed. Only answers whose
** commit succeeded are offered. */
bool tp_host_hold(void *host, tph_response *res);

/* Reloads plugin (NULL: all) of tenant (NULL: all). Appends the outcome as
** JSON {"reloaded":[...],"failed":[...]} to out when given and logs it.
** Returns the number of plugins that failed. */
int tp_host_reload(tp_host *h, const char *tenant, const char *plugin, tp_buf *out);

/* Moves tenant t's manual clock to to_ms, running every task that falls due
** on the way, each with the clock at its due time (POST /admin/{t}/clock/advance,
** `tidepool test`). *ran and *failed count them. 0, or -1 if the clock could
** not be saved. */
int tp_host_advance(tp_host *h, tp_tenant *t, int64_t to_ms, int *ran, int *failed);

/* The host's built-in routes (GET /openapi.json and the admin endpoints), into
** out; returns how many. */
int tp_host_builtins(tp_route *out[TP_HOST_MAX_BUILTINS]);
/* Builds a tenant's two routers: the built-ins, then each plugin's routes (a
** NULL plugin is skipped). 0, or -1 with err naming the route that clashes. */
int tp_host_build_routers(tp_route *const *builtins, int nbuiltins, tp_plugin *const *plugins,
                          int nplugins, tpr_router **routes, tpr_router **admin, char *err,
                          size_t errcap);

#endif
