/*
** store.c - per-tenant SQLite with savepoints, group commit and an authorizer.
*/
#include "store/store.h"
#include "store/tally.h"

#include <lauxlib.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define TPS_CACHE_KEY "tp.stmt_cache"
#define TPS_CACHE_MAX 512

/* ---- the authorizer: a plugin touches only tables named "<plugin>_..." */

static bool owned(const tps_db *d, const char *name) {
  return name && strncmp(name, d->owner, d->owner_len) == 0 && name[d->owner_len] == '_' &&
         name[d->owner_len + 1] != '\0';
}

/* SQLite's own bookkeeping that statements on owned tables legitimately touch. */
static bool internal_table(const char *name) {
  return name && (strcmp(name, "sqlite_master") == 0 || strcmp(name, "sqlite_temp_master") == 0 ||
                  strcmp(name, "sqlite_schema") == 0 || strcmp(name, "sqlite_sequence") == 0);
}

static bool autoindex_of_owned(const tps_db *d, const char *index, const char *table) {
  return index && strncmp(index, "sqlite_autoindex_", 17) == 0 && owned(d, table);
}

/* Decides one action of a plugin's statement; *why explains a refusal. */
static int decide(const tps_db *d, int action, const char *a, const char *b, const char **why) {
  switch (action) {
    case SQLITE_SELECT:
    case SQLITE_RECURSIVE:
    case SQLITE_FUNCTION:
      return SQLITE_OK;
    case SQLITE_READ:
    case SQLITE_INSERT:
    case SQLITE_UPDATE:
    case SQLITE_DELETE:
      /* a is the table. DDL reads and writes SQLite's own tables; that is
      ** allowed while migrating (the DDL itself was authorized below) */
      if (owned(d, a) || (d->migrating && internal_table(a))) return SQLITE_OK;
      if (internal_table(a)) *why = " (SQLite's own tables; schema changes belong in migrations)";
      return SQLITE_DENY;
    default:
      break;
  }
  bool ddl = true;
  bool ok;
  switch (action) {
    case SQLITE_CREATE_TABLE:
      /* the first AUTOINCREMENT table makes SQLite create sqlite_sequence */
      ok = owned(d, a) || (a && strcmp(a, "sqlite_sequence") == 0);
      break;
    case SQLITE_CREATE_TEMP_TABLE:
    case SQLITE_CREATE_VIEW:
    case SQLITE_CREATE_TEMP_VIEW:
    case SQLITE_DROP_TABLE:
    case SQLITE_DROP_TEMP_TABLE:
    case SQLITE_DROP_VIEW:
    case SQLITE_DROP_TEMP_VIEW:
      ok = owned(d, a);
      break;
    case SQLITE_CREATE_INDEX:
    case SQLITE_CREATE_TEMP_INDEX:
      /* PRIMARY KEY and UNIQUE make sqlite_autoindex_<table>_N; the table decides */
      ok = autoindex_of_owned(d, a, b) || (owned(d, a) && owned(d, b));
      break;
    case SQLITE_DROP_INDEX:
    case SQLITE_DROP_TEMP_INDEX:
    case SQLITE_CREATE_TRIGGER:
    case SQLITE_CREATE_TEMP_TRIGGER:
    case SQLITE_DROP_TRIGGER:
    case SQLITE_DROP_TEMP_TRIGGER:
      ok = owned(d, a) && owned(d, b);  /* index or trigger, and its table */
      break;
    case SQLITE_REINDEX:  /* also asked when an index is created */
      ok = owned(d, a) || (a && strncmp(a, "sqlite_autoindex_", 17) == 0 && owned(d, a + 17));
      break;
    case SQLITE_ALTER_TABLE:
      ok = owned(d, b);  /* a is the database */
      break;
    default:
      /* PRAGMA, ATTACH, DETACH, TRANSACTION, SAVEPOINT, ANALYZE, virtual
      ** tables: the host's business, never a plugin's */
      ddl = false;
      ok = false;
  }
  if (ok && ddl && !d->migrating) {
    *why = " (schema changes belong in the plugin's migrations)";
    return SQLITE_DENY;
  }
  return ok ? SQLITE_OK : SQLITE_DENY;
}

static const char *action_name(int action) {
  static const char *const names[] = {
      "COPY", "CREATE INDEX", "CREATE TABLE", "CREATE TEMP INDEX", "CREATE TEMP TABLE",
      "CREATE TEMP TRIGGER", "CREATE TEMP VIEW", "CREATE TRIGGER", "CREATE VIEW", "DELETE",
      "DROP INDEX", "DROP TABLE", "DROP TEMP INDEX", "DROP TEMP TABLE", "DROP TEMP TRIGGER",
      "DROP TEMP VIEW", "DROP TRIGGER", "DROP VIEW", "INSERT", "PRAGMA", "READ", "SELECT",
      "TRANSACTION", "UPDATE", "ATTACH", "DETACH", "ALTER TABLE", "REINDEX", "ANALYZE",
      "CREATE VTABLE", "DROP VTABLE", "FUNCTION", "SAVEPOINT", "RECURSIVE"};
  return action >= 0 && action < (int)(sizeof names / sizeof *names) ? names[action] : "?";
}

