/*
** check.c - `tidepool check DIR`: the host's own load pipeline on a scratch
** tenant, with each problem pointed at a line of the plugin's source.
**
** The steps are the ones a reload takes (reload.c tp__install): tpp_load
** (compile and run plugin.lua under the load budget, read the manifest),
** mount the routes beside the built-ins, tpp_migrate on an empty database.
** The host's messages are kept as they are; check only adds where. After a
** clean load, the migrated tables are looked at for what a row costs to write
** (warn_costly_writes), and the plugin's Lua files for statements whose text
** is built at every call (warn_rebuilt_statements, stmtlint.h): warnings,
** which do not fail the check.
**
** Where the line comes from:
**   - syntax errors and errors raised while plugin.lua (or a module it
**     requires) runs: Lua's own position, or the first frame of the traceback
**     inside the plugin's folder (an API called where it is not allowed at
**     load raises from C, so its line is the caller's frame);
**   - manifest, route, job/subscribe/export and migration problems: the host
**     reports them by name ("routes[2].summary", "migration 3", "route GET
**     /x"), and a small Lua tokenizer finds that name in the returned table
**     constructor: the key, the n-th element of routes or migrations, or the
**     route whose path string is the one named. This works when the manifest
**     is written as a table constructor (return { ... } or return M with
**     local M = { ... }) and its routes and migrations as literal lists; a
**     manifest built by code gets `file: message` without a line.
*/
#include "cli/check.h"

#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cli/stmtlint.h"
#include "cli/watch.h"
#include "config/config.h"
#include "host/host.h"
#include "base/log.h"
#include "lua/plugin.h"
#include "net/router.h"
#include "cli/scaffold.h"
#include "cli/srcline.h"
#include "base/suggest.h"
#include "store/store.h"

#ifndef TP_SOURCE_DIR
#define TP_SOURCE_DIR "."
#endif

const char tpcmd_usage_check[] =
    "usage: tidepool check DIR [--config FILE [--tenant ID]]\n"
    "\n"
    "Loads the plugin in DIR (a folder with plugin.lua; the folder's name is the plugin's)\n"
    "as the host would, without serving it: one throwaway tenant on a temporary database,\n"
    "DIR's parent and the repository's plugins folder as plugin directories. With --config,\n"
    "the brand's config file instead: tenant ID's settings for the plugin (its config and\n"
    "limits; ID may be left out when the file has one tenant), DIR's parent first among its\n"
    "plugin dirs, and the tenant's other plugins loaded too, so that a route clashing with\n"
    "one of theirs is named; nothing of the brand's data is touched. Reports a\n"
    "syntax error, an error raised at load (an API called where it is not allowed at load\n"
    "included), a bad manifest, route or doc field, a route clash or bad path, or a failing\n"
    "migration as file:line: message (file: message when no line can be found).\n"
    "Then warns (file:line: warning: ...) of each table a row is slow to write to: a CHECK\n"
    "or an index's WHERE with an IN list of three or more values, which SQLite evaluates by\n"
    "building a temporary b-tree on every insert; write the values as ORs.\n"
    "And of each tp.db call whose statement joins constants with .. at every call\n"
    "(\"SELECT \" .. COLUMNS .. \" FROM ...\"): build such a text once, at the module's top.\n"
    "Exit status: 0 clean or warnings only, 1 a problem was reported, 2 usage error.\n";

/* ---- paths in Lua's messages */

/* Maps a chunk name as Lua prints it (possibly shortened to "...tail") to a
** file in the plugin's folder abs_dir, shown under user_dir. False if the
** chunk is not one of the plugin's files. */
static bool plugin_file(const char *src, size_t n, const char *abs_dir, const char *user_dir,
                        char *out, size_t cap) {
  char s[600];
  if (n >= sizeof s) return false;
  memcpy(s, src, n);
  s[n] = '\0';
  size_t dl = strlen(abs_dir);
  if (strncmp(s, abs_dir, dl) == 0 && s[dl] == '/') {
    snprintf(out, cap, "%s%s", user_dir, s + dl);
    return true;
  }
  if (strncmp(s, "...", 3) != 0) return false;
  const char *tail = s + 3;
  /* the longest path under abs_dir that ends with tail and exists */
  for (const char *r = tail; (r = strchr(r, '/')) != NULL; r++) {
    char full[1200];
    snprintf(full, sizeof full, "%s%s", abs_dir, r);
    size_t fl = strlen(full), tl = strlen(tail);
    if (fl >= tl && strcmp(full + fl - tl, tail) == 0 && access(full, R_OK) == 0) {
      snprintf(out, cap, "%s%s", user_dir, r);
      return true;
    }
  }
  return false;
}

