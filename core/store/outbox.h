/*
** outbox.h - calls out waiting to be made, as rows of the tenant's database.
**
** What: tp.http writes a call into _tp_outbox inside the caller's transaction,
** so a call exists exactly when the request, job or event that made it
** committed: a rolled-back handler calls nobody. The host takes due rows,
** leases them (attempts + 1, due again after the lease) in a transaction of
** its own that commits before anything is sent, then sends; an answer or a
** final failure deletes the row (and hands the answer to the plugin as a job,
** host/sender.c), a failure that may be retried puts it back with a later due
** time.
**
** Why a lease and not an in-memory "sending" mark: a kill -9 between the
** lease's commit and the answer leaves the row leased; at the next start the
** host ends every lease (tpob_release_leases) and sends it again, with the
** same Idempotency-Key. A call is made at least once; the key lets the other
** side make its effect exactly once.
*/
#ifndef TP_OUTBOX_H
#define TP_OUTBOX_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "store/store.h"

#define TPOB_MAX_BODY (1 << 20)

/* A call as a plugin makes it (tp.http.request); strings are JSON where said. */
typedef struct tpob_call {
  const char *dest;              /* a destination of the tenant's config */
  const char *method;
  const char *path;              /* after the destination's URL, query included */
  const char *headers;           /* "Name: value\n" lines ({{secret:x}} unresolved) */
  const char *body;
  size_t body_len;
  const char *key;               /* Idempotency-Key; NULL: tp-<tenant>-<id> */
  const char *on_reply;          /* a job of the plugin, or NULL */
  const char *context;           /* JSON, or NULL */
  int max_attempts;
} tpob_call;

/* A row as tpob_take hands it over: valid during the callback only. */
typedef struct tpob_row {
  int64_t id;
  const char *plugin, *dest, *method, *path, *headers, *key, *on_reply, *context;
  const char *body;
  size_t body_len;
  int attempts;                  /* made before this one */
  int max_attempts;
} tpob_row;

typedef struct tpob_box {
  tps_db *db;
  /* The highest id whose commit is durable (INT64_MAX: every committed row):
  ** tpob_take and tpob_next_due see no row above it, so that no call leaves
  ** for a commit the disk may still lose (store/walsync.h). The host moves it
  ** to committed_id, the highest id a commit made (tpob_committed), once the
  ** commits made until then are synced. last_id is the highest id added, in
  ** a transaction still open too: a sync started mid-batch must not count
  ** that batch's rows, and an id rolled back is given again (AUTOINCREMENT's
  ** sequence rolls back with it), so only a commit tells what is committed. */
  int64_t durable_id, committed_id, last_id;
  sqlite3_stmt *insert, *due, *row, *lease, *remove, *retry, *bury, *next_due, *count,
      *release, *max_id;
} tpob_box;

int tpob_open(tpob_box *b, tps_db *db, char *err, size_t errcap);
void tpob_close(tpob_box *b);

/* Writes call of plugin (in the caller's transaction); *id is the row's. A
** call without a key is stored with '' and sent with tp-<tenant>-<id>. */
int tpob_add(tpob_box *b, const char *plugin, const tpob_call *call, int64_t now_ms, int64_t *id,
             char *err, size_t errcap);
/* For each row due at now (at most max, oldest due first): lease_ms =
** take(ud, row); > 0 leases it for that long (attempts + 1), 0 leaves it.
** Returns how many were leased, -1 on a database error. */
int tpob_take(tpob_box *b, const char *tenant, int64_t now_ms, int max,
              int64_t (*take)(void *ud, const tpob_row *row), void *ud);
/* The call is over (answered, or given up and handed to on_reply). */
int tpob_remove(tpob_box *b, int64_t id);
/* Another attempt at due_ms, with why this one failed. */
int tpob_retry(tpob_box *b, int64_t id, int64_t due_ms, const char *error);
/* Given up with nobody to tell (no on_reply): kept as dead, for the admin. */
int tpob_bury(tpob_box *b, int64_t id, int64_t now_ms, const char *error);
/* The highest id in the outbox (0: none). */
int64_t tpob_max_id(tpob_box *b);
/* After a commit (made or failed) of b's database: committed_id is the
** highest id committed (read back only when rows were added since). */
void tpob_committed(tpob_box *b);
/* The earliest due time of a live row, INT64_MAX if none. */
int64_t tpob_next_due(tpob_box *b);
/* The same without a box, on the database db (a closed brand's file). */
int64_t tpob_peek(sqlite3 *db);
/* Live (dead false) or dead rows. */
int64_t tpob_count(tpob_box *b, bool dead);
/* After a start: every lease is over (nothing can be in flight), due now. */
int tpob_release_leases(tpob_box *b, int64_t now_ms);

#endif
