/*
** Store: the authorizer keeps a plugin inside its own tables; savepoints and
** batches; migrations are all-or-nothing.
*/
#include <lauxlib.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "store/outbox.h"
#include "store/store.h"
#include "tp_test.h"

static tps_db db;
static char err[1024];
static char path[64];

static void open_db(void) {
  snprintf(path, sizeof path, "/tmp/tp_test_store_%d.db", (int)getpid());
  unlink(path);
  tps_open(&db, path, TPC_SYNC_NORMAL, err, sizeof err);
}

static void close_db(void) {
  tps_close(&db);
  char p[80];
  unlink(path);
  snprintf(p, sizeof p, "%s-wal", path);
  unlink(p);
  snprintf(p, sizeof p, "%s-shm", path);
  unlink(p);
}

/* Runs sql as plugin owner (in a handler, or in a migration: ddl); returns 0,
** or -1 with the explained error in err. */
static int run_as(const char *owner, bool ddl, const char *sql) {
  tps_set_owner(&db, owner);
  db.migrating = ddl;
  int rc = tps_exec_script(&db, sql, err, sizeof err);
  if (rc != 0) tps_errmsg(&db, err, sizeof err);
  db.migrating = false;
  tps_set_owner(&db, NULL);
  return rc;
}

static int as(const char *owner, const char *sql) { return run_as(owner, false, sql); }
static int ddl(const char *owner, const char *sql) { return run_as(owner, true, sql); }

static int64_t scalar(const char *sql) {
  sqlite3_stmt *st;
  int64_t v = -1;
  if (sqlite3_prepare_v2(db.db, sql, -1, &st, NULL) == SQLITE_OK && sqlite3_step(st) == SQLITE_ROW)
    v = sqlite3_column_int64(st, 0);
  sqlite3_finalize(st);
  return v;
}

static long long count(const char *table) {
  char sql[128];
  snprintf(sql, sizeof sql, "SELECT count(*) FROM %s", table);
  return scalar(sql);
}

TEST(plugin_uses_its_own_tables) {
  open_db();
  ASSERT_EQ(ddl("catalog", "CREATE TABLE catalog_items (id INTEGER PRIMARY KEY, code TEXT UNIQUE)"), 0);
  ASSERT_EQ(ddl("catalog", "CREATE INDEX catalog_items_code ON catalog_items(code)"), 0);
  ASSERT_EQ(as("catalog", "INSERT INTO catalog_items(code) VALUES ('a') RETURNING id"), 0);
  ASSERT_EQ(as("catalog", "UPDATE catalog_items SET code = 'b'"), 0);
  ASSERT_EQ(ddl("catalog", "ALTER TABLE catalog_items ADD COLUMN price_fen INTEGER"), 0);
  ASSERT_EQ(as("catalog", "WITH RECURSIVE catalog_n(x) AS (SELECT 1 UNION ALL SELECT x+1 FROM"
                          " catalog_n WHERE x<3) SELECT count(*) FROM catalog_n"), 0);
  ASSERT_EQ(as("catalog", "SELECT count(*) FROM (SELECT id FROM catalog_items) AS sub"), 0);
  ASSERT_EQ(ddl("catalog", "CREATE VIEW catalog_cheap AS SELECT * FROM catalog_items WHERE price_fen < 100"), 0);
  ASSERT_EQ(as("catalog", "SELECT * FROM catalog_cheap"), 0);
  ASSERT_EQ(as("catalog", "DELETE FROM catalog_items"), 0);
  close_db();
}

TEST(plugin_cannot_touch_other_tables) {
  open_db();
  ASSERT_EQ(ddl("orders", "CREATE TABLE orders_rows (id INTEGER PRIMARY KEY, v TEXT)"), 0);
  ASSERT_EQ(ddl("catalog", "CREATE TABLE catalog_items (id INTEGER PRIMARY KEY)"), 0);
  const char *attempts[] = {
      "SELECT * FROM orders_rows",
      "SELECT count(*) FROM orders_rows",
      "SELECT 1 WHERE EXISTS (SELECT 1 FROM orders_rows)",
      "INSERT INTO orders_rows(v) VALUES ('x')",
      "UPDATE orders_rows SET v = 'y'",
      "DELETE FROM orders_rows",
      "DROP TABLE orders_rows",
      "ALTER TABLE orders_rows ADD COLUMN z",
      "CREATE TABLE orders_evil (x)",
      "CREATE TABLE catalogue (x)",
      "CREATE TABLE catalog_ (x)",
      "CREATE INDEX catalog_i ON orders_rows(v)",
      "CREATE TABLE catalog_copy AS SELECT * FROM orders_rows",
      "SELECT * FROM _tp_migrations",
      "PRAGMA journal_mode=DELETE",
      "PRAGMA table_info(orders_rows)",
      "ATTACH DATABASE '/tmp/tp_evil.db' AS evil",
      "BEGIN",
      "COMMIT",
      "SAVEPOINT x",
      "RELEASE tp_request",
      "ANALYZE",
      "VACUUM",
  };
  for (size_t i = 0; i < sizeof attempts / sizeof *attempts; i++) {
    if (as("catalog", attempts[i]) == 0) TP_FAIL_("allowed: %s", attempts[i]);
  }
  ASSERT_EQ(as("catalog", "SELECT * FROM orders_rows"), -1);
  ASSERT_CONTAINS(err, "plugin 'catalog' may only use its own tables");
  ASSERT_CONTAINS(err, "READ orders_rows");
  ASSERT_EQ(count("orders_rows"), 0);
  ASSERT_EQ(as("catalog", "WITH n AS (SELECT 1) SELECT * FROM n"), 0);  /* plain CTE: fine */
  ASSERT_EQ(as("catalog", "WITH RECURSIVE n(x) AS (SELECT 1 UNION ALL SELECT x+1 FROM n WHERE x<3)"
                          " SELECT count(*) FROM n"), -1);
  ASSERT_CONTAINS(err, "prefix it like a table");
  close_db();
}

