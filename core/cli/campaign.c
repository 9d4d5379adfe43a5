/*
** campaign.c - `tidepool campaign check|preview FILE`: a campaign script
** loaded as the host would load it, on a copy of the brand's data.
**
** The host runs a campaign script as a plugin (sdk/tp/campaign/runtime.lua):
** loading it checks the script, and its setup hands every mechanic its
** settings, which the mechanic checks against the brand's catalog and its
** other activities. So the only honest check is that same load, against the
** same data: the tenant's database is copied (SQLite's online backup, so a
** running host is not disturbed) into a temporary folder, a host is opened
** on the copy with FILE as one of the tenant's campaigns, and what the load
** reported is printed. Nothing touches the live database.
*/
#include "cli/campaign.h"

#include <errno.h>
#include <limits.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "config/config.h"
#include "host/host_int.h"
#include "base/buf.h"
#include "base/log.h"
#include "store/backup.h"
#include "store/store.h"

const char tpcmd_usage_campaign[] =
    "usage: tidepool campaign check FILE --config CONF [--tenant ID]\n"
    "       tidepool campaign preview FILE --config CONF [--tenant ID]\n"
    "\n"
    "Loads the campaign script FILE for tenant ID of CONF exactly as the host would, on a\n"
    "copy of the tenant's database (the live one is only read): the script is run and\n"
    "checked, and each mechanic checks its settings against the brand's data (SKUs, stock,\n"
    "overlapping sales, ...). Every problem is printed as FILE:LINE: message.\n"
    "  check    prints FILE: ok and a one-line summary, or the problem\n"
    "  preview  also prints what will happen when, in the tenant's time zone\n"
    "--tenant defaults to the tenant whose campaigns list FILE's name, or the only tenant.\n"
    "Exit status: 0 clean, 1 a problem was reported, 2 usage or set-up error.\n";

typedef struct {
  const char *mode, *file, *config, *tenant;
} campaign_args;

static int parse_args(int argc, char **argv, campaign_args *a) {
  memset(a, 0, sizeof *a);
  for (int i = 0; i < argc; i++) {
    const char *s = argv[i];
    if (strcmp(s, "--help") == 0 || strcmp(s, "-h") == 0) return 1;
    if ((strcmp(s, "--config") == 0 || strcmp(s, "--tenant") == 0) && i + 1 < argc) {
      *(strcmp(s, "--config") == 0 ? &a->config : &a->tenant) = argv[++i];
    } else if (s[0] == '-') {
      fprintf(stderr, "tidepool: unknown option '%s'\n\n%s", s, tpcmd_usage_campaign);
      return 2;
    } else if (!a->mode) {
      a->mode = s;
    } else if (!a->file) {
      a->file = s;
    } else {
      fprintf(stderr, "tidepool: unexpected argument '%s'\n\n%s", s, tpcmd_usage_campaign);
      return 2;
    }
  }
  if (!a->mode || (strcmp(a->mode, "check") != 0 && strcmp(a->mode, "preview") != 0) || !a->file ||
      !a->config) {
    fprintf(stderr, "tidepool: campaign needs check or preview, a FILE and --config\n\n%s",
            tpcmd_usage_campaign);
    return 2;
  }
  return 0;
}

/* The tenant to check against: --tenant, else the one whose campaigns
** include FILE's campaign name, else the only one. */
static tpc_tenant *pick_tenant(tpc_config *cfg, const char *want, const char *campaign) {
  if (want) {
    const tpc_tenant *t = tpc_find_tenant(cfg, want, strlen(want));
    if (!t) fprintf(stderr, "tidepool: no tenant '%s' in %s\n", want, cfg->path);
    return (tpc_tenant *)t;
  }
  tpc_tenant *found = NULL;
  int matches = 0;
  for (int i = 0; i < cfg->ntenants; i++)
    for (int j = 0; j < cfg->tenants[i].nplugins; j++)
      if (cfg->tenants[i].plugins[j].script && strcmp(cfg->tenants[i].plugins[j].name, campaign) == 0) {
        found = &cfg->tenants[i];
        matches++;
      }
  if (matches == 1) return found;
  if (matches == 0 && cfg->ntenants == 1) return &cfg->tenants[0];
  fprintf(stderr, "tidepool: %s: say which tenant with --tenant (%s)\n", cfg->path,
          matches ? "several tenants run this campaign" : "no tenant lists this campaign");
  return NULL;
}

/* Copies the live database (if there is one yet) to dir/<tenant>.db. */
static int snapshot(const char *live, const char *copy, char *err, size_t errcap) {
  if (access(live, F_OK) != 0) return 0;  /* a brand-new tenant: an empty database */
  return tpbk_copy(live, copy, err, errcap);
}

/* The scratch folder is the command's own (mkdtemp): everything the host
** left in it goes, the databases, their WAL and the claim's lock file. */
static void remove_scratch(const char *dir) {
  if (tp_remove_tree(dir) != 0)
    fprintf(stderr, "tidepool: cannot remove %s: %s\n", dir, strerror(errno));
}

