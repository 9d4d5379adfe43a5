/*
** check.h - `tidepool check DIR`: load a plugin as the host would, without
** serving it, and report what would keep it from loading.
**
** The plugin in DIR (its folder name is its name) is loaded into a fresh state
** for one throwaway tenant on a temporary database, with DIR's parent and the
** repository's plugins folder as plugin directories and its sdk folder for
** require: plugin.lua is compiled and run (syntax errors, errors raised at
** load, an API called where it is not allowed at load), the manifest is read
** and checked (fields, routes and their doc fields, jobs, subscriptions,
** exports), the routes are mounted beside the host's built-ins (bad paths,
** clashes) and the migrations run. A problem is printed as `file:line:
** message` when a line can be found in the source (see check.c), else as
** `file: message`. The host stops at a plugin's first problem, and so does
** check: one problem is reported per run. A plugin that loads is then looked
** at for tables slow to write to (an IN list of three or more values in a CHECK
** or an index's WHERE), and its Lua files (tests aside) for statements whose
** text is built at every call (stmtlint.h), each printed as `file:line:
** warning: ...`; warnings do not change the exit status.
*/
#ifndef TP_CHECK_H
#define TP_CHECK_H

extern const char tpcmd_usage_check[];
/* Exit status: 0 clean or warnings only, 1 a problem was reported, 2 usage error. */
int tpcmd_check(int argc, char **argv);

#endif
