/*
** main.c - the tidepool command line.
**
** Every command is tpcmd_<name>(argc, argv) with its help text
** tpcmd_usage_<name>: the host's own here, the tools' in their files
** (check.c, campaign.c, scaffold.c, testkit.c, apidoc.c).
*/
#include <signal.h>
#include <malloc.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <limits.h>
#include <sys/stat.h>
#include <uv.h>

#include "cli/adminclient.h"
#include "cli/apidoc.h"
#include "cli/backup.h"
#include "cli/campaign.h"
#include "cli/check.h"
#include "cli/cluster.h"
#include "base/clock.h"
#include "config/config.h"
#include "host/host.h"
#include "net/http.h"
#include "base/log.h"
#include "lua/plugin.h"
#include "store/store.h"
#include "store/users.h"
#include "base/passwd.h"
#include "cli/scaffold.h"
#include "cli/testkit.h"
#include "base/token.h"
#include "base/version.h"
#include "cli/watch.h"


static const char tpcmd_usage_main[] =
    "tidepool " TIDEPOOL_VERSION " - a campaign engine for private-domain commerce\n"
    "\n"
    "usage: tidepool <command> [options]\n"
    "\n"
    "commands:\n"
    "  serve     serve the mini-program API for the tenants of a config file\n"
    "  reload    make a running server load its plugins again (hot reload)\n"
    "  token     mint a user token for development and tests\n"
    "  config    validate a config file and print what it declares\n"
    "  test      run a plugin's tests (DIR/test/*_test.lua) against the real host\n"
    "  api       print the plugin API as LuaLS stubs or a Markdown reference\n"
    "  new       scaffold a plugin: tidepool new plugin NAME [--dir DIR]\n"
    "  check     load a plugin folder without serving it and report its problems\n"
    "  campaign  check or preview a campaign script against a copy of the brand's data\n"
    "  backup    copy each brand's database now, online, into the config's backup folder\n"
    "  restore   put a brand's database back from a backup, or --check a backup\n"
    "  cluster   print nginx's configuration for the config's cluster of nodes\n"
    "  console-user  add, list or remove the brand's console users (the web console)\n"
    "  version   print the version\n"
    "  help      show help for a command: tidepool help serve\n"
    "\n"
    "Every command takes --help.\n";

static const char tpcmd_usage_serve[] =
    "usage: tidepool serve --config FILE [--node NAME] [--listen HOST:PORT] [--data-dir DIR]\n"
    "                      [--log-level L] [--watch]\n"
    "\n"
    "Serves /v1/{tenant}/... (plugin routes), /admin/{tenant}/... (admin routes, X-Api-Key),\n"
    "/healthz and /metrics for every tenant in FILE. Logs are JSON lines on stderr; the\n"
    "first line with \"msg\":\"listening\" carries the bound port.\n"
    "\n"
    "  --config FILE       the config file (Lua returning a table; see scripts/demo/)\n"
    "  --node NAME         with a cluster in FILE: serve NAME's brands at NAME's address;\n"
    "                      the others' are answered 421 (README \"Shards behind nginx\")\n"
    "  --listen HOST:PORT  overrides the config's listen address (port 0: any free port)\n"
    "  --data-dir DIR      overrides the config's data directory (one SQLite file per tenant)\n"
    "  --log-level L       debug, info, warn or error (overrides the config)\n"
    "  --watch             reload a plugin when a .lua file in its folder (or the SDK) changes\n"
    "\n"
    "SIGHUP reloads every plugin of every tenant (code, not config); a plugin whose new\n"
    "version fails to load or migrate keeps its old version serving, and the error is logged.\n"
    "SIGTERM or SIGINT stops gracefully: no new connections, requests already received are\n"
    "answered and committed, then the databases are closed. A second signal stops at once.\n";

static const char tpcmd_usage_token[] =
    "usage: tidepool token --tenant T --user U (--config FILE | --secret S) [--ttl SECONDS]\n"
    "\n"
    "Prints a bearer token for user U of tenant T, signed with the tenant's token_secret\n"
    "(from FILE, or given with --secret). --ttl defaults to 86400 (one day).\n"
    "Use it as:  curl -H \"Authorization: Bearer $(tidepool token ...)\" ...\n";