static int authorize(void *ud, int action, const char *a, const char *b, const char *dbname,
                     const char *trigger) {
  (void)trigger;
  tps_db *d = ud;
  if (!d->owner) return SQLITE_OK;  /* the host itself */
  const char *why = "";
  int verdict = decide(d, action, a, b, &why);
  /* SQLite reports reading a CTE like reading a table without naming a column
  ** (as count(*) does); the two cannot be told apart here, so CTEs carry the
  ** plugin's prefix too, and the refusal says so. */
  if (verdict != SQLITE_OK) {
    if (action == SQLITE_READ && b && !b[0] && !dbname)
      why = " (if this is a WITH name, prefix it like a table)";
    snprintf(d->denied, sizeof d->denied, "%s %s%s%s%s", action_name(action), a ? a : "",
             b && b[0] ? "." : "", b ? b : "", why);
  }
  return verdict;
}

const char *tps_errmsg(tps_db *d, char *buf, size_t cap) {
  int code = sqlite3_errcode(d->db);
  if (code == SQLITE_AUTH && d->denied[0])
    snprintf(buf, cap, "not authorized: plugin '%.*s' may only use its own tables (named %.*s_...); "
             "refused: %s", (int)d->owner_len, d->owner ? d->owner : "", (int)d->owner_len,
             d->owner ? d->owner : "", d->denied);
  else
    snprintf(buf, cap, "%s", sqlite3_errmsg(d->db));
  d->denied[0] = '\0';
  return buf;
}

void tps_set_owner(tps_db *d, const char *plugin) {
  d->owner = plugin;
  d->owner_len = plugin ? strlen(plugin) : 0;
}

tps_progress tps_set_progress(tps_db *d, tps_progress next) {
  tps_progress old = d->progress;
  d->progress = next;
  return old;
}

static int on_progress(void *ud) {
  tps_db *d = ud;
  return d->progress.fn ? d->progress.fn(d->progress.ud, TPS_PROGRESS_STEPS) : 0;
}

/* ---- built-in functions whose work one step hides (see tps_set_progress) */

typedef struct shadow_fn {
  const char *name;
  int nargs;
  const char *sql;
} shadow_fn;

static const shadow_fn shadow_fns[] = {
    {"like", 2, "SELECT like(?1, ?2)"},       {"like", 3, "SELECT like(?1, ?2, ?3)"},
    {"glob", 2, "SELECT glob(?1, ?2)"},       {"instr", 2, "SELECT instr(?1, ?2)"},
    {"replace", 3, "SELECT replace(?1, ?2, ?3)"}, {"trim", 2, "SELECT trim(?1, ?2)"},
    {"ltrim", 2, "SELECT ltrim(?1, ?2)"},     {"rtrim", 2, "SELECT rtrim(?1, ?2)"}};
#define NSHADOW (sizeof shadow_fns / sizeof *shadow_fns)

struct tps_shadow_call {
  tps_db *d;
  sqlite3_stmt *st;          /* on d->shadow */
};

/* The overload: n x m charged first, then the built-in on the shadow
** connection. The user data is the function's tps_shadow_call. */
static void charged_call(sqlite3_context *ctx, int argc, sqlite3_value **argv) {
  struct tps_shadow_call *c = sqlite3_user_data(ctx);
  tps_db *d = c->d;
  double compares = (double)sqlite3_value_bytes(argv[0]) * (double)sqlite3_value_bytes(argv[1]);
  int64_t steps = (int64_t)(compares / TPS_COMPARES_PER_STEP > 1e15 ? 1e15
                                                                    : compares / TPS_COMPARES_PER_STEP);
  if (d->progress.fn && d->progress.fn(d->progress.ud, steps)) {
    sqlite3_result_error_code(ctx, SQLITE_INTERRUPT);
    return;
  }
  for (int i = 0; i < argc; i++) sqlite3_bind_value(c->st, i + 1, argv[i]);
  if (sqlite3_step(c->st) == SQLITE_ROW) sqlite3_result_value(ctx, sqlite3_column_value(c->st, 0));
  else sqlite3_result_error(ctx, sqlite3_errmsg(d->shadow), -1);
  sqlite3_reset(c->st);
  sqlite3_clear_bindings(c->st);
}

/* Opens the shadow connection and overloads the functions on d->db. */
static int overload_costly_functions(tps_db *d) {
  if (sqlite3_open_v2(":memory:", &d->shadow, SQLITE_OPEN_READWRITE | SQLITE_OPEN_NOMUTEX,
                      NULL) != SQLITE_OK)
    return -1;
  sqlite3_db_config(d->shadow, SQLITE_DBCONFIG_LOOKASIDE, NULL, 0, 0);  /* a few statements */
  d->shadow_calls = calloc(NSHADOW, sizeof *d->shadow_calls);
  if (!d->shadow_calls) return -1;
  for (size_t i = 0; i < NSHADOW; i++) {
    struct tps_shadow_call *c = &d->shadow_calls[i];
    c->d = d;
    if (sqlite3_prepare_v3(d->shadow, shadow_fns[i].sql, -1, SQLITE_PREPARE_PERSISTENT, &c->st,
                           NULL) != SQLITE_OK ||
        sqlite3_create_function(d->db, shadow_fns[i].name, shadow_fns[i].nargs,
                                SQLITE_UTF8 | SQLITE_DETERMINISTIC, c, charged_call, NULL,
                                NULL) != SQLITE_OK)
      return -1;
  }
  return 0;
}

