/*
** routedoc.h - the documentation fields of a plugin's route, checked and
** rendered when it loads (see tp_route_doc in state.h).
*/
#ifndef TP_ROUTEDOC_H
#define TP_ROUTEDOC_H

#include "lua/state.h"

/* Checks the doc fields of routes[i] (the table at index t) into doc. 0, or
** -1 with err naming the route and the field; doc is then empty. */
int tprd_read(lua_State *L, int t, int i, tp_route_doc *doc, char *err, size_t errcap);
void tprd_free(tp_route_doc *doc);

#endif