static const char tpcmd_usage_reload[] =
    "usage: tidepool reload --config FILE [--tenant T] [--plugin P] [--listen HOST:PORT]\n"
    "\n"
    "Asks the server of FILE (at its listen address, or --listen) to reload plugin P (default:\n"
    "all) of tenant T (default: all) through POST /admin/reload, authenticated with the first\n"
    "of the config's admin_keys (or $TIDEPOOL_ADMIN_KEY). Each new version loads into a fresh\n"
    "state and runs its migrations before it replaces the old one; requests in flight are\n"
    "not dropped. Prints the outcome as JSON.\n"
    "Exit status: 0 all reloaded, 1 some failed and kept their old version, 2 usage,\n"
    "3 the server could not be reached.\n";

static const char tpcmd_usage_config[] =
    "usage: tidepool config --config FILE\n"
    "\n"
    "Loads and validates FILE and prints a summary (listen address, data directory,\n"
    "plugin and SDK folders, tenants and their plugins). Then loads every tenant's\n"
    "plugins as `serve` would, on a scratch database (nothing of the brand's data is\n"
    "touched), and says for each whether it loads and, if not, why; a route that two\n"
    "plugins declare is reported too. Exits 1 with the offending key when FILE is\n"
    "invalid or when a plugin would not serve.\n";

static const char tpcmd_usage_console_user[] =
    "usage: tidepool console-user add --config FILE --tenant T --user NAME --role ROLE [--store S]\n"
    "       tidepool console-user list --config FILE --tenant T\n"
    "       tidepool console-user remove --config FILE --tenant T --user NAME\n"
    "\n"
    "Manages who may sign in to the web console at /console/ for brand T. ROLE is owner,\n"
    "operator, store_manager (with --store, the one store it sees), finance or developer.\n"
    "add reads the password from $TIDEPOOL_CONSOLE_PASSWORD, else from the first line of\n"
    "standard input (10-256 characters); it keeps only a PBKDF2-HMAC-SHA256 hash with a\n"
    "random salt. Adding a user that exists sets its password and role. The brand's\n"
    "database is written directly, so this works whether or not the server runs (a\n"
    "running server ends the user's sessions only when changed through the admin API:\n"
    "POST /admin/{tenant}/console/users, an owner's).\n";

typedef struct {
  const char *config, *listen, *data_dir, *log_level, *tenant, *user, *secret, *plugin, *node;
  const char *role, *store;
  long long ttl;
  bool help, watch;
} options;

static int parse_options(int argc, char **argv, options *o, const char *usage) {
  o->ttl = 86400;
  for (int i = 0; i < argc; i++) {
    const char *a = argv[i];
    if (strcmp(a, "--help") == 0 || strcmp(a, "-h") == 0) {
      o->help = true;
      continue;
    }
    if (strcmp(a, "--watch") == 0 && usage == tpcmd_usage_serve) {
      o->watch = true;
      continue;
    }
    const char **slot = strcmp(a, "--config") == 0      ? &o->config
                        : strcmp(a, "--listen") == 0    ? &o->listen
                        : strcmp(a, "--data-dir") == 0  ? &o->data_dir
                        : strcmp(a, "--log-level") == 0 ? &o->log_level
                        : strcmp(a, "--tenant") == 0    ? &o->tenant
                        : strcmp(a, "--user") == 0      ? &o->user
                        : strcmp(a, "--secret") == 0    ? &o->secret
                        : strcmp(a, "--plugin") == 0    ? &o->plugin
                        : strcmp(a, "--node") == 0 && usage == tpcmd_usage_serve ? &o->node
                        : strcmp(a, "--role") == 0      ? &o->role
                        : strcmp(a, "--store") == 0     ? &o->store
                                                        : NULL;
    bool ttl = strcmp(a, "--ttl") == 0;
    if ((!slot && !ttl) || i + 1 >= argc) {
      fprintf(stderr, "tidepool: %s '%s'\n\n%s", slot || ttl ? "missing value for" : "unknown option",
              a, usage);
      return -1;
    }
    if (ttl) {
      char *end;
      o->ttl = strtoll(argv[++i], &end, 10);
      if (*end || o->ttl <= 0) {
        fprintf(stderr, "tidepool: --ttl must be a positive number of seconds\n");
        return -1;
      }
    } else {
      *slot = argv[++i];
    }
  }
  return 0;
}

/* Parses a command's options; returns -1 to go on, or the exit status when the
** command is already done (bad options: 2, --help printed: 0). */
static int begin_command(int argc, char **argv, const char *usage, options *o) {
  if (parse_options(argc, argv, o, usage) != 0) return 2;
  if (!o->help) return -1;
  fputs(usage, stdout);
  return 0;
}

