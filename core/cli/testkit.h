/*
** testkit.h - `tidepool test [DIR]`: a plugin's own tests against the real
** host runtime, in-process.
**
** DIR is a plugin folder (it has plugin.lua: its test/<name>_test.lua run) or a
** folder of plugin folders (each one with test/<name>_test.lua runs); default ".".
** Each test file gets a fresh temporary data directory holding one tenant,
** "test", on the manual clock, with the plugin under test enabled (or what the
** file asks with kit.plugins). Plugins resolve from DIR's plugin folder first,
** then from the built-in plugins folder, so dependencies (catalog, orders, ...)
** can be enabled. Requests go through tp_host_handle and tp_host_commit like
** the HTTP server's: routing, authentication with real tokens, JSON bodies,
** the savepoint per request and the group commit are the host's own.
**
** The test file runs in an unsandboxed Lua state with the library of
** sdk/tp/testkit.lua (describe, it, before_each, after_each, expect, kit),
** which prints "ok   <name>" or "FAIL <name>" (then "     file:line: what
** differed") per test, and last "N passed, N failed".
**
** Exit status: 0 nothing failed, 1 a test failed, 2 usage errors or a test
** file that could not run (syntax error, error outside a test, a plugin that
** did not load).
*/
#ifndef TP_TESTKIT_H
#define TP_TESTKIT_H

int tpcmd_test(int argc, char **argv);

#endif
