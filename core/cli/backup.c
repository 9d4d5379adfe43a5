/*
** backup.c - the backup and restore commands (backup.h).
*/
#include "cli/backup.h"

#include <limits.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/clock.h"
#include "config/config.h"
#include "store/backup.h"

const char tpcmd_usage_backup[] =
    "usage: tidepool backup --config FILE [--tenant T]\n"
    "\n"
    "Copies each brand's database (or T's) into the config's backup folder now,\n"
    "online: a running host goes on serving. The copy is the database as one\n"
    "commit left it; then only the config's `keep` newest copies are kept.\n"
    "The config needs backup = {dir = \"...\"} (every_seconds and keep optional).\n"
    "\n"
    "Exit status: 0 every copy taken, 1 some failed, 2 usage.\n";

const char tpcmd_usage_restore[] =
    "usage: tidepool restore --config FILE --tenant T [--file NAME|PATH] [--check]\n"
    "\n"
    "Puts T's database back from a backup: the newest in the config's backup\n"
    "folder, or --file (a name that folder lists, or a path). No host may be\n"
    "serving T (restore takes the brand's lock, as a host does). What is there\n"
    "is backed up first, so the restore can be undone the same way.\n"
    "\n"
    "--check  restore into a scratch file instead, open it and check it\n"
    "         (integrity, tables, jobs); the brand is not touched\n"
    "\n"
    "Exit status: 0 restored (or checked), 1 failed, 2 usage.\n";

typedef struct options {
  const char *config, *tenant, *file;
  bool check;
} options;

static int parse(int argc, char **argv, options *o, const char *usage) {
  for (int i = 0; i < argc; i++) {
    const char *a = argv[i];
    if (strcmp(a, "--help") == 0 || strcmp(a, "-h") == 0) {
      fputs(usage, stdout);
      return 1;
    }
    if (strcmp(a, "--check") == 0 && usage == tpcmd_usage_restore) {
      o->check = true;
      continue;
    }
    const char **slot = strcmp(a, "--config") == 0 ? &o->config
                      : strcmp(a, "--tenant") == 0 ? &o->tenant
                      : strcmp(a, "--file") == 0 && usage == tpcmd_usage_restore ? &o->file : NULL;
    if (!slot || i + 1 >= argc) {
      fprintf(stderr, "tidepool: %s '%s'\n\n%s", slot ? "missing value for" : "unknown option", a, usage);
      return 2;
    }
    *slot = argv[++i];
  }
  if (!o->config || (usage == tpcmd_usage_restore && !o->tenant)) {
    fprintf(stderr, "tidepool: %s\n\n%s", usage == tpcmd_usage_restore ? "restore needs --config and --tenant"
                                                                      : "backup needs --config", usage);
    return 2;
  }
  return 0;
}

/* The config, with backups configured and T served: 0, or 1 (said). */
static int load(const options *o, tpc_config *cfg, const tpc_tenant **t) {
  char err[1024];
  if (tpc_load(o->config, cfg, err, sizeof err) != 0) {
    fprintf(stderr, "tidepool: %s\n", err);
    return 1;
  }
  if (!cfg->backup.dir) {
    fprintf(stderr, "tidepool: %s has no backup = {dir = \"...\"}: there is nowhere to keep copies\n", o->config);
    return 1;
  }
  *t = NULL;
  if (o->tenant && !(*t = tpc_find_tenant(cfg, o->tenant, strlen(o->tenant)))) {
    fprintf(stderr, "tidepool: %s serves no tenant '%s'\n", o->config, o->tenant);
    return 1;
  }
  return 0;
}

static int take(const tpc_config *cfg, const char *tenant) {
  char db[PATH_MAX], name[TPBK_NAME_MAX], err[1024];
  tpc_tenant_file(cfg->data_dir, tenant, ".db", db, sizeof db);
  int64_t bytes, start = tp_clock_wall_ms();
  if (tpbk_take(db, cfg->backup.dir, tenant, start, name, &bytes, err, sizeof err) != 0) {
    fprintf(stderr, "tidepool: %s: backup failed: %s\n", tenant, err);
    return 1;
  }
  int pruned = tpbk_prune(cfg->backup.dir, tenant, (int)cfg->backup.keep, err, sizeof err);
  printf("%s: %s/%s/%s (%lld bytes, %.2f s%s)\n", tenant, cfg->backup.dir, tenant, name, (long long)bytes,
         (double)(tp_clock_wall_ms() - start) / 1000, pruned > 0 ? ", older ones pruned" : "");
  return 0;
}