static int load_config(const char *path, tpc_config *cfg) {
  char err[1024];
  if (!path) {
    fprintf(stderr, "tidepool: --config FILE is required\n");
    return -1;
  }
  if (tpc_load(path, cfg, err, sizeof err) != 0) {
    fprintf(stderr, "tidepool: %s\n", err);
    return -1;
  }
  return 0;
}

/* ---- serve */

typedef struct {
  uv_loop_t loop;
  uv_signal_t sigterm, sigint, sighup;
  tph_server *server;
  tp_host *host;
  tpw_watch *watch;
  const char **watched;   /* plugin folders, then the SDK */
  const char **watched_plugin;  /* the plugin of each folder; NULL for the SDK */
  int nwatched;
  int signals;
} serve_state;

static void on_sighup(uv_signal_t *h, int signum) {
  (void)signum;
  serve_state *st = h->data;
  tp_log_msg(TP_LOG_INFO, "SIGHUP: reloading every plugin", NULL);
  tp_host_reload(st->host, NULL, NULL, NULL);
  tp_log_flush();
}

static void on_files_changed(void *ud, int index) {
  serve_state *st = ud;
  const char *plugin = st->watched_plugin[index];
  tp_log_msg(TP_LOG_INFO, "files changed: reloading", plugin ? plugin : "every plugin (SDK)");
  tp_host_reload(st->host, NULL, plugin, NULL);
  tp_log_flush();
}

/* --watch: the folder of every enabled plugin, and the SDK if it exists. */
static int start_watch(serve_state *st, const tpc_config *cfg) {
  int cap = 1;
  for (int i = 0; i < cfg->ntenants; i++) cap += cfg->tenants[i].nplugins;
  st->watched = calloc((size_t)cap, sizeof *st->watched);
  st->watched_plugin = calloc((size_t)cap, sizeof *st->watched_plugin);
  for (int i = 0; i < st->host->ntenants; i++)
    for (int j = 0; j < st->host->tenants[i].nslots; j++) {
      tp_slot *s = &st->host->tenants[i].slots[j];
      if (!s->current) continue;
      bool seen = false;
      for (int k = 0; k < st->nwatched; k++)
        seen |= st->watched_plugin[k] && strcmp(st->watched_plugin[k], s->conf->name) == 0;
      if (seen) continue;
      st->watched[st->nwatched] = s->current->dir;
      st->watched_plugin[st->nwatched++] = s->conf->name;
    }
  struct stat sdk;
  if (stat(cfg->sdk_dir, &sdk) == 0 && S_ISDIR(sdk.st_mode)) st->watched[st->nwatched++] = cfg->sdk_dir;
  char err[512];
  st->watch = tpw_start(&st->loop, st->watched, st->nwatched, 200, on_files_changed, st, err,
                        sizeof err);
  if (!st->watch) {
    tp_log_msg(TP_LOG_ERROR, "cannot watch plugin files", err);
    return -1;
  }
  tp_buf *line = tp_log_begin(TP_LOG_INFO, "watching plugin files");
  tp_log_int(line, "folders", st->nwatched);
  tp_log_end(line);
  return 0;
}

static void on_stopped(void *arg) {
  serve_state *st = arg;
  uv_stop(&st->loop);
}

static void on_signal(uv_signal_t *h, int signum) {
  serve_state *st = h->data;
  if (++st->signals > 1) {
    tp_log_msg(TP_LOG_WARN, "second signal: stopping now", NULL);
    uv_stop(&st->loop);
    return;
  }
  tp_buf *line = tp_log_begin(TP_LOG_INFO, "shutting down");
  tp_log_str(line, "signal", signum == SIGTERM ? "SIGTERM" : "SIGINT");
  tp_log_end(line);
  tph_shutdown(st->server, on_stopped, st);
}

static void close_handle(uv_handle_t *h) {
  if (!uv_is_closing(h)) uv_close(h, NULL);
}

/* A server's heap breathes: every request allocates and frees its body, its
** JSON and SQLite's pages. With glibc's defaults the top of the heap is given
** back to the kernel as soon as 128 KiB are free and taken again moments later,
** and big blocks are fresh mmaps, so a busy host spent a third of its time in
** page faults and brk (perf, a members import). Keep what it had. */
static void tune_malloc(void) {
#ifdef M_TRIM_THRESHOLD
  mallopt(M_TRIM_THRESHOLD, 64 << 20);
  mallopt(M_TOP_PAD, 16 << 20);
  mallopt(M_MMAP_THRESHOLD, 4 << 20);
#endif
}

