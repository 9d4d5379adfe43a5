/*
** http.c - HTTP/1.1 server on libuv + llhttp, with group-commit flushing.
*/
#include "net/http.h"

#include "base/error.h"

#include <llhttp.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/resource.h>

#include "base/clock.h"
#include "base/log.h"

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

static void conn_close(conn *c);
static void conn_flush(conn *c);

/* ---- responses */

static const char *status_text(int status) {
  switch (status) {
    case 100: return "Continue";
    case 200: return "OK";
    case 201: return "Created";
    case 202: return "Accepted";
    case 204: return "No Content";
    case 400: return "Bad Request";
    case 401: return "Unauthorized";
    case 403: return "Forbidden";
    case 404: return "Not Found";
    case 405: return "Method Not Allowed";
    case 408: return "Request Timeout";
    case 409: return "Conflict";
    case 410: return "Gone";
    case 413: return "Content Too Large";
    case 414: return "URI Too Long";
    case 415: return "Unsupported Media Type";
    case 422: return "Unprocessable Content";
    case 429: return "Too Many Requests";
    case 431: return "Request Header Fields Too Large";
    case 500: return "Internal Server Error";
    case 501: return "Not Implemented";
    case 503: return "Service Unavailable";
    default: return status < 300 ? "OK" : status < 500 ? "Client Error" : "Server Error";
  }
}

void tph_error(tph_response *res, int status, const char *code, const char *fmt, ...) {
  tp_error e = {.status = status};
  tp_copy_str(e.code, sizeof e.code, code);
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(e.message, sizeof e.message, fmt, ap);
  va_end(ap);
  tph_answer_error(res, &e);
}

void tph_answer_error(tph_response *res, const tp_error *e) {
  res->status = e->status;
  res->content_type = "application/json";
  tp_copy_str(res->error_code, sizeof res->error_code, e->code);
  tp_error_render(e, res->request_id, &res->body);
}

static tph_response *response_new(tph_server *s) {
  tph_response *r = s->free_responses;
  tp_buf body;
  if (r) {
    s->free_responses = r->next;
    s->nfree--;
    body = r->body;
    tp_buf_reset(&body);
  } else {
    r = malloc(sizeof *r);
    if (!r) abort();
    tp_buf_init(&body);
  }
  memset(r, 0, sizeof *r);
  r->body = body;
  r->content_type = "application/json";
  r->start_ns = tp_clock_mono_ns();
  r->keep_alive = true;
  return r;
}

static void response_release(tph_server *s, tph_response *r) {
  if (s->nfree >= MAX_FREE_RESPONSES) {  /* a burst is over: give the memory back */
    tp_buf_free(&r->body);
    free(r);
    return;
  }
  if (r->body.cap > 16 * 1024) tp_buf_free(&r->body);  /* don't hoard big bodies */
  r->next = s->free_responses;
  s->free_responses = r;
  s->nfree++;
}

/* Writes the status line and headers by hand: this runs for every response. */
static void serialize(conn *c, const tph_response *r) {
  tp_buf *o = &c->out;
  tp_buf_reserve(o, 160 + r->body.len);
  tp_buf_adds(o, "HTTP/1.1 ");
  tp_buf_addi(o, r->status);
  tp_buf_addc(o, ' ');
  tp_buf_adds(o, status_text(r->status));
  tp_buf_adds(o, "\r\nContent-Type: ");
  tp_buf_adds(o, r->content_type);
  tp_buf_adds(o, "\r\nContent-Length: ");
  tp_buf_addu(o, r->body.len);
  tp_buf_adds(o, "\r\n");
  if (r->request_id[0]) {
    tp_buf_adds(o, "X-Request-Id: ");
    tp_buf_adds(o, r->request_id);
    tp_buf_adds(o, "\r\n");
  }
  if (r->allow[0]) {
    tp_buf_adds(o, "Allow: ");
    tp_buf_adds(o, r->allow);
    tp_buf_adds(o, "\r\n");
  }
  if (r->retry_after > 0) {
    tp_buf_adds(o, "Retry-After: ");
    tp_buf_addu(o, (uint64_t)r->retry_after);
    tp_buf_adds(o, "\r\n");
  }
  if (!r->keep_alive) tp_buf_adds(o, "Connection: close\r\n");
  tp_buf_adds(o, "\r\n");
  if (!r->method || strcmp(r->method, "HEAD") != 0)  /* HEAD: the length, not the body */
    tp_buf_add(o, r->body.data, r->body.len);
}

