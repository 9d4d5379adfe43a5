/*
** srcline.h - where in plugin.lua a problem `tidepool check` reports lies.
**
** The host's load errors name a manifest field ("unknown manifest field
** 'rutes'"), a route ("routes[3].auth must be ...", "route GET /x of plugin
** 'p': ... declared twice") or a migration; this finds the line of that item
** in the plugin's source, so the report reads file:line: message.
*/
#ifndef TP_SRCLINE_H
#define TP_SRCLINE_H

/* The line of src (plugin.lua's text) that msg is about, or 0. */
int tpsl_manifest_line(const char *src, const char *msg);

#endif