/* Each plugin that is not serving, with why: the first thing to read when
** "plugins_failed" is not 0. */
static void log_failed_plugins(const tp_host *h) {
  for (int i = 0; i < h->ntenants; i++)
    for (int j = 0; j < h->tenants[i].nslots && h->tenants[i].open; j++) {  /* closed: not loaded yet */
      const tp_slot *s = &h->tenants[i].slots[j];
      if (s->current) continue;
      tp_buf *line = tp_log_begin(TP_LOG_ERROR, "plugin not serving");
      tp_log_str(line, "tenant", h->tenants[i].conf->id);
      tp_log_str(line, "plugin", s->conf->name);
      tp_log_str(line, "error", s->last_error);
      tp_log_end(line);
    }
}

static int tpcmd_serve(int argc, char **argv) {
  tune_malloc();
  options o = {0};
  int done = begin_command(argc, argv, tpcmd_usage_serve, &o);
  if (done >= 0) return done;
  tpc_config cfg;
  if (load_config(o.config, &cfg) != 0) return 1;
  if (o.listen &&
      tpc_parse_listen(o.listen, cfg.listen_host, sizeof cfg.listen_host, &cfg.listen_port) != 0) {
    fprintf(stderr, "tidepool: --listen must be HOST:PORT\n");
    tpc_free(&cfg);
    return 2;
  }
  if (o.data_dir) {
    free(cfg.data_dir);
    cfg.data_dir = strdup(o.data_dir);
  }
  if (cfg.nnodes > 0 || o.node) {  /* one node of a cluster: its brands, at its address */
    char nerr[512];
    if (!o.node) snprintf(nerr, sizeof nerr, "%s has a cluster: say which node this is with --node", o.config);
    if (!o.node || tpcmd_cluster_owners(&cfg, nerr, sizeof nerr) != 0 ||
        tpc_select_node(&cfg, o.node, nerr, sizeof nerr) != 0) {
      fprintf(stderr, "tidepool: %s\n", nerr);
      tpc_free(&cfg);
      return 2;
    }
    if (!o.listen) tpc_parse_listen(cfg.self->listen, cfg.listen_host, sizeof cfg.listen_host, &cfg.listen_port);
  }

  tp_log_level level;
  if (tp_log_parse_level(o.log_level ? o.log_level : cfg.log_level, &level) != 0) {
    fprintf(stderr, "tidepool: --log-level must be debug, info, warn or error\n");
    tpc_free(&cfg);
    return 2;
  }
  tp_log_set_level(level);
  signal(SIGPIPE, SIG_IGN);

  int status = 1;
  char err[1024];
  serve_state st = {0};
  tp_host host;
  uv_loop_init(&st.loop);
  if (tp_host_open(&host, &cfg, err, sizeof err) != 0) {
    tp_log_msg(TP_LOG_ERROR, "cannot start", err);
    tp_host_close(&host);
    goto done;
  }
  tph_hooks hooks = {tp_host_handle, tp_host_commit, tp_host_finished, tp_host_iteration_end,
                     &host, tp_host_hold};
  st.server = tph_new(&st.loop, &cfg.limits, hooks);
  st.host = &host;
  host.server = st.server;
  tp_host_attach(&host, &st.loop);
  int port;
  if (tph_listen(st.server, cfg.listen_host, cfg.listen_port, &port, err, sizeof err) != 0) {
    tp_log_msg(TP_LOG_ERROR, "cannot start", err);
  } else if (o.watch && start_watch(&st, &cfg) != 0) {
    /* reported */
  } else {
    uv_signal_init(&st.loop, &st.sigterm);
    uv_signal_init(&st.loop, &st.sigint);
    uv_signal_init(&st.loop, &st.sighup);
    st.sigterm.data = st.sigint.data = st.sighup.data = &st;
    uv_signal_start(&st.sigterm, on_signal, SIGTERM);
    uv_signal_start(&st.sigint, on_signal, SIGINT);
    uv_signal_start(&st.sighup, on_sighup, SIGHUP);
    tp_buf *line = tp_log_begin(TP_LOG_INFO, "listening");
    tp_log_str(line, "host", cfg.listen_host);
    tp_log_int(line, "port", port);
    tp_log_int(line, "tenants", host.ntenants);
    tp_log_int(line, "plugins_failed", host.plugin_failures);
    tp_log_str(line, "version", TIDEPOOL_VERSION);
    tp_log_end(line);
    log_failed_plugins(&host);
    tp_log_set_batched(true);
    uv_run(&st.loop, UV_RUN_DEFAULT);
    tp_log_set_batched(false);
    close_handle((uv_handle_t *)&st.sigterm);
    close_handle((uv_handle_t *)&st.sigint);
    close_handle((uv_handle_t *)&st.sighup);
    status = 0;
  }
  tpw_stop(st.watch);
  tp_host_detach(&host);
  tph_free(st.server);
  tp_host_commit(&host);  /* nothing should be open; make sure */
  tp_host_close(&host);
  uv_run(&st.loop, UV_RUN_DEFAULT);  /* run the remaining close callbacks */
  tp_log_msg(TP_LOG_INFO, "stopped", NULL);
  free(st.watched);
  free(st.watched_plugin);
done:
  uv_loop_close(&st.loop);
  tpc_free(&cfg);
  return status;
}