static void on_idle(uv_idle_t *h) { (void)h; }

/* Responses queued outside the poll phase (a timer's 408) must not wait for
** unrelated I/O: an active idle handle makes this iteration's poll return at
** once, so the check handle flushes them now. */
static void mark_pending(conn *c) {
  if (c->in_pending) return;
  if (!c->srv->pending) uv_idle_start(&c->srv->flush_soon, on_idle);
  c->in_pending = true;
  c->pending_next = c->srv->pending;
  c->srv->pending = c;
}

static void enqueue(conn *c, tph_response *r) {
  if (!r->keep_alive) c->close_after = true;
  c->nqueued++;
  c->queued_bytes += r->body.len + 256;  /* with its head */
  if (c->queue_tail) c->queue_tail->next = r;
  else c->queue_head = r;
  c->queue_tail = r;
  mark_pending(c);
}

/* ---- request ids */

static bool valid_request_id(const char *s, size_t n) {
  if (n == 0 || n > TPH_MAX_REQUEST_ID) return false;
  for (size_t i = 0; i < n; i++) {
    char ch = s[i];
    if (!((ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9') ||
          ch == '-' || ch == '_' || ch == '.' || ch == ':'))
      return false;
  }
  return true;
}

static void make_request_id(tph_server *s, char out[TPH_MAX_REQUEST_ID + 1]) {
  uint64_t x = s->id_seed + 0x9e3779b97f4a7c15ull * ++s->id_counter;
  x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ull;  /* splitmix64: ids look random, never repeat */
  x = (x ^ (x >> 27)) * 0x94d049bb133111ebull;
  x ^= x >> 31;
  for (int i = 15; i >= 0; i--, x >>= 4) out[i] = "0123456789abcdef"[x & 15];
  out[16] = '\0';
}

/* ---- timeouts
**
** Each connection has a deadline for its current phase (headers, body, idle,
** lingering close); setting it is two stores. One repeating timer per server
** sweeps the connections a few times per shortest timeout, so a deadline
** fires at most a quarter of that timeout late, and a request costs no timer
** operations at all. */

static void stop_reading(conn *c);

/* A response the host makes itself (timeout, parse error, connection limit):
** it has no request to take an id from, and the connection closes after it. */
static tph_response *closing_response(conn *c) {
  tph_response *r = response_new(c->srv);
  make_request_id(c->srv, r->request_id);
  r->keep_alive = false;
  r->method = "-";
  return r;
}

static void on_deadline(conn *c) {
  if (c->phase == PHASE_HEADERS || c->phase == PHASE_BODY) {
    tph_response *r = closing_response(c);
    tph_error(r, 408, "request_timeout", "the request was not received in time (%s)",
              c->phase == PHASE_HEADERS ? "headers" : "body");
    c->phase = PHASE_IDLE;
    stop_reading(c);
    enqueue(c, r);
    return;
  }
  conn_close(c);  /* idle keep-alive or lingering close */
}

static void arm(conn *c, int64_t ms) { c->deadline = uv_now(c->srv->loop) + (uint64_t)ms; }

static void on_sweep(uv_timer_t *t) {
  tph_server *s = t->data;
  uint64_t now = uv_now(s->loop);
  for (conn *c = s->conns, *next; c; c = next) {
    next = c->next;  /* on_deadline may close c */
    if (!c->closing && c->deadline && now >= c->deadline) {
      c->deadline = 0;
      on_deadline(c);
    }
  }
}

static uint64_t sweep_interval(const tpc_limits *l) {
  int64_t shortest = LINGER_MS;
  int64_t all[] = {l->header_timeout_ms, l->body_timeout_ms, l->idle_timeout_ms};
  for (int i = 0; i < 3; i++)
    if (all[i] < shortest) shortest = all[i];
  int64_t every = shortest / 4;
  return (uint64_t)(every < 5 ? 5 : every);
}

/* ---- llhttp callbacks */

static int limit_error(conn *c, int status, const char *code, const char *msg) {
  c->err_status = status;
  c->err_code = code;
  tp_copy_str(c->err_msg, sizeof c->err_msg, msg);
  return HPE_USER;
}

/* Counts n more bytes of request line, headers or trailers against the limit. */
static int count_head(conn *c, size_t n) {
  c->head_bytes += n;
  if (c->head_bytes > (size_t)c->srv->limits.max_header_bytes)
    return limit_error(c, 431, "headers_too_large", "the request line and headers are too large");
  return 0;
}

static int add_head(conn *c, const char *at, size_t n, bool lower) {
  if (count_head(c, n) != 0) return HPE_USER;
  size_t start = c->head.len;
  tp_buf_add(&c->head, at, n);
  if (lower)
    for (size_t i = start; i < c->head.len; i++)
      if (c->head.data[i] >= 'A' && c->head.data[i] <= 'Z') c->head.data[i] += 32;
  return 0;
}

static int on_message_begin(llhttp_t *p) {
  conn *c = p->data;
  c->phase = PHASE_HEADERS;
  arm(c, c->srv->limits.header_timeout_ms);
  return 0;
}

static int on_url(llhttp_t *p, const char *at, size_t n) {
  conn *c = p->data;
  c->target_len += (uint32_t)n;
  return add_head(c, at, n, false);
}

/* Chunked trailer fields arrive through the header callbacks after the body.
** They count against the header limit but are never taken as headers: an
** Authorization or X-Api-Key a proxy did not see must not authenticate. */
static int on_header_field(llhttp_t *p, const char *at, size_t n) {
  conn *c = p->data;
  if (c->in_trailers) return count_head(c, n);
  if (!c->field_open) {
    if (c->nspans == c->srv->limits.max_headers)
      return limit_error(c, 431, "too_many_headers", "the request has too many header fields");
    if (c->nspans == c->spans_cap) {
      c->spans_cap = c->spans_cap ? c->spans_cap * 2 : 16;
      c->spans = realloc(c->spans, (size_t)c->spans_cap * sizeof *c->spans);
      if (!c->spans) abort();
    }
    c->spans[c->nspans] = (header_span){(uint32_t)c->head.len, 0, 0, 0};
    c->field_open = true;
  }
  c->spans[c->nspans].nlen += (uint32_t)n;
  return add_head(c, at, n, true);
}

static int on_header_field_complete(llhttp_t *p) {
  conn *c = p->data;
  if (c->in_trailers) return 0;
  if (!c->field_open) on_header_field(p, "", 0);
  c->spans[c->nspans].voff = (uint32_t)c->head.len;
  return 0;
}

static int on_header_value(llhttp_t *p, const char *at, size_t n) {
  conn *c = p->data;
  if (c->in_trailers) return count_head(c, n);
  c->spans[c->nspans].vlen += (uint32_t)n;
  return add_head(c, at, n, false);
}

static int on_header_value_complete(llhttp_t *p) {
  conn *c = p->data;
  if (c->in_trailers) return 0;
  c->field_open = false;
  c->nspans++;
  return 0;
}

static bool header_is(conn *c, const header_span *h, const char *name, const char *value) {
  size_t nl = strlen(name), vl = strlen(value);
  return h->nlen == nl && memcmp(c->head.data + h->noff, name, nl) == 0 && h->vlen == vl &&
         strncasecmp(c->head.data + h->voff, value, vl) == 0;
}

static int on_headers_complete(llhttp_t *p) {
  conn *c = p->data;
  c->in_trailers = true;
  c->phase = PHASE_BODY;
  arm(c, c->srv->limits.body_timeout_ms);
  if ((p->flags & F_CONTENT_LENGTH) && p->content_length > (uint64_t)c->srv->limits.max_body_bytes)
    return limit_error(c, 413, "body_too_large", "the request body is larger than allowed");
  for (int i = 0; i < c->nspans; i++)
    if (header_is(c, &c->spans[i], "expect", "100-continue") && !c->queue_head && !c->writing) {
      tp_buf_adds(&c->out, "HTTP/1.1 100 Continue\r\n\r\n");
      conn_flush(c);
    }
  return 0;
}

static int on_body(llhttp_t *p, const char *at, size_t n) {
  conn *c = p->data;
  if (c->body.len + n > (size_t)c->srv->limits.max_body_bytes)
    return limit_error(c, 413, "body_too_large", "the request body is larger than allowed");
  tp_buf_add(&c->body, at, n);
  return 0;
}

static void reset_request(conn *c) {
  tp_buf_reset(&c->head);
  tp_buf_reset(&c->body);
  if (c->body.cap > 256 * 1024) tp_buf_free(&c->body);
  c->target_len = 0;
  c->nspans = 0;
  c->field_open = false;
  c->in_trailers = false;
  c->head_bytes = 0;
}

static int on_message_complete(llhttp_t *p) {
  conn *c = p->data;
  tph_server *s = c->srv;
  tph_header *hs = s->scratch_headers;
  tph_request req = {.method = llhttp_method_name((llhttp_method_t)p->method),
                     .target = c->head.data, .target_len = c->target_len,
                     .headers = hs, .nheaders = c->nspans,
                     .body = c->body.data ? c->body.data : "", .body_len = c->body.len};
  tph_response *r = response_new(s);
  for (int i = 0; i < c->nspans; i++) {
    header_span *sp = &c->spans[i];
    hs[i] = (tph_header){c->head.data + sp->noff, sp->nlen, c->head.data + sp->voff, sp->vlen};
  }
  const tph_header *rid = tph_find_header(&req, "x-request-id");
  if (rid && valid_request_id(rid->value, rid->vlen)) {
    memcpy(r->request_id, rid->value, rid->vlen);
    r->request_id[rid->vlen] = '\0';
  } else {
    make_request_id(s, r->request_id);
  }
  req.request_id = r->request_id;
  req.peer = c->peer;
  r->method = req.method;
  r->keep_alive = llhttp_should_keep_alive(p) && !s->stopping;
  s->hooks.handle(s->hooks.ud, &req, r);
  enqueue(c, r);
  reset_request(c);
  c->phase = PHASE_IDLE;
  arm(c, s->limits.idle_timeout_ms);
  if (c->close_after) return HPE_PAUSED;  /* parse nothing after a closing request */
  /* a pipelining client may not pile up answers faster than it reads them:
  ** stop parsing, keep the rest, go on once the answers are sent */
  if (c->nqueued >= MAX_QUEUED ||
      c->queued_bytes + c->out.len + c->inflight.len > MAX_OUTPUT_BYTES)
    return HPE_PAUSED;
  return 0;
}

/* ---- connections */

static void conn_free(conn *c) {
  tph_server *s = c->srv;
  while (c->queue_head) {
    tph_response *r = c->queue_head;
    c->queue_head = r->next;
    response_release(s, r);
  }
  tp_buf_free(&c->head);
  tp_buf_free(&c->body);
  tp_buf_free(&c->out);
  tp_buf_free(&c->inflight);
  tp_buf_free(&c->held);
  free(c->spans);
  free(c);
  if (s->stopping && s->nconns == 0 && s->on_stopped) {
    void (*done)(void *) = s->on_stopped;
    s->on_stopped = NULL;
    uv_timer_stop(&s->shutdown_timer);
    done(s->stopped_arg);
  }
}

static void on_handle_closed(uv_handle_t *h) {
  conn *c = h->data;
  if (--c->open_handles == 0 && !c->in_pending) conn_free(c);
}

static void conn_close(conn *c) {
  if (c->closing) return;
  c->closing = true;
  tph_server *s = c->srv;
  if (c->prev) c->prev->next = c->next;
  else s->conns = c->next;
  if (c->next) c->next->prev = c->prev;
  s->nconns--;
  uv_close((uv_handle_t *)&c->tcp, on_handle_closed);
}

static void alloc_cb(uv_handle_t *h, size_t suggested, uv_buf_t *buf) {
  (void)suggested;
  conn *c = h->data;
  *buf = uv_buf_init(c->srv->read_buf, READ_BUF_SIZE);
}

static void stop_reading(conn *c) {
  if (c->reading) uv_read_stop((uv_stream_t *)&c->tcp);
  c->reading = false;
}

static void start_reading(conn *c);

static void on_parse_error(conn *c, llhttp_errno_t err) {
  tph_response *r = closing_response(c);
  if (c->err_status)
    tph_error(r, c->err_status, c->err_code, "%s", c->err_msg);
  else
    tph_error(r, 400, "bad_request", "malformed HTTP request: %s (%s)",
              llhttp_get_error_reason(&c->parser), llhttp_errno_name(err));
  c->phase = PHASE_IDLE;
  enqueue(c, r);
}

/* Keeps data (which may lie inside c->held already) for later parsing. */
static void hold(conn *c, const char *data, size_t n) {
  if (c->held.data && data >= c->held.data && data <= c->held.data + c->held.len) {
    memmove(c->held.data, data, n);
    c->held.len = n;
  } else {
    tp_buf_reset(&c->held);
    tp_buf_add(&c->held, data, n);
  }
}

static void parse_input(conn *c, const char *data, size_t n) {
  llhttp_errno_t err = llhttp_execute(&c->parser, data, n);
  if (err == HPE_OK) {
    if (c->out.len + c->inflight.len > MAX_OUTPUT_BYTES) stop_reading(c);
    return;
  }
  stop_reading(c);
  if (err == HPE_PAUSED && !c->close_after) {  /* backpressure, see on_message_complete */
    const char *pos = llhttp_get_error_pos(&c->parser);
    size_t done = pos ? (size_t)(pos - data) : n;
    hold(c, data + done, n - done);
    c->held_paused = true;
    return;
  }
  if (err == HPE_PAUSED || err == HPE_PAUSED_UPGRADE) {
    c->close_after = true;
    return;
  }
  on_parse_error(c, err);
}

static void on_read(uv_stream_t *stream, ssize_t nread, const uv_buf_t *buf) {
  conn *c = stream->data;
  if (nread == 0) return;
  if (nread < 0) {
    stop_reading(c);
    if (nread == UV_EOF && c->phase != PHASE_LINGER &&
        (c->queue_head || c->writing || c->out.len || c->held_paused))
      c->peer_eof = true;  /* half-closed: answer what was asked, then close */
    else
      conn_close(c);
    return;
  }
  if (c->phase == PHASE_LINGER) return;  /* discarding until the peer closes */
  parse_input(c, buf->base, (size_t)nread);
}

static void start_reading(conn *c) {
  if (c->reading || c->closing || c->close_after || c->peer_eof || c->held_paused) return;
  if (uv_read_start((uv_stream_t *)&c->tcp, alloc_cb, on_read) == 0) c->reading = true;
}

/* After our last response: send FIN, keep reading (and discarding) briefly so
** that unread request bytes do not turn the close into a reset that would
** destroy the response in flight. */
static void on_shutdown(uv_shutdown_t *req, int status) {
  conn *c = req->data;
  if (status < 0 || c->closing) {
    conn_close(c);
    return;
  }
  c->phase = PHASE_LINGER;
  arm(c, LINGER_MS);
  if (uv_read_start((uv_stream_t *)&c->tcp, alloc_cb, on_read) == 0) c->reading = true;
}

static void after_drain(conn *c);

/* Parses what was held back once the client has read its answers. */
static void resume_held(conn *c) {
  c->held_paused = false;
  llhttp_resume(&c->parser);
  parse_input(c, c->held.data, c->held.len);
  if (!c->held_paused) tp_buf_reset(&c->held);
  if (!c->held_paused && !c->queue_head) after_drain(c);  /* nothing answered: read on */
}

static void after_drain(conn *c) {
  if (c->closing) return;
  if (c->held_paused && !c->close_after) {
    resume_held(c);
    return;
  }
  if ((c->close_after || c->peer_eof) && !c->queue_head) {
    if (c->phase == PHASE_LINGER) return;
    c->phase = PHASE_LINGER;
    stop_reading(c);
    c->shutdown_req.data = c;
    if (uv_shutdown(&c->shutdown_req, (uv_stream_t *)&c->tcp, on_shutdown) != 0) conn_close(c);
    return;
  }
  start_reading(c);
}

static void on_write(uv_write_t *req, int status) {
  conn *c = req->data;
  c->writing = false;
  tp_buf_reset(&c->inflight);
  if (status < 0) {
    conn_close(c);
    return;
  }
  if (c->out.len) conn_flush(c);
  else after_drain(c);
}

/* Hands c->out to the kernel: try_write first (usually all of it fits), the
** rest through uv_write, whose buffer must stay put until its callback. */
static void conn_flush(conn *c) {
  if (c->closing || c->writing) return;
  if (c->out.len == 0) {
    after_drain(c);
    return;
  }
  uv_buf_t b = uv_buf_init(c->out.data, (unsigned)c->out.len);
  int n = uv_try_write((uv_stream_t *)&c->tcp, &b, 1);
  if (n == (int)c->out.len) {
    tp_buf_reset(&c->out);
    after_drain(c);
    return;
  }
  if (n < 0 && n != UV_EAGAIN) {
    conn_close(c);
    return;
  }
  size_t done = n > 0 ? (size_t)n : 0;
  tp_buf tmp = c->inflight;
  c->inflight = c->out;
  c->out = tmp;
  tp_buf_reset(&c->out);
  b = uv_buf_init(c->inflight.data + done, (unsigned)(c->inflight.len - done));
  c->write_req.data = c;
  if (uv_write(&c->write_req, (uv_stream_t *)&c->tcp, &b, 1, on_write) != 0) {
    conn_close(c);
    return;
  }
  c->writing = true;
  if (c->out.len + c->inflight.len > MAX_OUTPUT_BYTES) stop_reading(c);
}

/* ---- the end of every loop iteration: commit, then answer */

static void on_check(uv_check_t *h) {
  tph_server *s = h->data;
  if (!s->pending) {
    s->hooks.iteration_end(s->hooks.ud);
    tp_log_flush();  /* lines logged outside requests (signals, timers) */
    return;
  }
  uv_idle_stop(&s->flush_soon);
  s->hooks.commit(s->hooks.ud);
  uint64_t now = tp_clock_mono_ns();
  conn *c = s->pending;
  s->pending = NULL;
  while (c) {
    conn *next = c->pending_next;
    c->in_pending = false;
    while (c->queue_head) {
      tph_response *r = c->queue_head;
      c->queue_head = r->next;
      if (r->commit_failed && *r->commit_failed)
        tph_error(r, 503, "commit_failed",
                  "the change could not be made durable; nothing was saved, retry");
      if (!c->closing) serialize(c, r);
      s->hooks.finished(s->hooks.ud, r, (double)(now - r->start_ns) / 1e9);
      response_release(s, r);
    }
    c->queue_tail = NULL;
    c->nqueued = 0;
    c->queued_bytes = 0;
    if (c->closing) {
      if (c->open_handles == 0) conn_free(c);
    } else {
      conn_flush(c);
    }
    c = next;
  }
  s->hooks.iteration_end(s->hooks.ud);
  tp_log_flush();
}

static void on_connection(uv_stream_t *listener, int status) {
  tph_server *s = listener->data;
  if (status < 0) return;
  conn *c = calloc(1, sizeof *c);
  if (!c) return;
  c->srv = s;
  uv_tcp_init(s->loop, &c->tcp);
  c->tcp.data = c;
  c->open_handles = 1;
  c->next = s->conns;
  if (s->conns) s->conns->prev = c;
  s->conns = c;
  s->nconns++;
  if (uv_accept(listener, (uv_stream_t *)&c->tcp) != 0) {
    conn_close(c);
    return;
  }
  uv_tcp_nodelay(&c->tcp, 1);
  struct sockaddr_storage sa;
  int salen = sizeof sa;
  if (uv_tcp_getpeername(&c->tcp, (struct sockaddr *)&sa, &salen) == 0) {
    if (sa.ss_family == AF_INET6) uv_ip6_name((struct sockaddr_in6 *)&sa, c->peer, sizeof c->peer);
    else uv_ip4_name((struct sockaddr_in *)&sa, c->peer, sizeof c->peer);
  }
  llhttp_init(&c->parser, HTTP_REQUEST, &s->settings);
  c->parser.data = c;
  arm(c, s->limits.idle_timeout_ms);
  if (s->nconns > s->limits.max_connections) {
    /* answered like any response, so the close lingers and the client reads
    ** the 503 instead of a reset */
    tph_response *r = closing_response(c);
    tph_error(r, 503, "too_many_connections", "the server is at its connection limit; retry");
    enqueue(c, r);
    return;
  }
  start_reading(c);
}

/* ---- server */

static void raise_fd_limit(int64_t want) {
  struct rlimit rl;
  if (getrlimit(RLIMIT_NOFILE, &rl) != 0) return;
  rlim_t target = (rlim_t)want + 256;  /* databases, logs, the listener */
  if (target > rl.rlim_max) target = rl.rlim_max;
  if (rl.rlim_cur < target) {
    rl.rlim_cur = target;
    setrlimit(RLIMIT_NOFILE, &rl);
  }
}

tph_server *tph_new(uv_loop_t *loop, const tpc_limits *limits, tph_hooks hooks) {
  tph_server *s = calloc(1, sizeof *s);
  if (!s) return NULL;
  s->loop = loop;
  s->limits = *limits;
  s->hooks = hooks;
  s->scratch_headers = calloc((size_t)limits->max_headers, sizeof(tph_header));
  s->id_seed = (uint64_t)tp_clock_wall_ms() * 0x100000001b3ull ^ (uint64_t)uv_os_getpid();
  llhttp_settings_init(&s->settings);
  s->settings.on_message_begin = on_message_begin;
  s->settings.on_url = on_url;
  s->settings.on_header_field = on_header_field;
  s->settings.on_header_field_complete = on_header_field_complete;
  s->settings.on_header_value = on_header_value;
  s->settings.on_header_value_complete = on_header_value_complete;
  s->settings.on_headers_complete = on_headers_complete;
  s->settings.on_body = on_body;
  s->settings.on_message_complete = on_message_complete;
  uv_idle_init(loop, &s->flush_soon);
  uv_check_init(loop, &s->check);
  s->check.data = s;
  uv_check_start(&s->check, on_check);
  uv_timer_init(loop, &s->shutdown_timer);
  s->shutdown_timer.data = s;
  uv_timer_init(loop, &s->sweep);
  s->sweep.data = s;
  uint64_t every = sweep_interval(limits);
  uv_timer_start(&s->sweep, on_sweep, every, every);
  raise_fd_limit(limits->max_connections);
  return s;
}

int tph_listen(tph_server *s, const char *host, int port, int *bound_port, char *err,
               size_t errcap) {
  struct sockaddr_storage addr;
  int rc = strchr(host, ':') ? uv_ip6_addr(host, port, (struct sockaddr_in6 *)&addr)
                             : uv_ip4_addr(host, port, (struct sockaddr_in *)&addr);
  if (rc != 0) {
    snprintf(err, errcap, "listen address '%s': %s", host, uv_strerror(rc));
    return -1;
  }
  uv_tcp_init(s->loop, &s->listener);
  s->listener.data = s;
  s->listening = true;
  if ((rc = uv_tcp_bind(&s->listener, (struct sockaddr *)&addr, 0)) != 0 ||
      (rc = uv_listen((uv_stream_t *)&s->listener, 4096, on_connection)) != 0) {
    snprintf(err, errcap, "cannot listen on %s:%d: %s", host, port, uv_strerror(rc));
    return -1;
  }
  struct sockaddr_storage name;
  int len = sizeof name;
  uv_tcp_getsockname(&s->listener, (struct sockaddr *)&name, &len);
  *bound_port = ntohs(name.ss_family == AF_INET6 ? ((struct sockaddr_in6 *)&name)->sin6_port
                                                 : ((struct sockaddr_in *)&name)->sin_port);
  return 0;
}

static void on_shutdown_timeout(uv_timer_t *t) {
  tph_server *s = t->data;
  while (s->conns) conn_close(s->conns);
}

void tph_shutdown(tph_server *s, void (*done)(void *), void *arg) {
  if (s->stopping) return;
  s->stopping = true;
  s->on_stopped = done;
  s->stopped_arg = arg;
  if (s->listening) {
    uv_close((uv_handle_t *)&s->listener, NULL);
    s->listening = false;
  }
  for (conn *c = s->conns, *next; c; c = next) {
    next = c->next;
    bool busy = c->phase == PHASE_HEADERS || c->phase == PHASE_BODY || c->queue_head ||
                c->writing || c->out.len || c->held_paused;
    if (busy) c->close_after = true;
    else conn_close(c);
  }
  if (s->nconns == 0) {
    s->on_stopped = NULL;
    done(arg);
    return;
  }
  uv_timer_start(&s->shutdown_timer, on_shutdown_timeout, (uint64_t)s->limits.shutdown_timeout_ms, 0);
}

void tph_free(tph_server *s) {
  if (!s) return;
  while (s->conns) conn_close(s->conns);
  if (s->listening) uv_close((uv_handle_t *)&s->listener, NULL);
  uv_close((uv_handle_t *)&s->check, NULL);
  uv_close((uv_handle_t *)&s->flush_soon, NULL);
  uv_close((uv_handle_t *)&s->shutdown_timer, NULL);
  uv_close((uv_handle_t *)&s->sweep, NULL);
  uv_run(s->loop, UV_RUN_NOWAIT);  /* let the close callbacks free the connections */
  while (s->free_responses) {
    tph_response *r = s->free_responses;
    s->free_responses = r->next;
    tp_buf_free(&r->body);
    free(r);
  }
  free(s->scratch_headers);
  free(s);
}

int64_t tph_open_connections(const tph_server *s) { return s->nconns; }

const tph_header *tph_find_header(const tph_request *req, const char *name) {
  size_t n = strlen(name);
  for (int i = 0; i < req->nheaders; i++)
    if (req->headers[i].nlen == n && memcmp(req->headers[i].name, name, n) == 0)
      return &req->headers[i];
  return NULL;
}