/* Splits "chunk:line: rest" at s; false if s does not start so. */
static bool split_position(const char *s, size_t *src_len, int *line, const char **rest) {
  for (const char *c = s; *c && *c != '\n'; c++) {
    if (*c != ':' || !isdigit((unsigned char)c[1])) continue;
    char *end;
    long l = strtol(c + 1, &end, 10);
    if (*end != ':') continue;
    *src_len = (size_t)(c - s);
    *line = (int)l;
    *rest = end[1] == ' ' ? end + 2 : end + 1;
    return true;
  }
  return false;
}

/* Prints an error raised by Lua code (syntax or run time, with or without a
** traceback) as file:line: message. */
static void report_lua_error(const char *err, const char *abs_dir, const char *user_dir,
                             const char *plugin_lua) {
  char file[700];
  size_t sl;
  int line;
  const char *rest;
  const char *nl = strstr(err, "\nstack traceback:");
  int first_len = nl ? (int)(nl - err) : (int)strlen(err);
  if (split_position(err, &sl, &line, &rest) && rest < err + first_len &&
      plugin_file(err, sl, abs_dir, user_dir, file, sizeof file)) {
    printf("%s:%d: %.*s\n", file, line, (int)(err + first_len - rest), rest);
    return;
  }
  /* raised from C (an API call) or from outside the plugin: the first frame
  ** of the traceback that is the plugin's own */
  for (const char *f = nl; f && (f = strstr(f + 1, "\n\t")) != NULL;) {
    if (split_position(f + 2, &sl, &line, &rest) &&
        plugin_file(f + 2, sl, abs_dir, user_dir, file, sizeof file)) {
      printf("%s:%d: %.*s\n", file, line, first_len, err);
      return;
    }
  }
  printf("%s: %.*s\n", plugin_lua, first_len, err);
}

/* ---- the command */

/* Prints "file[:line]: msg\n" with the plugin's absolute folder in msg shown
** as the user wrote it. */
static void problem(const char *file, int line, const char *msg, const char *abs_dir,
                    const char *user_dir) {
  if (line) printf("%s:%d: ", file, line);
  else printf("%s: ", file);
  size_t dl = strlen(abs_dir);
  for (const char *at; (at = strstr(msg, abs_dir)) != NULL; msg = at + dl)
    printf("%.*s%s", (int)(at - msg), msg, user_dir);
  printf("%s\n", msg);
}

static void add_lua_str(tp_buf *b, const char *s) {
  tp_buf_addc(b, '"');
  for (; *s; s++) {
    unsigned char c = (unsigned char)*s;
    if (c == '"' || c == '\\') tp_buf_printf(b, "\\%c", c);
    else if (c < 32 || c == 127) tp_buf_printf(b, "\\%03d", c);
    else tp_buf_addc(b, (char)c);
  }
  tp_buf_addc(b, '"');
}

static void remove_scratch(const char *tmp) {
  char path[PATH_MAX + 16];
  snprintf(path, sizeof path, "%s/check.db", tmp);
  tps_remove(path);
  rmdir(tmp);
}