/* ---- token */

static int tpcmd_token(int argc, char **argv) {
  options o = {0};
  int done = begin_command(argc, argv, tpcmd_usage_token, &o);
  if (done >= 0) return done;
  if (!o.tenant || !o.user || (!o.config && !o.secret)) {
    fprintf(stderr, "tidepool: token needs --tenant, --user and --config or --secret\n\n%s", tpcmd_usage_token);
    return 2;
  }
  tpc_config cfg = {0};
  const char *secret = o.secret;
  if (!secret) {
    if (load_config(o.config, &cfg) != 0) return 1;
    const tpc_tenant *t = tpc_find_tenant(&cfg, o.tenant, strlen(o.tenant));
    if (!t) {
      fprintf(stderr, "tidepool: no tenant '%s' in %s\n", o.tenant, o.config);
      tpc_free(&cfg);
      return 1;
    }
    secret = t->token_secret;
  }
  tp_buf out;
  tp_buf_init(&out);
  int rc = tpt_mint(secret, strlen(secret), o.tenant, o.user, tp_clock_wall_ms() / 1000 + o.ttl, &out);
  if (rc == 0) printf("%s\n", tp_buf_cstr(&out));
  else fprintf(stderr, "tidepool: invalid tenant or user id (letters, digits, _ - and for users : @)\n");
  tp_buf_free(&out);
  if (!o.secret) tpc_free(&cfg);
  return rc == 0 ? 0 : 2;
}

/* ---- console-user */

/* The password for a new console user: the environment's, or stdin's first line. */
static int read_password(char *out, size_t cap) {
  const char *env = getenv("TIDEPOOL_CONSOLE_PASSWORD");
  if (env) {
    snprintf(out, cap, "%s", env);
    return 0;
  }
  if (!fgets(out, (int)cap, stdin)) return -1;
  out[strcspn(out, "\r\n")] = '\0';
  return 0;
}