TEST(schema_changes_only_in_migrations) {
  open_db();
  ASSERT_EQ(as("catalog", "CREATE TABLE catalog_items (id INTEGER PRIMARY KEY)"), -1);
  ASSERT_CONTAINS(err, "schema changes belong in migrations");
  ASSERT_EQ(as("catalog", "CREATE INDEX catalog_i ON catalog_items(id)"), -1);
  ASSERT_EQ(ddl("catalog", "CREATE TABLE catalog_items (id INTEGER PRIMARY KEY AUTOINCREMENT, v)"), 0);
  ASSERT_EQ(ddl("orders", "CREATE TABLE orders_rows (id INTEGER PRIMARY KEY AUTOINCREMENT, v)"), 0);
  ASSERT_EQ(as("catalog", "INSERT INTO catalog_items(v) VALUES (1)"), 0);  /* AUTOINCREMENT works */
  ASSERT_EQ(as("catalog", "DROP TABLE catalog_items"), -1);
  ASSERT_CONTAINS(err, "migrations");
  ASSERT_EQ(as("catalog", "ALTER TABLE catalog_items ADD COLUMN w"), -1);
  const char *internal[] = {"SELECT * FROM sqlite_master", "SELECT name FROM sqlite_schema",
                            "UPDATE sqlite_sequence SET seq = 0", "DELETE FROM sqlite_sequence",
                            "INSERT INTO sqlite_sequence VALUES ('orders_rows', 99)",
                            "SELECT * FROM sqlite_sequence"};
  for (size_t i = 0; i < sizeof internal / sizeof *internal; i++)
    if (as("catalog", internal[i]) == 0) TP_FAIL_("allowed: %s", internal[i]);
  ASSERT_EQ(ddl("catalog", "DROP TABLE catalog_items"), 0);
  close_db();
}

TEST(triggers_cannot_smuggle_writes) {
  open_db();
  ASSERT_EQ(ddl("orders", "CREATE TABLE orders_rows (v TEXT)"), 0);
  ASSERT_EQ(ddl("catalog", "CREATE TABLE catalog_items (v TEXT)"), 0);
  /* the trigger may be created, but firing it as catalog is refused */
  ddl("catalog", "CREATE TRIGGER catalog_t AFTER INSERT ON catalog_items BEGIN "
                "INSERT INTO orders_rows VALUES (new.v); END");
  ASSERT_EQ(as("catalog", "INSERT INTO catalog_items VALUES ('x')"), -1);
  ASSERT_EQ(count("orders_rows"), 0);
  ASSERT_EQ(count("catalog_items"), 0);
  close_db();
}

TEST(savepoint_rollback_leaves_no_trace) {
  open_db();
  ddl("p", "CREATE TABLE p_rows (v INTEGER)");
  ASSERT_EQ(tps_batch_begin(&db), 0);
  ASSERT_EQ(tps_savepoint(&db), 0);
  as("p", "INSERT INTO p_rows VALUES (1)");
  ASSERT_EQ(tps_release(&db), 0);
  ASSERT_EQ(tps_savepoint(&db), 0);
  as("p", "INSERT INTO p_rows VALUES (2)");
  ASSERT_EQ(tps_rollback_to(&db), 0);
  ASSERT_EQ(tps_savepoint(&db), 0);
  as("p", "INSERT INTO p_rows VALUES (3)");
  ASSERT_EQ(tps_release(&db), 0);
  ASSERT_EQ(db.batch_size, 3);
  ASSERT_EQ(tps_commit(&db, err, sizeof err), 0);
  ASSERT_TRUE(!db.commit_failed);
  ASSERT_EQ(count("p_rows"), 2);
  ASSERT_EQ(count("p_rows WHERE v = 2"), 0);
  close_db();
}

static long long synchronous(void);

/* One request of the open batch: its beginning, a savepoint, the statements,
** a release (or a rollback to it); then whether its answer rests on no write
** of the batch. */
typedef struct { const char *owner; bool plugin; const char *sql; } stmt_as;

