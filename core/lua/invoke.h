/*
** invoke.h - calling into a loaded plugin: a route's handler, a job, an event
** delivery, the manifest's setup, and another plugin's export (tp.call).
**
** Every call runs under the plugin's limits (sandbox.h): its instruction
** budget, its deadline and its memory cap. A call that a limit ended marks
** the state killed and tells the host (services->killed), which loads the
** plugin afresh before its next invocation. The caller owns the transaction.
*/
#ifndef TP_INVOKE_H
#define TP_INVOKE_H

#include "base/buf.h"
#include "lua/state.h"

/* True if p has a job handler called name; L is the thread of p that is
** running (it may be a coroutine). The host knows subscriptions and exports
** by the names the manifest gave at load (p->subscriptions, p->export_names). */
bool tpi_has_job(tp_plugin *p, lua_State *L, const char *name);
/* Whether p's manifest lists name under `subscribe`, or under `exports`: the
** names read at load, a few string compares instead of a look into p's state
** (the host fans events out, and tp.exporters asks every plugin). */
bool tpi_subscribes(const tp_plugin *p, const char *name);
bool tpi_exports(const tp_plugin *p, const char *name);

/* Calls a route's handler. Encodes the JSON answer into body. The caller
** owns the savepoint: it releases it when result.ok, rolls it back otherwise. */
void tpi_call_route(tp_plugin *p, const tp_route *r, const tp_call *call, tp_invocation *inv,
                    struct tp_buf *body, tp_result *result);

/* Runs a job (kind "jobs", ctx TP_CTX_JOB) or an event delivery ("subscribe",
** TP_CTX_EVENT): the handler gets the JSON object arg decoded into a table.
** The caller owns the savepoint. Returns 0, or -1 with the error (message,
** traceback or the limit that was hit) in err. */
int tpi_call_task(tp_plugin *p, const char *kind, const char *name, const char *arg,
                  size_t arg_len, tp_invocation *inv, int ctx, char *err, size_t errcap);

/* The manifest's setup function, if any, as ctx setup of inv; the caller owns
** the transaction. 0, or -1 with err ("code: message" for tp.fail). */
bool tpi_has_setup(const tp_plugin *p);
int tpi_setup(tp_plugin *p, tp_invocation *inv, char *err, size_t errcap);

/* Calls callee's export name with the nargs values at from[first..] copied
** as plain data; its results are copied back onto from, or with views its
** tables arrive as JSON views (lua/jsonview.h), encoded in the callee. Runs
** in the caller's context and invocation. Returns the number of results, -1
** with err on an error (a tp.fail error is copied onto from and -2 returned
** instead). */
int tpi_call_export(tp_plugin *callee, const char *name, lua_State *from, int first, int nargs,
                    bool views, tp_invocation *inv, int ctx, char *err, size_t errcap);

#endif