static int tpcmd_console_user(int argc, char **argv) {
  const char *verb = argc > 0 ? argv[0] : "";
  bool add = strcmp(verb, "add") == 0, list = strcmp(verb, "list") == 0,
       remove = strcmp(verb, "remove") == 0;
  options o = {0};
  if (!add && !list && !remove) {
    if (strcmp(verb, "--help") == 0 || strcmp(verb, "-h") == 0) {
      fputs(tpcmd_usage_console_user, stdout);
      return 0;
    }
    fprintf(stderr, "tidepool: console-user needs add, list or remove\n\n%s", tpcmd_usage_console_user);
    return 2;
  }
  int done = begin_command(argc - 1, argv + 1, tpcmd_usage_console_user, &o);
  if (done >= 0) return done;
  if (!o.tenant || (!list && !o.user)) {
    fprintf(stderr, "tidepool: console-user %s needs --tenant%s\n\n%s", verb, list ? "" : " and --user",
            tpcmd_usage_console_user);
    return 2;
  }
  tpcu_user u;
  memset(&u, 0, sizeof u);
  if (add) {
    u.role = tpc_role_parse(o.role);
    if (!u.role || (u.role == TPC_ROLE_STORE_MANAGER) != (o.store != NULL) || !tpcu_valid_name(o.user) ||
        (o.store && strlen(o.store) > TPC_MAX_STORE)) {
      fprintf(stderr, "tidepool: --user must be 1-64 of [A-Za-z0-9._@-], --role one of owner, operator,\n"
                      "store_manager, finance, developer, and --store given for a store_manager only\n");
      return 2;
    }
  }
  tpc_config cfg;
  if (load_config(o.config, &cfg) != 0) return 2;
  const tpc_tenant *t = tpc_find_tenant(&cfg, o.tenant, strlen(o.tenant));
  if (!t) {
    fprintf(stderr, "tidepool: no tenant '%s' in %s\n", o.tenant, o.config);
    tpc_free(&cfg);
    return 2;
  }
  char path[1200], err[512];
  tpc_tenant_file(o.data_dir ? o.data_dir : cfg.data_dir, t->id, ".db", path, sizeof path);
  struct stat st;
  if (stat(o.data_dir ? o.data_dir : cfg.data_dir, &st) != 0) mkdir(o.data_dir ? o.data_dir : cfg.data_dir, 0750);
  sqlite3 *db = NULL;
  int rc = 1;
  if (sqlite3_open(path, &db) != SQLITE_OK) {
    fprintf(stderr, "tidepool: cannot open %s: %s\n", path, sqlite3_errmsg(db));
    goto done;
  }
  sqlite3_busy_timeout(db, 10000);
  if (tpcu_open(db, err, sizeof err) != 0) {
    fprintf(stderr, "tidepool: %s: %s\n", path, err);
    goto done;
  }
  if (list) {
    tp_buf out;
    tp_buf_init(&out);
    rc = tpcu_list(db, &out) == 0 ? 0 : 1;
    if (rc == 0) printf("%s\n", tp_buf_cstr(&out));
    tp_buf_free(&out);
  } else if (remove) {
    int n = tpcu_delete(db, o.user);
    rc = n == 1 ? 0 : 1;
    if (n == 0) fprintf(stderr, "tidepool: no console user '%s' in %s\n", o.user, t->id);
  } else {
    char password[TPPW_MAX_PASSWORD + 2];
    if (read_password(password, sizeof password) != 0 || !tppw_acceptable(password, strlen(password))) {
      fprintf(stderr, "tidepool: the password must be %d-%d characters (from $TIDEPOOL_CONSOLE_PASSWORD "
                      "or stdin)\n", TPPW_MIN_PASSWORD, TPPW_MAX_PASSWORD);
      rc = 2;
      goto done;
    }
    snprintf(u.name, sizeof u.name, "%s", o.user);
    snprintf(u.store, sizeof u.store, "%s", o.store ? o.store : "");
    u.created_ms = tp_clock_wall_ms();
    if (tppw_hash(password, strlen(password), cfg.password_iterations, u.hash) != 0 || tpcu_put(db, &u) != 0) {
      fprintf(stderr, "tidepool: cannot save the user: %s\n", sqlite3_errmsg(db));
    } else {
      printf("{\"tenant\":\"%s\",\"name\":\"%s\",\"role\":\"%s\"}\n", t->id, u.name, tpc_role_name(u.role));
      rc = 0;
    }
    memset(password, 0, sizeof password);
  }
done:
  sqlite3_close(db);
  tpc_free(&cfg);
  return rc;
}

/* ---- reload */

static int tpcmd_reload(int argc, char **argv) {
  options o = {0};
  int done = begin_command(argc, argv, tpcmd_usage_reload, &o);
  if (done >= 0) return done;
  tpc_config cfg;
  if (load_config(o.config, &cfg) != 0) return 2;
  if (o.listen &&
      tpc_parse_listen(o.listen, cfg.listen_host, sizeof cfg.listen_host, &cfg.listen_port) != 0) {
    fprintf(stderr, "tidepool: --listen must be HOST:PORT\n");
    tpc_free(&cfg);
    return 2;
  }
  const char *key = getenv("TIDEPOOL_ADMIN_KEY");
  if (!key) key = cfg.cli_admin_key;
  if (!key) {
    fprintf(stderr, "tidepool: the config has no admin_keys and TIDEPOOL_ADMIN_KEY is not set\n");
    tpc_free(&cfg);
    return 2;
  }
  tp_buf body, out;
  tp_buf_init(&body);
  tp_buf_init(&out);
  tp_buf_adds(&body, "{");
  if (o.tenant) {
    tp_buf_adds(&body, "\"tenant\":");
    tp_buf_add_json_str(&body, o.tenant, strlen(o.tenant));
  }
  if (o.plugin) {
    tp_buf_adds(&body, o.tenant ? ",\"plugin\":" : "\"plugin\":");
    tp_buf_add_json_str(&body, o.plugin, strlen(o.plugin));
  }
  tp_buf_adds(&body, "}");
  int status = 0, rc;
  char err[512];
  const char *host = strcmp(cfg.listen_host, "0.0.0.0") == 0 ? "127.0.0.1" : cfg.listen_host;
  if (tp_admin_post(host, cfg.listen_port, "/admin/reload", key, tp_buf_cstr(&body), 120000,
                    &status, &out, err, sizeof err) != 0) {
    fprintf(stderr, "tidepool: %s\n", err);
    rc = 3;
  } else {
    printf("%.*s\n", (int)out.len, out.data);
    rc = status == 200 ? 0 : status == 422 ? 1 : status == 401 || status == 403 ? 2 : 1;
    if (status != 200 && status != 422) fprintf(stderr, "tidepool: the server answered %d\n", status);
  }
  tp_buf_free(&body);
  tp_buf_free(&out);
  tpc_free(&cfg);
  return rc;
}

