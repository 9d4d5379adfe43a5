/*
** walsync.h - a tenant's commits made durable off the loop's thread.
**
** DESIGN "group commit" holds every answer until the writes it rests on are
** on disk. SQLite at synchronous=FULL does that inside COMMIT: the loop's
** thread waits for the fsync (0.3-1 ms here, more on a busy disk), and every
** request that arrives meanwhile waits with it, reads of other plugins too.
** With the sync deferred (tpws_defer), SQLite runs at NORMAL: a commit writes
** its frames to the WAL and returns, and a checkpoint still syncs before it
** copies them. A commit that wrote, when the brand is configured FULL or
** EXTRA, owes a sync of the WAL file; tpws_run makes it, with fdatasync on
** the WAL (and the first time also on its folder, as SQLite's own first sync
** does), on any thread. The WAL is one file written in order, so one sync
** makes every commit written before it durable.
**
** Until the sync is made, the owners the owed commits wrote (store/deps.h)
** stay written: a request that reads one of them is not clean, and the host
** holds back its answer, with those of the commits, until the sync is made
** (the host's syncer thread, host/tenant.c). Nothing else of such a commit
** leaves the process before then: the sender takes no call out that a commit
** not yet synced wrote (store/outbox.h, tpob_box.durable_id).
**
** The state moves on the loop's thread only: tpws_start (the owed commits'
** owners go in flight) before the syncer thread runs tpws_run, tpws_done after it.
** A failed sync keeps them owed; the next commit's sync tries again. (Linux
** may drop dirty pages when writing them back fails, so a later sync that
** succeeds may not cover what the failed one did: the answers that waited
** are refused, and the error is logged.)
*/
#ifndef TP_WALSYNC_H
#define TP_WALSYNC_H

#include <stdbool.h>
#include <stdint.h>

#include "store/deps.h"

struct tps_db;

typedef struct tpws_state {
  bool on;                   /* commits leave their sync to tpws_run */
  bool durable;              /* the next commit must reach the disk (tps_set_durable) */
  bool owed;                 /* a commit since the last tpws_start owes a sync */
  bool dir_synced;           /* the WAL's folder was synced once since wal_fd opened */
  int wal_fd;                /* the WAL, opened by tpws_start; -1 */
  tpdep_set next;            /* owners written by owed commits */
  tpdep_set inflight;        /* owners written by the commits the running sync covers */
} tpws_state;

/* Defers d's commits' syncs; only at FULL or EXTRA (else there is none to
** defer: 1, nothing changes). 0, or -1 (SQLite refused NORMAL). */
int tpws_defer(struct tps_db *d);
/* A transaction that wrote commits (SQLite's commit hook: every one, the
** batch's and any statement's on its own): the owners it wrote (d->written)
** owe a sync, unless it was not a durable one (tps_set_durable false). */
void tpws_committed(struct tps_db *d);
/* Whether some owner of set is written by a commit not yet synced. */
bool tpws_meets(const struct tps_db *d, const tpdep_set *set);
/* Whether commits owe a sync that no running one covers. */
bool tpws_owed(const struct tps_db *d);
/* Before the syncer thread runs tpws_run: the owed commits are the ones it covers.
** 0, or -1 when the WAL cannot be opened (errno; nothing moved). */
int tpws_start(struct tps_db *d);
/* Syncs the WAL (and its folder, the first time); any thread. 0 or an errno. */
int tpws_run(struct tps_db *d);
/* After tpws_run: ok, the commits it covered are durable; else they are
** owed again. */
void tpws_done(struct tps_db *d, bool ok);
/* Closes the WAL's descriptor (tps_close; nothing may be running). */
void tpws_close(struct tps_db *d);

#endif
