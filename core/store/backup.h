/*
** backup.h - a brand's database copied while it serves, and put back.
**
** A backup is one file, <dir>/<tenant>/<tenant>-<UTC time>.db, a complete
** SQLite database: SQLite's online backup API copies every page of the brand's
** file inside one read transaction of a connection of its own, so the copy is
** the database as one commit left it, whatever the host writes meanwhile (WAL
** lets a reader and the writer go on side by side). It is written under a
** temporary name, synced, renamed and its folder synced, so a file with a
** backup's name is always whole; a crash leaves at most a ".tmp" that the next
** backup of that brand removes.
**
** Why one step (sqlite3_backup_step(b, -1)) and not a few pages at a time:
** a step ends its read transaction, and any commit of the host between two
** steps makes SQLite start the copy over, so a busy brand's backup taken in
** pieces might never end. One step costs a read snapshot held for the copy's
** length; the WAL cannot be checkpointed past it meanwhile, which is fine for
** seconds and minutes.
**
** Only the brand's own file is copied: its orders, members, jobs and outbox.
** The analytics file (<tenant>.analytics.db, store/track.h) is rebuilt from
** events and is not part of a backup.
**
** The claim: a host holds an exclusive lock (flock) on <tenant>.db.lock for
** every brand it serves, so that two processes never serve one brand and a
** restore never writes under a running host. Each function here is blocking:
** the host calls tpbk_take from a libuv worker (host/backup.c).
*/
#ifndef TP_STORE_BACKUP_H
#define TP_STORE_BACKUP_H

#include <stddef.h>
#include <stdint.h>

#define TPBK_NAME_MAX 128   /* a backup's file name, without its folder */

typedef struct tpbk_entry {
  char name[TPBK_NAME_MAX];  /* leaf-20261206T120000.123Z.db */
  int64_t taken_ms;          /* from the name: when the copy began (UTC) */
  int64_t bytes;
} tpbk_entry;

/* Copies the database at db_path into dir/tenant/ (created as needed) as a
** backup taken at now_ms; its file name into name (TPBK_NAME_MAX) and its size
** into *bytes. 0, or -1 with err. */
int tpbk_take(const char *db_path, const char *dir, const char *tenant, int64_t now_ms,
              char *name, int64_t *bytes, char *err, size_t errcap);

/* Copies the database at from_path into to_path (created or replaced) in
** one step of the backup API: one read transaction on from_path, so a writer
** beside it is not disturbed and the copy is one commit's view. No sync, no
** check: tpbk_take and tpbk_restore add those. 0, or -1 with err. */
int tpbk_copy(const char *from_path, const char *to_path, char *err, size_t errcap);

/* The backups of tenant in dir, newest first, into a malloc'd array (*out,
** free it) of *n. A missing folder is no backups. 0, or -1 with err. */
int tpbk_list(const char *dir, const char *tenant, tpbk_entry **out, int *n, char *err, size_t errcap);

/* Deletes all but the keep newest backups of tenant, and any leftover
** temporary file. Returns how many backups it deleted, or -1 with err. */
int tpbk_prune(const char *dir, const char *tenant, int keep, char *err, size_t errcap);

/* Copies the backup at from into the database at to (created or replaced,
** through SQLite, so to's WAL and header stay consistent), then checks the
** result (PRAGMA integrity_check). The caller holds to's claim. 0, or -1
** with err. */
int tpbk_restore(const char *from, const char *to, char *err, size_t errcap);

/* Restores the backup at path into a scratch file beside nothing (TMPDIR),
** opens it, runs integrity_check and counts its tables and the host's jobs;
** the scratch file is removed. A one-line summary into out. 0, or -1 with err. */
int tpbk_check(const char *path, char *out, size_t outcap, char *err, size_t errcap);

/* Takes the claim on db_path (db_path.lock, created): the lock's descriptor,
** or -1 with err naming the reason (another process holds it). */
int tpbk_claim(const char *db_path, char *err, size_t errcap);
void tpbk_unclaim(int fd);

#endif