static void close_shadow(tps_db *d) {
  for (size_t i = 0; d->shadow_calls && i < NSHADOW; i++) sqlite3_finalize(d->shadow_calls[i].st);
  free(d->shadow_calls);
  d->shadow_calls = NULL;
  if (d->shadow) sqlite3_close(d->shadow);
  d->shadow = NULL;
}

/* ---- opening */

static int prepare_fixed(tps_db *d, const char *sql, sqlite3_stmt **st) {
  return sqlite3_prepare_v3(d->db, sql, -1, SQLITE_PREPARE_PERSISTENT, st, NULL);
}

/* Before SQLite initializes, so before the process's first open (later calls
** are refused by SQLite and change nothing):
** - SQLite counts every allocation under a global mutex for sqlite3_status(),
**   which nothing here reads: about 170 lock pairs per flash-sale buy.
** - A request runs in a savepoint, and every page it changes that existed
**   when the savepoint began goes to the statement journal (whether or not
**   the batch had changed it before), in memory up to 64 KiB by
**   default and in a temporary file past that: create, unlink, writes and
**   close, for one buy in five of the demo brand (its 19 plugins touch 20-30
**   pages). TPS_STMT_JOURNAL_SPILL keeps 32 pages in memory. Not more: with
**   Debian 12's SQLite (3.40.1) a journal kept in memory past 128 KiB fails
**   with SQLITE_FULL when it does spill (test_store), and SQLite allocates
**   that journal in chunks of this size anyway. */
#define TPS_STMT_JOURNAL_SPILL (128 << 10)

static void configure_sqlite(void) {
  static bool done;
  if (!done) {
    sqlite3_config(SQLITE_CONFIG_MEMSTATUS, 0);
    sqlite3_config(SQLITE_CONFIG_STMTJRNL_SPILL, TPS_STMT_JOURNAL_SPILL);
  }
  done = true;
}

static const char *const sync_sql[] = {"PRAGMA synchronous=OFF", "PRAGMA synchronous=NORMAL",
                                       "PRAGMA synchronous=FULL", "PRAGMA synchronous=EXTRA"};

bool tps_request_clean(const tps_db *d) {
  return !d->request_wrote && !tpdep_meets(&d->read, &d->written) && !tpws_meets(d, &d->read);
}

static void note(tps_db *d, const char *owner, bool write) {
  tpdep_add(&d->read, owner);
  if (write) tpdep_add(&d->written, owner);
}

static bool ident_char(char c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_';
}

/* A host statement: each _tp_ table its SQL names; the host at large when it
** names none, or is a trigger's ("-- TRIGGER name"). */
static void note_host(tps_db *d, const char *sql, bool write) {
  bool named = false;
  const char *text = sql && sql[0] != '-' ? sql : "";
  for (const char *p = text; (p = strstr(p, "_tp_")) != NULL;) {
    if (p > text && ident_char(p[-1])) {  /* inside another name */
      p += 4;
      continue;
    }
    size_t n = 4;
    while (ident_char(p[n])) n++;
    char name[TPDEP_NAME];
    if (n >= sizeof name) break;  /* the host at large */
    memcpy(name, p, n);
    name[n] = '\0';
    note(d, name, write);
    named = true;
    p += n;
  }
  if (!named) note(d, NULL, write);
}

/* Notes whose tables a statement may read or write as it starts (deps.h),
** in a batch or not (a token's alias is read before its request joins one);
** a trigger's statements start inside it and count for the same owner. */
static int on_statement(unsigned type, void *ud, void *stmt, void *sql) {
  tps_db *d = ud;
  if (type != SQLITE_TRACE_STMT || d->control) return 0;
  bool write = !sqlite3_stmt_readonly(stmt);
  /* outside a request only a write that a durable commit will make counts
  ** (the sender's own reads and leases are none: they cost nothing here) */
  if (!d->in_request && !(write && d->ws.durable)) return 0;
  if (d->plugin_sql) note(d, d->owner, write);
  else note_host(d, sql, write);
  if (write) d->request_wrote = true;
  return 0;
}

/* Every transaction that wrote, a batch's or one statement's on its own (a
** migration, the clock), is about to commit: the owners it wrote owe a sync
** when the sync is deferred (walsync.h). Returning 0 lets it commit. */
static int on_commit(void *ud) {
  tpws_committed(ud);
  return 0;
}

void tps_request_begin(tps_db *d) {
  d->request_wrote = false;
  d->in_request = true;
  tpdep_clear(&d->read);
}

void tps_request_end(tps_db *d) { d->in_request = false; }