/* The config a check loads DIR with: a throwaway one (one tenant "check", DIR's
** parent and the repository's plugins as plugin dirs), or the brand's config
** file with tenant's settings and DIR's parent first among its plugin dirs.
** 0, or 1 with the problem printed. */
static int check_config(const char *plugin_lua, const char *parent, const char *name,
                        const char *tmp, const char *config, const char *tenant,
                        tpc_config *cfg, const tpc_tenant **t, const tpc_plugin **pc) {
  char err[2048];
  if (config) {
    if (tpc_load(config, cfg, err, sizeof err) != 0) {
      printf("%s\n", err);
      return 1;
    }
    if (!tenant && cfg->ntenants == 1) tenant = cfg->tenants[0].id;
    *t = tenant ? tpc_find_tenant(cfg, tenant, strlen(tenant)) : NULL;
    if (!*t) {
      if (tenant) {
        const char **ids = calloc((size_t)cfg->ntenants + 1, sizeof *ids);
        for (int i = 0; ids && i < cfg->ntenants; i++) ids[i] = cfg->tenants[i].id;
        char hint[100] = "";
        printf("%s: no tenant '%s'%s\n", config, tenant, ids ? tp_suggest_hint(tenant, ids, hint, sizeof hint) : "");
        free(ids);
      } else {
        printf("%s: it has %d tenants: say which with --tenant\n", config, cfg->ntenants);
      }
      return 1;
    }
    const char *names[TPC_MAX_PLUGINS + 1];
    int k = 0;
    for (int i = 0; i < (*t)->nplugins; i++) {
      if (strcmp((*t)->plugins[i].name, name) == 0) *pc = &(*t)->plugins[i];
      names[k++] = (*t)->plugins[i].name;
    }
    names[k] = NULL;
    char hint[100];
    if (!*pc) {
      printf("%s: plugin '%s' is not enabled for tenant '%s'%s\n", config, name, (*t)->id,
             tp_suggest_hint(name, names, hint, sizeof hint));
      return 1;
    }
    /* DIR is what is checked: its parent comes first among the plugin dirs */
    char **dirs = malloc((size_t)(cfg->nplugin_dirs + 1) * sizeof *dirs);
    if (!dirs) abort();
    dirs[0] = strdup(parent);
    memcpy(dirs + 1, cfg->plugin_dirs, (size_t)cfg->nplugin_dirs * sizeof *dirs);
    free(cfg->plugin_dirs);
    cfg->plugin_dirs = dirs;
    cfg->nplugin_dirs++;
    return 0;
  }
  tp_buf conf;
  tp_buf_init(&conf);
  tp_buf_adds(&conf, "return { log_level = \"error\", synchronous = \"off\", data_dir = ");
  add_lua_str(&conf, tmp);
  tp_buf_adds(&conf, ", plugin_dirs = { ");
  add_lua_str(&conf, parent);
  tp_buf_adds(&conf, ", ");
  add_lua_str(&conf, TP_SOURCE_DIR "/plugins");
  tp_buf_adds(&conf, " }, sdk_dir = ");
  add_lua_str(&conf, TP_SOURCE_DIR "/sdk");
  tp_buf_printf(&conf, ", tenants = { { id = \"check\", token_secret = \"check-0123456789abcdef\","
                " plugins = { %s = {} } } } }", name);
  int rc = tpc_load_string(tp_buf_cstr(&conf), "=check", tmp, cfg, err, sizeof err);
  tp_buf_free(&conf);
  if (rc != 0) {
    printf("%s: cannot set up the check: %s\n", plugin_lua, err);
    return 1;
  }
  *t = &cfg->tenants[0];
  *pc = &(*t)->plugins[0];
  return 0;
}

/* ---- what a table costs to write */

/* The line of "CREATE TABLE [IF NOT EXISTS] name" in src, or 0. */
static int create_line(const char *src, const char *name) {
  size_t n = strlen(name);
  for (const char *at = src; src && (at = strstr(at, name)) != NULL; at += n) {
    bool bounded = (at == src || !(isalnum((unsigned char)at[-1]) || at[-1] == '_' || at[-1] == '"')) &&
                   !(isalnum((unsigned char)at[n]) || at[n] == '_');
    const char *bol = at;
    while (bol > src && bol[-1] != '\n') bol--;
    if (!bounded || !strstr(bol, "TABLE") || strstr(bol, "TABLE") > at) continue;
    int line = 1;
    for (const char *c = src; c < at; c++) line += *c == '\n';
    return line;
  }
  return 0;
}

