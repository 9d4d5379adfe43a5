/*
** users.h - the brand's console users (_tp_console_users in its database).
**
** A console user has a name (1-64 of [A-Za-z0-9._@-]), a role, a store for a
** store manager, a password hash (base/passwd.h) and a count of wrong
** passwords in a row: at the config's sign_in_failures the user is locked
** out for a while, whoever guesses. Created by `tidepool console-user add`
** (the CLI writes the file directly) or by an owner through
** POST /admin/{t}/console/users. The table is the host's: no plugin reaches it.
*/
#ifndef TP_USERS_H
#define TP_USERS_H

#include <sqlite3.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "base/buf.h"
#include "base/passwd.h"

#define TPCU_MAX_NAME 64

typedef struct tpcu_user {
  char name[TPCU_MAX_NAME + 1];
  int role;                    /* config.h's tpc_role */
  char store[33];
  char hash[TPPW_MAX];
  int failures;                /* wrong passwords in a row */
  int64_t locked_until_ms;
  int64_t created_ms;
} tpcu_user;

/* Creates the table if needed. 0, or -1 with err. */
int tpcu_open(sqlite3 *db, char *err, size_t errcap);
bool tpcu_valid_name(const char *s);
/* 1 found (into u), 0 none, -1 store error. */
int tpcu_get(sqlite3 *db, const char *name, tpcu_user *u);
/* Adds u, or replaces the user of its name (a new password resets the
** lock-out). 0, or -1. */
int tpcu_put(sqlite3 *db, const tpcu_user *u);
/* 1 removed, 0 none, -1 error. */
int tpcu_delete(sqlite3 *db, const char *name);
/* Appends [{name, role, store, locked_until_ms, created_ms}, ...] to out. */
int tpcu_list(sqlite3 *db, tp_buf *out);
/* A wrong password for name: failures + 1, and at max failures locked until
** now + lock_ms (failures start again). Returns the failures so far. */
int tpcu_failed(sqlite3 *db, const char *name, int max, int64_t now_ms, int64_t lock_ms);
/* A right one: failures back to 0. */
int tpcu_succeeded(sqlite3 *db, const char *name);

#endif
