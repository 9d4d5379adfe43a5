/*
** http.h - the HTTP/1.1 server (libuv + llhttp).
**
** The server parses requests and hands each complete one to hooks.handle,
** synchronously, in arrival order; handlers therefore never interleave. The
** responses produced during one loop iteration are held back until the end of
** that iteration (a uv_check handle), when hooks.commit makes their writes
** durable in one go; only then are they written to the sockets (group commit).
** A response whose commit failed is replaced by a 503 before it is sent.
** A response the handler marked clean (it read only what earlier iterations
** made durable, and wrote nothing) rests on no write of the iteration: it is
** written before the commit, so that a read never waits for another
** request's fsync (each connection's answers still go in order). When the
** host makes its commits durable off the loop's thread (store/walsync.h), a
** committed answer may wait for that too: hooks.hold defers it.
**
** Limits and timeouts come from tpc_limits: header bytes and count (431), body
** bytes (413), open connections (503 on accept), a deadline for the headers and
** one for the body (408), and an idle timeout for keep-alive connections.
*/
#ifndef TP_HTTP_H
#define TP_HTTP_H

#include <stdbool.h>
#include <stdint.h>
#include <uv.h>

#include "base/buf.h"
#include "base/error.h"
#include "config/config.h"

#define TPH_MAX_REQUEST_ID 64

typedef struct tph_header {
  const char *name;   /* lowercased */
  size_t nlen;
  const char *value;
  size_t vlen;
} tph_header;

typedef struct tph_request {
  const char *method;
  const char *target;         /* raw request-target: path and query */
  size_t target_len;
  const tph_header *headers;
  int nheaders;
  const char *body;
  size_t body_len;
  const char *request_id;
  const char *peer;           /* the client's address ("" if unknown) */
} tph_request;

typedef struct tph_response {
  int status;
  const char *content_type;   /* static string; default application/json */
  tp_buf body;
  char allow[64];             /* for 405 */
  int retry_after;            /* seconds, for 429 and 503 (0: no Retry-After) */
  const bool *commit_failed;  /* the store flag this response's writes rely on */
  void *rests_on;             /* the host's handle of the batch it rests on (hooks.hold) */
  bool clean;                 /* rests on no write of this iteration: goes before the commit */
  bool held;                  /* settled after its commit (failed, or offered to hooks.hold) */
  /* for the log line and metrics */
  char route[320];            /* route label, copied: a reload may free the route */
  char tenant[TPT_MAX_ID + 1];
  char user[TPT_MAX_ID + 1];
  char error_code[40];
  char request_id[TPH_MAX_REQUEST_ID + 1];
  const char *method;
  uint64_t seed;              /* the invocation's random seed, for replay */
  uint64_t start_ns;
  bool keep_alive;
  /* a response answered later (tph_resume): held in its connection's queue,
  ** with every answer after it, until it is resumed */
  bool deferred;
  bool orphaned;              /* deferred, and its connection closed: freed on resume */
  void *conn;                 /* the connection it answers (net's own) */
  char headers[512];          /* more header lines, "Name: value\r\n" each (tph_add_header) */
  struct tph_response *next;
} tph_response;

typedef struct tph_hooks {
  void (*handle)(void *ud, const tph_request *req, tph_response *res);
  void (*commit)(void *ud);                          /* end of iteration */
  void (*finished)(void *ud, const tph_response *res, double seconds);
  void (*iteration_end)(void *ud);                   /* every held response is out */
  void *ud;
  /* After commit, once for each answer that is not clean and rests on a
  ** batch (rests_on): true if it must wait for the commit to reach the disk,
  ** the host then resumes it (tph_resume) once it has. NULL: never. */
  bool (*hold)(void *ud, tph_response *res);
} tph_hooks;

typedef struct tph_server tph_server;

tph_server *tph_new(uv_loop_t *loop, const tpc_limits *limits, tph_hooks hooks);
/* Binds and listens; the bound port (useful with port 0) is stored in *port. */
int tph_listen(tph_server *s, const char *host, int port, int *bound_port, char *err,
               size_t errcap);
/* Graceful stop: no new connections, idle ones closed, requests in progress
** answered (with Connection: close); done() runs once every connection is gone
** or the shutdown timeout has passed. */
void tph_shutdown(tph_server *s, void (*done)(void *), void *arg);
void tph_free(tph_server *s);
int64_t tph_open_connections(const tph_server *s);

/* Fills res with {"error":{"code":..,"message":..}} and the status. */
/* Answers with the error e, rendered in the one error shape (base/error.h). */
void tph_answer_error(tph_response *res, const tp_error *e);
void tph_error(tph_response *res, int status, const char *code, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
/* Appends the header "name: value" to res; false (nothing added) when it
** does not fit or holds a line break. */
bool tph_add_header(tph_response *res, const char *name, const char *value);
/* A handler that answers later sets res->deferred and keeps res; once it has
** filled it (from the loop's thread: a uv_work's after-callback), it calls
** tph_resume. A response whose client has gone is freed here instead. */
void tph_resume(tph_response *res);
/* The same when the host is stopping and will not answer: the response is
** never sent; its connection frees it as it closes (or it is freed here if
** the connection is gone already). Never touches the connection. */
void tph_abandon(tph_response *res);
/* Finds a header by lowercase name; NULL if absent. */
const tph_header *tph_find_header(const tph_request *req, const char *name);

#endif