int tps_set_durable(tps_db *d, bool durable) {
  if (d->in_txn || !sqlite3_get_autocommit(d->db)) return -1;
  if (d->ws.on) {  /* SQLite stays at NORMAL; the commit owes a sync, or not */
    d->ws.durable = durable;
    return 0;
  }
  /* NORMAL, not OFF: in WAL mode NORMAL skips only the commit's sync. OFF
  ** would also skip the syncs around a checkpoint that such a commit runs,
  ** and a WAL started over after an unsynced checkpoint loses durable commits
  ** with the power. */
  int level = durable ? d->sync : d->sync < 1 ? d->sync : 1;
  return sqlite3_exec(d->db, sync_sql[level], NULL, NULL, NULL) == SQLITE_OK ? 0 : -1;
}

int tps_open(tps_db *d, const char *path, tpc_sync sync, char *err, size_t errcap) {
  memset(d, 0, sizeof *d);
  configure_sqlite();
  d->path = strdup(path);
  d->sync = (int)sync;
  d->ws.durable = true;
  d->ws.wal_fd = -1;
  int rc = sqlite3_open_v2(path, &d->db,
                           SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX |
                               SQLITE_OPEN_URI, NULL);  /* URI: the read-only ATTACH (track.h) */
  if (rc != SQLITE_OK) {
    snprintf(err, errcap, "%s: %s", path, d->db ? sqlite3_errmsg(d->db) : sqlite3_errstr(rc));
    goto fail;
  }
  sqlite3_extended_result_codes(d->db, 1);
  sqlite3_busy_timeout(d->db, 5000);
  sqlite3_trace_v2(d->db, SQLITE_TRACE_STMT, on_statement, d);
  sqlite3_commit_hook(d->db, on_commit, d);
  sqlite3_db_config(d->db, SQLITE_DBCONFIG_DEFENSIVE, 1, NULL);
  sqlite3_db_config(d->db, SQLITE_DBCONFIG_TRUSTED_SCHEMA, 0, NULL);
  sqlite3_limit(d->db, SQLITE_LIMIT_ATTACHED, 0);
  sqlite3_limit(d->db, SQLITE_LIMIT_LENGTH, 16 << 20);
  sqlite3_limit(d->db, SQLITE_LIMIT_SQL_LENGTH, 1 << 20);
  char e[256];
  /* a 64 MiB page cache (SQLite's default is 2 MiB): a flash sale touches
  ** per-user index pages all over the file */
  if (tps_exec_script(d, "PRAGMA journal_mode=WAL; PRAGMA foreign_keys=ON; PRAGMA cache_size=-65536;",
                      e, sizeof e) != 0 ||
      tps_exec_script(d, sync_sql[sync], e, sizeof e) != 0 ||
      tps_exec_script(d,
                      "CREATE TABLE IF NOT EXISTS _tp_migrations ("
                      " plugin TEXT PRIMARY KEY, version INTEGER NOT NULL,"
                      " applied_at INTEGER NOT NULL DEFAULT (unixepoch()))",
                      e, sizeof e) != 0) {
    snprintf(err, errcap, "%s: %s", path, e);
    goto fail;
  }
  if (prepare_fixed(d, "BEGIN", &d->begin) || prepare_fixed(d, "COMMIT", &d->commit) ||
      prepare_fixed(d, "ROLLBACK", &d->rollback) ||
      prepare_fixed(d, "SAVEPOINT tp_request", &d->savepoint) ||
      prepare_fixed(d, "RELEASE tp_request", &d->release) ||
      prepare_fixed(d, "ROLLBACK TO tp_request", &d->rollback_to) ||
      prepare_fixed(d, "SAVEPOINT tp_call", &d->call_savepoint) ||
      prepare_fixed(d, "RELEASE tp_call", &d->call_release) ||
      prepare_fixed(d, "ROLLBACK TO tp_call", &d->call_rollback_to)) {
    snprintf(err, errcap, "%s: %s", path, sqlite3_errmsg(d->db));
    goto fail;
  }
  sqlite3_set_authorizer(d->db, authorize, d);
  sqlite3_progress_handler(d->db, TPS_PROGRESS_STEPS, on_progress, d);
  if (tptally_register(d->db) != SQLITE_OK) {
    snprintf(err, errcap, "%s: cannot add tally(): %s", path, sqlite3_errmsg(d->db));
    goto fail;
  }
  if (overload_costly_functions(d) != 0) {
    snprintf(err, errcap, "%s: cannot overload the built-in functions: %s", path,
             d->shadow ? sqlite3_errmsg(d->shadow) : "out of memory");
    goto fail;
  }
  return 0;
fail:
  tps_close(d);
  return -1;
}

void tps_close(tps_db *d) {
  close_shadow(d);
  tpws_close(d);
  if (d->db) {
    sqlite3_stmt *fixed[] = {d->begin, d->commit, d->rollback, d->savepoint, d->release,
                             d->rollback_to, d->call_savepoint, d->call_release,
                             d->call_rollback_to};
    for (size_t i = 0; i < sizeof fixed / sizeof *fixed; i++) sqlite3_finalize(fixed[i]);
    if (d->in_txn) sqlite3_exec(d->db, "ROLLBACK", NULL, NULL, NULL);
    if (sqlite3_close(d->db) != SQLITE_OK) {  /* a statement left unfinalized: a host bug */
      fprintf(stderr, "tidepool: closing %s: %s\n", d->path, sqlite3_errmsg(d->db));
      sqlite3_close_v2(d->db);
    }
  }
  free(d->path);
  memset(d, 0, sizeof *d);
}

