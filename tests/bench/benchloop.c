/*
** benchloop.c - the loop shared by baseline.c and sidebyside/flashloop.c
** (see benchloop.h): buffers, connections with llhttp parsing, responses held
** until the iteration's COMMIT, the listener, SQLite helpers, signal stop.
*/
#define _POSIX_C_SOURCE 200809L

#include "benchloop.h"

#include <signal.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <uv.h>

#define MAX_URL 8192
#define MAX_BODY (1 << 20)
#define MAX_HEADER_NAME 256
#define MAX_HEADER_VALUE 1024
#define READ_BUF_SIZE 65536

/* ---- buffers */

void buf_reserve(buf *b, size_t extra) {
  if (b->cap - b->len > extra) return;
  size_t cap = b->cap ? b->cap : 512;
  while (cap - b->len <= extra) cap *= 2;
  char *p = realloc(b->data, cap);
  if (!p) abort();
  b->data = p;
  b->cap = cap;
}

void buf_add(buf *b, const char *p, size_t n) {
  if (n == 0) return;
  buf_reserve(b, n);
  memcpy(b->data + b->len, p, n);
  b->len += n;
}

void buf_adds(buf *b, const char *s) { buf_add(b, s, strlen(s)); }

void buf_printf(buf *b, const char *fmt, ...) {
  buf_reserve(b, 256);  /* one pass in the usual case: format straight into the buffer */
  va_list ap;
  va_start(ap, fmt);
  int n = vsnprintf(b->data + b->len, b->cap - b->len, fmt, ap);
  va_end(ap);
  if (n < 0) return;
  if ((size_t)n >= b->cap - b->len) {  /* did not fit: grow and format again */
    buf_reserve(b, (size_t)n + 1);
    va_start(ap, fmt);
    vsnprintf(b->data + b->len, (size_t)n + 1, fmt, ap);
    va_end(ap);
  }
  b->len += (size_t)n;
}

void buf_add_json_str(buf *b, const unsigned char *s, size_t n) {
  static const char hex[] = "0123456789abcdef";
  buf_reserve(b, n + 2);
  b->data[b->len++] = '"';
  for (size_t i = 0; i < n; i++) {
    unsigned char c = s[i];
    if (c == '"' || c == '\\') {
      char esc[2] = {'\\', (char)c};
      buf_add(b, esc, 2);
    } else if (c < 0x20) {
      char esc[6] = {'\\', 'u', '0', '0', hex[c >> 4], hex[c & 15]};
      buf_add(b, esc, 6);
    } else {
      buf_add(b, (const char *)&c, 1);
    }
  }
  buf_add(b, "\"", 1);
}

/* ---- state */

struct bl_conn {
  uv_tcp_t tcp;
  uv_write_t write_req;
  llhttp_t parser;
  buf url, body;
  buf hfield, hvalue; /* the header name being read; the value of bl_server.header */
  bool in_header;     /* the header being read is bl_server.header */
  buf staged;         /* responses of this iteration, not yet committed */
  buf out;            /* committed responses not yet handed to the kernel */
  buf inflight;       /* handed to uv_write, awaiting its callback */
  bool writing, close_after, closing, closed, in_pending;
  struct bl_conn *pending_next;
};

static struct {
  const bl_server *srv;
  size_t header_len;
  uv_loop_t *loop;
  uv_tcp_t listener;
  uv_check_t check;
  uv_signal_t sigint, sigterm;
  llhttp_settings_t settings;
  sqlite3 *db;
  sqlite3_stmt *begin, *commit, *rollback;
  bool in_txn;
  int batch_size;
  bl_conn *pending;
  uint64_t commits_ok, commits_failed, batch_sum;
  char read_buf[READ_BUF_SIZE];
} S;

static void die(const char *what) {
  fprintf(stderr, "%s: %s: %s\n", S.srv->name, what, S.db ? sqlite3_errmsg(S.db) : "?");
  exit(1);
}

/* ---- responses */

static const char *status_text(int status) {
  switch (status) {
    case 200: return "OK";
    case 201: return "Created";
    case 400: return "Bad Request";
    case 401: return "Unauthorized";
    case 404: return "Not Found";
    case 405: return "Method Not Allowed";
    case 409: return "Conflict";
    case 413: return "Content Too Large";
    case 500: return "Internal Server Error";
    default: return "Unknown";
  }
}

