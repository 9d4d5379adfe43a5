/*
** alias.h - the host's side of the customer pool: which user ids now name
** another member.
**
** Within a brand a user id is a member id (the identity plugin, "members",
** mints the tokens that carry it). When two members prove to be one person the
** identity plugin merges the younger into the survivor and records an alias
** here, in the same transaction; from then on every token of the merged id
** enters as the survivor (host.c resolves it right after the signature check),
** so no plugin ever sees the merged id again and limits are counted once per
** person. A member whose personal data was erased is an alias to nobody: its
** tokens are refused.
**
** Aliases always point at a survivor (one hop): merging a survivor re-points
** the ids merged into it. The table is the host's (_tp_aliases): plugins reach
** it only through tp.auth, and only the identity plugin may write it.
*/
#ifndef TP_ALIAS_H
#define TP_ALIAS_H

#include <sqlite3.h>
#include <stddef.h>
#include <stdint.h>

#include "base/token.h"

typedef struct tpal_table {
  sqlite3 *db;
  sqlite3_stmt *resolve;     /* kept prepared: it runs on every authenticated request */
} tpal_table;

typedef enum {
  TPAL_SELF = 0,     /* not an alias: the id names a member (or a user) of its own */
  TPAL_ALIAS = 1,    /* merged: out holds the survivor */
  TPAL_ERASED = 2,   /* erased on request: refuse it */
  TPAL_ERROR = -1,
} tpal_result;

/* Creates _tp_aliases if needed and prepares the lookup. 0, or -1 with err. */
int tpal_open(tpal_table *a, sqlite3 *db, char *err, size_t errcap);
void tpal_close(tpal_table *a);

/* What user (NUL-terminated) resolves to; on TPAL_ALIAS the survivor is
** copied into out, which has TPT_MAX_ID + 1 bytes. */
tpal_result tpal_resolve(tpal_table *a, const char *user, char out[TPT_MAX_ID + 1]);

/* Makes from an alias of into (into NULL: erased) at now_ms, and re-points
** every alias of from at into. Refuses (-1, err) an into that is itself an
** alias or erased, and from == into. Runs in the caller's transaction. */
int tpal_set(tpal_table *a, const char *from, const char *into, int64_t now_ms, char *err,
             size_t errcap);

/* from names itself again (its own alias row goes; aliases of others into it
** stay as they are). *removed = 1 if it was an alias. 0, or -1 with err. */
int tpal_unset(tpal_table *a, const char *from, int *removed, char *err, size_t errcap);

#endif