int tps_exec_script(tps_db *d, const char *sql, char *err, size_t errcap) {
  char *msg = NULL;
  if (sqlite3_exec(d->db, sql, NULL, NULL, &msg) != SQLITE_OK) {
    snprintf(err, errcap, "%s", msg ? msg : sqlite3_errmsg(d->db));
    sqlite3_free(msg);
    return -1;
  }
  return 0;
}

/* ---- transactions */

static int step_fixed(sqlite3_stmt *st) {
  int rc = sqlite3_step(st);
  sqlite3_reset(st);
  return rc == SQLITE_DONE ? 0 : rc;
}

int tps_batch_begin(tps_db *d) {
  if (d->in_txn) return 0;
  const char *owner = d->owner;
  tps_set_owner(d, NULL);
  d->control = true;  /* nobody's read or write (deps.h) */
  int rc = step_fixed(d->begin);
  d->control = false;
  tps_set_owner(d, owner);
  if (rc == 0) {
    d->in_txn = true;
    d->aborted = false;  /* commit_failed stays: answers held back may rest on it */
    d->batch_size = 0;
    tpdep_clear(&d->written);
  }
  return rc;
}

bool tps_batch_alive(tps_db *d) {
  if (d->in_txn && !d->aborted && sqlite3_get_autocommit(d->db)) {
    d->aborted = true;
    d->commit_failed = true;
  }
  return !d->aborted;
}

/* Savepoint statements run with the host's privileges, as nobody's read or
** write (deps.h). */
static int host_step(tps_db *d, sqlite3_stmt *st) {
  const char *owner = d->owner;
  tps_set_owner(d, NULL);
  d->control = true;
  int rc = step_fixed(st);
  d->control = false;
  tps_set_owner(d, owner);
  return rc;
}

int tps_savepoint(tps_db *d) {
  d->batch_size++;
  return host_step(d, d->savepoint);
}

int tps_release(tps_db *d) { return host_step(d, d->release); }

int tps_rollback_to(tps_db *d) {
  int rc = host_step(d, d->rollback_to);
  return rc ? rc : host_step(d, d->release);
}

int tps_call_begin(tps_db *d) { return host_step(d, d->call_savepoint); }

void tps_call_end(tps_db *d, bool keep) {
  if (!keep) host_step(d, d->call_rollback_to);
  host_step(d, d->call_release);
}

int tps_commit(tps_db *d, char *err, size_t errcap) {
  if (!d->in_txn) return 0;
  d->in_txn = false;
  if (d->aborted) {
    snprintf(err, errcap, "a statement rolled the whole transaction back (OR ROLLBACK, "
             "RAISE(ROLLBACK) or an I/O error)");
    return SQLITE_ABORT;
  }
  int rc = host_step(d, d->commit);  /* on_commit notes what it owes */
  if (rc == 0) return 0;
  snprintf(err, errcap, "%s", sqlite3_errmsg(d->db));
  d->commit_failed = true;
  if (!sqlite3_get_autocommit(d->db)) host_step(d, d->rollback);
  return rc;
}

/* ---- migrations */

static int migration_version(tps_db *d, const char *plugin, int *version) {
  sqlite3_stmt *st;
  *version = 0;
  if (sqlite3_prepare_v2(d->db, "SELECT version FROM _tp_migrations WHERE plugin = ?", -1, &st,
                         NULL) != SQLITE_OK)
    return -1;
  sqlite3_bind_text(st, 1, plugin, -1, SQLITE_STATIC);
  int rc = sqlite3_step(st);
  if (rc == SQLITE_ROW) *version = sqlite3_column_int(st, 0);
  sqlite3_finalize(st);
  return rc == SQLITE_ROW || rc == SQLITE_DONE ? 0 : -1;
}

/* Migrations run with foreign keys off. That is SQLite's recipe for changing a
** table another references (new table, copy, drop, rename: "Making Other Kinds
** Of Table Schema Changes"): with them on, the DROP first deletes every row and
** fails on the children, so a plugin could never rebuild such a table, say to
** take an IN list out of a CHECK. The rest of the recipe is the check before
** COMMIT: every table of the plugin's that has a foreign key, or is the parent
** of one, is run through PRAGMA foreign_key_check, and a row left without its
** parent fails the migration as the statement itself would have failed with
** them on. Only a plugin with foreign keys pays for that scan, and only when a
** migration runs. */
static int set_foreign_keys(tps_db *d, bool on) {
  char e[128];
  return tps_exec_script(d, on ? "PRAGMA foreign_keys=ON" : "PRAGMA foreign_keys=OFF", e, sizeof e);
}

/* The tables a foreign key of the plugin's tables touches, as child or parent. */
#define FK_TABLES_SQL                                                                   \
  "SELECT DISTINCT m.name FROM sqlite_schema m, pragma_foreign_key_list(m.name) f"      \
  " WHERE m.type = 'table' AND (m.name LIKE ?1 ESCAPE '\\' OR f.\"table\" LIKE ?1 ESCAPE '\\')" \
  " ORDER BY m.name"

