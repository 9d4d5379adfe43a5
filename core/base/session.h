/*
** session.h - the console's signed-in browsers, in memory.
**
** A session is created at sign-in and named by a random id (the cookie's
** value); the table keeps only the id's SHA-256, so a memory dump or a log
** holds no usable cookie. Each session has a CSRF token of its own, which
** every write must echo in X-CSRF-Token (host/gate.c), an expiry, and the
** user's role and store as they were at sign-in. Sessions live as long as
** the process: a restart signs everyone out, which is what an operator
** expects of a deploy anyway. One loop owns the table; no locks.
*/
#ifndef TP_SESSION_H
#define TP_SESSION_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define TPSE_MAX_SESSIONS 10000

typedef struct tpse_session {
  unsigned char id[32];        /* SHA-256 of the cookie's value */
  char tenant[33];
  char user[65];
  int role;                    /* config.h's tpc_role */
  char store[33];
  char csrf[65];
  int64_t created_ms, expires_ms;
} tpse_session;

typedef struct tpse_table tpse_table;

tpse_table *tpse_new(void);
void tpse_free(tpse_table *t);
/* Starts a session lasting life_ms from now_ms; its id (the cookie's value,
** 64 hex) into id_out. The session is returned (its csrf filled); NULL when
** out of memory. A full table drops its session nearest to expiry. */
const tpse_session *tpse_create(tpse_table *t, const char *tenant, const char *user, int role,
                                const char *store, int64_t now_ms, int64_t life_ms,
                                char id_out[65]);
/* The session of cookie value id (n bytes) in tenant, or NULL when there
** is none or it expired (then it is dropped). */
const tpse_session *tpse_find(tpse_table *t, const char *tenant, const char *id, size_t n,
                              int64_t now_ms);
/* Ends the session of id; true if there was one. */
bool tpse_end(tpse_table *t, const char *id, size_t n);
/* Ends every session of user in tenant (deleted, or its password changed). */
int tpse_end_user(tpse_table *t, const char *tenant, const char *user);
int tpse_count(const tpse_table *t);

#endif