static bool request_clean(const stmt_as *s, int n, bool keep) {
  tps_request_begin(&db);
  int rc = tps_savepoint(&db);
  for (int i = 0; i < n && rc == 0; i++) {
    /* a plugin's statement is prepared as the plugin, the host's as the host
    ** (whose statements are ready before any plugin runs) */
    tps_set_owner(&db, s[i].plugin ? s[i].owner : NULL);
    sqlite3_stmt *st;
    rc = sqlite3_prepare_v2(db.db, s[i].sql, -1, &st, NULL);
    tps_set_owner(&db, s[i].owner);
    db.plugin_sql = s[i].plugin;  /* as tp.db does around its statement */
    if (rc == SQLITE_OK) {
      while ((rc = sqlite3_step(st)) == SQLITE_ROW) {}
      rc = rc == SQLITE_DONE ? 0 : rc;
      snprintf(err, sizeof err, "%s", sqlite3_errmsg(db.db));
      sqlite3_finalize(st);
    }
    db.plugin_sql = false;
    tps_set_owner(&db, NULL);
  }
  if (rc == 0) rc = keep ? tps_release(&db) : tps_rollback_to(&db);
  if (rc != 0) {  /* the statements are the test's own: they must run */
    fprintf(stderr, "request_clean: %s\n", err);
    exit(1);
  }
  return tps_request_clean(&db);
}

/* store/deps.h: a read rests on the batch's writes only when it read an
** owner they touched; the host's own statements are the host's, even on a
** plugin's behalf; transaction control is nobody's. */
TEST(an_answer_rests_on_the_owners_it_read) {
  open_db();
  ddl("alpha", "CREATE TABLE alpha_t (v INTEGER)");
  ddl("beta", "CREATE TABLE beta_t (v INTEGER)");
  ddl("gamma", "CREATE TABLE gamma_t (v INTEGER)");
  ASSERT_EQ(tps_exec_script(&db, "CREATE TABLE _tp_test_host (v INTEGER);"
                            "CREATE TABLE _tp_test_other (v INTEGER)", err, sizeof err), 0);
  ASSERT_EQ(tps_batch_begin(&db), 0);
  ASSERT_TRUE(request_clean(NULL, 0, true));  /* savepoint and release alone */
  const stmt_as read_alpha = {"alpha", true, "SELECT count(*) FROM alpha_t"};
  const stmt_as read_beta = {"beta", true, "SELECT count(*) FROM beta_t"};
  ASSERT_TRUE(request_clean(&read_alpha, 1, true));  /* nothing written yet */
  const stmt_as write_alpha = {"alpha", true, "INSERT INTO alpha_t VALUES (1)"};
  ASSERT_TRUE(!request_clean(&write_alpha, 1, true));  /* a writer */
  ASSERT_TRUE(request_clean(&read_beta, 1, true));
  ASSERT_TRUE(!request_clean(&read_alpha, 1, true));
  const stmt_as both[] = {read_beta, read_alpha};  /* a call from beta into alpha */
  ASSERT_TRUE(!request_clean(both, 2, true));
  /* a write that changes no row, or is rolled back, still counts */
  const stmt_as none_beta = {"beta", true, "UPDATE beta_t SET v = 2 WHERE 0"};
  ASSERT_TRUE(!request_clean(&none_beta, 1, false));
  ASSERT_TRUE(!request_clean(&read_beta, 1, true));
  /* the host's statement while alpha runs is the host's, not alpha's */
  const stmt_as host_read = {"alpha", false, "SELECT count(*) FROM _tp_test_host"};
  ASSERT_TRUE(request_clean(&host_read, 1, true));
  const stmt_as host_write = {"alpha", false, "INSERT INTO _tp_test_host VALUES (1)"};
  ASSERT_TRUE(!request_clean(&host_write, 1, true));
  ASSERT_TRUE(!request_clean(&host_read, 1, true));
  /* the host's tables are owners of their own; a statement naming none is the host at large */
  const stmt_as other_read = {NULL, false, "SELECT count(*) FROM _tp_test_other"};
  ASSERT_TRUE(request_clean(&other_read, 1, true));
  const stmt_as join_read = {NULL, false,
                             "SELECT count(*) FROM _tp_test_other, _tp_test_host WHERE 0"};
  ASSERT_TRUE(!request_clean(&join_read, 1, true));
  const stmt_as unnamed_read = {NULL, false, "SELECT 1"};
  ASSERT_TRUE(!request_clean(&unnamed_read, 1, true));
  /* the savepoint around a request is nobody's read: with the host written,
  ** a read of a third plugin still rests on nothing */
  const stmt_as read_gamma = {"gamma", true, "SELECT count(*) FROM gamma_t"};
  ASSERT_TRUE(request_clean(&read_gamma, 1, true));
  ASSERT_TRUE(tpdep_has(&db.written, NULL) && tpdep_has(&db.written, "alpha") &&
              tpdep_has(&db.written, "beta") && !tpdep_has(&db.written, "gamma"));
  ASSERT_EQ(tps_commit(&db, err, sizeof err), 0);
  /* a new batch starts with nothing written */
  ASSERT_EQ(tps_batch_begin(&db), 0);
  ASSERT_TRUE(request_clean(&read_alpha, 1, true));
  ASSERT_EQ(tps_commit(&db, err, sizeof err), 0);
  close_db();
}