/* 0 if no row of those tables lost its parent; else -1, the first such row in err. */
static int check_foreign_keys(tps_db *d, const char *plugin, char *err, size_t errcap) {
  char like[80];
  snprintf(like, sizeof like, "%s\\_%%", plugin);  /* plugin names are [a-z0-9_] */
  sqlite3_stmt *tables = NULL, *check = NULL;
  int rc = sqlite3_prepare_v2(d->db, FK_TABLES_SQL, -1, &tables, NULL);
  if (rc == SQLITE_OK)
    rc = sqlite3_prepare_v2(d->db, "SELECT \"table\", rowid, parent FROM pragma_foreign_key_check(?1)"
                            " LIMIT 1", -1, &check, NULL);
  if (rc != SQLITE_OK) {
    snprintf(err, errcap, "checking foreign keys: %s", sqlite3_errmsg(d->db));
    sqlite3_finalize(tables);
    return -1;
  }
  sqlite3_bind_text(tables, 1, like, -1, SQLITE_STATIC);
  int bad = 0;
  while (!bad && (rc = sqlite3_step(tables)) == SQLITE_ROW) {
    sqlite3_bind_text(check, 1, (const char *)sqlite3_column_text(tables, 0), -1, SQLITE_TRANSIENT);
    rc = sqlite3_step(check);
    if (rc == SQLITE_ROW) {
      snprintf(err, errcap, "the migrations left a row of %s (rowid %lld) whose parent in %s is "
               "gone (foreign keys are checked when a plugin's migrations end)",
               (const char *)sqlite3_column_text(check, 0), (long long)sqlite3_column_int64(check, 1),
               (const char *)sqlite3_column_text(check, 2));
      bad = 1;
    } else if (rc != SQLITE_DONE) {
      snprintf(err, errcap, "checking foreign keys: %s", sqlite3_errmsg(d->db));
      bad = 1;
    }
    sqlite3_reset(check);
  }
  if (!bad && rc != SQLITE_DONE) {
    snprintf(err, errcap, "checking foreign keys: %s", sqlite3_errmsg(d->db));
    bad = 1;
  }
  sqlite3_finalize(tables);
  sqlite3_finalize(check);
  return bad ? -1 : 0;
}

static int apply_migrations(tps_db *d, const char *plugin, lua_State *L, int idx, int have,
                            int want, char *err, size_t errcap);

int tps_migrate(tps_db *d, const char *plugin, lua_State *L, int idx, int *applied, char *err,
                size_t errcap) {
  int have, want = lua_istable(L, idx) ? (int)luaL_len(L, idx) : 0;
  *applied = 0;
  if (migration_version(d, plugin, &have) != 0) {
    snprintf(err, errcap, "reading migration state: %s", sqlite3_errmsg(d->db));
    return -1;
  }
  if (have > want) {
    snprintf(err, errcap, "the database is at migration %d but the plugin declares only %d "
             "(a downgrade is not possible)", have, want);
    return -1;
  }
  if (have == want) return 0;
  if (set_foreign_keys(d, false) != 0) {
    snprintf(err, errcap, "starting migrations: %s", sqlite3_errmsg(d->db));
    return -1;
  }
  int rc = apply_migrations(d, plugin, L, idx, have, want, err, errcap);
  if (set_foreign_keys(d, true) != 0 && rc == 0) {
    snprintf(err, errcap, "foreign keys back on after the migrations: %s", sqlite3_errmsg(d->db));
    rc = -1;  /* the migrations are committed; the connection is not fit to serve */
  }
  if (rc == 0) *applied = want - have;
  return rc;
}

/* have+1 .. want in one transaction, the foreign keys checked before COMMIT. */
static int apply_migrations(tps_db *d, const char *plugin, lua_State *L, int idx, int have,
                            int want, char *err, size_t errcap) {
  char e[512];
  if (tps_exec_script(d, "BEGIN IMMEDIATE", e, sizeof e) != 0) {
    snprintf(err, errcap, "starting migrations: %s", e);
    return -1;
  }
  for (int v = have + 1; v <= want; v++) {
    lua_rawgeti(L, idx, v);
    const char *sql = lua_tostring(L, -1);
    tps_set_owner(d, plugin);
    d->migrating = true;
    d->plugin_sql = true;  /* the plugin's own SQL (deps.h) */
    int rc = sql ? tps_exec_script(d, sql, e, sizeof e) : -1;
    d->plugin_sql = false;
    if (rc != 0 && sqlite3_errcode(d->db) == SQLITE_AUTH) tps_errmsg(d, e, sizeof e);
    d->migrating = false;
    tps_set_owner(d, NULL);
    lua_pop(L, 1);
    if (rc != 0) {
      snprintf(err, errcap, "migration %d: %s", v, sql ? e : "must be a string of SQL");
      tps_exec_script(d, "ROLLBACK", e, sizeof e);
      return -1;
    }
  }
  if (check_foreign_keys(d, plugin, err, errcap) != 0) {
    tps_exec_script(d, "ROLLBACK", e, sizeof e);
    return -1;
  }
  char sql[256];
  snprintf(sql, sizeof sql,
           "INSERT INTO _tp_migrations(plugin, version) VALUES ('%s', %d) "
           "ON CONFLICT(plugin) DO UPDATE SET version = excluded.version, applied_at = unixepoch()",
           plugin, want);  /* plugin names are [a-z0-9_]: safe to inline */
  if (tps_exec_script(d, sql, e, sizeof e) != 0 || tps_exec_script(d, "COMMIT", e, sizeof e) != 0) {
    snprintf(err, errcap, "recording migrations: %s", e);
    tps_exec_script(d, "ROLLBACK", e, sizeof e);
    return -1;
  }
  return 0;
}