void bl_respond(bl_conn *c, int status, const char *content_type, const buf *body) {
  buf_printf(&c->staged, "HTTP/1.1 %d %s\r\nContent-Type: %s\r\nContent-Length: %zu\r\n%s\r\n",
             status, status_text(status), content_type, body->len,
             c->close_after ? "Connection: close\r\n" : "");
  buf_add(&c->staged, body->data, body->len);
  if (!c->in_pending) {
    c->in_pending = true;
    c->pending_next = S.pending;
    S.pending = c;
  }
}

void bl_respond_error(bl_conn *c, int status, const char *code, const char *msg, buf *body) {
  body->len = 0;
  buf_printf(body, "{\"error\":{\"code\":\"%s\",\"message\":\"%s\"}}", code, msg);
  bl_respond(c, status, "application/json", body);
}

/* ---- the iteration's transaction */

int bl_step_done(sqlite3_stmt *st) {
  int rc = sqlite3_step(st);
  sqlite3_reset(st);
  return rc == SQLITE_DONE ? 0 : -1;
}

int bl_begin(void) {
  if (S.in_txn) return 0;
  if (bl_step_done(S.begin) != 0) return -1;
  S.in_txn = true;
  S.batch_size = 0;
  return 0;
}

void bl_batch_add(void) { S.batch_size++; }

void bl_metrics(buf *body) {
  const char *n = S.srv->name;
  body->len = 0;
  buf_printf(body,
             "%s_commits_total{result=\"ok\"} %llu\n"
             "%s_commits_total{result=\"failed\"} %llu\n"
             "%s_commit_batch_size_sum %llu\n"
             "%s_commit_batch_size_count %llu\n",
             n, (unsigned long long)S.commits_ok, n, (unsigned long long)S.commits_failed, n,
             (unsigned long long)S.batch_sum, n, (unsigned long long)(S.commits_ok + S.commits_failed));
}

/* ---- llhttp callbacks */

static int on_message_begin(llhttp_t *p) {
  bl_conn *c = p->data;
  c->url.len = 0;
  c->body.len = 0;
  c->hvalue.len = 0;
  c->hfield.len = 0;
  c->in_header = false;
  return 0;
}

static int on_url(llhttp_t *p, const char *at, size_t n) {
  bl_conn *c = p->data;
  if (c->url.len + n > MAX_URL) return HPE_USER;
  buf_add(&c->url, at, n);
  return 0;
}

/* The header callbacks are installed only when the server wants a header. */
static int on_header_field(llhttp_t *p, const char *at, size_t n) {
  bl_conn *c = p->data;
  if (c->hfield.len + n > MAX_HEADER_NAME) return HPE_USER;
  buf_add(&c->hfield, at, n);
  return 0;
}

static int on_header_field_complete(llhttp_t *p) {
  bl_conn *c = p->data;
  c->in_header = c->hfield.len == S.header_len && strncasecmp(c->hfield.data, S.srv->header, S.header_len) == 0;
  c->hfield.len = 0;
  if (c->in_header) c->hvalue.len = 0;  /* a repeated header: the last one counts */
  return 0;
}

static int on_header_value(llhttp_t *p, const char *at, size_t n) {
  bl_conn *c = p->data;
  if (!c->in_header) return 0;
  if (c->hvalue.len + n > MAX_HEADER_VALUE) return HPE_USER;
  buf_add(&c->hvalue, at, n);
  return 0;
}

static int on_body(llhttp_t *p, const char *at, size_t n) {
  bl_conn *c = p->data;
  if (c->body.len + n > MAX_BODY) return HPE_USER;
  buf_add(&c->body, at, n);
  return 0;
}

static int on_message_complete(llhttp_t *p) {
  bl_conn *c = p->data;
  if (!llhttp_should_keep_alive(p)) c->close_after = true;
  bl_request req = {.method = llhttp_get_method(p),
                    .path = c->url.data ? c->url.data : "",
                    .path_len = c->url.len,
                    .body = c->body.data ? c->body.data : "",
                    .body_len = c->body.len,
                    .header = c->hvalue.data ? c->hvalue.data : "",
                    .header_len = c->hvalue.len};
  const char *q = memchr(req.path, '?', req.path_len);
  if (q) req.path_len = (size_t)(q - req.path);
  S.srv->dispatch(c, &req);
  return c->close_after ? HPE_PAUSED : 0;
}