/* store/walsync.h: with the sync deferred, every commit that wrote owes one
** (a batch's, or a statement's on its own), a read-only one and a commit made
** not durable do not, and the owners stay written until the sync is done. */
TEST(deferred_commits_owe_a_sync_until_it_is_made) {
  snprintf(path, sizeof path, "/tmp/tp_test_store_ws_%d.db", (int)getpid());
  unlink(path);
  ASSERT_EQ(tps_open(&db, path, TPC_SYNC_FULL, err, sizeof err), 0);
  ddl("alpha", "CREATE TABLE alpha_t (v INTEGER)");
  ASSERT_EQ(tpws_defer(&db), 0);
  ASSERT_EQ(synchronous(), 1);  /* NORMAL: the commit's sync is the worker's */
  ASSERT_TRUE(!tpws_owed(&db));
  const stmt_as read_alpha = {"alpha", true, "SELECT count(*) FROM alpha_t"};
  const stmt_as write_alpha = {"alpha", true, "INSERT INTO alpha_t VALUES (1)"};
  ASSERT_EQ(tps_batch_begin(&db), 0);
  ASSERT_TRUE(request_clean(&read_alpha, 1, true));
  ASSERT_EQ(tps_commit(&db, err, sizeof err), 0);
  ASSERT_TRUE(!tpws_owed(&db));  /* read only */
  ASSERT_EQ(tps_batch_begin(&db), 0);
  ASSERT_TRUE(!request_clean(&write_alpha, 1, true));
  ASSERT_EQ(tps_commit(&db, err, sizeof err), 0);
  ASSERT_TRUE(tpws_owed(&db));
  ASSERT_EQ(tps_batch_begin(&db), 0);  /* the next batch: alpha's write is not synced */
  ASSERT_TRUE(!request_clean(&read_alpha, 1, true));
  ASSERT_EQ(tps_commit(&db, err, sizeof err), 0);
  ASSERT_EQ(tpws_start(&db), 0);  /* a worker takes them */
  ASSERT_TRUE(!tpws_owed(&db));
  ASSERT_EQ(tps_batch_begin(&db), 0);
  ASSERT_TRUE(!request_clean(&read_alpha, 1, true));  /* still in flight */
  ASSERT_EQ(tps_commit(&db, err, sizeof err), 0);
  ASSERT_EQ(tpws_run(&db), 0);
  tpws_done(&db, false);  /* the disk refused: owed again */
  ASSERT_TRUE(tpws_owed(&db));
  ASSERT_EQ(tpws_start(&db), 0);
  ASSERT_EQ(tpws_run(&db), 0);
  tpws_done(&db, true);
  ASSERT_EQ(tps_batch_begin(&db), 0);
  ASSERT_TRUE(request_clean(&read_alpha, 1, true));  /* durable now */
  ASSERT_EQ(tps_commit(&db, err, sizeof err), 0);
  /* a statement committing on its own owes one too, as the host's */
  ASSERT_EQ(tps_exec_script(&db, "CREATE TABLE _tp_ws (v INTEGER); INSERT INTO _tp_ws VALUES (1)",
                            err, sizeof err), 0);
  ASSERT_TRUE(tpws_owed(&db) && tpdep_has(&db.ws.next, NULL));
  /* a request that opens its batch: BEGIN is nobody's read, and alpha is synced */
  tps_request_begin(&db);
  ASSERT_EQ(tps_batch_begin(&db), 0);
  ASSERT_EQ(tps_savepoint(&db), 0);
  tps_set_owner(&db, "alpha");
  db.plugin_sql = true;
  ASSERT_EQ(tps_exec_script(&db, "SELECT count(*) FROM alpha_t", err, sizeof err), 0);
  db.plugin_sql = false;
  tps_set_owner(&db, NULL);
  ASSERT_EQ(tps_release(&db), 0);
  ASSERT_TRUE(tps_request_clean(&db));
  ASSERT_EQ(tps_commit(&db, err, sizeof err), 0);
  ASSERT_EQ(tpws_start(&db), 0);
  tpws_done(&db, true);
  /* a commit made not durable (the sender's leases) owes none */
  ASSERT_EQ(tps_set_durable(&db, false), 0);
  ASSERT_EQ(tps_batch_begin(&db), 0);
  ASSERT_TRUE(!request_clean(&write_alpha, 1, true));
  ASSERT_EQ(tps_commit(&db, err, sizeof err), 0);
  ASSERT_EQ(tps_set_durable(&db, true), 0);
  ASSERT_TRUE(!tpws_owed(&db));
  ASSERT_EQ(synchronous(), 1);  /* and SQLite stays at NORMAL */
  close_db();
}