int tpcmd_backup(int argc, char **argv) {
  options o = {0};
  int rc = parse(argc, argv, &o, tpcmd_usage_backup);
  if (rc) return rc == 1 ? 0 : rc;
  tpc_config cfg;
  const tpc_tenant *t;
  if (load(&o, &cfg, &t) != 0) return 1;
  int failed = 0;
  for (int i = 0; i < cfg.ntenants; i++)
    if (!t || t == &cfg.tenants[i]) failed |= take(&cfg, cfg.tenants[i].id);
  tpc_free(&cfg);
  return failed;
}

/* The backup to restore: --file as a path or as a listed name, else the newest. */
static int pick(const tpc_config *cfg, const options *o, char *out, size_t cap) {
  if (o->file && strchr(o->file, '/')) {
    snprintf(out, cap, "%s", o->file);
    return 0;
  }
  tpbk_entry *all;
  int n;
  char err[1024];
  if (tpbk_list(cfg->backup.dir, o->tenant, &all, &n, err, sizeof err) != 0) {
    fprintf(stderr, "tidepool: %s\n", err);
    return 1;
  }
  int found = -1;
  for (int i = 0; i < n && found < 0; i++)
    if (!o->file || strcmp(all[i].name, o->file) == 0) found = i;
  if (found >= 0) snprintf(out, cap, "%s/%s/%s", cfg->backup.dir, o->tenant, all[found].name);
  else if (o->file) fprintf(stderr, "tidepool: %s/%s has no backup named %s\n", cfg->backup.dir, o->tenant, o->file);
  else fprintf(stderr, "tidepool: %s/%s holds no backup of %s\n", cfg->backup.dir, o->tenant, o->tenant);
  free(all);
  return found >= 0 ? 0 : 1;
}

static int restore(const tpc_config *cfg, const options *o, const char *from) {
  char db[PATH_MAX], err[1024], name[TPBK_NAME_MAX];
  tpc_tenant_file(cfg->data_dir, o->tenant, ".db", db, sizeof db);
  int claim = tpbk_claim(db, err, sizeof err);
  if (claim < 0) {
    fprintf(stderr, "tidepool: cannot restore while %s; stop that host first\n", err);
    return 1;
  }
  int rc = 0;
  int64_t bytes;
  FILE *exists = fopen(db, "rb");
  if (exists) {  /* what is there becomes a backup itself: the restore can be undone */
    fclose(exists);
    if (tpbk_take(db, cfg->backup.dir, o->tenant, tp_clock_wall_ms(), name, &bytes, err, sizeof err) != 0) {
      fprintf(stderr, "tidepool: cannot back up the current database first: %s\n", err);
      rc = 1;
    } else {
      printf("%s: the database as it was is kept as %s/%s/%s\n", o->tenant, cfg->backup.dir, o->tenant, name);
    }
  }
  if (rc == 0 && tpbk_restore(from, db, err, sizeof err) != 0) {
    fprintf(stderr, "tidepool: restore failed: %s\n", err);
    rc = 1;
  }
  if (rc == 0) printf("%s: restored from %s\n", o->tenant, from);
  tpbk_unclaim(claim);
  return rc;
}

int tpcmd_restore(int argc, char **argv) {
  options o = {0};
  int rc = parse(argc, argv, &o, tpcmd_usage_restore);
  if (rc) return rc == 1 ? 0 : rc;
  tpc_config cfg;
  const tpc_tenant *t;
  if (load(&o, &cfg, &t) != 0) return 1;
  char from[PATH_MAX + TPBK_NAME_MAX + 2], err[1024], summary[512];
  rc = pick(&cfg, &o, from, sizeof from);
  if (rc == 0 && o.check) {
    rc = tpbk_check(from, summary, sizeof summary, err, sizeof err) == 0 ? 0 : 1;
    if (rc == 0) printf("%s: %s\n", from, summary);
    else fprintf(stderr, "tidepool: check failed: %s\n", err);
  } else if (rc == 0) {
    rc = restore(&cfg, &o, from);
  }
  tpc_free(&cfg);
  return rc;
}
