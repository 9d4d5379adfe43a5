/*
** apidoc.h - the plugin API's LuaLS stubs and reference, rendered from the one
** declaration in api.c (tpa_functions, tpa_shapes).
**
** `tidepool api --luals` prints sdk/types/tp.lua (a `---@meta` file that gives
** editors completion and type checks for tp, req, job, ev, the manifest);
** `tidepool api --markdown` prints sdk/reference.md. Both outputs depend only
** on the declaration, so the committed files are compared with them in
** tests/e2e/test_sdk_stubs.py and cannot drift.
*/
#ifndef TP_APIDOC_H
#define TP_APIDOC_H

#include "base/buf.h"

/* Appends the LuaLS `---@meta` stubs to out. */
void tpd_luals(tp_buf *out);
/* Appends the Markdown reference to out. */
void tpd_markdown(tp_buf *out);

extern const char tpcmd_usage_api[];
/* `tidepool api [--luals | --markdown]`: exit status 0, or 2 on a usage error. */
int tpcmd_api(int argc, char **argv);

#endif
