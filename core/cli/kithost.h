/*
** kithost.h - the C side of `tidepool test` for one test file: a host opened
** in-process on a temporary data directory, with one tenant "test" on the
** manual clock, and the binding `host` that sdk/tp/testkit.lua drives it by:
**   host.open(plugins_src [, tz]) config and host (plugins_src: a Lua table literal)
**   host.request(m, target, headers, body)  -> status, body, headers, failed_run_id
**   host.request_batch({{m, target, headers, body}, ...}) -> {{status, body, headers,
**                                 failed_run_id}, ...}: one loop iteration's requests
**   host.localtime(epoch)  host.timezone()  the tenant's zone, as tp.localtime
**   host.token(user)              a bearer token for user, signed with the tenant's secret
**   host.now_ms()  host.advance(ms)  host.drain()  (-> tasks ran, tasks failed)
**   host.set_clock(ms)  host.pin_seed(seed)  host.last()  host.invoke_task(...)
**   host.query(sql, ...)          rows, read-only
**   host.json_encode / json_decode, host.admin_key, host.plugin, host.null
*/
#ifndef TP_KITHOST_H
#define TP_KITHOST_H

#include <limits.h>
#include <lua.h>
#include <stdbool.h>

#include "config/config.h"
#include "host/host_int.h"
#include "host/runs.h"

#define KIT_TENANT "test"
#define KIT_SECRET "testkit-token-secret-0123456789abcdef"
#define KIT_ADMIN_KEY "testkit-admin-key-0123456789"
#define KIT_MAX_HEADERS 64

/* One test file's host and its temporary data directory. */
typedef struct kit_file {
  const char *plugin;          /* the plugin under test */
  const char *plugin_parent;   /* the folder it lives in (first plugin dir) */
  const char *builtin;         /* the built-in plugins folder; NULL if not found */
  const char *sdk;
  char tmp[PATH_MAX];
  tpc_config cfg;
  tp_host host;
  tp_tenant *t;                /* the tenant "test" once open */
  bool cfg_loaded, host_opened;
  bool ready;                  /* opened with every plugin serving */
  int64_t requests;
} kit_file;

/* Pushes the binding for k (k outlives the runner state). */
void tpkit_push(lua_State *L, kit_file *k);
/* Closes k's host and removes its data directory; its instruction
** statistics are added to stats. */
void tpkit_close(kit_file *k, tprun_stats *stats);

#endif
