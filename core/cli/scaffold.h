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

extern const char tpcmd_usage_new[];
/* Exit status: 0 created, 2 usage error, bad name, existing folder or a
** file that could not be written. */
int tpcmd_new(int argc, char **argv);

#endif