TEST(owner_sets_count_as_all_when_full) {
  tpdep_set a, b;
  tpdep_clear(&a);
  tpdep_clear(&b);
  ASSERT_TRUE(!tpdep_meets(&a, &b));
  char name[32];
  for (int i = 0; i < TPDEP_MAX; i++) {
    snprintf(name, sizeof name, "p%d", i);
    tpdep_add(&a, name);
    tpdep_add(&a, name);  /* once */
  }
  ASSERT_EQ(a.n, TPDEP_MAX);
  ASSERT_TRUE(!a.all && !tpdep_has(&a, "other") && tpdep_has(&a, "p3"));
  tpdep_add(&b, "other");
  ASSERT_TRUE(!tpdep_meets(&a, &b) && !tpdep_meets(&b, &a));
  tpdep_add(&a, "one_more");  /* no room: every owner counts */
  ASSERT_TRUE(a.all && tpdep_has(&a, "other"));
  ASSERT_TRUE(tpdep_meets(&a, &b) && tpdep_meets(&b, &a));
  tpdep_clear(&b);
  ASSERT_TRUE(!tpdep_meets(&a, &b) && !tpdep_meets(&b, &a));  /* an empty set meets nothing */
  char longname[TPDEP_NAME + 1];
  memset(longname, 'x', TPDEP_NAME);
  longname[TPDEP_NAME] = '\0';
  tpdep_add(&b, longname);  /* too long to keep: every owner counts */
  ASSERT_TRUE(b.all && tpdep_has(&b, "anyone"));
  tpdep_clear(&b);
  tpdep_add(&b, NULL);
  ASSERT_TRUE(tpdep_has(&b, tpdep_host) && !tpdep_has(&b, "p1"));
}

static long long synchronous(void) {
  sqlite3_stmt *st;
  sqlite3_prepare_v2(db.db, "PRAGMA synchronous", -1, &st, NULL);
  long long v = sqlite3_step(st) == SQLITE_ROW ? sqlite3_column_int64(st, 0) : -1;
  sqlite3_finalize(st);
  return v;
}

/* The sender's leases and outcomes commit without waiting for the disk, at
** NORMAL (never OFF: a checkpoint must still sync); every other commit waits
** as configured, and nothing changes inside a transaction. */
TEST(durability_off_and_back_to_the_configured_level) {
  open_db();  /* NORMAL */
  ASSERT_EQ(synchronous(), 1);
  ASSERT_EQ(tps_set_durable(&db, false), 0);
  ASSERT_EQ(synchronous(), 1);
  ASSERT_EQ(tps_set_durable(&db, true), 0);
  ASSERT_EQ(synchronous(), 1);
  ASSERT_EQ(tps_batch_begin(&db), 0);
  ASSERT_EQ(tps_set_durable(&db, false), -1);
  ASSERT_EQ(tps_commit(&db, err, sizeof err), 0);
  ASSERT_EQ(synchronous(), 1);
  close_db();
  snprintf(path, sizeof path, "/tmp/tp_test_store_full_%d.db", (int)getpid());
  unlink(path);
  ASSERT_EQ(tps_open(&db, path, TPC_SYNC_FULL, err, sizeof err), 0);
  ASSERT_EQ(tps_set_durable(&db, false), 0);
  ASSERT_EQ(synchronous(), 1);  /* NORMAL: the commit unsynced, a checkpoint synced */
  ASSERT_EQ(tps_set_durable(&db, true), 0);
  ASSERT_EQ(synchronous(), 2);
  close_db();
}

static int migrate(const char *plugin, const char *const *sqls, int n, int *applied) {
  lua_State *L = luaL_newstate();
  lua_newtable(L);
  for (int i = 0; i < n; i++) {
    lua_pushstring(L, sqls[i]);
    lua_rawseti(L, -2, i + 1);
  }
  int rc = tps_migrate(&db, plugin, L, 1, applied, err, sizeof err);
  lua_close(L);
  return rc;
}

/* Runs sql (cached) in L with the Lua values at the top as its arguments and
** pushes its first row (nil for none), as tp.db.one does. */
static void one(lua_State *L, const char *sql, int nargs) {
  lua_pushstring(L, sql);
  lua_insert(L, -nargs - 1);
  int base = lua_gettop(L) - nargs;
  bool cached;
  tps_set_owner(&db, "shop");
  sqlite3_stmt *st = tps_prepare_cached(&db, L, base, &cached);
  ASSERT_TRUE(st && cached);
  int names = tps_push_names(L, st) ? lua_gettop(L) : 0;
  ASSERT_TRUE(names != 0);
  ASSERT_EQ(tps_bind_lua(L, st, base + 1, nargs, names, err, sizeof err), 0);
  if (sqlite3_step(st) == SQLITE_ROW) tps_push_row(L, st, names);
  else lua_pushnil(L);
  sqlite3_reset(st);
  sqlite3_clear_bindings(st);
  tps_set_owner(&db, NULL);
  lua_replace(L, base);
  lua_settop(L, base);
}

