/*
** config_int.h - between config.c (running the file) and fields.c (checking
** the table it returned).
*/
#ifndef TP_CONFIG_INT_H
#define TP_CONFIG_INT_H

#include "config/config.h"

/* Checks the table at the top of L into cfg; where names the file in errors.
** 0, or -1 with err ("config.lua: tenants[1].id: must be ..."). */
int tpc__check(lua_State *L, tpc_config *cfg, const char *where, char *err, size_t errcap);

#endif
