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
** feed GET /v1/{tenant}/openapi.json; any other route key is an error (a
** typo), except x_* fields, which are the plugin's own notes.
*/
#ifndef TP_PLUGIN_H
#define TP_PLUGIN_H

#include <lua.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "config/config.h"
#include "lua/state.h"

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
/* Whether p's manifest lists name under `track` (POST /track's "<plugin>.<name>"). */
bool tpp_tracks(const tp_plugin *p, const char *name);

/* Whether the plugin lists job name in its manifest's personal_jobs. */
bool tpp_job_personal(tp_plugin *p, const char *name);

#endif