/* ---- config */

/* Loads every tenant's plugins as the host would, without migrating them,
** on a scratch database in a temporary folder; prints one line a plugin and
** returns how many would not serve. */
static int load_plugins(const tpc_config *cfg) {
  const char *tmpdir = getenv("TMPDIR");
  char tmp[PATH_MAX], dbpath[PATH_MAX + 16], err[2048];
  snprintf(tmp, sizeof tmp, "%s/tidepool-config-XXXXXX", tmpdir && *tmpdir ? tmpdir : "/tmp");
  if (!mkdtemp(tmp)) {
    printf("plugins: not loaded (cannot create a temporary folder)\n");
    return 1;
  }
  snprintf(dbpath, sizeof dbpath, "%s/config.db", tmp);
  tps_db db;
  int failed = 0;
  if (tps_open(&db, dbpath, TPC_SYNC_OFF, err, sizeof err) != 0) {
    printf("plugins: not loaded (%s)\n", err);
    tp_remove_tree(tmp);
    return 1;
  }
  tp_route *builtins[TP_HOST_MAX_BUILTINS];
  int nbuiltins = tp_host_builtins(builtins);
  for (int i = 0; i < cfg->ntenants; i++) {
    const tpc_tenant *t = &cfg->tenants[i];
    tp_plugin *ps = calloc((size_t)t->nplugins + 1, sizeof *ps);
    tp_plugin *loaded[TPC_MAX_PLUGINS];
    int n = 0;
    if (!ps) abort();
    for (int j = 0; j < t->nplugins; j++) {
      if (tpp_load(&ps[j], cfg, t, &t->plugins[j], &db, err, sizeof err) == 0) {
        printf("plugin %s/%s: ok (version %s, %d routes)\n", t->id, t->plugins[j].name,
               ps[j].version, ps[j].nroutes);
        loaded[n++] = &ps[j];
      } else {
        printf("plugin %s/%s: FAILED: %s\n", t->id, t->plugins[j].name, err);
        failed++;
      }
    }
    tpr_router *routes, *admin;
    if (tp_host_build_routers(builtins, nbuiltins, loaded, n, &routes, &admin, err, sizeof err) == 0) {
      tpr_free(routes);
      tpr_free(admin);
    } else {
      printf("tenant %s: FAILED: %s\n", t->id, err);
      failed++;
    }
    for (int j = 0; j < t->nplugins; j++) tpp_free(&ps[j]);
    free(ps);
  }
  tps_close(&db);
  tp_remove_tree(tmp);
  return failed;
}

