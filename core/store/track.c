/*
** track.c - the analytics database (track.h): its tables, batched inserts
** with duplicates skipped, purging, and the groups of WeChat scene values.
*/
#include "store/track.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char SCHEMA_SQL[] =
    "CREATE TABLE IF NOT EXISTS analytics_events ("
    " seq INTEGER PRIMARY KEY,"          /* rises with every insert: the rollup's watermark */
    " id TEXT NOT NULL UNIQUE,"
    " kind TEXT NOT NULL,"
    " at INTEGER NOT NULL,"              /* ms, when it happened (the client's clock) */
    " received INTEGER NOT NULL,"        /* ms, the tenant's clock at intake */
    " session TEXT NOT NULL,"
    " device TEXT, member TEXT, product TEXT, detail TEXT);"
    "CREATE INDEX IF NOT EXISTS analytics_events_at ON analytics_events(at);"
    "CREATE INDEX IF NOT EXISTS analytics_events_device ON analytics_events(device, at)"
    " WHERE device IS NOT NULL;"
    "CREATE TABLE IF NOT EXISTS analytics_sessions ("
    " id TEXT PRIMARY KEY, at INTEGER NOT NULL, device TEXT, member TEXT,"
    " scene INTEGER NOT NULL, source TEXT NOT NULL, store TEXT, guide TEXT, content TEXT,"
    " live TEXT, referrer TEXT) WITHOUT ROWID;"
    "CREATE INDEX IF NOT EXISTS analytics_sessions_at ON analytics_sessions(at);"
    "CREATE INDEX IF NOT EXISTS analytics_sessions_member ON analytics_sessions(member, at)"
    " WHERE member IS NOT NULL;"
    "CREATE INDEX IF NOT EXISTS analytics_sessions_device ON analytics_sessions(device, at)"
    " WHERE device IS NOT NULL;"
    "CREATE TABLE IF NOT EXISTS analytics_devices ("
    " device TEXT PRIMARY KEY, member TEXT NOT NULL, at INTEGER NOT NULL, seq INTEGER NOT NULL)"
    " WITHOUT ROWID;"
    "CREATE INDEX IF NOT EXISTS analytics_devices_member ON analytics_devices(member);"
    "CREATE INDEX IF NOT EXISTS analytics_devices_seq ON analytics_devices(seq);"
    /* the cutoff of the purges so far: events and sessions before it may be gone, some
    ** or all (a purge deletes a slice at a time), so the rollup leaves those hours be */
    "CREATE TABLE IF NOT EXISTS analytics_purged ("
    " id INTEGER PRIMARY KEY CHECK (id = 0), before_ms INTEGER NOT NULL);";

static int prepare(tptk_db *k, const char *sql, sqlite3_stmt **st) {
  return sqlite3_prepare_v3(k->db, sql, -1, SQLITE_PREPARE_PERSISTENT, st, NULL);
}

static int on_wal(void *ud, sqlite3 *db, const char *schema, int frames) {
  (void)db;
  (void)schema;
  ((tptk_db *)ud)->wal_frames = frames;
  return SQLITE_OK;
}

int tptk_checkpoint_passive(tptk_db *k) {
  int rc = sqlite3_wal_checkpoint_v2(k->ckpt, "main", SQLITE_CHECKPOINT_PASSIVE, NULL, NULL);
  return rc == SQLITE_OK ? 0 : -1;
}

int tptk_checkpoint_restart(tptk_db *k) {
  if (k->ckpt_running || k->in_txn) return -1;  /* one checkpointer, and no transaction open */
  int log = 0, done = 0;
  int rc = sqlite3_wal_checkpoint_v2(k->db, "main", SQLITE_CHECKPOINT_RESTART, &log, &done);
  if (rc != SQLITE_OK) return -1;  /* SQLITE_BUSY: a reader; next time */
  k->wal_frames = 0;
  return 0;
}

