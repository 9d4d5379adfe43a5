/*
** store.h - one SQLite database per tenant.
**
** Transactions follow DESIGN.md "The request is a transaction":
**   tps_batch_begin   BEGIN, once per tenant per loop iteration (first request)
**   tps_savepoint     SAVEPOINT around each handler
**   tps_release / tps_rollback_to   when the handler returns / raises
**   tps_commit        COMMIT once per iteration, before the answers resting on it go
**                     (synced by the host's syncer thread when deferred: walsync.h)
** Each statement notes, as it starts, whose tables it may read or write
** (deps.h), so that an answer waits only for the writes it may have seen.
** A plugin's SQL is confined to tables named "<plugin>_..." by an authorizer;
** the owner is set with tps_set_owner() around every call into a plugin.
** Schema changes (CREATE, DROP, ALTER) happen only in migrations, which is also
** the only time SQLite's own tables (sqlite_master, sqlite_sequence) may be
** touched, as DDL needs; a handler can neither read nor write them.
** Plugins may not open, commit or roll back transactions themselves.
*/
#ifndef TP_STORE_H
#define TP_STORE_H

#include <lua.h>
#include <sqlite3.h>
#include <stdbool.h>
#include <stddef.h>

#include "config/config.h"
#include "store/deps.h"
#include "store/walsync.h"

typedef struct tps_db {
  sqlite3 *db;
  char *path;
  const char *owner;         /* plugin whose SQL runs now; NULL = the host */
  size_t owner_len;
  bool migrating;            /* the owner's migrations run: schema changes allowed */
  bool in_txn;               /* BEGIN issued in this iteration */
  bool commit_failed;        /* a COMMIT failed since the owner last cleared it (host.c
                             ** clears it once the answers that rest on it are out) */
  bool aborted;              /* SQLite ended the batch's transaction by itself */
  int batch_size;            /* requests in the open transaction */
  int sync;                  /* the configured tpc_sync, which tps_set_durable returns to */
  char denied[160];          /* what the authorizer last refused, for the error */
  sqlite3_stmt *begin, *commit, *rollback, *savepoint, *release, *rollback_to;
  sqlite3_stmt *call_savepoint, *call_release, *call_rollback_to;
  struct tps_progress {      /* see tps_set_progress */
    int (*fn)(void *ud, int64_t steps);
    void *ud;
  } progress;
  sqlite3 *shadow;           /* the built-in functions that tps_open overloads, to call */
  struct tps_shadow_call *shadow_calls;
  /* what answers rest on (deps.h), noted as each statement starts */
  bool plugin_sql;           /* a tp.db statement of the owner runs (else: the host's) */
  bool control;              /* BEGIN, SAVEPOINT, COMMIT, ...: nobody's read or write */
  bool in_request;           /* between tps_request_begin and tps_request_end */
  bool request_wrote;        /* the running request ran a statement that may write */
  tpdep_set written;         /* owners the open batch wrote */
  tpdep_set read;            /* owners the running request read */
  tpws_state ws;             /* commits made durable off the loop (walsync.h) */
} tps_db;

typedef struct tps_progress tps_progress;

/* SQLite's virtual-machine steps between two visits of the progress function. */
#define TPS_PROGRESS_STEPS 1000
#define TPS_COMPARES_PER_STEP 4

int tps_open(tps_db *d, const char *path, tpc_sync sync, char *err, size_t errcap);
void tps_close(tps_db *d);
/* Deletes the database file at path and its -wal, -shm and -journal files. */
void tps_remove(const char *path);

/* Whether the next commits wait for the disk (the configured synchronous
** level) or not (NORMAL: the commit is not synced, a checkpoint still is).
** With the sync deferred (walsync.h), whether the next commit owes one.
** Only between transactions; SQLite refuses it inside one, and then nothing
** changes (-1). For writes nobody is answered for and a power loss may lose
** (the sender's leases, which every start ends anyway, and the outcomes of
** calls out, which are then sent again with the same key): a later durable
** commit's sync covers them too, as they precede it in the WAL. */
int tps_set_durable(tps_db *d, bool durable);

