/*
** deps.h - what an answer rests on: whose tables a batch wrote, and whose
** tables a request read.
**
** DESIGN "group commit": an answer goes out only once every write it rests
** on is durable. Until now an answer rested on every write of its loop
** iteration: a read handled after any write of the iteration waited for the
** commit and its fsync. But a plugin's SQL touches only the plugin's own
** tables (the authorizer, store.h) and the host's own statements only the
** host's (_tp_*), so the writes a read can have seen are those of the owners
** it read. A request that wrote nothing and read no owner that the open batch
** wrote, nor one a commit still being synced wrote (walsync.h), rests on
** nothing that is not durable already: its answer is clean and goes at once
** (net/http.h), whatever else the batch holds.
**
** Owners are noted per statement, as it starts (SQLite's statement trace,
** store.c): the owner is the plugin whose tp.db statement runs (tps_db's
** plugin_sql), and the host for every other statement, including the host's
** work on a plugin's behalf (its jobs, events, calls out). The host's are
** told apart by table: each _tp_ table its SQL names is an owner of its own
** (a token's alias read, _tp_aliases, does not wait for a job written,
** _tp_jobs); a statement that names none, or a trigger's, is the host at
** large (tpdep_host), the same as every one of them. A statement that
** may write (sqlite3_stmt_readonly false) marks its owner written by the batch
** and the request a writer; every statement marks its owner read by the
** request. Transaction control (BEGIN, SAVEPOINT, ...) marks nothing. The
** rule errs one way only: a write that changes no row still counts, a
** rolled-back one too, and a set holding more owners than it has room for
** (or a name too long to keep) counts as every owner.
*/
#ifndef TP_DEPS_H
#define TP_DEPS_H

#include <stdbool.h>

#define TPDEP_MAX 16      /* owners a set names before it counts as all */
#define TPDEP_NAME 64     /* a plugin name's bytes, with its NUL */

/* The owner of the host's own tables and statements at large; one of its
** tables ("_tp_jobs") is an owner of its own, and the same as this one. */
extern const char tpdep_host[];

typedef struct tpdep_set {
  char owner[TPDEP_MAX][TPDEP_NAME];  /* copies: a plugin reloaded mid-batch frees its name */
  int n;
  bool all;
} tpdep_set;

void tpdep_clear(tpdep_set *s);
/* Adds owner (NULL: the host at large) unless the set has it by name. */
void tpdep_add(tpdep_set *s, const char *owner);
/* Whether the set has owner, or one the same (the host at large and a table
** of its: deps.h). */
bool tpdep_has(const tpdep_set *s, const char *owner);
/* Adds every owner of from to into (all, if from counts as all). */
void tpdep_merge(tpdep_set *into, const tpdep_set *from);
/* Whether some owner is in both (a set that counts as all meets any other
** that is not empty). */
bool tpdep_meets(const tpdep_set *a, const tpdep_set *b);

#endif
