/*
** host_int.h - what the files of host/ share and nothing outside it uses.
**
** Listed from the bottom up, as host.h lists the files: a function here is
** called only by files above the one that defines it. A lower file that
** needs something of a higher one gets it as data (the built-in routes in
** tp_host.builtins) or as a function pointer it was handed (tp_services,
** a route's builtin), never by name. Beyond host/, only the in-process
** drivers in cli/ (testkit.c, campaign.c) use them.
*/
#ifndef TP_HOST_INT_H
#define TP_HOST_INT_H

#include <stdatomic.h>

#include "host/host.h"

/* A built-in endpoint (tp_route.builtin). */
typedef void (*tp_builtin_fn)(tp_host *h, tp_tenant *t, const tph_request *req, tph_response *res);

/* An error response of a built-in route's OpenAPI document (tp_route_doc.errors):
** TP_DOC_ERROR("409", "a, b", "\"a\",\"b\"") */
#define TP_DOC_ERROR(status, codes, list)                                                   \
  "\"" status "\":{\"description\":\"" codes "\",\"content\":{\"application/json\":{\"schema\":" \
  "{\"allOf\":[{\"$ref\":\"#/components/schemas/Error\"},{\"type\":\"object\",\"properties\":" \
  "{\"error\":{\"type\":\"object\",\"properties\":{\"code\":{\"type\":\"string\",\"enum\":[" \
  list "]}}}}}]}}}}"

/* ---- body.c */
/* Decodes the request body (a JSON object, or nothing: {}) onto h->scratch at
** index 1; false with the response filled (400 invalid_json) when it is not one. */
bool tp__body_object(tp_host *h, const tph_request *req, tph_response *res);
/* body.key as a string (NULL if absent); false (400 invalid_field) if not a
** string. The string stays on the scratch stack until the next body. */
bool tp__body_string(tp_host *h, const char *key, const char **out, tph_response *res);

/* ---- tenant.c */
int64_t tp__now(const tp_tenant *t);          /* the tenant's clock, ms */
tp_slot *tp__slot(tp_tenant *t, const char *plugin);
tp_tenant *tp__tenant(tp_host *h, const char *id, size_t n);  /* NULL if not served */
/* The host is stopping: waits, without running the loop (nothing else may run
** now), until a libuv worker has set *finished (its files and connection are
** free). The job's own callback, run by the loop's last turn, then frees it. */
void tp__await_worker(atomic_int *finished);
uint64_t tp__seed(const tp_host *h, int64_t now_ms, const char *id);
int tp__join_batch(tp_host *h, tp_tenant *t); /* BEGIN if needed; 0 or -1 */
/* Lists t for the commit without a BEGIN on its database: intake's batch of
** events goes into the analytics file's own transaction (store/track.h). */
void tp__join_track(tp_host *h, tp_tenant *t);
/* Commits every open transaction now, the brands' and intake's (track.c); a
** tenant whose queue was touched has its next due time read back for the
** runner. A brand's commit that owes a sync (store/walsync.h) starts one on
** the host's syncer thread. Returns how many of the brands' commits failed
** (h->commit_failed also counts earlier ones, and intake's). */
int tp__flush_batch(tp_host *h);
/* Makes t's commits durable on the host's syncer thread from now on, when it runs
** a loop and the brand is configured synchronous FULL or EXTRA (an open brand:
** at attach, or when it opens). Until then (a kit, a test harness) COMMIT
** waits for the disk itself. */
void tp__sync_open(tp_host *h, tp_tenant *t);
/* Before the iteration's commit: a sync that finished while the loop was busy
** releases its answers now, an iteration before libuv's callback would. */
void tp__sync_reap(tp_host *h);
/* The host is stopping: waits for the sync in flight and ends the syncer's
** thread; the syncs not made and the answers still held are abandoned. */
void tp__sync_drain(tp_host *h);
/* Before t closes: nothing of its sync may be in flight (t->deferred is 0). */
void tp__sync_close(tp_tenant *t);

