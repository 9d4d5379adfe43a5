/*
** host.h - tenants, their plugins and routes, and the request pipeline.
**
** tp_host_handle() is the HTTP server's handle hook: it routes a request to a
** tenant's plugin, authenticates it, runs the handler inside a savepoint of
** the tenant's open transaction and fills the response. tp_host_commit() is
** the end-of-iteration hook that commits every tenant touched in the batch.
*/
#ifndef TP_HOST_H
#define TP_HOST_H

#include <uv.h>

#include "config.h"
#include "http.h"
#include "metrics.h"
#include "plugin.h"
#include "router.h"
#include "store.h"

typedef struct tp_tenant {
  const tpc_tenant *conf;
  tps_db db;
  tp_plugin *plugins;     /* the ones that loaded */
  int nplugins;
  tpr_router *routes;     /* /v1/{tenant}/... */
  tpr_router *admin;      /* /admin/{tenant}/... */
  bool dirty;             /* in the batch being committed */
} tp_tenant;

typedef struct tp_host {
  const tpc_config *cfg;
  tp_tenant *tenants;     /* sorted by id */
  int ntenants;
  tp_tenant **batch;      /* tenants with an open transaction */
  int nbatch;
  tpm_metrics *metrics;
  tph_server *server;     /* for the connections gauge; may be NULL */
  int plugin_failures;    /* plugins that failed to load */
  tpr_match match;        /* the request being dispatched (one at a time) */
  uint64_t seed_secret;   /* mixed into every invocation's random seed */
} tp_host;

/* Opens every tenant's database and loads its plugins. A plugin that fails is
** reported and left out; only an unusable database fails the host. */
int tp_host_open(tp_host *h, const tpc_config *cfg, char *err, size_t errcap);
void tp_host_close(tp_host *h);

void tp_host_handle(void *host, const tph_request *req, tph_response *res);
void tp_host_commit(void *host);
void tp_host_finished(void *host, const tph_response *res, double seconds);

#endif
