/*
** track.h - a tenant's analytics database: what the mini-program reports
** (POST /v1/{t}/track) kept apart from the orders.
**
** Each tenant has a second SQLite file, <data_dir>/<tenant>.analytics.db,
** with its own connection. Intake writes there in a transaction of its own,
** never inside the batch of the tenant's main database, so an event never
** waits for an order's commit and an order never waits for an event's. Its
** durability is weaker, on purpose: WAL with synchronous=NORMAL, so a
** committed batch of events survives a crash of the process but the last
** ones before a power loss may be gone (the orders' file keeps its own
** setting, FULL by default: nothing here touches it).
**
** Group commit, as the orders have: the batches of events a loop iteration
** takes share one transaction, each in a savepoint of its own (all of it or
** none), and the host commits it once at the iteration's end, before their
** answers go (host/track.c). Why: a batch's rows land beside the previous
** batch's (the table's and the time index's last pages), so a commit per
** batch wrote those pages to the WAL again and again; sharing the commit
** writes them once (tests/bench/README.md, "Intake's group commit").
**
** The tables are named analytics_* so that the `analytics` plugin, and only
** it, reads them through its tp.db: the main connection ATTACHes this file
** read-only as schema "track" (tptk_attach), so the plugin's rollups read
** track.analytics_events. Nothing but this file writes them.
**
**   analytics_events   one row per event; seq rises with every insert (the
**                      rollup's watermark); id unique: a duplicate is ignored
**   analytics_sessions one row per session, from its enter event: the scene,
**                      its group (tptk_source_of_scene) and the query's store,
**                      guide, content, live room and referral code; member
**                      filled in once any event of the session names one
**   analytics_devices  a device's member, once one event names both (the
**                      anonymous device's earlier events fold into it)
**
** Every function returns 0 or a negative value, never raising.
*/
#ifndef TP_TRACK_H
#define TP_TRACK_H

#include <sqlite3.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "store/store.h"

#define TPTK_MAX_BATCH 100          /* events per request */
#define TPTK_SCHEMA "track"         /* the attached schema's name on the main connection */

typedef struct tptk_db {
  sqlite3 *db;
  sqlite3 *ckpt;                    /* the checkpointer's own connection (a worker thread) */
  int wal_frames;                   /* pages in the WAL after the last commit */
  bool ckpt_running;                /* a worker is checkpointing on ckpt now */
  bool restart_due;                 /* its checkpoint is done; the WAL is to start over */
  char *path;
  sqlite3_stmt *begin, *commit, *rollback, *savepoint, *release, *rollback_to;
  bool in_txn;                      /* the iteration's transaction is open (tptk_commit ends it) */
  int batches;                      /* batches kept in it so far */
  bool commit_failed;               /* batches kept were lost since the host last cleared it
                                    ** (a batch taken after the loss in the same iteration is
                                    ** refused with them: the safe side; sent again, its
                                    ** events count as duplicates) */
  sqlite3_stmt *ins_event, *ins_session, *session_member, *ins_device, *purge, *purged;
  int64_t purged_at_ms;             /* the last purge of old events */
  /* counts for /metrics: events kept and skipped as seen, counted once their
  ** transaction commits (pending until then); refused (host/track.c) */
  int64_t accepted, duplicates, refused;
  int64_t pending_accepted, pending_duplicates;
} tptk_db;

/* One event, validated (host/track.c). Strings are NUL-terminated; NULL: absent. */
typedef struct tptk_event {
  const char *id, *kind, *session, *device, *member, *product, *detail;
  int64_t at_ms;
  /* an enter's session */
  int scene;
  const char *store, *guide, *content, *live, *referrer;
} tptk_event;

/* Opens (creating) the file and its tables. */
int tptk_open(tptk_db *k, const char *path, char *err, size_t errcap);
void tptk_close(tptk_db *k);

/* ATTACHes the file at path read-only to d as TPTK_SCHEMA. */
int tptk_attach(tps_db *d, const char *path, char *err, size_t errcap);

/* Writes n events, all or none, in a savepoint of the open transaction (begun
** by the first batch after a commit). *inserted counts the new ones (an id
** already kept, or twice in the batch, is skipped). On failure only this
** batch is undone, unless the error rolled the whole transaction back (an I/O
** error, a full disk): the batches kept before it are gone too, and
** commit_failed says so. */
int tptk_insert(tptk_db *k, const tptk_event *ev, int n, int64_t now_ms, int *inserted,
                char *err, size_t errcap);

/* Commits the open transaction, if any: 0, or -1 with err filled and
** commit_failed set (its batches were lost). */
int tptk_commit(tptk_db *k, char *err, size_t errcap);

/* Checkpoints. No commit on db checkpoints (a commit that did stalled the
** loop for tens of milliseconds a few times a second under intake, and the
** orders' answers with it): tptk_checkpoint_passive copies the WAL's pages into
** the file on the ckpt connection, from a worker thread, beside the loop's
** writes (SQLite lets one checkpointer and one writer work at once); it never
** blocks on the loop. tptk_checkpoint_restart, on the loop once a passive one
** has copied nearly everything, copies the rest and starts the WAL over, so the
** file stays bounded; it gives up (-1) rather than wait for a reader, or
** while a transaction is open on db. */
int tptk_checkpoint_passive(tptk_db *k);
int tptk_checkpoint_restart(tptk_db *k);

/* Deletes events (and sessions) older than before_ms, at most limit rows each,
** and when any went records before_ms in analytics_purged, in one transaction:
** the rollup leaves the hours before it (and a day after, for the sessions)
** as they are, since their raw events may be gone in part. How many events
** went, or -1 (also while intake's transaction is open: commit it first). */
int tptk_purge(tptk_db *k, int64_t before_ms, int limit);

/* The group of a WeChat scene value: "group_chat", "chat", "moments",
** "qr_code", "official_account", "live", "channels", "search", "ad",
** "mini_program", "recent", "crawler" (excluded from visitors) or "other". */
const char *tptk_source_of_scene(int scene);

#endif