/* ---- connections */

static void conn_free(bl_conn *c) {
  free(c->url.data);
  free(c->body.data);
  free(c->hfield.data);
  free(c->hvalue.data);
  free(c->staged.data);
  free(c->out.data);
  free(c->inflight.data);
  free(c);
}

static void on_closed(uv_handle_t *h) {
  bl_conn *c = h->data;
  c->closed = true;
  if (!c->in_pending) conn_free(c);  /* else the check handle frees it */
}

static void conn_close(bl_conn *c) {
  if (c->closing) return;
  c->closing = true;
  uv_close((uv_handle_t *)&c->tcp, on_closed);
}

static void conn_flush(bl_conn *c);

static void on_write(uv_write_t *req, int status) {
  bl_conn *c = req->data;
  c->writing = false;
  c->inflight.len = 0;
  if (status < 0 || c->closing) {
    conn_close(c);
    return;
  }
  conn_flush(c);
}

static void conn_flush(bl_conn *c) {
  if (c->closing || c->writing) return;
  if (c->out.len == 0) {
    if (c->close_after) conn_close(c);
    return;
  }
  uv_buf_t b = uv_buf_init(c->out.data, (unsigned)c->out.len);
  int n = uv_try_write((uv_stream_t *)&c->tcp, &b, 1);
  if (n == (int)c->out.len) {
    c->out.len = 0;
    if (c->close_after) conn_close(c);
    return;
  }
  if (n < 0 && n != UV_EAGAIN) {
    conn_close(c);
    return;
  }
  size_t done = n > 0 ? (size_t)n : 0;
  buf tmp = c->inflight;
  c->inflight = c->out;
  c->out = tmp;
  c->out.len = 0;
  b = uv_buf_init(c->inflight.data + done, (unsigned)(c->inflight.len - done));
  c->write_req.data = c;
  if (uv_write(&c->write_req, (uv_stream_t *)&c->tcp, &b, 1, on_write) != 0) {
    conn_close(c);
    return;
  }
  c->writing = true;
}

static void alloc_cb(uv_handle_t *h, size_t suggested, uv_buf_t *b) {
  (void)h;
  (void)suggested;
  *b = uv_buf_init(S.read_buf, READ_BUF_SIZE);
}

static void on_read(uv_stream_t *stream, ssize_t nread, const uv_buf_t *b) {
  bl_conn *c = stream->data;
  if (nread == 0) return;
  if (nread < 0) {
    uv_read_stop(stream);
    if (c->in_pending || c->writing || c->out.len) c->close_after = true;  /* answer, then close */
    else conn_close(c);
    return;
  }
  llhttp_errno_t err = llhttp_execute(&c->parser, b->base, (size_t)nread);
  if (err == HPE_OK) return;
  uv_read_stop(stream);
  if (err != HPE_PAUSED) {
    static buf body;
    c->close_after = true;
    bl_respond_error(c, err == HPE_USER ? 413 : 400, "bad_request", "malformed or too large", &body);
  }
}

/* End of the loop iteration: one COMMIT for everything handled, then answer. */
static void on_check(uv_check_t *h) {
  (void)h;
  if (!S.pending) return;
  bool failed = false;
  if (S.in_txn) {
    S.in_txn = false;
    int rc = sqlite3_step(S.commit);
    sqlite3_reset(S.commit);
    S.batch_sum += (uint64_t)S.batch_size;
    if (rc == SQLITE_DONE) {
      S.commits_ok++;
    } else {
      S.commits_failed++;
      failed = true;
      fprintf(stderr, "%s: COMMIT failed: %s\n", S.srv->name, sqlite3_errmsg(S.db));
      if (!sqlite3_get_autocommit(S.db)) bl_step_done(S.rollback);
    }
  }
  bl_conn *c = S.pending;
  S.pending = NULL;
  while (c) {
    bl_conn *next = c->pending_next;
    c->in_pending = false;
    if (c->closed) {
      conn_free(c);
    } else if (!c->closing) {
      if (failed) {  /* nothing of this batch was saved: drop the answers, close */
        c->staged.len = 0;
        conn_close(c);
      } else {
        buf_add(&c->out, c->staged.data, c->staged.len);
        c->staged.len = 0;
        conn_flush(c);
      }
    }
    c = next;
  }
}