/* Warns of each of the plugin's tables whose INSERT opens an ephemeral table.
** In SQLite (3.40 here), an IN list of three or more constants in a CHECK, or
** in a partial index's WHERE, is evaluated by building a temporary b-tree of
** the list on every row written: about 30k instructions, ten times a plain
** insert (tests/bench/README.md, "What a CHECK's IN list and a UNIQUE column
** cost"). The same rule written with ORs costs a few hundred. The INSERT is
** compiled (EXPLAIN), never run, on the check's writable scratch database (a
** read-only connection compiles no CHECK). A warning does not fail the check:
** the table works, it is slow. Returns the number of warnings. */
static int warn_costly_writes(sqlite3 *db, const char *plugin, const char *src, const char *plugin_lua,
                              const char *abs_dir, const char *user_dir) {
  sqlite3_stmt *tables = NULL;
  int warnings = 0;
  if (sqlite3_prepare_v2(db, "SELECT name FROM sqlite_schema WHERE type = 'table' AND"
                         " substr(name, 1, length(?1) + 1) = ?1 || '_' ORDER BY rowid",
                         -1, &tables, NULL) != SQLITE_OK)
    return 0;
  sqlite3_bind_text(tables, 1, plugin, -1, SQLITE_STATIC);
  while (sqlite3_step(tables) == SQLITE_ROW) {
    const char *name = (const char *)sqlite3_column_text(tables, 0);
    char sql[200];
    snprintf(sql, sizeof sql, "EXPLAIN INSERT INTO \"%s\" DEFAULT VALUES", name);
    sqlite3_stmt *insert = NULL;
    bool ephemeral = false;
    if (sqlite3_prepare_v2(db, sql, -1, &insert, NULL) == SQLITE_OK)
      while (!ephemeral && sqlite3_step(insert) == SQLITE_ROW)
        ephemeral = strcmp((const char *)sqlite3_column_text(insert, 1), "OpenEphemeral") == 0;
    sqlite3_finalize(insert);
    if (!ephemeral) continue;
    char msg[512];
    snprintf(msg, sizeof msg,
             "warning: every row written to %s builds a temporary b-tree (about 30k instructions, ten"
             " times a plain insert): a CHECK or an index's WHERE has an IN list of three or more values;"
             " write it as ORs (status = 'a' OR status = 'b' OR ...)", name);
    problem(plugin_lua, create_line(src, name), msg, abs_dir, user_dir);
    warnings++;
  }
  sqlite3_finalize(tables);
  return warnings;
}

typedef struct rebuilt_ctx {
  const char *shown;  /* the file as the report names it */
  int warnings;
} rebuilt_ctx;

static void rebuilt_found(void *ud, int line) {
  rebuilt_ctx *c = ud;
  printf("%s:%d: warning: this statement's text is built at every call, a new string that Lua"
         " copies, hashes and compares in full to find its prepared statement (5-12k instructions"
         " for a SELECT of 15 to 40 columns): build it once at the top of the module, e.g. local"
         " LOAD_SQL = \"SELECT \" .. COLUMNS .. \" FROM ...\"\n", c->shown, line);
  c->warnings++;
}

static int by_name(const void *a, const void *b) {
  return strcmp(*(char *const *)a, *(char *const *)b);
}

