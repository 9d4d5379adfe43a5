/*
** testkit.c - `tidepool test [DIR]` (see testkit.h).
**
** The C side finds the test files and runs each in a fresh Lua state with a
** fresh host, reached through the binding in kithost.c.
** Everything a test author sees (describe/it, expect, kit) is Lua, in
** sdk/tp/testkit.lua, which the runner state requires as "tp.testkit".
*/
#include "cli/testkit.h"

#include "cli/kithost.h"

#include <dirent.h>
#include <errno.h>
#include <glob.h>
#include <lauxlib.h>
#include <limits.h>
#include <lualib.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "lua/api.h"
#include "lua/invoke.h"
#include "base/clock.h"
#include "config/config.h"
#include "host/host_int.h"
#include "base/json.h"
#include "base/log.h"
#include "host/runs.h"
#include "lua/sandbox.h"
#include "base/token.h"

static const char usage_test[] =
    "usage: tidepool test [DIR] [--log-level L] [--replay FILE]\n"
    "\n"
    "Runs a plugin's tests, DIR/test/*_test.lua, against the real host runtime in-process.\n"
    "DIR is a plugin folder (it has plugin.lua; default: the current folder) or a folder of\n"
    "plugin folders, each of which with test/*_test.lua is tested. Every test file gets a\n"
    "fresh temporary database with one tenant, \"test\", on the manual test clock, and the\n"
    "plugin under test enabled (kit.plugins { ... } chooses others: they resolve from DIR's\n"
    "folder, then from the built-in plugins). See sdk/GUIDE.md for describe/it/expect/kit.\n"
    "\n"
    "  --log-level L   the host's log on stderr: debug, info, warn or error (default)\n"
    "  --replay FILE   instead of the tests, replays one recorded run (the JSON of\n"
    "                  GET /admin/{tenant}/runs/{id}) against the plugin in DIR on a fresh\n"
    "                  database, with the run's time and random seed, and prints recorded\n"
    "                  vs now; exit 0 same outcome, 1 it differs, 2 it could not replay\n"
    "\n"
    "Prints a line per test (\"ok   name\" or \"FAIL name\" and the file:line of what\n"
    "differed), then \"N passed, N failed\", then the peak instructions of every route,\n"
    "job and event the tests invoked against its budget (counted exactly).\n"
    "Exit status: 0 all passed, 1 a test failed, 2 usage or a test file could not run.\n";

/* ---- files and folders */

/* The folder holding plugins/ and sdk/tp/testkit.lua: beside the binary's
** folder (a build directory inside the checkout), else the source tree it
** was built from. */
static int find_source_root(char *out, size_t cap) {
  char exe[PATH_MAX], probe[PATH_MAX + 64];
  ssize_t n = readlink("/proc/self/exe", exe, sizeof exe - 1);
  if (n > 0) {
    exe[n] = '\0';
    for (int up = 0; up < 2; up++) {  /* build/tidepool, or build/sub/tidepool */
      char *slash = strrchr(exe, '/');
      if (!slash) break;
      *slash = '\0';
      snprintf(probe, sizeof probe, "%s/../sdk/tp/testkit.lua", exe);
      if (tp_is_file(probe)) {
        snprintf(probe, sizeof probe, "%s/..", exe);
        if (realpath(probe, out) && strlen(out) < cap) return 0;
      }
    }
  }
  snprintf(probe, sizeof probe, "%s/sdk/tp/testkit.lua", TP_SOURCE_DIR);
  if (tp_is_file(probe) && strlen(TP_SOURCE_DIR) < cap) {
    tp_copy_str(out, cap, TP_SOURCE_DIR);
    return 0;
  }
  return -1;
}

/* ---- running one file */

typedef struct kit_totals {
  int passed, failed, broken;  /* broken: files that could not run */
  tprun_stats stats;           /* instructions of every invocation the tests made */
  int replay_rc;               /* --replay: 0 same outcome, 1 differs, 2 could not replay */
} kit_totals;

