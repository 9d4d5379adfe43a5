/*
** idem.h - Idempotency-Keys: the stored answer of an accepted request.
**
** One mechanism for every plugin (issue 17). A route that declares
** `idempotent = true` in its manifest reads the request's Idempotency-Key
** header in the host: before its handler runs the host looks the key up in
** the user's scope, and
**   - finds nothing (or only an expired answer): the handler runs, and if it
**     succeeds (2xx, its savepoint released) the answer is stored here, in
**     that same savepoint: a request that is rolled back stores nothing, and
**     one that is committed keeps its key with it, durably (group commit);
**   - finds an answer of the same request: it is answered again, without
**     running any Lua (host.c: a 201 as 200, an object with "replayed":true);
**   - finds an answer of another request (another route, path, query or
**     body under the same key): 409 idempotency_key_reused.
**
** The scope is the user id (a route without a user: "", shared by every
** anonymous caller, who should send random keys). Keys are the user's, not
** the route's: one key names one intended operation, so the same key on
** another route is a reuse (group_buy's "open then join with one key").
** What a request "is" is the SHA-256 of method, path, query and body as
** sent (tpid_fingerprint).
**
** Answers live TPID_TTL_MS (24 h) of the tenant's clock: an older row is a
** miss and is replaced; tpid_put deletes up to TPID_SWEEP expired rows
** every TPID_SWEEP_EVERY writes, so the table holds about a day of writes.
** A body over TPID_MAX_BODY is not stored: tpid_put refuses it and the host
** rolls the request back (effects happen once, or not at all).
**
** Two requests with one key in the same batch: they run one after another
** on one connection, so the second finds the first's row (released, not yet
** committed) and is answered from it; both answers wait for the same commit.
**
** A member merge (store/alias.h) moves the merged id's answers to the
** survivor, by a trigger on _tp_aliases: a key both used stays the
** survivor's. An erased member's answers are deleted. An undone merge does
** not move them back. tpid_open must therefore follow tpal_open.
**
** The table (_tp_idempotency) is the host's: plugins cannot read or write it.
** Every function runs in the caller's transaction with the host's
** privileges and returns 0 or a negative value, never raising.
*/
#ifndef TP_IDEM_H
#define TP_IDEM_H

#include <sqlite3.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "base/buf.h"
#include "store/store.h"

#define TPID_MAX_KEY 128                    /* bytes of a key: 1-128 of 0x21-0x7e */
#define TPID_MAX_BODY (64 * 1024)           /* bytes of a stored answer */
#define TPID_TTL_MS (24 * 3600 * 1000LL)    /* how long an answer is kept */
#define TPID_SWEEP_EVERY 64                 /* writes between two sweeps */
#define TPID_SWEEP 256                      /* expired rows one sweep deletes at most */

typedef struct tpid_table {
  tps_db *db;
  sqlite3_stmt *find, *put, *sweep;
  unsigned writes;           /* since the last sweep */
} tpid_table;

typedef enum {
  TPID_MISS = 0,             /* no live answer: run the handler */
  TPID_HIT = 1,              /* the same request's answer: *status and body filled */
  TPID_REUSED = 2,           /* the key answered another request: 409 */
  TPID_ERROR = -1,
} tpid_found;

/* Creates _tp_idempotency if needed and prepares the statements. 0, or -1
** with err. */
int tpid_open(tpid_table *x, tps_db *db, char *err, size_t errcap);
void tpid_close(tpid_table *x);

/* True if key (n bytes) is 1-TPID_MAX_KEY visible ASCII characters. */
bool tpid_key_valid(const char *key, size_t n);

/* The fingerprint of a request: SHA-256 over route, method, path, query and
** body, each length-prefixed so no two requests share one by concatenation.
** 0, or -1 if OpenSSL could not (out of memory). */
int tpid_fingerprint(const char *route, const char *method, const char *path, size_t plen,
                      const char *query, size_t qlen, const char *body, size_t blen,
                      unsigned char out[32]);

/* Looks key up in scope (the user, "" for none) at now_ms. On TPID_HIT the
** stored status goes to *status and the body is appended to body. */
tpid_found tpid_find(tpid_table *x, const char *scope, const char *key, size_t klen,
                     const unsigned char print[32], int64_t now_ms, int *status, tp_buf *body);

/* Stores the answer of the request print under (scope, key) at now_ms,
** replacing an expired one. -1 if the body is over TPID_MAX_BODY (nothing
** written), -2 on a SQLite error; then the caller rolls its savepoint back. */
int tpid_put(tpid_table *x, const char *scope, const char *key, size_t klen,
             const unsigned char print[32], int status, const char *body, size_t blen,
             int64_t now_ms);

/* Deletes up to limit answers older than TPID_TTL_MS at now_ms; how many,
** or -1. */
int tpid_sweep(tpid_table *x, int64_t now_ms, int limit);

#endif