/* ---- record.c */
/* After a top-level invocation of p (kind "route", "job" or "event") has
** closed its savepoint: notes its instructions, and says whether its run is
** to be recorded: "error" when it failed, "armed" when recording was asked
** for, else NULL. */
const char *tp__run_reason(tp_host *h, tp_tenant *t, tp_plugin *p, const tp_invocation *inv,
                           const char *kind, const char *name, bool failed);
/* Records the run: info's plugin fields and costs are filled from p; input
** is the JSON the plugin saw. Returns the run's id, 0 if it could not be
** written (logged). */
int64_t tp__record_run(tp_host *h, tp_tenant *t, tp_plugin *p, tprun_info *info,
                       const char *input, size_t input_len);
/* Records a route's run: its input as the handler saw it, and the answer. */
void tp__record_route(tp_host *h, tp_tenant *t, const tp_route *r, const tp_call *call,
                      const tp_invocation *inv, const char *name, const char *reason,
                      const tp_result *result, const tph_response *res, double ms);

/* ---- services.c */
extern const tp_services tp__services;

/* ---- reload.c */
/* Loads slot s's next generation and swaps it in. 0, or -1 (reported). */
int tp__install(tp_host *h, tp_tenant *t, tp_slot *s, double *ms);
/* Loads afresh every plugin whose invocation a limit ended. Called once
** nothing of theirs is on the stack: after a request, after the runner. */
void tp__reset_killed(tp_host *h);
/* Reloads plugin (NULL: all) of tenant (NULL: all); the outcome as JSON into
** out when given. Returns how many failed. The caller re-arms the runner. */
int tp__reload(tp_host *h, const char *tenant, const char *plugin, tp_buf *out);

/* ---- brands.c */
/* The slot of a brand before it is ever opened (at tp_host_open). */
void tp__brand_init(tp_host *h, tp_tenant *t, const tpc_tenant *conf);
/* Opens t (why: "start", "request", "task", "call out" for the log): 0, or -1
** with err and nothing of it left open. */
int tp__brand_open(tp_host *h, tp_tenant *t, const char *why, char *err, size_t errcap);
/* Closes t; only between batches, with nothing of it in flight. */
void tp__brand_close(tp_host *h, tp_tenant *t);
void tp__brand_free(tp_host *h, tp_tenant *t);   /* closes, and frees its slots */
/* A closed brand's next due task and call out: from the due index when its
** files have not changed since, else read from its file (true). */
bool tp__brand_peek(tp_host *h, tp_tenant *t);
/* Opens t if it is closed and notes the use: 0, or -1 (logged). */
int tp__brand_use(tp_host *h, tp_tenant *t, const char *why);
void tp__brands_start(tp_host *h);            /* the idle timer, when lazy */
void tp__brands_stop(tp_host *h);

/* ---- runner.c */
void tp__arm_timer(tp_host *h);               /* for the earliest due task of any tenant */
void tp__runner_attach(tp_host *h, uv_loop_t *loop);   /* tp_host_attach's first half */
void tp__runner_detach(tp_host *h);

/* ---- sender.c: the calls out (tp.http) */
void tp__sender_start(tp_host *h);            /* on h->loop; after tp__runner_attach */
void tp__sender_stop(tp_host *h);

/* ---- roles.c */
/* Whether who may call route r (matched as m); false with 403 role_forbidden
** or store_forbidden filled. */
bool tp__role_admits(const tp_principal *who, const tp_route *r, const tpr_match *m,
                     const char *query, size_t qlen, tph_response *res);
/* The roles (tpc_role bits, the owner's included) that may call method path. */
unsigned tp__role_mask(const char *method, const char *path);

/* ---- gate.c */
#define TP_SESSION_COOKIE "tp_console"
/* The value of the console's session cookie (n bytes into *n), or NULL. */
const char *tp__session_cookie(const tph_request *req, size_t *n);
/* The client's address: the peer's, or behind a trusted proxy the address it
** forwarded. Into out (48 bytes). */
const char *tp__client_address(const tp_host *h, const tph_request *req, char *out);
/* Each returns false with the response filled (401, 403, 429) when refused. */
/* An admin request's key, or console session: *who filled when admitted. */
bool tp__check_admin(tp_tenant *t, const tph_request *req, tph_response *res, tp_principal *who);
bool tp__check_host_key(tp_host *h, const tph_request *req, const char *what, tph_response *res);
bool tp__authenticate(tp_tenant *t, const tp_route *r, const tph_request *req, tph_response *res);
bool tp__metrics_allowed(tp_host *h, const tph_request *req);
/* The brand's rate limits for a request to a route of class cls: false with
** 429 rate_limited and Retry-After when a bucket is empty (base/ratelimit.h). */
bool tp__rate_admit(tp_host *h, tp_tenant *t, tprl_class cls, const tph_request *req,
                    tph_response *res);
