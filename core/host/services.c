/*
** services.c - what the host does for a plugin's API calls (tp_services in
** lua/state.h): schedule and cancel jobs, emit events to subscribers, find a
** peer for tp.call, and note a plugin that a limit ended. Each runs inside
** the caller's transaction and marks the tenant's queue as touched, so the
** runner reads its next due time after the commit.
*/
#include "host/host_int.h"

#include "base/clock.h"
#include "lua/invoke.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int svc_schedule(void *ud, tp_plugin *p, const tpq_job *spec, int64_t *id, char *err,
                        size_t errcap) {
  tp_tenant *t = ud;
  tpq_job s = *spec;
  if (!s.max_attempts) s.max_attempts = t->host->cfg->limits.job_max_attempts;
  if (tpq_schedule(&t->queue, p->name, &s, p->inv->now_ms, id, err, errcap) != 0) return -1;
  t->queue_touched = true;
  return 0;
}

static int svc_cancel(void *ud, tp_plugin *p, int64_t id, const char *key, int *n, char *err,
                      size_t errcap) {
  tp_tenant *t = ud;
  if (tpq_cancel(&t->queue, p->name, id, key, n, err, errcap) != 0) return -1;
  t->queue_touched = true;
  return 0;
}

/* The names of the current plugins of t that subscribe to event name, into
** out (TPC_MAX_PLUGINS); how many. */
static int subscribers_of(tp_tenant *t, const char *name, const char **out) {
  int n = 0;
  for (int i = 0; i < t->nslots; i++) {
    tp_plugin *sub = t->slots[i].current;
    if (sub && tpi_subscribes(sub, name)) out[n++] = sub->name;
  }
  return n;
}

static int svc_subscribers(void *ud, const char *name) {
  const char *subscribers[TPC_MAX_PLUGINS];
  return subscribers_of(ud, name, subscribers);
}

static int svc_emit(void *ud, tp_plugin *p, const char *name, const char *json, size_t len, int *n,
                    char *err, size_t errcap) {
  tp_tenant *t = ud;
  const char *subscribers[TPC_MAX_PLUGINS];
  *n = subscribers_of(t, name, subscribers);
  if (*n == 0) return 0;
  if (tpq_emit(&t->queue, p->name, name, json, len, subscribers, *n, p->inv->now_ms,
               (int)t->host->cfg->limits.job_max_attempts, err, errcap) != 0)
    return -1;
  t->queue_touched = true;
  return 0;
}

static tp_plugin *svc_peer(void *ud, tp_plugin *p, const char *name) {
  (void)p;
  tp_slot *s = tp__slot(ud, name);
  return s ? s->current : NULL;
}

static void svc_killed(void *ud, tp_plugin *p) {
  tp_tenant *t = ud;
  tpm_limit_kill(t->host->metrics, p->timed_out ? "deadline_exceeded"
                                   : p->exceeded ? "budget_exceeded" : "memory_exceeded");
  t->reset_pending = true;
  t->host->reset_pending = true;
}

static tp_plugin *svc_peer_at(void *ud, int i) {
  tp_tenant *t = ud;
  for (int j = 0; j < t->nslots; j++)
    if (t->slots[j].current && i-- == 0) return t->slots[j].current;
  return NULL;
}

static tpal_table *svc_aliases(void *ud) { return &((tp_tenant *)ud)->aliases; }

/* tp.http.request: the destination must list the plugin, and every secret a
** header names must be the destination's; the call waits in the outbox for
** the commit (sender.c). */
static int svc_http(void *ud, tp_plugin *p, const tpob_call *call, int64_t *id, char *err,
                    size_t errcap) {
  tp_tenant *t = ud;
  const tpc_destination *d = tpc_find_destination(t->conf, call->dest);
  if (!d || !tpc_destination_allows(d, p->name)) {
    snprintf(err, errcap, "destination '%s' is not one this plugin may call (tenants[].http.%s.plugins "
             "in the brand's config)", call->dest, call->dest);
    return -1;
  }
  if (tpc_expand_secrets(d, call->headers, strlen(call->headers), NULL, err, errcap) != 0 ||
      tpc_expand_secrets_url(d, call->path, strlen(call->path), NULL, err, errcap) != 0)
    return -1;
  tpob_call c = *call;
  if (!c.max_attempts) c.max_attempts = (int)d->max_attempts;
  if (tpob_add(&t->outbox, p->name, &c, tp_clock_wall_ms(), id, err, errcap) != 0) return -1;
  t->outbox_touched = t->host->outbox_touched = true;
  return 0;
}

static bool svc_http_allowed(void *ud, tp_plugin *p, const char *dest) {
  const tpc_destination *d = tpc_find_destination(((tp_tenant *)ud)->conf, dest);
  return d && tpc_destination_allows(d, p->name);
}

/* tp.crypto.rsa_sign and aes_gcm_decrypt: a plugin may use the secrets of
** the destinations that list it, as it may call them; the value goes to the
** C that signs or decrypts, never to Lua. */
static const char *svc_secret(void *ud, tp_plugin *p, const char *dest, const char *name,
                              size_t *len, char *err, size_t errcap) {
  const tpc_destination *d = tpc_find_destination(((tp_tenant *)ud)->conf, dest);
  if (!d || !tpc_destination_allows(d, p->name)) {
    snprintf(err, errcap, "destination '%s' is not one this plugin may use (tenants[].http.%s.plugins "
             "in the brand's config)", dest, dest);
    return NULL;
  }
  const char *v = tpc_destination_secret(d, name, len);
  if (!v) snprintf(err, errcap, "destination '%s' has no secret '%s'", dest, name);
  return v;
}

const tp_services tp__services = {svc_schedule, svc_cancel,  svc_subscribers, svc_emit,
                                  svc_peer,     svc_killed,  svc_peer_at,     svc_aliases,
                                  svc_http,     svc_http_allowed, svc_secret};
