/*
** http.c - the HTTP/1.1 server on libuv: connections, their deadlines,
** reading and writing with backpressure, and the end of every loop
** iteration (commit, then answer). parse.c reads requests, respond.c
** queues and writes answers.
*/
#include "net/http_int.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>

#include "base/clock.h"
#include "base/log.h"

static void conn_close(conn *c);
static void conn_flush(conn *c);
static void stop_reading(conn *c);

/* ---- timeouts
**
** Each connection has a deadline for its current phase (headers, body, idle,
** lingering close); setting it is two stores. One repeating timer per server
** sweeps the connections a few times per shortest timeout, so a deadline
** fires at most a quarter of that timeout late, and a request costs no timer
** operations at all. */

static void on_deadline(conn *c) {
  if (c->phase == PHASE_HEADERS || c->phase == PHASE_BODY) {
    tph_response *r = tph__closing_response(c);
    tph_error(r, 408, "request_timeout", "the request was not received in time (%s)",
              c->phase == PHASE_HEADERS ? "headers" : "body");
    c->phase = PHASE_IDLE;
    stop_reading(c);
    tph__enqueue(c, r);
    return;
  }
  if (c->phase == PHASE_IDLE && c->queue_head) {  /* not idle: it still owes an answer (held) */
    tph__arm(c, c->srv->limits.idle_timeout_ms);
    return;
  }
  conn_close(c);  /* idle keep-alive or lingering close */
}

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

/* ---- connections */

static void conn_free(conn *c) {
  tph_server *s = c->srv;
  while (c->queue_head) {
    tph_response *r = c->queue_head;
    c->queue_head = r->next;
    if (r->deferred) r->orphaned = true;  /* its handler still holds it: tph_resume frees it */
    else tph__response_release(s, r);
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
  tph_response *r = tph__closing_response(c);
  if (c->err_status)
    tph_error(r, c->err_status, c->err_code, "%s", c->err_msg);
  else
    tph_error(r, 400, "bad_request", "malformed HTTP request: %s (%s)",
              llhttp_get_error_reason(&c->parser), llhttp_errno_name(err));
  c->phase = PHASE_IDLE;
  tph__enqueue(c, r);
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
  tph__arm(c, LINGER_MS);
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

/* Writes c's answers from the head of its queue, in order, while they may go:
** all of them after the commit, only clean ones before it. How many went. */
static int answer_queue(tph_server *s, conn *c, bool clean_only, uint64_t now) {
  int n = 0;
  while (c->queue_head && !c->queue_head->deferred && (!clean_only || c->queue_head->clean)) {
    tph_response *r = c->queue_head;
    c->queue_head = r->next;
    c->nqueued--;
    c->queued_bytes -= r->body.len + 256 < c->queued_bytes ? r->body.len + 256 : c->queued_bytes;
    if (!c->closing) tph__serialize(c, r);
    s->hooks.finished(s->hooks.ud, r, (double)(now - r->start_ns) / 1e9);
    tph__response_release(s, r);
    n++;
  }
  return n;
}

/* Right after the commit, each answer that rests on it learns its fate, once:
** a failed commit turns it into a 503 now, and one that succeeded no longer
** reads the store's flag. An answer may go iterations later (held for its
** sync, or queued behind one that is), when the flag, cleared at every
** iteration's end, speaks of other commits: read then, it would refuse a
** saved write, or acknowledge one rolled back. Committed answers are then
** offered to hooks.hold (maybe not yet on disk). */
static void settle(tph_server *s) {
  for (conn *p = s->pending; p; p = p->pending_next)
    for (tph_response *r = p->queue_head; r; r = r->next) {
      if (r->clean || r->deferred || r->held) continue;
      r->held = true;
      if (r->commit_failed && *r->commit_failed) {
        tph_error(r, 503, "commit_failed", "the change could not be made durable; nothing was saved, retry");
        continue;
      }
      r->commit_failed = NULL;
      if (s->hooks.hold && r->rests_on) r->deferred = s->hooks.hold(s->hooks.ud, r);
    }
}

static void on_check(uv_check_t *h) {
  tph_server *s = h->data;
  if (!s->pending) {
    s->hooks.iteration_end(s->hooks.ud);
    tp_log_flush();  /* lines logged outside requests (signals, timers) */
    return;
  }
  uv_idle_stop(&s->flush_soon);
  uv_update_time(s->loop);  /* after a long handler, idle deadlines start now, not at the poll */
  uint64_t now = tp_clock_mono_ns();
  for (conn *c = s->pending; c; c = c->pending_next)  /* the clean answers first */
    if (answer_queue(s, c, true, now) > 0 && !c->closing) conn_flush(c);
  s->hooks.commit(s->hooks.ud);
  settle(s);
  now = tp_clock_mono_ns();
  conn *c = s->pending;
  s->pending = NULL;
  while (c) {
    conn *next = c->pending_next;
    c->in_pending = false;
    answer_queue(s, c, false, now);
    if (!c->queue_head) {
      c->queue_tail = NULL;
      c->nqueued = 0;
      c->queued_bytes = 0;
      if (c->phase == PHASE_IDLE) tph__arm(c, s->limits.idle_timeout_ms);  /* idle from its last answer */
    }
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
  tph__arm(c, s->limits.idle_timeout_ms);
  if (s->nconns > s->limits.max_connections) {
    /* answered like any response, so the close lingers and the client reads
    ** the 503 instead of a reset */
    tph_response *r = tph__closing_response(c);
    tph_error(r, 503, "too_many_connections", "the server is at its connection limit; retry");
    tph__enqueue(c, r);
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
  tph__parser_settings(&s->settings);
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