TEST(a_cached_statements_names_are_made_once_and_follow_its_columns) {
  open_db();
  lua_State *L = luaL_newstate();
  ASSERT_EQ(ddl("shop", "CREATE TABLE shop_items (id INTEGER PRIMARY KEY, code TEXT, note TEXT)"), 0);
  ASSERT_EQ(as("shop", "INSERT INTO shop_items VALUES (1, 'a', NULL), (2, 'b', 'x')"), 0);
  for (int round = 0; round < 2; round++) {  /* the second takes the names from the cache */
    lua_newtable(L);
    lua_pushinteger(L, 2);
    lua_setfield(L, -2, "id");
    one(L, "SELECT * FROM shop_items WHERE id = :id", 1);
    ASSERT_TRUE(lua_istable(L, -1));
    lua_getfield(L, -1, "code");
    ASSERT_STR(lua_tostring(L, -1), "b");
    lua_getfield(L, -2, "note");
    ASSERT_STR(lua_tostring(L, -1), "x");
    lua_pop(L, 3);
  }
  lua_pushinteger(L, 1);  /* positional, and a NULL column is an absent key */
  one(L, "SELECT * FROM shop_items WHERE id = ?", 1);
  lua_getfield(L, -1, "note");
  ASSERT_TRUE(lua_isnil(L, -1));
  lua_pop(L, 2);
  lua_newtable(L);  /* a named bind without its name in the table binds NULL */
  one(L, "SELECT * FROM shop_items WHERE id = :id", 1);
  ASSERT_TRUE(lua_isnil(L, -1));
  lua_pop(L, 1);
  /* SQLite prepares the cached SELECT * again after the table gains a column:
  ** the row names the new column too, and the names of its parameters, which
  ** follow the columns', are still found, also when the first run after the
  ** change found no row (and so renewed nothing) */
  ASSERT_EQ(ddl("shop", "ALTER TABLE shop_items ADD COLUMN price_fen INTEGER DEFAULT 990"), 0);
  lua_newtable(L);
  lua_pushinteger(L, 99);
  lua_setfield(L, -2, "id");
  one(L, "SELECT * FROM shop_items WHERE id = :id", 1);
  ASSERT_TRUE(lua_isnil(L, -1));
  lua_pop(L, 1);
  lua_newtable(L);
  lua_pushinteger(L, 2);
  lua_setfield(L, -2, "id");
  one(L, "SELECT * FROM shop_items WHERE id = :id", 1);
  lua_getfield(L, -1, "price_fen");
  ASSERT_EQ(lua_tointeger(L, -1), 990);
  lua_getfield(L, -2, "code");
  ASSERT_STR(lua_tostring(L, -1), "b");
  lua_pop(L, 3);
  tps_cache_clear(L);  /* finalizes the statements, not the names tables */
  lua_close(L);
  close_db();
}

TEST(migrations_apply_once_in_order) {
  open_db();
  const char *v[] = {"CREATE TABLE shop_a (x)", "ALTER TABLE shop_a ADD COLUMN y",
                     "CREATE TABLE shop_b (z)"};
  int applied;
  ASSERT_EQ(migrate("shop", v, 2, &applied), 0);
  ASSERT_EQ(applied, 2);
  ASSERT_EQ(migrate("shop", v, 2, &applied), 0);
  ASSERT_EQ(applied, 0);
  ASSERT_EQ(migrate("shop", v, 3, &applied), 0);
  ASSERT_EQ(applied, 1);
  ASSERT_EQ(count("shop_b"), 0);
  ASSERT_EQ(migrate("shop", v, 1, &applied), -1);
  ASSERT_CONTAINS(err, "downgrade");
  close_db();
}

TEST(failed_migration_applies_nothing) {
  open_db();
  const char *v[] = {"CREATE TABLE shop_a (x)", "CREATE TABLE shop_b (x); CREATE TABL oops"};
  int applied;
  ASSERT_EQ(migrate("shop", v, 2, &applied), -1);
  ASSERT_CONTAINS(err, "migration 2");
  ASSERT_EQ(count("shop_a"), -1);  /* v1 was rolled back with v2 */
  const char *evil[] = {"CREATE TABLE other_x (x)"};
  ASSERT_EQ(migrate("shop", evil, 1, &applied), -1);
  ASSERT_CONTAINS(err, "not authorized");
  close_db();
}

