/*
** benchloop.h - the loop shared by the bench's bare servers (baseline.c and
** sidebyside/flashloop.c): libuv + llhttp + SQLite with group commit.
**
** benchloop owns the connections, the HTTP parsing, the write path and the
** iteration's transaction. Every request parsed during one loop iteration that
** calls bl_begin() runs inside one BEGIN ... COMMIT; a uv_check handle (end of
** the iteration) commits, and only then are that iteration's responses handed
** to the sockets. If the COMMIT fails, the iteration's responses are dropped
** and their connections closed. A server supplies a bl_server (its name, the
** one request header it wants, its dispatch) and its own routes and SQL:
**
**   bl_init(&server);            SIGPIPE ignored, the loop
**   bl_open_db(path);            optional: WAL, synchronous=FULL, foreign keys
**   bl_exec(...); bl_prepare(...);   the server's schema and statements
**   return bl_run(port, "listening");
**
** SIGINT/SIGTERM commit an open transaction, close the database and exit 0.
*/
#ifndef TIDEPOOL_BENCH_BENCHLOOP_H
#define TIDEPOOL_BENCH_BENCHLOOP_H

#include <llhttp.h>
#include <sqlite3.h>
#include <stdbool.h>
#include <stddef.h>

/* ---- growable buffers (abort on out of memory) */

typedef struct buf {
  char *data;
  size_t len, cap;
} buf;

void buf_reserve(buf *b, size_t extra);
void buf_add(buf *b, const char *p, size_t n);
void buf_adds(buf *b, const char *s);
void buf_printf(buf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void buf_add_json_str(buf *b, const unsigned char *s, size_t n); /* a quoted, escaped JSON string */

/* ---- the server's side */

typedef struct bl_conn bl_conn;

typedef struct bl_request {
  int method;                    /* llhttp_method_t: HTTP_GET, HTTP_POST, ... */
  const char *path;              /* the URL up to any '?' (not NUL-terminated) */
  size_t path_len;
  const char *body;              /* "" when there is none (not NUL-terminated) */
  size_t body_len;
  const char *header;            /* the value of bl_server.header, "" when absent */
  size_t header_len;
} bl_request;

typedef struct bl_server {
  const char *name;   /* prefixes messages on stderr and the metric names */
  const char *header; /* a request header whose value is kept (case-insensitive), or NULL */
  /* Answers one parsed request: calls bl_respond exactly once, before returning. */
  void (*dispatch)(bl_conn *c, const bl_request *req);
} bl_server;

/* Holds a response until the iteration's COMMIT; "Connection: close" is added
** when the connection closes after it. */
void bl_respond(bl_conn *c, int status, const char *content_type, const buf *body);
/* Responds {"error":{"code":..,"message":..}} (application/json); body is
** scratch. */
void bl_respond_error(bl_conn *c, int status, const char *code, const char *msg, buf *body);

/* ---- the iteration's transaction */

/* Joins the iteration's transaction, running BEGIN if it is the first; -1 if BEGIN failed. */
int bl_begin(void);
/* Counts one request in this iteration's batch (the batch size in bl_metrics). */
void bl_batch_add(void);
/* Replaces body with "<name>_commits_total{result=..}" and the batch size sum/count. */
void bl_metrics(buf *body);

/* ---- SQLite (fatal errors print "<name>: ..." and exit 1) */

sqlite3 *bl_open_db(const char *path); /* also prepares BEGIN, COMMIT, ROLLBACK */
void bl_exec(const char *sql);
sqlite3_stmt *bl_prepare(const char *sql); /* persistent; finalized on SIGINT/SIGTERM */
int bl_step_done(sqlite3_stmt *st);        /* step and reset; 0 if SQLITE_DONE */

/* ---- the loop */

void bl_init(const bl_server *server);
/* Listens on 127.0.0.1:port, prints "<name>: <what> on 127.0.0.1:<port>" and runs
** the loop; returns 1 if it cannot listen. */
int bl_run(const char *port, const char *what);

#endif