/* ---- statement cache and binding for the Lua API */

static void push_cache(lua_State *L) {
  if (lua_getfield(L, LUA_REGISTRYINDEX, TPS_CACHE_KEY) == LUA_TTABLE) return;
  lua_pop(L, 1);
  lua_newtable(L);
  lua_pushvalue(L, -1);
  lua_setfield(L, LUA_REGISTRYINDEX, TPS_CACHE_KEY);
  lua_pushinteger(L, 0);
  lua_setfield(L, LUA_REGISTRYINDEX, TPS_CACHE_KEY ".n");
}

sqlite3_stmt *tps_prepare_cached(tps_db *d, lua_State *L, int sql_idx, bool *cached) {
  sql_idx = lua_absindex(L, sql_idx);
  push_cache(L);
  /* stack: ... cache */
  lua_pushvalue(L, sql_idx);
  if (lua_rawget(L, -2) == LUA_TLIGHTUSERDATA) {
    sqlite3_stmt *st = lua_touserdata(L, -1);
    lua_pop(L, 2);
    *cached = true;
    return st;
  }
  lua_pop(L, 1);
  size_t len;
  const char *sql = lua_tolstring(L, sql_idx, &len);
  const char *tail = NULL;
  sqlite3_stmt *st = NULL;
  int rc = sqlite3_prepare_v3(d->db, sql, (int)len, SQLITE_PREPARE_PERSISTENT, &st, &tail);
  if (rc != SQLITE_OK || !st) {
    lua_pop(L, 1);
    *cached = false;
    return NULL;  /* the caller reports sqlite3_errmsg, or "empty statement" */
  }
  while (tail && *tail && (*tail == ' ' || *tail == '\n' || *tail == '\t' || *tail == '\r' || *tail == ';'))
    tail++;
  if (tail && *tail) {  /* one statement per call: no smuggled second statement */
    sqlite3_finalize(st);
    lua_pop(L, 1);
    *cached = false;
    return NULL;
  }
  lua_getfield(L, LUA_REGISTRYINDEX, TPS_CACHE_KEY ".n");
  lua_Integer n = lua_tointeger(L, -1);
  lua_pop(L, 1);
  *cached = n < TPS_CACHE_MAX;
  if (*cached) {
    lua_pushvalue(L, sql_idx);
    lua_pushlightuserdata(L, st);
    lua_rawset(L, -3);
    lua_pushinteger(L, n + 1);
    lua_setfield(L, LUA_REGISTRYINDEX, TPS_CACHE_KEY ".n");
  }
  lua_pop(L, 1);
  return st;
}

/* The names table of st (see tps_push_names): its result columns at 1..ncol,
** its parameters' names without their prefix at ncol+1..ncol+nparams (false
** for a parameter without a name). */
static void make_names(lua_State *L, sqlite3_stmt *st) {
  int ncol = sqlite3_column_count(st), npar = sqlite3_bind_parameter_count(st);
  lua_createtable(L, ncol + npar, 0);
  for (int i = 0; i < ncol; i++) {
    lua_pushstring(L, sqlite3_column_name(st, i));
    lua_rawseti(L, -2, i + 1);
  }
  for (int j = 1; j <= npar; j++) {
    const char *name = sqlite3_bind_parameter_name(st, j);
    if (name && name[1]) lua_pushstring(L, name + 1);
    else lua_pushboolean(L, 0);
    lua_rawseti(L, -2, ncol + j);
  }
}

/* Whether the names at index names fit st as SQLite has it prepared now: it
** prepares a statement again after a schema change, and SELECT * may then have
** more columns than when the names were taken (the parameters' names follow
** the columns', so they would be misplaced too). A renamed column keeps the
** count, but only a migration renames, and a plugin's migrations come with a
** new version: a new state, a new cache. */
static bool names_fit(lua_State *L, sqlite3_stmt *st, int names) {
  return lua_rawlen(L, names) == (lua_Unsigned)(sqlite3_column_count(st) + sqlite3_bind_parameter_count(st));
}

/* Pushes st's names made now, kept in the cache for its next runs. */
static void renew_names(lua_State *L, sqlite3_stmt *st) {
  make_names(L, st);
  if (lua_getfield(L, LUA_REGISTRYINDEX, TPS_CACHE_KEY) == LUA_TTABLE) {
    lua_pushvalue(L, -2);
    lua_rawsetp(L, -2, st);
  }
  lua_pop(L, 1);
}