int tptk_open(tptk_db *k, const char *path, char *err, size_t errcap) {
  memset(k, 0, sizeof *k);
  k->path = strdup(path);
  int rc = sqlite3_open_v2(path, &k->db,
                           SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX, NULL);
  if (rc != SQLITE_OK) {
    snprintf(err, errcap, "%s: %s", path, k->db ? sqlite3_errmsg(k->db) : sqlite3_errstr(rc));
    goto fail;
  }
  sqlite3_extended_result_codes(k->db, 1);
  sqlite3_db_config(k->db, SQLITE_DBCONFIG_DEFENSIVE, 1, NULL);
  sqlite3_db_config(k->db, SQLITE_DBCONFIG_TRUSTED_SCHEMA, 0, NULL);
  char *e = NULL;
  /* NORMAL in WAL: a commit is not fsynced (the checkpoint is); see track.h */
  if (sqlite3_exec(k->db, "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;"
                          "PRAGMA cache_size=-32768;", NULL, NULL, &e) != SQLITE_OK ||
      sqlite3_exec(k->db, SCHEMA_SQL, NULL, NULL, &e) != SQLITE_OK) {
    snprintf(err, errcap, "%s: %s", path, e ? e : sqlite3_errmsg(k->db));
    sqlite3_free(e);
    goto fail;
  }
  sqlite3_wal_hook(k->db, on_wal, k);  /* and so no commit checkpoints (track.h) */
  rc = sqlite3_open_v2(path, &k->ckpt, SQLITE_OPEN_READWRITE | SQLITE_OPEN_NOMUTEX, NULL);
  if (rc != SQLITE_OK || sqlite3_exec(k->ckpt, "PRAGMA synchronous=NORMAL;", NULL, NULL, &e) != SQLITE_OK) {
    snprintf(err, errcap, "%s: the checkpointer's connection: %s", path,
             e ? e : k->ckpt ? sqlite3_errmsg(k->ckpt) : sqlite3_errstr(rc));
    sqlite3_free(e);
    goto fail;
  }
  if (prepare(k, "BEGIN IMMEDIATE", &k->begin) || prepare(k, "COMMIT", &k->commit) ||
      prepare(k, "ROLLBACK", &k->rollback) || prepare(k, "SAVEPOINT tptk_batch", &k->savepoint) ||
      prepare(k, "RELEASE tptk_batch", &k->release) ||
      prepare(k, "ROLLBACK TO tptk_batch", &k->rollback_to) ||
      prepare(k, "INSERT OR IGNORE INTO analytics_events"
                 " (id, kind, at, received, session, device, member, product, detail)"
                 " VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)", &k->ins_event) ||
      prepare(k, "INSERT OR IGNORE INTO analytics_sessions"
                 " (id, at, device, member, scene, source, store, guide, content, live, referrer)"
                 " VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11)", &k->ins_session) ||
      prepare(k, "UPDATE analytics_sessions SET member = ?2 WHERE id = ?1 AND member IS NULL",
              &k->session_member) ||
      prepare(k, "INSERT OR IGNORE INTO analytics_devices (device, member, at, seq)"
                 " VALUES (?1, ?2, ?3, (SELECT coalesce(max(seq), 0) FROM analytics_events))",
              &k->ins_device) ||
      prepare(k, "DELETE FROM analytics_events WHERE seq IN (SELECT seq FROM analytics_events"
                 " WHERE at < ?1 ORDER BY at LIMIT ?2)", &k->purge) ||
      prepare(k, "INSERT INTO analytics_purged (id, before_ms) VALUES (0, ?1)"
                 " ON CONFLICT (id) DO UPDATE SET before_ms = max(before_ms, excluded.before_ms)",
              &k->purged)) {
    snprintf(err, errcap, "%s: %s", path, sqlite3_errmsg(k->db));
    goto fail;
  }
  return 0;
fail:
  tptk_close(k);
  return -1;
}

void tptk_close(tptk_db *k) {
  char err[256];
  tptk_commit(k, err, sizeof err);  /* the host commits first; this only keeps a straggler */
  sqlite3_stmt *all[] = {k->begin, k->commit, k->rollback, k->savepoint, k->release, k->rollback_to,
                         k->ins_event, k->ins_session, k->session_member, k->ins_device, k->purge,
                         k->purged};
  for (size_t i = 0; i < sizeof all / sizeof *all; i++) sqlite3_finalize(all[i]);
  if (k->ckpt) sqlite3_close(k->ckpt);
  if (k->db) sqlite3_close(k->db);
  free(k->path);
  memset(k, 0, sizeof *k);
}