/* Runs one test file (display: its path as printed) in a fresh state on a
** fresh host. */
static void run_file(const char *display, const char *plugin, const char *parent,
                     const char *builtin, const char *sdk, const char *replay,
                     kit_totals *totals) {
  kit_file k = {.plugin = plugin, .plugin_parent = parent, .builtin = builtin, .sdk = sdk};
  const char *tmpdir = getenv("TMPDIR");
  snprintf(k.tmp, sizeof k.tmp, "%s/tidepool-test-XXXXXX", tmpdir && tmpdir[0] ? tmpdir : "/tmp");
  if (!mkdtemp(k.tmp)) {
    printf("ERROR %s: cannot create a temporary directory: %s\n", display, strerror(errno));
    totals->broken++;
    return;
  }
  lua_State *L = luaL_newstate();
  if (!L) {
    printf("ERROR %s: out of memory\n", display);
    totals->broken++;
    goto done;
  }
  luaL_openlibs(L);
  tpj_open(L);
  lua_getglobal(L, "package");
  lua_pushfstring(L, "%s/?.lua;%s/?/init.lua", sdk, sdk);
  lua_setfield(L, -2, "path");
  lua_pop(L, 1);
  lua_getglobal(L, "require");
  lua_pushliteral(L, "tp.testkit");
  if (lua_pcall(L, 1, 1, 0) != LUA_OK) {
    printf("ERROR %s: cannot load the test kit: %s\n", display, lua_tostring(L, -1));
    totals->broken++;
    goto done;
  }
  /* stack: testkit */
  if (replay) {  /* one recorded run instead of the test files */
    lua_getfield(L, -1, "replay_cli");
    tpkit_push(L, &k);
    lua_pushstring(L, replay);
    /* stack: testkit replay_cli binding file */
    if (lua_pcall(L, 2, 1, 0) != LUA_OK) {
      printf("ERROR %s: %s\n", display, lua_tostring(L, -1));
      totals->replay_rc = 2;
    } else {
      totals->replay_rc = (int)lua_tointeger(L, -1);
    }
    goto done;
  }
  lua_getfield(L, -1, "run");
  tpkit_push(L, &k);
  lua_pushstring(L, display);
  /* stack: testkit run binding display */
  if (lua_pcall(L, 2, 3, 0) != LUA_OK) {
    printf("ERROR %s: %s\n", display, lua_tostring(L, -1));
    totals->broken++;
    goto done;
  }
  /* stack: testkit passed failed broken */
  totals->passed += (int)lua_tointeger(L, -3);
  totals->failed += (int)lua_tointeger(L, -2);
  totals->broken += lua_toboolean(L, -1);
done:
  fflush(stdout);
  if (L) lua_close(L);
  tpkit_close(&k, &totals->stats);
}

/* Runs plugin folder dir's test/<name>_test.lua; shown is dir as the user wrote it
** ("" for the current folder). */
static void run_plugin(const char *dir, const char *shown, const char *builtin, const char *sdk,
                       kit_totals *totals, int *files) {
  char abs[PATH_MAX], pattern[PATH_MAX + 32];
  if (!realpath(dir, abs)) return;
  char *slash = strrchr(abs, '/');
  const char *name = slash + 1;
  char parent[PATH_MAX];
  snprintf(parent, sizeof parent, "%.*s", slash == abs ? 1 : (int)(slash - abs), abs);
  snprintf(pattern, sizeof pattern, "%s/test/*_test.lua", abs);
  glob_t g;
  if (glob(pattern, 0, NULL, &g) != 0) return;
  for (size_t i = 0; i < g.gl_pathc; i++) {
    const char *base = strrchr(g.gl_pathv[i], '/') + 1;
    char display[PATH_MAX + 64];
    snprintf(display, sizeof display, "%s%stest/%s", shown, shown[0] ? "/" : "", base);
    run_file(display, name, parent, builtin, sdk, NULL, totals);
    (*files)++;
  }
  globfree(&g);
}

static int cmp_str(const void *a, const void *b) {
  return strcmp(*(char *const *)a, *(char *const *)b);
}

