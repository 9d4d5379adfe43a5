/*
** scaffold.h - `tidepool new plugin NAME [--dir DIR]`: a new plugin folder.
**
** Writes DIR/NAME/plugin.lua (a manifest with a documented route, a
** migration and a job the route schedules, annotated for LuaLS),
** DIR/NAME/README.md (the sections an agency hands over) and
** DIR/NAME/test/NAME_test.lua (a passing test for `tidepool test`). The result
** passes `tidepool check DIR/NAME` as written.
*/
#ifndef TP_SCAFFOLD_H
#define TP_SCAFFOLD_H

#include <stdbool.h>

extern const char tpn_usage_new[];
/* True if s is a plugin name: [a-z][a-z0-9_]*, at most 32 bytes, not ending
** in '_' (the rule config.c applies to a tenant's plugins). */
bool tpn_valid_name(const char *s);
/* Exit status: 0 created, 2 usage error, bad name, existing folder or a
** file that could not be written. */
int tpn_cmd_new(int argc, char **argv);

#endif