static void on_connection(uv_stream_t *listener, int status) {
  if (status < 0) return;
  bl_conn *c = calloc(1, sizeof *c);
  if (!c) abort();
  uv_tcp_init(S.loop, &c->tcp);
  c->tcp.data = c;
  if (uv_accept(listener, (uv_stream_t *)&c->tcp) != 0) {
    conn_close(c);
    return;
  }
  uv_tcp_nodelay(&c->tcp, 1);
  llhttp_init(&c->parser, HTTP_REQUEST, &S.settings);
  c->parser.data = c;
  uv_read_start((uv_stream_t *)&c->tcp, alloc_cb, on_read);
}

/* ---- SQLite */

void bl_exec(const char *sql) {
  char *msg = NULL;
  if (sqlite3_exec(S.db, sql, NULL, NULL, &msg) != SQLITE_OK) {
    fprintf(stderr, "%s: %.80s%s: %s\n", S.srv->name, sql, strlen(sql) > 80 ? "..." : "", msg ? msg : "?");
    exit(1);
  }
}

sqlite3_stmt *bl_prepare(const char *sql) {
  sqlite3_stmt *st = NULL;
  if (sqlite3_prepare_v3(S.db, sql, -1, SQLITE_PREPARE_PERSISTENT, &st, NULL) != SQLITE_OK) die(sql);
  return st;
}

sqlite3 *bl_open_db(const char *path) {
  if (sqlite3_open_v2(path, &S.db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX,
                      NULL) != SQLITE_OK)
    die("open");
  sqlite3_busy_timeout(S.db, 5000);
  bl_exec("PRAGMA journal_mode=WAL");
  bl_exec("PRAGMA synchronous=FULL");
  bl_exec("PRAGMA foreign_keys=ON");
  S.begin = bl_prepare("BEGIN");
  S.commit = bl_prepare("COMMIT");
  S.rollback = bl_prepare("ROLLBACK");
  return S.db;
}

/* ---- the loop */

static void on_signal(uv_signal_t *h, int signum) {
  (void)h;
  (void)signum;
  if (S.db) {
    if (S.in_txn) bl_step_done(S.commit);
    sqlite3_stmt *st;
    while ((st = sqlite3_next_stmt(S.db, NULL)) != NULL) sqlite3_finalize(st);
    sqlite3_close(S.db);
  }
  exit(0);
}

void bl_init(const bl_server *server) {
  S.srv = server;
  S.header_len = server->header ? strlen(server->header) : 0;
  signal(SIGPIPE, SIG_IGN);
  S.loop = uv_default_loop();
}

int bl_run(const char *port, const char *what) {
  llhttp_settings_init(&S.settings);
  S.settings.on_message_begin = on_message_begin;
  S.settings.on_url = on_url;
  if (S.srv->header) {
    S.settings.on_header_field = on_header_field;
    S.settings.on_header_field_complete = on_header_field_complete;
    S.settings.on_header_value = on_header_value;
  }
  S.settings.on_body = on_body;
  S.settings.on_message_complete = on_message_complete;
  struct sockaddr_in addr;
  uv_ip4_addr("127.0.0.1", atoi(port), &addr);
  uv_tcp_init(S.loop, &S.listener);
  int rc = uv_tcp_bind(&S.listener, (const struct sockaddr *)&addr, 0);
  if (rc == 0) rc = uv_listen((uv_stream_t *)&S.listener, 4096, on_connection);
  if (rc != 0) {
    fprintf(stderr, "%s: cannot listen on 127.0.0.1:%s: %s\n", S.srv->name, port, uv_strerror(rc));
    return 1;
  }
  uv_check_init(S.loop, &S.check);
  uv_check_start(&S.check, on_check);
  uv_signal_init(S.loop, &S.sigint);
  uv_signal_init(S.loop, &S.sigterm);
  uv_signal_start(&S.sigint, on_signal, SIGINT);
  uv_signal_start(&S.sigterm, on_signal, SIGTERM);
  fprintf(stderr, "%s: %s on 127.0.0.1:%s\n", S.srv->name, what, port);
  return uv_run(S.loop, UV_RUN_DEFAULT);
}