int tpcmd_test(int argc, char **argv) {
  const char *dir = NULL, *level = "error", *replay = NULL;
  for (int i = 0; i < argc; i++) {
    if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0) {
      fputs(usage_test, stdout);
      return 0;
    } else if (strcmp(argv[i], "--log-level") == 0 && i + 1 < argc) {
      level = argv[++i];
    } else if (strcmp(argv[i], "--replay") == 0 && i + 1 < argc) {
      replay = argv[++i];
    } else if (argv[i][0] != '-' && !dir) {
      dir = argv[i];
    } else {
      fprintf(stderr, "tidepool: unexpected '%s'\n\n%s", argv[i], usage_test);
      return 2;
    }
  }
  tp_log_level lvl;
  if (tp_log_parse_level(level, &lvl) != 0) {
    fprintf(stderr, "tidepool: --log-level must be debug, info, warn or error\n");
    return 2;
  }
  tp_log_set_level(lvl);
  char root[PATH_MAX], builtin[PATH_MAX + 16], sdk[PATH_MAX + 16];
  if (find_source_root(root, sizeof root) != 0) {
    fprintf(stderr, "tidepool: cannot find the SDK (sdk/tp/testkit.lua) beside the binary or in %s\n",
            TP_SOURCE_DIR);
    return 2;
  }
  snprintf(builtin, sizeof builtin, "%s/plugins", root);
  snprintf(sdk, sizeof sdk, "%s/sdk", root);
  if (!dir) dir = ".";
  char shown[PATH_MAX], probe[PATH_MAX + 32];
  tp_copy_str(shown, sizeof shown, strcmp(dir, ".") == 0 || strcmp(dir, "./") == 0 ? "" : dir);
  size_t n = strlen(shown);
  while (n > 1 && shown[n - 1] == '/') shown[--n] = '\0';
  if (!tp_is_dir(dir)) {
    fprintf(stderr, "tidepool: %s is not a folder\n\n%s", dir, usage_test);
    return 2;
  }
  tpsb_set_hook_step(1);  /* exact instruction counts for the budget table */
  kit_totals totals = {0};
  int files = 0;
  snprintf(probe, sizeof probe, "%s/plugin.lua", dir);
  if (replay) {
    char abs[PATH_MAX], file[PATH_MAX];
    if (!tp_is_file(probe) || !realpath(dir, abs)) {
      fprintf(stderr, "tidepool: --replay needs DIR to be a plugin folder (with plugin.lua); "
              "%s is not\n", dir);
      return 2;
    }
    if (!tp_is_file(replay) || !realpath(replay, file)) {
      fprintf(stderr, "tidepool: %s: no such run file\n", replay);
      return 2;
    }
    char *slash = strrchr(abs, '/');
    char parent[PATH_MAX];
    snprintf(parent, sizeof parent, "%.*s", slash == abs ? 1 : (int)(slash - abs), abs);
    run_file(replay, slash + 1, parent, tp_is_dir(builtin) ? builtin : NULL, sdk, file, &totals);
    tprun_stats_free(&totals.stats);
    return totals.replay_rc;
  }
  if (tp_is_file(probe)) {
    run_plugin(dir, shown, tp_is_dir(builtin) ? builtin : NULL, sdk, &totals, &files);
  } else {  /* a folder of plugin folders, in name order */
    DIR *d = opendir(dir);
    char **names = NULL;
    int count = 0;
    for (struct dirent *e; d && (e = readdir(d));) {
      if (e->d_name[0] == '.') continue;
      snprintf(probe, sizeof probe, "%s/%s/plugin.lua", dir, e->d_name);
      if (!tp_is_file(probe)) continue;
      names = realloc(names, (size_t)(count + 1) * sizeof *names);
      names[count++] = strdup(e->d_name);
    }
    if (d) closedir(d);
    if (count) qsort(names, (size_t)count, sizeof *names, cmp_str);
    for (int i = 0; i < count; i++) {
      char sub[PATH_MAX + 300], sub_shown[PATH_MAX + 300];
      snprintf(sub, sizeof sub, "%s/%s", dir, names[i]);
      snprintf(sub_shown, sizeof sub_shown, "%s%s%s", shown, shown[0] ? "/" : "", names[i]);
      run_plugin(sub, sub_shown, tp_is_dir(builtin) ? builtin : NULL, sdk, &totals, &files);
      free(names[i]);
    }
    free(names);
  }
  if (files == 0) {
    fprintf(stderr, "tidepool: no test files (test/*_test.lua) in %s: it should be a plugin "
            "folder (with plugin.lua) or a folder of plugin folders\n", dir);
    return 2;
  }
  printf("%d passed, %d failed\n", totals.passed, totals.failed);
  tp_buf table;
  tp_buf_init(&table);
  tprun_stats_table(&totals.stats, &table);
  if (table.len) printf("\n%s", tp_buf_cstr(&table));
  tp_buf_free(&table);
  tprun_stats_free(&totals.stats);
  fflush(stdout);
  return totals.broken ? 2 : totals.failed ? 1 : 0;
}
