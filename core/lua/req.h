/*
** req.h - the req table a route handler receives: id, method, path, route,
** tenant, user, params, config and body at once; headers, query and raw_body
** built on first read (most handlers read none of them), nil once the
** handler has returned.
*/
#ifndef TP_REQ_H
#define TP_REQ_H

#include "lua/state.h"

/* Creates the metatable of req tables in L; returns its registry ref. */
int tpreq_metatable(lua_State *L);
/* Pushes the req table of call c to route r onto p's stack (without body). */
void tpreq_push(tp_plugin *p, const tp_route *r, const tp_call *c);

#endif