/* SQLite's recipe for a table others reference (new, copy, drop, rename) goes
** through: migrations run with foreign keys off and checked before COMMIT. A
** row left without its parent fails them whole; the keys are on after either. */
TEST(a_referenced_table_is_rebuilt_and_an_orphan_refused) {
  open_db();
  const char *v[] = {
      "CREATE TABLE shop_kinds (id INTEGER PRIMARY KEY, k TEXT CHECK (k IN ('a', 'b', 'c')));"
      "CREATE TABLE shop_items (id INTEGER PRIMARY KEY, kind INTEGER NOT NULL REFERENCES shop_kinds(id));"
      "INSERT INTO shop_kinds VALUES (1, 'a'), (2, 'b');"
      "INSERT INTO shop_items VALUES (10, 1), (11, 2);",
      "CREATE TABLE shop_kinds_v2 (id INTEGER PRIMARY KEY, k TEXT CHECK (k = 'a' OR k = 'b' OR k = 'c'));"
      "INSERT INTO shop_kinds_v2 SELECT * FROM shop_kinds;"
      "DROP TABLE shop_kinds;"
      "ALTER TABLE shop_kinds_v2 RENAME TO shop_kinds;",
      "DELETE FROM shop_kinds WHERE id = 2",
  };
  int applied;
  ASSERT_EQ(migrate("shop", v, 2, &applied), 0);
  ASSERT_EQ(applied, 2);
  ASSERT_EQ(scalar("PRAGMA foreign_keys"), 1);
  ASSERT_EQ(scalar("SELECT count(*) FROM shop_kinds"), 2);
  ASSERT_EQ(scalar("SELECT count(*) FROM shop_items JOIN shop_kinds ON shop_kinds.id = kind"), 2);
  ASSERT_EQ(scalar("SELECT count(*) FROM sqlite_schema WHERE sql LIKE '%k IN (%'"), 0);
  /* the child still refers to the rebuilt table: with the keys on, an orphan is refused */
  char e[256];
  ASSERT_EQ(tps_exec_script(&db, "INSERT INTO shop_items VALUES (12, 9)", e, sizeof e), -1);
  ASSERT_CONTAINS(e, "FOREIGN KEY");
  ASSERT_EQ(migrate("shop", v, 3, &applied), -1);
  ASSERT_CONTAINS(err, "shop_items (rowid 11) whose parent in shop_kinds is gone");
  ASSERT_EQ(scalar("SELECT count(*) FROM shop_kinds"), 2);  /* rolled back */
  ASSERT_EQ(scalar("SELECT version FROM _tp_migrations WHERE plugin = 'shop'"), 2);
  ASSERT_EQ(scalar("PRAGMA foreign_keys"), 1);
  close_db();
}

/* The first column of sql's first row as the plugin "loyalty", into out;
** 0, or -1 with SQLite's message in out. */
static int text_as_plugin(const char *sql, char *out, size_t cap) {
  tps_set_owner(&db, "loyalty");
  sqlite3_stmt *st;
  int rc = sqlite3_prepare_v2(db.db, sql, -1, &st, NULL);
  if (rc == SQLITE_OK) rc = sqlite3_step(st);
  const char *t = rc == SQLITE_ROW ? (const char *)sqlite3_column_text(st, 0) : NULL;
  snprintf(out, cap, "%s", t ? t : sqlite3_errmsg(db.db));
  sqlite3_finalize(st);
  tps_set_owner(&db, NULL);
  return rc == SQLITE_ROW ? 0 : -1;
}

TEST(tally_counts_each_small_integer) {
  open_db();
  char out[256];
  ASSERT_EQ(ddl("loyalty", "CREATE TABLE loyalty_k (k)"), 0);
  ASSERT_EQ(as("loyalty", "INSERT INTO loyalty_k VALUES (2), (0), (2), (NULL), (5), (2)"), 0);
  ASSERT_EQ(text_as_plugin("SELECT tally(k) FROM loyalty_k", out, sizeof out), 0);
  ASSERT_STR(out, "[1,0,3,0,0,1]");
  ASSERT_EQ(text_as_plugin("SELECT tally(k) FROM loyalty_k WHERE k > 9", out, sizeof out), 0);
  ASSERT_STR(out, "[]");
  ASSERT_EQ(text_as_plugin("SELECT tally(63) FROM loyalty_k", out, sizeof out), 0);
  ASSERT_CONTAINS(out, ",0,6]");
  /* grouped: one array per group */
  ASSERT_EQ(text_as_plugin("SELECT group_concat(t, ' ') FROM (SELECT tally(k) AS t FROM loyalty_k"
                           " GROUP BY k > 1 ORDER BY k > 1)", out, sizeof out), 0);
  ASSERT_STR(out, "[] [1] [0,0,3,0,0,1]");   /* the NULL row is a group of its own */
  const char *bad[] = {"SELECT tally(64)", "SELECT tally(-1)", "SELECT tally(1.5)", "SELECT tally('1')",
                       "SELECT tally(x'01')"};
  for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
    ASSERT_EQ(text_as_plugin(bad[i], out, sizeof out), -1);
    ASSERT_STR(out, "tally() counts integers from 0 to 63");
  }
  close_db();
}