bool tps_push_names(lua_State *L, sqlite3_stmt *st) {
  if (lua_getfield(L, LUA_REGISTRYINDEX, TPS_CACHE_KEY) != LUA_TTABLE) {
    lua_pop(L, 1);
    return false;
  }
  bool kept = lua_rawgetp(L, -1, st) == LUA_TTABLE && names_fit(L, st, lua_gettop(L));
  lua_remove(L, -2);
  if (!kept) {  /* none yet, or made before an earlier run prepared st again */
    lua_pop(L, 1);
    renew_names(L, st);
  }
  return true;
}

void tps_cache_clear(lua_State *L) {
  if (lua_getfield(L, LUA_REGISTRYINDEX, TPS_CACHE_KEY) != LUA_TTABLE) {
    lua_pop(L, 1);
    return;
  }
  lua_pushnil(L);
  while (lua_next(L, -2)) {
    if (lua_type(L, -1) == LUA_TLIGHTUSERDATA) sqlite3_finalize(lua_touserdata(L, -1));  /* not names */
    lua_pop(L, 1);
  }
  lua_pop(L, 1);
  lua_pushnil(L);
  lua_setfield(L, LUA_REGISTRYINDEX, TPS_CACHE_KEY);
}

static int bind_one(lua_State *L, sqlite3_stmt *st, int col, int idx, char *err, size_t errcap) {
  switch (lua_type(L, idx)) {
    case LUA_TNIL: return sqlite3_bind_null(st, col);
    case LUA_TBOOLEAN: return sqlite3_bind_int(st, col, lua_toboolean(L, idx));
    case LUA_TNUMBER:
      if (lua_isinteger(L, idx)) return sqlite3_bind_int64(st, col, lua_tointeger(L, idx));
      return sqlite3_bind_double(st, col, lua_tonumber(L, idx));
    case LUA_TSTRING: {
      size_t n;
      const char *s = lua_tolstring(L, idx, &n);
      return sqlite3_bind_text(st, col, s, (int)n, SQLITE_TRANSIENT);
    }
    case LUA_TLIGHTUSERDATA:
      if (!lua_touserdata(L, idx)) return sqlite3_bind_null(st, col);  /* json null */
      break;
    default: break;
  }
  snprintf(err, errcap, "cannot bind a %s (parameter %d)", luaL_typename(L, idx), col);
  return -1;
}

int tps_bind_lua(lua_State *L, sqlite3_stmt *st, int args, int n, int names, char *err, size_t errcap) {
  int want = sqlite3_bind_parameter_count(st);
  if (n == 1 && lua_istable(L, args)) {  /* named: {id = 1} for :id, @id or $id */
    int ncol = names ? sqlite3_column_count(st) : 0;
    for (int i = 1; i <= want; i++) {
      const char *name = names ? NULL : sqlite3_bind_parameter_name(st, i);
      if (names ? lua_rawgeti(L, names, ncol + i) != LUA_TSTRING : !name || !name[1]) {
        if (names) lua_pop(L, 1);
        snprintf(err, errcap, "parameter %d has no name; pass values positionally", i);
        return -1;
      }
      if (!names) lua_pushstring(L, name + 1);
      lua_rawget(L, args);  /* raw: no plugin code runs while a statement is bound */
      int rc = bind_one(L, st, i, -1, err, errcap);
      lua_pop(L, 1);
      if (rc != SQLITE_OK) return -1;
    }
    return 0;
  }
  if (n != want) {
    snprintf(err, errcap, "statement takes %d parameter%s, got %d", want, want == 1 ? "" : "s", n);
    return -1;
  }
  for (int i = 0; i < n; i++)
    if (bind_one(L, st, i + 1, args + i, err, errcap) != SQLITE_OK) return -1;
  return 0;
}

void tps_push_row(lua_State *L, sqlite3_stmt *st, int names) {
  int ncol = sqlite3_column_count(st);
  if (names && !names_fit(L, st, names)) {  /* this run's step prepared st again */
    renew_names(L, st);
    lua_replace(L, names);
  }
  lua_createtable(L, 0, ncol);
  for (int i = 0; i < ncol; i++) {
    int type = sqlite3_column_type(st, i);
    if (type == SQLITE_NULL) continue;  /* absent key, as Lua has it */
    if (names) lua_rawgeti(L, names, i + 1);
    else lua_pushstring(L, sqlite3_column_name(st, i));
    switch (type) {
      case SQLITE_INTEGER: lua_pushinteger(L, sqlite3_column_int64(st, i)); break;
      case SQLITE_FLOAT: lua_pushnumber(L, sqlite3_column_double(st, i)); break;
      default:
        lua_pushlstring(L, (const char *)sqlite3_column_blob(st, i),
                        (size_t)sqlite3_column_bytes(st, i));
    }
    lua_rawset(L, -3);  /* a fresh table: raw is what setfield would do */
  }
}

void tps_remove(const char *path) {
  static const char *const suffixes[] = {"", "-wal", "-shm", "-journal"};
  char file[4200];
  for (size_t i = 0; i < sizeof suffixes / sizeof *suffixes; i++) {
    snprintf(file, sizeof file, "%s%s", path, suffixes[i]);
    unlink(file);
  }
}
