/*
** metrics.h - counters and histograms rendered in Prometheus text format.
**
**   tidepool_requests_total{route,status}            counter
**   tidepool_request_duration_seconds{route,status}  histogram (until the response is sent)
**   tidepool_commits_total{result}                   counter
**   tidepool_commit_batch_size                       histogram (requests per commit)
**   tidepool_commit_duration_seconds                 histogram (the COMMIT, on the loop)
**   tidepool_syncs_total{result}                     counter (commits synced by the syncer thread)
**   tidepool_sync_duration_seconds                   histogram (asked to done: what answers wait)
**   tidepool_tasks_total{kind,result}                 counter (jobs and event deliveries)
**   tidepool_task_lateness_seconds{kind}              histogram (wall-clock tenants)
**   tidepool_reloads_total{result}                    counter
**   tidepool_refusals_total{code}                     counter (rate_limited, risk_*)
**   tidepool_calls_out_total{tenant,to,result}        counter (tp.http attempts)
**   tidepool_call_out_seconds_{sum,count}{tenant,to}  summary
** Gauges (connections, Lua memory per plugin) are appended by the host.
*/
#ifndef TP_METRICS_H
#define TP_METRICS_H

#include <stdbool.h>
#include <stdint.h>

#include "base/buf.h"

typedef struct tpm_metrics tpm_metrics;

tpm_metrics *tpm_new(void);
void tpm_free(tpm_metrics *m);
void tpm_request(tpm_metrics *m, const char *route, int status, double seconds);
void tpm_commit(tpm_metrics *m, int batch_size, double seconds, int ok);
/* A sync of a brand's commits by the syncer thread (store/walsync.h), from the moment
** it was asked for until the loop heard it was done. */
void tpm_sync(tpm_metrics *m, double seconds, bool ok);
void tpm_plugin_error(tpm_metrics *m);
/* A request answered from its Idempotency-Key's stored answer (store/idem.h). */
void tpm_idempotent_replay(tpm_metrics *m);
/* An invocation ended by a limit: "budget_exceeded", "memory_exceeded" or
** "deadline_exceeded" (tidepool_limit_kills_total{limit}); and the reset of
** the killed plugin's state that follows (tidepool_plugin_resets_total). */
void tpm_limit_kill(tpm_metrics *m, const char *limit);
void tpm_plugin_reset(tpm_metrics *m, bool ok);
/* A request refused by a rate limit ("rate_limited", ratelimit.h) or by a
** plugin's risk rule (a code starting "risk_", sdk/tp/risk.lua). */
void tpm_refusal(tpm_metrics *m, const char *code);
/* A call out of tenant to destination to ended after seconds: answered
** with a 2xx (ok), or not (tidepool_calls_out_total, _seconds). */
void tpm_call_out(tpm_metrics *m, const char *tenant, const char *to, double seconds, bool ok);
/* A job (event false) or delivery ran: ok, or failed (dead: dead-lettered). */
void tpm_task(tpm_metrics *m, bool event, bool ok, bool dead, double lateness_s);
void tpm_reload(tpm_metrics *m, int ok, int failed);
void tpm_render(const tpm_metrics *m, tp_buf *out);
/* Appends "# HELP/# TYPE" for a metric family. */
void tpm_family(tp_buf *out, const char *name, const char *type, const char *help);

#endif