/* A sync covers the calls out up to committed_id: never a call added in a
** batch still open, nor an id a rollback gave back (AUTOINCREMENT gives it
** again), so only a commit moves it. */
TEST(the_outbox_counts_a_call_committed_only_after_its_commit) {
  open_db();
  tpob_box box;
  ASSERT_EQ(tpob_open(&box, &db, err, sizeof err), 0);
  tpob_call call = {.dest = "erp", .method = "POST", .path = "/x", .max_attempts = 1};
  int64_t id = 0;
  ASSERT_EQ(tps_batch_begin(&db), 0);
  ASSERT_EQ(tpob_add(&box, "p", &call, 1000, &id, err, sizeof err), 0);
  ASSERT_EQ(id, 1);
  ASSERT_EQ(box.committed_id, 0);        /* added in an open batch: not committed */
  ASSERT_EQ(tps_commit(&db, err, sizeof err), 0);
  tpob_committed(&box);
  ASSERT_EQ(box.committed_id, 1);
  /* a request that called out, then failed: its row is rolled back */
  ASSERT_EQ(tps_batch_begin(&db), 0);
  ASSERT_EQ(tps_savepoint(&db), 0);
  ASSERT_EQ(tpob_add(&box, "p", &call, 1000, &id, err, sizeof err), 0);
  ASSERT_EQ(id, 2);
  ASSERT_EQ(tps_rollback_to(&db), 0);
  ASSERT_EQ(tps_commit(&db, err, sizeof err), 0);
  tpob_committed(&box);
  ASSERT_EQ(box.committed_id, 1);
  /* the id comes again, and counts once its commit is made */
  ASSERT_EQ(tps_batch_begin(&db), 0);
  ASSERT_EQ(tpob_add(&box, "p", &call, 1000, &id, err, sizeof err), 0);
  ASSERT_EQ(id, 2);
  ASSERT_EQ(box.committed_id, 1);
  ASSERT_EQ(tps_commit(&db, err, sizeof err), 0);
  tpob_committed(&box);
  ASSERT_EQ(box.committed_id, 2);
  tpob_close(&box);
  close_db();
}

/* ---- a request's journal stays in memory */

/* The default VFS, wrapped to count the statement journals SQLite opens as
** files (a savepoint's journal past SQLITE_CONFIG_STMTJRNL_SPILL). */
static sqlite3_vfs *unix_vfs;
static sqlite3_vfs counting_vfs;
static int subjournal_files;

static int counting_open(sqlite3_vfs *vfs, const char *name, sqlite3_file *f, int flags, int *out) {
  (void)vfs;
  if (flags & SQLITE_OPEN_SUBJOURNAL) subjournal_files++;
  return unix_vfs->xOpen(unix_vfs, name, f, flags, out);
}

/* Changes n pages that exist when a request's savepoint begins, in it, and
** commits: 0, or -1 (the message in err). */
static int request_changing(int n) {
  char sql[256];
  snprintf(sql, sizeof sql, "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n "
           "WHERE i < %d) INSERT INTO p_big SELECT i, zeroblob(3000) FROM n", n);  /* a page each */
  if (tps_batch_begin(&db) != 0 || as("p", "DELETE FROM p_big") != 0 || as("p", sql) != 0 ||
      tps_savepoint(&db) != 0)
    return -1;
  int rc = as("p", "UPDATE p_big SET v = zeroblob(3001)");
  if ((rc == 0 ? tps_release(&db) : tps_rollback_to(&db)) != 0) return -1;
  char cerr[256];
  if (tps_commit(&db, cerr, sizeof cerr) != 0) return -1;
  return rc;
}

/* A request that changes 30 pages (120 KiB of journal; SQLite keeps 64 KiB in
** memory by default) opens no file: store.c's TPS_STMT_JOURNAL_SPILL, set
** before SQLite initializes. One that changes 200
** spills to a file and still succeeds: past 128 KiB SQLite 3.40.1 fails that
** spill with SQLITE_FULL. */
TEST(a_requests_journal_stays_in_memory_and_a_large_one_still_spills) {
  open_db();  /* the process's first open was before: SQLite is configured */
  unix_vfs = sqlite3_vfs_find(NULL);
  counting_vfs = *unix_vfs;
  counting_vfs.zName = "counting";
  counting_vfs.xOpen = counting_open;
  ASSERT_EQ(sqlite3_vfs_register(&counting_vfs, 1), SQLITE_OK);
  close_db();
  open_db();  /* on the counting VFS */
  ddl("p", "CREATE TABLE p_big (id INTEGER PRIMARY KEY, v BLOB)");
  ASSERT_EQ(request_changing(30), 0);
  ASSERT_EQ(count("p_big WHERE length(v) = 3001"), 30);
  ASSERT_EQ(subjournal_files, 0);
  ASSERT_EQ(request_changing(200), 0);
  ASSERT_EQ(count("p_big WHERE length(v) = 3001"), 200);
  ASSERT_EQ(subjournal_files, 1);
  close_db();
  sqlite3_vfs_unregister(&counting_vfs);
}

int main(void) {
  RUN(plugin_uses_its_own_tables);
  RUN(tally_counts_each_small_integer);
  RUN(plugin_cannot_touch_other_tables);
  RUN(schema_changes_only_in_migrations);
  RUN(triggers_cannot_smuggle_writes);
  RUN(savepoint_rollback_leaves_no_trace);
  RUN(an_answer_rests_on_the_owners_it_read);
  RUN(owner_sets_count_as_all_when_full);
  RUN(deferred_commits_owe_a_sync_until_it_is_made);
  RUN(durability_off_and_back_to_the_configured_level);
  RUN(a_cached_statements_names_are_made_once_and_follow_its_columns);
  RUN(migrations_apply_once_in_order);
  RUN(failed_migration_applies_nothing);
  RUN(a_referenced_table_is_rebuilt_and_an_orphan_refused);
  RUN(the_outbox_counts_a_call_committed_only_after_its_commit);
  RUN(a_requests_journal_stays_in_memory_and_a_large_one_still_spills);
  return TEST_SUMMARY();
}