/* A request of d's tenant begins (before its token's alias is read): what it
** reads and writes is noted from here (deps.h) until it ends. */
void tps_request_begin(tps_db *d);
void tps_request_end(tps_db *d);
/* Whether the request since tps_request_begin rests on no write that is not
** durable yet: it wrote nothing, and read no owner that the open batch wrote
** (deps.h), nor a commit whose sync is owed (walsync.h). Its answer need not
** wait for the batch's commit. */
bool tps_request_clean(const tps_db *d);

/* Runs one or more statements with the host's privileges (no bound values). */
int tps_exec_script(tps_db *d, const char *sql, char *err, size_t errcap);

void tps_set_owner(tps_db *d, const char *plugin);
/* Calls next.fn(next.ud, TPS_PROGRESS_STEPS) every TPS_PROGRESS_STEPS steps
** of any statement on d (fn NULL: nothing is called); a nonzero return
** interrupts the statement, which then fails with SQLITE_INTERRUPT. The
** sandbox charges plugins' SQL to their budget this way.
**
** Some built-in functions do work that one step hides: like, glob, instr,
** replace and the two-argument trim, ltrim and rtrim compare every position
** of one argument with the other (n x m: a 1 MB subject and a 10 KB pattern
** run for seconds inside a single step). tps_open overloads them with
** versions that first call next.fn with steps = n x m / TPS_COMPARES_PER_STEP
** and fail the statement with SQLITE_INTERRUPT if it says stop, and otherwise
** call the built-in on a private in-memory connection (so their results and
** errors are SQLite's own; the LIKE index optimization is given up). Returns
** the pair it replaces. */
tps_progress tps_set_progress(tps_db *d, tps_progress next);
/* The last error on d, explained when the authorizer refused something. */
const char *tps_errmsg(tps_db *d, char *buf, size_t cap);

int tps_batch_begin(tps_db *d);     /* BEGIN unless already open; 0 or SQLite code */
/* A statement such as INSERT OR ROLLBACK, RAISE(ROLLBACK) in a trigger, or an
** I/O error can end the whole transaction, not just a savepoint. Call after
** every handler: if the batch's transaction is gone, the batch is marked
** aborted and failed (its answers become 503) and runs nothing more. */
bool tps_batch_alive(tps_db *d);
int tps_savepoint(tps_db *d);
int tps_release(tps_db *d);
int tps_rollback_to(tps_db *d);
/* A nested savepoint around a call between plugins: a callee that fails
** leaves nothing behind even when its caller catches the error. */
int tps_call_begin(tps_db *d);
void tps_call_end(tps_db *d, bool keep);
/* COMMIT; on failure rolls the whole batch back and sets commit_failed. */
int tps_commit(tps_db *d, char *err, size_t errcap);

/* Applies migrations[version+1 ..] of plugin (SQL strings in the Lua array at
** idx of L) in one transaction with the plugin's privileges. Returns 0, or -1
** with the failing migration named in err and nothing applied. */
int tps_migrate(tps_db *d, const char *plugin, lua_State *L, int idx, int *applied,
                char *err, size_t errcap);

/* ---- Lua binding: tp.db.* in a plugin state (see api.c) */

/* Prepares sql for the owner, reusing the state's statement cache. */
sqlite3_stmt *tps_prepare_cached(tps_db *d, lua_State *L, int sql_idx, bool *cached);
/* Pushes the names of the cached statement st as Lua strings made once per
** statement (its result columns, then its parameters), for the two functions
** below: a buy binds about 25 named parameters and reads about 23 columns,
** and pushing each name as a new string cost 5k instructions of its 10k.
** False, with nothing pushed, when L has no statement cache. */
bool tps_push_names(lua_State *L, sqlite3_stmt *st);
/* Binds the Lua values args..args+n-1 (or one table of :names) to st; names is
** the index of st's names table (tps_push_names), or 0. */
int tps_bind_lua(lua_State *L, sqlite3_stmt *st, int args, int n, int names, char *err, size_t errcap);
/* Pushes the current row as a table of column name -> value; names as above. */
void tps_push_row(lua_State *L, sqlite3_stmt *st, int names);
/* Finalizes every statement in L's cache (before lua_close). */
void tps_cache_clear(lua_State *L);

#endif
