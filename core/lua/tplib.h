/*
** tplib.h - the C functions behind the tp table, one for each row of the
** declaration in api.c (tpa_functions), which is the only place that names
** them: it registers them, checks where each may be called, and documents
** them. Each is a lua_CFunction of the plugin's own state (state.h).
*/
#ifndef TP_TPLIB_H
#define TP_TPLIB_H

#include <lua.h>
#include <stdint.h>

#include "lua/state.h"

int tplib_now(lua_State *L);
int tplib_now_ms(lua_State *L);
int tplib_localtime(lua_State *L);
int tplib_timezone(lua_State *L);
int tplib_random(lua_State *L);
int tplib_seed(lua_State *L);
int tplib_fail(lua_State *L);
int tplib_log(lua_State *L);
int tplib_print(lua_State *L);
int tplib_db_exec(lua_State *L);
int tplib_db_query(lua_State *L);
int tplib_db_one(lua_State *L);
int tplib_jobs_schedule(lua_State *L);
int tplib_jobs_cancel(lua_State *L);
int tplib_events_emit(lua_State *L);
int tplib_call(lua_State *L);
int tplib_call_view(lua_State *L);
int tplib_http_request(lua_State *L);
int tplib_crypto_rsa_sign(lua_State *L);
int tplib_crypto_aes_gcm_decrypt(lua_State *L);
int tplib_http_allowed(lua_State *L);
int tplib_exporters(lua_State *L);
int tplib_exports(lua_State *L);
int tplib_auth_token(lua_State *L);
int tplib_auth_alias(lua_State *L);
int tplib_auth_erase(lua_State *L);
int tplib_auth_unalias(lua_State *L);
int tplib_auth_resolve(lua_State *L);
int tplib_config(lua_State *L);
int tplib_caller(lua_State *L);

/* The plugin owning L, which must have the host's services (an error
** otherwise): tplib.c and tplib_http.c share it. */
tp_plugin *tplib_services_of(lua_State *L);
/* Pushes tp.localtime's table for epoch in zone (the kit's host.localtime too). */
void tplib_push_localtime(lua_State *L, const char *zone, int64_t epoch);

#endif