static int tpcmd_config(int argc, char **argv) {
  options o = {0};
  int done = begin_command(argc, argv, tpcmd_usage_config, &o);
  if (done >= 0) return done;
  tpc_config cfg;
  if (load_config(o.config, &cfg) != 0) return 1;
  printf("listen: %s:%d\ndata_dir: %s\n", cfg.listen_host, cfg.listen_port, cfg.data_dir);
  for (int i = 0; i < cfg.nplugin_dirs; i++) printf("plugin_dir: %s\n", cfg.plugin_dirs[i]);
  /* the SDK is what require("tp.check") and the other tp.* modules load from:
  ** a wrong one makes plugins fail to load at start, so say where it is */
  struct stat sb;
  bool sdk_ok = cfg.sdk_dir && stat(cfg.sdk_dir, &sb) == 0 && S_ISDIR(sb.st_mode);
  printf("sdk_dir: %s%s\n", cfg.sdk_dir ? cfg.sdk_dir : "(none)",
         sdk_ok ? "" : "  (not a folder: plugins that require tp.* modules will fail to load; set sdk_dir)");
  for (int i = 0; i < cfg.ntrusted_proxies; i++) printf("trusted_proxy: %s\n", cfg.trusted_proxies[i]);
  for (int i = 0; i < cfg.ntenants; i++) {
    printf("tenant %s (timezone %s, %d api keys):", cfg.tenants[i].id, cfg.tenants[i].timezone,
           cfg.tenants[i].napi_keys);
    for (int j = 0; j < cfg.tenants[i].nplugins; j++) printf(" %s", cfg.tenants[i].plugins[j].name);
    printf("\n");
    char limits[1024];
    tprl_describe(&cfg.tenants[i].rate_limits, limits, sizeof limits);
    printf("  rate limits: %s\n", limits);
  }
  int failed = load_plugins(&cfg);
  if (failed) printf("%d plugin%s would not serve\n", failed, failed == 1 ? "" : "s");
  tpc_free(&cfg);
  return failed ? 1 : 0;
}

int main(int argc, char **argv) {
  const char *cmd = argc > 1 ? argv[1] : "help";
  int rc;
  if (strcmp(cmd, "serve") == 0) rc = tpcmd_serve(argc - 2, argv + 2);
  else if (strcmp(cmd, "token") == 0) rc = tpcmd_token(argc - 2, argv + 2);
  else if (strcmp(cmd, "config") == 0) rc = tpcmd_config(argc - 2, argv + 2);
  else if (strcmp(cmd, "reload") == 0) rc = tpcmd_reload(argc - 2, argv + 2);
  else if (strcmp(cmd, "test") == 0) rc = tpcmd_test(argc - 2, argv + 2);
  else if (strcmp(cmd, "api") == 0) rc = tpcmd_api(argc - 2, argv + 2);
  else if (strcmp(cmd, "new") == 0) rc = tpcmd_new(argc - 2, argv + 2);
  else if (strcmp(cmd, "check") == 0) rc = tpcmd_check(argc - 2, argv + 2);
  else if (strcmp(cmd, "campaign") == 0) rc = tpcmd_campaign(argc - 2, argv + 2);
  else if (strcmp(cmd, "backup") == 0) rc = tpcmd_backup(argc - 2, argv + 2);
  else if (strcmp(cmd, "restore") == 0) rc = tpcmd_restore(argc - 2, argv + 2);
  else if (strcmp(cmd, "cluster") == 0) rc = tpcmd_cluster(argc - 2, argv + 2);
  else if (strcmp(cmd, "console-user") == 0) rc = tpcmd_console_user(argc - 2, argv + 2);
  else if (strcmp(cmd, "version") == 0 || strcmp(cmd, "--version") == 0) {
    printf("tidepool %s\n", TIDEPOOL_VERSION);
    rc = 0;
  } else if (strcmp(cmd, "help") == 0 || strcmp(cmd, "--help") == 0 || strcmp(cmd, "-h") == 0) {
    const char *topic = argc > 2 ? argv[2] : "";
    fputs(strcmp(topic, "serve") == 0    ? tpcmd_usage_serve
          : strcmp(topic, "token") == 0  ? tpcmd_usage_token
          : strcmp(topic, "config") == 0 ? tpcmd_usage_config
          : strcmp(topic, "reload") == 0 ? tpcmd_usage_reload
          : strcmp(topic, "check") == 0 ? tpcmd_usage_check
          : strcmp(topic, "console-user") == 0 ? tpcmd_usage_console_user
          : strcmp(topic, "campaign") == 0 ? tpcmd_usage_campaign
          : strcmp(topic, "backup") == 0 ? tpcmd_usage_backup
          : strcmp(topic, "restore") == 0 ? tpcmd_usage_restore
          : strcmp(topic, "cluster") == 0 ? tpcmd_usage_cluster
                                         : tpcmd_usage_main,
          stdout);
    rc = 0;
  } else {
    fprintf(stderr, "tidepool: unknown command '%s'\n\n%s", cmd, tpcmd_usage_main);
    rc = 2;
  }
  tp_log_shutdown();
  return rc;
}