int tptk_attach(tps_db *d, const char *path, char *err, size_t errcap) {
  sqlite3_limit(d->db, SQLITE_LIMIT_ATTACHED, 1);
  sqlite3_stmt *st = NULL;
  int rc = sqlite3_prepare_v2(d->db, "ATTACH ?1 AS " TPTK_SCHEMA, -1, &st, NULL);
  if (rc == SQLITE_OK) {
    char uri[1200];
    snprintf(uri, sizeof uri, "file:%s?mode=ro", path);
    sqlite3_bind_text(st, 1, uri, -1, SQLITE_TRANSIENT);
    rc = sqlite3_step(st);
  }
  sqlite3_finalize(st);
  /* no further ATTACH: plugins may never, and the host needs only this one */
  sqlite3_limit(d->db, SQLITE_LIMIT_ATTACHED, 1);
  if (rc != SQLITE_DONE) {
    snprintf(err, errcap, "%s: cannot attach the analytics database: %s", path,
             sqlite3_errmsg(d->db));
    return -1;
  }
  return 0;
}

static void bind_text(sqlite3_stmt *st, int i, const char *s) {
  if (s) sqlite3_bind_text(st, i, s, -1, SQLITE_STATIC);
  else sqlite3_bind_null(st, i);
}

static int step_once(sqlite3_stmt *st) {
  int rc = sqlite3_step(st);
  sqlite3_reset(st);
  sqlite3_clear_bindings(st);
  return rc == SQLITE_DONE ? 0 : -1;
}

/* One event's rows; 0 or -1. */
static int insert_one(tptk_db *k, const tptk_event *e, int64_t now_ms, int *inserted) {
  sqlite3_stmt *st = k->ins_event;
  bind_text(st, 1, e->id);
  bind_text(st, 2, e->kind);
  sqlite3_bind_int64(st, 3, e->at_ms);
  sqlite3_bind_int64(st, 4, now_ms);
  bind_text(st, 5, e->session);
  bind_text(st, 6, e->device);
  bind_text(st, 7, e->member);
  bind_text(st, 8, e->product);
  bind_text(st, 9, e->detail);
  if (step_once(st) != 0) return -1;
  if (sqlite3_changes(k->db) == 0) return 0;  /* a duplicate: nothing else of it counts */
  (*inserted)++;
  if (strcmp(e->kind, "enter") == 0) {
    st = k->ins_session;
    bind_text(st, 1, e->session);
    sqlite3_bind_int64(st, 2, e->at_ms);
    bind_text(st, 3, e->device);
    bind_text(st, 4, e->member);
    sqlite3_bind_int(st, 5, e->scene);
    bind_text(st, 6, tptk_source_of_scene(e->scene));
    bind_text(st, 7, e->store);
    bind_text(st, 8, e->guide);
    bind_text(st, 9, e->content);
    bind_text(st, 10, e->live);
    bind_text(st, 11, e->referrer);
    if (step_once(st) != 0) return -1;
  }
  if (e->member) {  /* a login during the session: the session and the device are the member's */
    st = k->session_member;
    bind_text(st, 1, e->session);
    bind_text(st, 2, e->member);
    if (step_once(st) != 0) return -1;
    if (e->device) {
      st = k->ins_device;
      bind_text(st, 1, e->device);
      bind_text(st, 2, e->member);
      sqlite3_bind_int64(st, 3, now_ms);
      if (step_once(st) != 0) return -1;
    }
  }
  return 0;
}

/* The open transaction is gone, and the batches kept in it with it. */
static void lost(tptk_db *k) {
  k->in_txn = false;
  if (k->batches) k->commit_failed = true;
  k->pending_accepted = k->pending_duplicates = 0;
}