/* Warns of each statement whose text a Lua file under dir (rel, as shown
** from the user's folder) builds at every call; its tests (test/) aside.
** Files in name order, the first 512 of a folder, folders as deep as
** --watch follows them (TPW_MAX_DEPTH). Returns the warnings. */
static int warn_rebuilt_statements(const char *dir, const char *rel, int depth) {
  DIR *d = depth <= TPW_MAX_DEPTH ? opendir(dir) : NULL;
  if (!d) return 0;
  char *names[512];
  size_t n = 0;
  for (struct dirent *e; n < sizeof names / sizeof *names && (e = readdir(d)) != NULL;)
    if (e->d_name[0] != '.' && !(depth == 0 && strcmp(e->d_name, "test") == 0))
      if ((names[n] = strdup(e->d_name)) != NULL) n++;
  closedir(d);
  qsort(names, n, sizeof *names, by_name);
  int warnings = 0;
  for (size_t i = 0; i < n; i++) {
    char path[PATH_MAX], shown[PATH_MAX];
    int pl = snprintf(path, sizeof path, "%s/%s", dir, names[i]);
    int sl = snprintf(shown, sizeof shown, "%s/%s", rel, names[i]);
    size_t len = strlen(names[i]);
    /* a path too long to write whole is no file of a plugin's */
    bool named = pl > 0 && (size_t)pl < sizeof path && sl > 0 && (size_t)sl < sizeof shown;
    if (named && tp_is_dir(path)) {
      warnings += warn_rebuilt_statements(path, shown, depth + 1);
    } else if (named && len > 4 && strcmp(names[i] + len - 4, ".lua") == 0) {
      char *src = tp_read_file(path, 16u << 20, NULL);
      rebuilt_ctx c = {shown, 0};
      if (src) tpst_scan(src, rebuilt_found, &c);
      free(src);
      warnings += c.warnings;
    }
    free(names[i]);
  }
  return warnings;
}

/* Loads, mounts and migrates the plugin; prints the first problem. With a
** config, the tenant's other plugins are loaded too, so that a route of
** theirs that clashes is found and named. Returns 0 clean, 1 a problem. */
static int check_plugin(const char *abs_dir, const char *user_dir, const char *name,
                        const char *tmp, const char *config, const char *tenant) {
  char plugin_lua[1100], err[2048];
  snprintf(plugin_lua, sizeof plugin_lua, "%s/plugin.lua", user_dir);
  char parent[PATH_MAX];
  snprintf(parent, sizeof parent, "%s", abs_dir);
  *strrchr(parent, '/') = '\0';
  if (!parent[0]) snprintf(parent, sizeof parent, "/");
  tpc_config cfg;
  memset(&cfg, 0, sizeof cfg);
  const tpc_tenant *t = NULL;
  const tpc_plugin *pc = NULL;
  if (check_config(plugin_lua, parent, name, tmp, config, tenant, &cfg, &t, &pc) != 0) {
    tpc_free(&cfg);
    return 1;
  }
  char file[PATH_MAX + 16];
  snprintf(file, sizeof file, "%s/plugin.lua", abs_dir);
  char *src = tp_read_file(file, 16u << 20, NULL);
  tps_db db;
  memset(&db, 0, sizeof db);
  char dbpath[PATH_MAX + 32];
  snprintf(dbpath, sizeof dbpath, "%s/check.db", tmp);
  tp_plugin *all = calloc((size_t)t->nplugins + 1, sizeof *all);  /* the others, then p */
  tp_plugin *p = &all[t->nplugins];
  tp_plugin *plugins[TPC_MAX_PLUGINS + 1];
  int nplugins = 0;
  tpr_router *routes = NULL, *admin = NULL;
  int status = 1, line = 0;
  if (!all) abort();
  if (tps_open(&db, dbpath, TPC_SYNC_OFF, err, sizeof err) != 0) {
    printf("%s: cannot open a scratch database: %s\n", plugin_lua, err);
    goto done;
  }
  if (tpp_load(p, &cfg, t, pc, &db, err, sizeof err) != 0) {
    line = src ? tpsl_manifest_line(src, err) : 0;
    if (line || strstr(err, "manifest") || strncmp(err, "routes", 6) == 0 ||
        strstr(err, "must be a function") || strstr(err, "names must be") ||
        strncmp(err, "config:", 7) == 0 || strncmp(err, "loading ", 8) == 0)
      problem(plugin_lua, line, err, abs_dir, user_dir);
    else
      report_lua_error(err, abs_dir, user_dir, plugin_lua);
    goto done;
  }
  for (int i = 0; config && i < t->nplugins; i++) {
    if (&t->plugins[i] == pc) continue;
    char e[2048];  /* one that does not load is the config's business, not this check's */
    if (tpp_load(&all[i], &cfg, t, &t->plugins[i], &db, e, sizeof e) == 0) plugins[nplugins++] = &all[i];
    else tpp_free(&all[i]);
  }
  plugins[nplugins++] = p;  /* last: a clash names the plugin mounted before it */
  tp_route *builtins[TP_HOST_MAX_BUILTINS];
  int nbuiltins = tp_host_builtins(builtins);
  if (tp_host_build_routers(builtins, nbuiltins, plugins, nplugins, &routes, &admin, err,
                            sizeof err) != 0) {
    problem(plugin_lua, src ? tpsl_manifest_line(src, err) : 0, err, abs_dir, user_dir);
    goto done;
  }
  if (tpp_migrate(p, err, sizeof err) != 0) {
    problem(plugin_lua, src ? tpsl_manifest_line(src, err) : 0, err, abs_dir, user_dir);
    goto done;
  }
  int warnings = warn_costly_writes(db.db, p->name, src, plugin_lua, abs_dir, user_dir) +
                 warn_rebuilt_statements(abs_dir, user_dir, 0);
  printf("%s: ok (%s %s, %d route%s", user_dir, p->name, p->version, p->nroutes, p->nroutes == 1 ? "" : "s");
  if (warnings) printf(", %d warning%s", warnings, warnings == 1 ? "" : "s");
  printf(")\n");
  status = 0;
done:
  tpr_free(routes);
  tpr_free(admin);
  for (int i = 0; i <= t->nplugins; i++) tpp_free(&all[i]);
  free(all);
  if (db.db) tps_close(&db);
  tpc_free(&cfg);
  free(src);
  return status;
}

