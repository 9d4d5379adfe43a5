/*
** http_int.h - what the files of the HTTP server share: a connection, the
** server, and the steps of a request's way through them:
**   respond.c  the error shape, response objects, the answer queue, request ids
**   parse.c    llhttp's callbacks (uses respond.c)
**   http.c     connections, deadlines, reads and writes, the iteration's end
**              (uses both; they call nothing of it)
*/
#ifndef TP_HTTP_INT_H
#define TP_HTTP_INT_H

#include <llhttp.h>

#include "net/http.h"

#define READ_BUF_SIZE 65536
#define MAX_OUTPUT_BYTES (1u << 20)  /* stop reading while this much is unsent */
#define LINGER_MS 1000               /* read-and-discard after our FIN, then close */
#define MAX_QUEUED 64                /* pipelined requests answered per iteration */
#define MAX_FREE_RESPONSES 1024      /* response objects kept for reuse */

typedef enum { PHASE_IDLE, PHASE_HEADERS, PHASE_BODY, PHASE_LINGER } conn_phase;

typedef struct header_span {
  uint32_t noff, nlen, voff, vlen;
} header_span;

typedef struct conn {
  uv_tcp_t tcp;
  uint64_t deadline;           /* loop time (ms) when the current phase times out */
  uv_shutdown_t shutdown_req;
  uv_write_t write_req;
  tph_server *srv;
  llhttp_t parser;
  conn_phase phase;
  /* the request being parsed */
  tp_buf head;                 /* target, then header names and values */
  uint32_t target_len;
  header_span *spans;
  int nspans, spans_cap;
  bool field_open;             /* a header name is being received */
  bool in_trailers;            /* after the headers: chunked trailer fields */
  size_t head_bytes;
  tp_buf body;
  int err_status;              /* a limit we enforce, set by a callback */
  const char *err_code;
  char err_msg[128];
  /* responses */
  tph_response *queue_head, *queue_tail;
  int nqueued;                 /* responses waiting for the end of the iteration */
  size_t queued_bytes;
  tp_buf held;                 /* received but not parsed: the parser paused */
  bool held_paused;            /* paused for backpressure, to resume after draining */
  bool peer_eof;               /* the client half-closed: answer, then close */
  tp_buf out;                  /* serialized, not yet handed to the kernel */
  tp_buf inflight;             /* handed to uv_write, awaiting its callback */
  bool writing;
  bool close_after;            /* close once the queued responses are sent */
  bool closing;
  bool reading;
  int open_handles;
  bool in_pending;
  struct conn *pending_next;
  struct conn *prev, *next;
  char peer[48];               /* the client's address, read once at accept */
} conn;

struct tph_server {
  uv_loop_t *loop;
  tpc_limits limits;
  tph_hooks hooks;
  uv_tcp_t listener;
  bool listening;
  uv_check_t check;
  uv_idle_t flush_soon;        /* keeps poll from blocking while responses wait */
  uv_timer_t shutdown_timer;
  uv_timer_t sweep;            /* checks every connection's deadline */
  llhttp_settings_t settings;
  conn *conns;                 /* every open connection */
  int64_t nconns;
  conn *pending;               /* connections with responses to flush */
  tph_response *free_responses;
  int nfree;
  tph_header *scratch_headers; /* the request being dispatched */
  char read_buf[READ_BUF_SIZE];
  uint64_t id_seed, id_counter;
  bool stopping;
  void (*on_stopped)(void *);
  void *stopped_arg;
};

/* A deadline for the connection's current phase, ms from the loop's now. */
static inline void tph__arm(conn *c, int64_t ms) {
  c->deadline = uv_now(c->srv->loop) + (uint64_t)ms;
}

/* ---- respond.c */
tph_response *tph__response_new(tph_server *s);
void tph__response_release(tph_server *s, tph_response *r);
/* Appends r's status line, headers and body to c->out. */
void tph__serialize(conn *c, const tph_response *r);
/* Queues r on c, to be written when the iteration ends. */
void tph__enqueue(conn *c, tph_response *r);
/* Puts c on the list flushed when the iteration ends. */
void tph__mark_pending(conn *c);
bool tph__valid_request_id(const char *s, size_t n);
void tph__make_request_id(tph_server *s, char out[TPH_MAX_REQUEST_ID + 1]);
/* A response the server makes itself (timeout, parse error, connection
** limit): a fresh request id, and the connection closes after it. */
tph_response *tph__closing_response(conn *c);

/* ---- parse.c */
void tph__parser_settings(llhttp_settings_t *st);

#endif