int tptk_insert(tptk_db *k, const tptk_event *ev, int n, int64_t now_ms, int *inserted,
                char *err, size_t errcap) {
  *inserted = 0;
  if (!k->in_txn) {
    if (step_once(k->begin) != 0) goto fail;
    k->in_txn = true;
    k->batches = 0;
  }
  if (step_once(k->savepoint) != 0) goto fail_undo;
  for (int i = 0; i < n; i++)
    if (insert_one(k, &ev[i], now_ms, inserted) != 0) goto fail_undo;
  if (step_once(k->release) != 0) goto fail_undo;
  k->batches++;
  k->pending_accepted += *inserted;
  k->pending_duplicates += n - *inserted;
  return 0;
fail_undo:
  snprintf(err, errcap, "%s", sqlite3_errmsg(k->db));
  *inserted = 0;
  if (sqlite3_get_autocommit(k->db) ||  /* the error rolled it all back */
      step_once(k->rollback_to) != 0 || step_once(k->release) != 0) {
    if (!sqlite3_get_autocommit(k->db)) step_once(k->rollback);  /* this batch cannot be undone alone */
    lost(k);
  }
  return -1;
fail:
  snprintf(err, errcap, "%s", sqlite3_errmsg(k->db));
  return -1;
}

int tptk_commit(tptk_db *k, char *err, size_t errcap) {
  if (!k->in_txn) return 0;
  if (!sqlite3_get_autocommit(k->db) && step_once(k->commit) == 0) {
    k->in_txn = false;
    k->accepted += k->pending_accepted;
    k->duplicates += k->pending_duplicates;
    k->pending_accepted = k->pending_duplicates = 0;
    return 0;
  }
  snprintf(err, errcap, "%s", sqlite3_get_autocommit(k->db) ? "the transaction was rolled back"
                                                            : sqlite3_errmsg(k->db));
  if (!sqlite3_get_autocommit(k->db)) step_once(k->rollback);
  lost(k);
  return -1;
}

int tptk_purge(tptk_db *k, int64_t before_ms, int limit) {
  if (k->in_txn || step_once(k->begin) != 0) return -1;
  sqlite3_bind_int64(k->purge, 1, before_ms);
  sqlite3_bind_int(k->purge, 2, limit);
  if (step_once(k->purge) != 0) goto fail;
  int n = sqlite3_changes(k->db);
  char sql[200];
  snprintf(sql, sizeof sql, "DELETE FROM analytics_sessions WHERE id IN (SELECT id FROM"
           " analytics_sessions WHERE at < %lld ORDER BY at LIMIT %d)", (long long)before_ms, limit);
  if (sqlite3_exec(k->db, sql, NULL, NULL, NULL) != SQLITE_OK) goto fail;
  if (n > 0 || sqlite3_changes(k->db) > 0) {   /* something went: say up to where */
    sqlite3_bind_int64(k->purged, 1, before_ms);
    if (step_once(k->purged) != 0) goto fail;
  }
  if (step_once(k->commit) != 0) goto fail;
  return n;
fail:
  if (sqlite3_get_autocommit(k->db) == 0) step_once(k->rollback);
  return -1;
}

/* ---- scene values (research/wechat.md section 9) */

typedef struct scene_group {
  const char *source;
  int scenes[12];  /* 0 after the last */
} scene_group;

static const scene_group groups[] = {
    {"group_chat", {1008, 1044}},
    {"chat", {1007, 1036, 1073}},
    {"moments", {1154, 1155}},
    {"qr_code", {1011, 1012, 1013, 1047, 1048, 1049}},
    {"official_account", {1014, 1035, 1043, 1058, 1074, 1082, 1091, 1107}},
    {"live", {1176, 1177}},
    {"channels", {1175, 1184, 1191, 1195}},
    {"search", {1005, 1006, 1053}},
    {"ad", {1045, 1046, 1067, 1095}},
    {"mini_program", {1037, 1038}},
    {"recent", {1001, 1089}},
    {"crawler", {1129}},
};

const char *tptk_source_of_scene(int scene) {
  for (size_t g = 0; g < sizeof groups / sizeof *groups; g++)
    for (int i = 0; i < 12 && groups[g].scenes[i]; i++)
      if (groups[g].scenes[i] == scene) return groups[g].source;
  return "other";
}