/* The load's error as an operator should read it: the script's own
** file:line: message, without the error code or a Lua traceback. */
static void print_problem(const char *file, const char *err) {
  static const char code[] = "invalid_campaign: ";
  if (strncmp(err, code, sizeof code - 1) == 0) err += sizeof code - 1;
  const char *tb = strstr(err, "\nstack traceback:");
  int n = tb ? (int)(tb - err) : (int)strlen(err);
  if (strncmp(err, file, strlen(file)) == 0) printf("%.*s\n", n, err);
  else printf("%s: %.*s\n", file, n, err);
}

static void print_timeline(tp_tenant *t, const char *campaign) {
  char sql[160];
  snprintf(sql, sizeof sql, "SELECT at, local_time, what FROM %s_timeline ORDER BY seq", campaign);
  sqlite3_stmt *st;
  if (sqlite3_prepare_v2(t->db.db, sql, -1, &st, NULL) != SQLITE_OK) return;
  int64_t now = tp__now(t) / 1000;
  while (sqlite3_step(st) == SQLITE_ROW) {
    printf("  %s  %s%s\n", (const char *)sqlite3_column_text(st, 1),
           (const char *)sqlite3_column_text(st, 2),
           sqlite3_column_int64(st, 0) <= now ? "  (past)" : "");
  }
  sqlite3_finalize(st);
}

static int run(const campaign_args *a, tpc_config *cfg, tpc_tenant *t, const char *name,
               const char *tmp) {
  char err[2048], live[2 * PATH_MAX], copy[2 * PATH_MAX];
  tpc_tenant_file(cfg->data_dir, t->id, ".db", live, sizeof live);
  tpc_tenant_file(tmp, t->id, ".db", copy, sizeof copy);
  if (tpc_add_campaign(cfg, t, a->file, err, sizeof err) != 0) {
    printf("%s: %s\n", a->file, err);
    return 1;
  }
  if (snapshot(live, copy, err, sizeof err) != 0) {
    fprintf(stderr, "tidepool: %s\n", err);
    return 2;
  }
  /* one tenant, on the copy: the chosen one first, the count restored for tpc_free */
  tpc_tenant first = cfg->tenants[0];
  cfg->tenants[0] = *t;
  *t = first;
  int ntenants = cfg->ntenants;
  cfg->ntenants = 1;
  char *data_dir = cfg->data_dir;
  cfg->data_dir = (char *)tmp;
  tp_host h;
  int status = 2;
  if (tp_host_open(&h, cfg, err, sizeof err) != 0) {
    fprintf(stderr, "tidepool: %s\n", err);
  } else {
    tp_tenant *ht = &h.tenants[0];
    tp_slot *s = tp__slot(ht, name);
    if (!s || !s->current) {
      print_problem(a->file, s ? s->last_error : "the campaign did not load");
      status = 1;
    } else {
      printf("%s: ok (campaign %s, version %s, tenant %s, times in %s)\n", a->file,
             name + strlen("campaign_"), s->current->version, ht->conf->id, ht->conf->timezone);
      if (strcmp(a->mode, "preview") == 0) print_timeline(ht, name);
      status = 0;
    }
  }
  tp_host_close(&h);
  cfg->data_dir = data_dir;
  cfg->ntenants = ntenants;
  *t = cfg->tenants[0];
  cfg->tenants[0] = first;
  return status;
}

int tpcmd_campaign(int argc, char **argv) {
  campaign_args a;
  int rc = parse_args(argc, argv, &a);
  if (rc == 1) fputs(tpcmd_usage_campaign, stdout);
  if (rc != 0) return rc == 1 ? 0 : 2;
  struct stat st;
  if (stat(a.file, &st) != 0 || !S_ISREG(st.st_mode)) {
    fprintf(stderr, "tidepool: %s: no such file\n", a.file);
    return 2;
  }
  tp_log_set_level(TP_LOG_OFF);  /* the load's problem is printed as file:line instead */
  tpc_config cfg;
  char err[1024];
  if (tpc_load(a.config, &cfg, err, sizeof err) != 0) {
    fprintf(stderr, "tidepool: %s\n", err);
    return 2;
  }
  cfg.lazy_tenants = false;  /* the copy is opened here and now, whatever the serving host does */
  const char *base = strrchr(a.file, '/') ? strrchr(a.file, '/') + 1 : a.file;
  char name[64];
  snprintf(name, sizeof name, "campaign_%.*s", (int)(strlen(base) > 4 ? strlen(base) - 4 : 0), base);
  tpc_tenant *t = pick_tenant(&cfg, a.tenant, name);
  const char *tmpdir = getenv("TMPDIR");
  char tmp[PATH_MAX];
  snprintf(tmp, sizeof tmp, "%s/tidepool-campaign-XXXXXX", tmpdir && *tmpdir ? tmpdir : "/tmp");
  if (!t) {
    rc = 2;
  } else if (!mkdtemp(tmp)) {
    fprintf(stderr, "tidepool: cannot create a temporary folder: %s\n", strerror(errno));
    rc = 2;
  } else {
    rc = run(&a, &cfg, t, name, tmp);
    remove_scratch(tmp);
  }
  tpc_free(&cfg);
  return rc;
}