/* An admin request for a tenant not served, answered like a wrong key. */
void tp__refuse_unknown_admin(tp_host *h, const tph_request *req, const char *tid, size_t tlen,
                              tph_response *res);

/* ---- console.c */
/* GET /console/..., and /console/api/{tenant}/session (sign in, out, who). */
void tp__console_handle(tp_host *h, const tph_request *req, const char *path, size_t plen,
                        tph_response *res);
const tp_route *tp__console_routes(int *n);   /* /admin/{t}/console/users */
void tp__console_open(tp_host *h);
void tp__console_drain(tp_host *h);           /* waits for the workers' password checks */
void tp__console_close(tp_host *h);

/* ---- admin.c */
const tp_route *tp__admin_routes(int *n);     /* the table of admin endpoints */
void tp__render_metrics(tp_host *h, tph_response *res);
void tp__host_reload_endpoint(tp_host *h, const tph_request *req, tph_response *res);

/* ---- transfer.c */
/* GET /admin/cluster/transfer/{t}: the manifest of t's files, or one piece
** (?file&offset&length), read on a worker (deferred); only while this node
** has released t for a move. */
void tp__transfer_serve(tp_host *h, tp_tenant *t, const tph_request *req, tph_response *res);
/* How a pull ended: status 200 (code "") or an error to answer. */
typedef struct tp_pull_result {
  int status;
  char code[40];
  char message[700];
  int64_t bytes;              /* carried */
  double ms;                  /* the pull, checks and install */
} tp_pull_result;
typedef struct tp_pull tp_pull;
typedef void (*tp_pulled_fn)(tp_host *h, tp_tenant *t, tph_response *res, const tp_pull_result *r);
/* Pulls t's files from node from into this data folder on a worker; res is
** deferred, done fills it on the loop (then it is resumed). 0, or -1 (no
** loop, no admin key, no worker: nothing started). */
int tp__transfer_pull(tp_host *h, tp_tenant *t, const tpc_node *from, tph_response *res, tp_pulled_fn done);
/* The host stops: waits for the workers (a pull is cancelled first). */
void tp__transfer_drain(tp_host *h);

/* ---- cluster.c */
/* POST /admin/cluster/{release,adopt,moved,resume}, GET /transfer/{t}:
** rest is what follows /cluster. */
void tp__cluster_endpoint(tp_host *h, const tph_request *req, const char *rest, size_t rlen,
                          tph_response *res);
/* Whether a request to t may be served here now: refused when this node does
** not serve it now (503 while it moves, else 421 naming its node), or t is
** opened (a lazy brand) and its use noted; false with the response filled
** (421, 503 brand_moving, 503 tenant_unavailable). */
bool tp__tenant_serving(tp_host *h, tp_tenant *t, tph_response *res);

/* ---- tryout.c */
const tp_route *tp__tryout_routes(int *n);    /* POST /admin/{t}/campaigns/{name}/check|preview */
void tp__tryout_stop(tp_host *h);             /* kills the children, answers nobody */

/* ---- track.c */
const tp_route *tp__track_route(void);        /* POST /v1/{t}/track (store/track.h) */
void tp__track_drain(tp_host *h);              /* waits for the workers' checkpoints */

/* ---- backup.c */
const tp_route *tp__backup_routes(int *n);    /* GET and POST /admin/{t}/backups */
void tp__backup_start(tp_host *h);            /* the schedule, on h->loop */
void tp__backup_stop(tp_host *h);             /* and waits for copies in flight */

/* ---- openapi.c */
const tp_route *tp__openapi_route(bool admin);  /* GET /v1 or /admin/{t}/openapi.json */

#endif