int tpcmd_check(int argc, char **argv) {
  const char *dir = NULL, *config = NULL, *tenant = NULL;
  for (int i = 0; i < argc; i++) {
    if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0) {
      fputs(tpcmd_usage_check, stdout);
      return 0;
    }
    if ((strcmp(argv[i], "--config") == 0 || strcmp(argv[i], "--tenant") == 0) && i + 1 < argc) {
      *(argv[i][2] == 'c' ? &config : &tenant) = argv[i + 1];
      i++;
      continue;
    }
    if (argv[i][0] == '-' || dir) {
      fprintf(stderr, "tidepool: unexpected argument '%s'\n\n%s", argv[i], tpcmd_usage_check);
      return 2;
    }
    dir = argv[i];
  }
  if (!dir) {
    fprintf(stderr, "tidepool: check needs a plugin folder\n\n%s", tpcmd_usage_check);
    return 2;
  }
  if (tenant && !config) {
    fprintf(stderr, "tidepool: --tenant needs --config\n\n%s", tpcmd_usage_check);
    return 2;
  }
  char user_dir[PATH_MAX], abs_dir[PATH_MAX], file[PATH_MAX + 16];
  snprintf(user_dir, sizeof user_dir, "%s", dir);
  for (size_t n = strlen(user_dir); n > 1 && user_dir[n - 1] == '/'; n--) user_dir[n - 1] = '\0';
  struct stat st;
  snprintf(file, sizeof file, "%s/plugin.lua", user_dir);
  if (!realpath(user_dir, abs_dir) || stat(file, &st) != 0 || !S_ISREG(st.st_mode)) {
    fprintf(stderr, "tidepool: %s: no plugin.lua in this folder\n", file);
    return 2;
  }
  const char *name = strrchr(abs_dir, '/') ? strrchr(abs_dir, '/') + 1 : abs_dir;
  if (!tpc_valid_plugin_name(name)) {
    printf("%s: the folder's name '%s' is not a plugin name (the host loads a plugin from the "
           "folder of its name: [a-z][a-z0-9_]*, at most 32 bytes, not ending in _)\n", file, name);
    return 1;
  }
  tp_log_set_level(TP_LOG_ERROR);
  const char *tmpdir = getenv("TMPDIR");
  char tmp[PATH_MAX];
  snprintf(tmp, sizeof tmp, "%s/tidepool-check-XXXXXX", tmpdir && *tmpdir ? tmpdir : "/tmp");
  if (!mkdtemp(tmp)) {
    fprintf(stderr, "tidepool: cannot create a temporary folder: %s\n", strerror(errno));
    return 2;
  }
  int status = check_plugin(abs_dir, user_dir, name, tmp, config, tenant);
  remove_scratch(tmp);
  return status;
}
