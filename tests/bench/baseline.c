/*
** baseline.c - the ceiling tidepool is measured against (tests/bench/run.sh).
**
** A bare libuv + llhttp + SQLite server doing the same work as the bench
** plugin with the same durability: WAL, synchronous=FULL, group commit. Every
** request parsed during one loop iteration runs inside one BEGIN ... COMMIT;
** a uv_check handle (end of the iteration) commits, and only then are the
** responses of that iteration handed to the sockets. Nothing else: no routing
** table, no Lua, no savepoints, no logging, no request ids, no timeouts.
**
**   GET  /v1/bench/bench/rows/{id}   -> 200 {"id":..,"k":..,"v":".."} | 404
**   POST /v1/bench/bench/rows {"k":int,"v":"str"} -> 201 {"id":..}
**   GET  /healthz, GET /metrics (commit count and batch sizes)
**
** usage: baseline PORT DBFILE   (listens on 127.0.0.1; SIGINT/SIGTERM stop it)
*/
#define _POSIX_C_SOURCE 200809L

#include <llhttp.h>
#include <signal.h>
#include <sqlite3.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <uv.h>

/* The bench plugin's statements (tests/bench/plugins/bench/plugin.lua). */
#define GET_SQL "SELECT id, k, v FROM bench_rows WHERE id = ?"
#define INSERT_SQL "INSERT INTO bench_rows (k, v) VALUES (?, ?)"
#define SEED_ROWS 10000
#define ROWS_PREFIX "/v1/bench/bench/rows"
#define MAX_BODY (1 << 20)
#define READ_BUF_SIZE 65536

/* ---- buffers */

typedef struct buf {
  char *data;
  size_t len, cap;
} buf;

static void buf_reserve(buf *b, size_t extra) {
  if (b->cap - b->len > extra) return;
  size_t cap = b->cap ? b->cap : 512;
  while (cap - b->len <= extra) cap *= 2;
  char *p = realloc(b->data, cap);
  if (!p) abort();
  b->data = p;
  b->cap = cap;
}

static void buf_add(buf *b, const char *p, size_t n) {
  if (n == 0) return;
  buf_reserve(b, n);
  memcpy(b->data + b->len, p, n);
  b->len += n;
}

static void buf_adds(buf *b, const char *s) { buf_add(b, s, strlen(s)); }

static void buf_printf(buf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void buf_printf(buf *b, const char *fmt, ...) {
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

static void buf_add_json_str(buf *b, const unsigned char *s, size_t n) {
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

typedef struct conn {
  uv_tcp_t tcp;
  uv_write_t write_req;
  llhttp_t parser;
  buf url, body;
  buf staged;    /* responses of this iteration, not yet committed */
  buf out;       /* committed responses not yet handed to the kernel */
  buf inflight;  /* handed to uv_write, awaiting its callback */
  bool writing, close_after, closing, closed, in_pending;
  struct conn *pending_next;
} conn;

static struct {
  uv_loop_t *loop;
  uv_tcp_t listener;
  uv_check_t check;
  uv_signal_t sigint, sigterm;
  llhttp_settings_t settings;
  sqlite3 *db;
  sqlite3_stmt *begin, *commit, *rollback, *get, *insert;
  bool in_txn;
  int batch_size;
  conn *pending;
  uint64_t commits_ok, commits_failed, batch_sum;
  char read_buf[READ_BUF_SIZE];
} S;

static void die(const char *what) {
  fprintf(stderr, "baseline: %s: %s\n", what, S.db ? sqlite3_errmsg(S.db) : "?");
  exit(1);
}

/* ---- responses */

static const char *status_text(int status) {
  switch (status) {
    case 200: return "OK";
    case 201: return "Created";
    case 400: return "Bad Request";
    case 404: return "Not Found";
    case 405: return "Method Not Allowed";
    case 413: return "Content Too Large";
    case 500: return "Internal Server Error";
    default: return "Unknown";
  }
}

static void respond(conn *c, int status, const char *ctype, const buf *body) {
  buf_printf(&c->staged, "HTTP/1.1 %d %s\r\nContent-Type: %s\r\nContent-Length: %zu\r\n%s\r\n",
             status, status_text(status), ctype, body->len,
             c->close_after ? "Connection: close\r\n" : "");
  buf_add(&c->staged, body->data, body->len);
  if (!c->in_pending) {
    c->in_pending = true;
    c->pending_next = S.pending;
    S.pending = c;
  }
}

static void respond_error(conn *c, int status, const char *code, const char *msg, buf *body) {
  body->len = 0;
  buf_printf(body, "{\"error\":{\"code\":\"%s\",\"message\":\"%s\"}}", code, msg);
  respond(c, status, "application/json", body);
}

/* ---- a tiny JSON reader for {"k": integer, "v": "string"} (other keys: strings/integers) */

typedef struct {
  const char *p, *end;
} reader;

static void skip_ws(reader *r) {
  while (r->p < r->end && (*r->p == ' ' || *r->p == '\t' || *r->p == '\n' || *r->p == '\r')) r->p++;
}

static int hex4(const char *p, unsigned *out) {
  unsigned v = 0;
  for (int i = 0; i < 4; i++) {
    char ch = p[i];
    v <<= 4;
    if (ch >= '0' && ch <= '9') v |= (unsigned)(ch - '0');
    else if (ch >= 'a' && ch <= 'f') v |= (unsigned)(ch - 'a' + 10);
    else if (ch >= 'A' && ch <= 'F') v |= (unsigned)(ch - 'A' + 10);
    else return -1;
  }
  *out = v;
  return 0;
}

static void add_utf8(buf *b, unsigned cp) {
  char u[4];
  size_t n;
  if (cp < 0x80) { u[0] = (char)cp; n = 1; }
  else if (cp < 0x800) { u[0] = (char)(0xc0 | cp >> 6); u[1] = (char)(0x80 | (cp & 0x3f)); n = 2; }
  else if (cp < 0x10000) {
    u[0] = (char)(0xe0 | cp >> 12); u[1] = (char)(0x80 | ((cp >> 6) & 0x3f));
    u[2] = (char)(0x80 | (cp & 0x3f)); n = 3;
  } else {
    u[0] = (char)(0xf0 | cp >> 18); u[1] = (char)(0x80 | ((cp >> 12) & 0x3f));
    u[2] = (char)(0x80 | ((cp >> 6) & 0x3f)); u[3] = (char)(0x80 | (cp & 0x3f)); n = 4;
  }
  buf_add(b, u, n);
}

/* Reads a JSON string into out (decoded); r->p is on the opening quote. */
static int read_string(reader *r, buf *out) {
  out->len = 0;
  if (r->p >= r->end || *r->p != '"') return -1;
  r->p++;
  while (r->p < r->end) {
    unsigned char ch = (unsigned char)*r->p++;
    if (ch == '"') return 0;
    if (ch < 0x20) return -1;
    if (ch != '\\') {
      buf_add(out, (const char *)&ch, 1);
      continue;
    }
    if (r->p >= r->end) return -1;
    char e = *r->p++;
    switch (e) {
      case '"': case '\\': case '/': buf_add(out, &e, 1); break;
      case 'b': buf_add(out, "\b", 1); break;
      case 'f': buf_add(out, "\f", 1); break;
      case 'n': buf_add(out, "\n", 1); break;
      case 'r': buf_add(out, "\r", 1); break;
      case 't': buf_add(out, "\t", 1); break;
      case 'u': {
        unsigned cp, lo;
        if (r->end - r->p < 4 || hex4(r->p, &cp) != 0) return -1;
        r->p += 4;
        if (cp >= 0xd800 && cp < 0xdc00) {
          if (r->end - r->p < 6 || r->p[0] != '\\' || r->p[1] != 'u' || hex4(r->p + 2, &lo) != 0 ||
              lo < 0xdc00 || lo > 0xdfff)
            return -1;
          r->p += 6;
          cp = 0x10000 + ((cp - 0xd800) << 10) + (lo - 0xdc00);
        } else if (cp >= 0xdc00 && cp < 0xe000) {
          return -1;
        }
        add_utf8(out, cp);
        break;
      }
      default: return -1;
    }
  }
  return -1;
}

static int read_int(reader *r, int64_t *v) {
  bool neg = r->p < r->end && *r->p == '-';
  if (neg) r->p++;
  uint64_t acc = 0;
  const char *digits = r->p;
  while (r->p < r->end && *r->p >= '0' && *r->p <= '9') {
    if (acc > (UINT64_MAX - 9) / 10) return -1;
    acc = acc * 10 + (uint64_t)(*r->p++ - '0');
  }
  if (r->p == digits || (r->p - digits > 1 && *digits == '0')) return -1;
  if (r->p < r->end && (*r->p == '.' || *r->p == 'e' || *r->p == 'E')) return -1;  /* not an integer */
  if (acc > (uint64_t)INT64_MAX + (neg ? 1u : 0u)) return -1;
  *v = neg ? (int64_t)(0 - acc) : (int64_t)acc;
  return 0;
}

/* Parses the POST body; v is decoded into vbuf. */
static int parse_row(const char *json, size_t n, int64_t *k, buf *vbuf, buf *key) {
  reader r = {json, json + n};
  bool have_k = false, have_v = false;
  skip_ws(&r);
  if (r.p >= r.end || *r.p++ != '{') return -1;
  skip_ws(&r);
  if (r.p < r.end && *r.p == '}') {
    r.p++;
  } else {
    for (;;) {
      skip_ws(&r);
      if (read_string(&r, key) != 0) return -1;
      skip_ws(&r);
      if (r.p >= r.end || *r.p++ != ':') return -1;
      skip_ws(&r);
      bool is_k = key->len == 1 && key->data[0] == 'k', is_v = key->len == 1 && key->data[0] == 'v';
      if (r.p < r.end && *r.p == '"') {
        buf scratch = {0};
        int rc = read_string(&r, is_v ? vbuf : &scratch);
        free(scratch.data);
        if (rc != 0 || is_k) return -1;
        have_v |= is_v;
      } else {
        int64_t x;
        if (read_int(&r, &x) != 0 || is_v) return -1;
        if (is_k) {
          *k = x;
          have_k = true;
        }
      }
      skip_ws(&r);
      if (r.p < r.end && *r.p == ',') {
        r.p++;
        continue;
      }
      if (r.p < r.end && *r.p == '}') {
        r.p++;
        break;
      }
      return -1;
    }
  }
  skip_ws(&r);
  return r.p == r.end && have_k && have_v && vbuf->len <= 1000 ? 0 : -1;
}

/* ---- handlers */

static int txn_begin(void) {
  if (S.in_txn) return 0;
  int rc = sqlite3_step(S.begin);
  sqlite3_reset(S.begin);
  if (rc != SQLITE_DONE) return -1;
  S.in_txn = true;
  S.batch_size = 0;
  return 0;
}

static void get_row(conn *c, int64_t id, buf *body) {
  if (txn_begin() != 0) {
    respond_error(c, 500, "store_error", "cannot begin", body);
    return;
  }
  S.batch_size++;
  sqlite3_bind_int64(S.get, 1, id);
  int rc = sqlite3_step(S.get);
  body->len = 0;
  if (rc == SQLITE_ROW) {
    buf_printf(body, "{\"id\":%lld", (long long)sqlite3_column_int64(S.get, 0));
    if (sqlite3_column_type(S.get, 1) != SQLITE_NULL)
      buf_printf(body, ",\"k\":%lld", (long long)sqlite3_column_int64(S.get, 1));
    if (sqlite3_column_type(S.get, 2) != SQLITE_NULL) {
      buf_adds(body, ",\"v\":");
      buf_add_json_str(body, sqlite3_column_text(S.get, 2), (size_t)sqlite3_column_bytes(S.get, 2));
    }
    buf_adds(body, "}");
    respond(c, 200, "application/json", body);
  } else if (rc == SQLITE_DONE) {
    respond_error(c, 404, "row_not_found", "no such row", body);
  } else {
    respond_error(c, 500, "store_error", "select failed", body);
  }
  sqlite3_reset(S.get);
  sqlite3_clear_bindings(S.get);
}

static void post_row(conn *c, buf *body) {
  int64_t k = 0;
  buf v = {0}, key = {0};
  if (parse_row(c->body.data ? c->body.data : "", c->body.len, &k, &v, &key) != 0) {
    respond_error(c, 400, "invalid_body", "want {\\\"k\\\": integer, \\\"v\\\": string}", body);
  } else if (txn_begin() != 0) {
    respond_error(c, 500, "store_error", "cannot begin", body);
  } else {
    S.batch_size++;
    sqlite3_bind_int64(S.insert, 1, k);
    sqlite3_bind_text(S.insert, 2, v.data ? v.data : "", (int)v.len, SQLITE_STATIC);
    int rc = sqlite3_step(S.insert);
    sqlite3_reset(S.insert);
    sqlite3_clear_bindings(S.insert);
    if (rc == SQLITE_DONE) {
      body->len = 0;
      buf_printf(body, "{\"id\":%lld}", (long long)sqlite3_last_insert_rowid(S.db));
      respond(c, 201, "application/json", body);
    } else {
      respond_error(c, 500, "store_error", "insert failed", body);
    }
  }
  free(v.data);
  free(key.data);
}

static void metrics(conn *c, buf *body) {
  body->len = 0;
  buf_printf(body,
             "baseline_commits_total{result=\"ok\"} %llu\n"
             "baseline_commits_total{result=\"failed\"} %llu\n"
             "baseline_commit_batch_size_sum %llu\n"
             "baseline_commit_batch_size_count %llu\n",
             (unsigned long long)S.commits_ok, (unsigned long long)S.commits_failed,
             (unsigned long long)S.batch_sum,
             (unsigned long long)(S.commits_ok + S.commits_failed));
  respond(c, 200, "text/plain; version=0.0.4", body);
}

static void dispatch(conn *c, int method) {
  static buf body;  /* reused scratch */
  const char *u = c->url.data ? c->url.data : "";
  size_t n = c->url.len;
  const char *q = memchr(u, '?', n);
  if (q) n = (size_t)(q - u);
  size_t plen = sizeof ROWS_PREFIX - 1;
  if (n == plen && memcmp(u, ROWS_PREFIX, plen) == 0) {
    if (method == HTTP_POST) post_row(c, &body);
    else respond_error(c, 405, "method_not_allowed", "POST only", &body);
  } else if (n > plen + 1 && memcmp(u, ROWS_PREFIX "/", plen + 1) == 0) {
    int64_t id = 0;
    size_t i = plen + 1;
    for (; i < n && u[i] >= '0' && u[i] <= '9' && id < INT64_MAX / 10 - 9; i++) id = id * 10 + (u[i] - '0');
    if (i != n) respond_error(c, 404, "route_not_found", "no such route", &body);
    else if (method != HTTP_GET) respond_error(c, 405, "method_not_allowed", "GET only", &body);
    else get_row(c, id, &body);
  } else if (n == 8 && memcmp(u, "/healthz", 8) == 0) {
    body.len = 0;
    buf_adds(&body, "{\"status\":\"ok\"}");
    respond(c, 200, "application/json", &body);
  } else if (n == 8 && memcmp(u, "/metrics", 8) == 0) {
    metrics(c, &body);
  } else {
    respond_error(c, 404, "route_not_found", "no such route", &body);
  }
}

/* ---- llhttp callbacks */

static int on_message_begin(llhttp_t *p) {
  conn *c = p->data;
  c->url.len = 0;
  c->body.len = 0;
  return 0;
}

static int on_url(llhttp_t *p, const char *at, size_t n) {
  conn *c = p->data;
  if (c->url.len + n > 8192) return HPE_USER;
  buf_add(&c->url, at, n);
  return 0;
}

static int on_body(llhttp_t *p, const char *at, size_t n) {
  conn *c = p->data;
  if (c->body.len + n > MAX_BODY) return HPE_USER;
  buf_add(&c->body, at, n);
  return 0;
}

static int on_message_complete(llhttp_t *p) {
  conn *c = p->data;
  if (!llhttp_should_keep_alive(p)) c->close_after = true;
  dispatch(c, llhttp_get_method(p));
  return c->close_after ? HPE_PAUSED : 0;
}

/* ---- connections */

static void conn_free(conn *c) {
  free(c->url.data);
  free(c->body.data);
  free(c->staged.data);
  free(c->out.data);
  free(c->inflight.data);
  free(c);
}

static void on_closed(uv_handle_t *h) {
  conn *c = h->data;
  c->closed = true;
  if (!c->in_pending) conn_free(c);  /* else the check handle frees it */
}

static void conn_close(conn *c) {
  if (c->closing) return;
  c->closing = true;
  uv_close((uv_handle_t *)&c->tcp, on_closed);
}

static void conn_flush(conn *c);

static void on_write(uv_write_t *req, int status) {
  conn *c = req->data;
  c->writing = false;
  c->inflight.len = 0;
  if (status < 0 || c->closing) {
    conn_close(c);
    return;
  }
  conn_flush(c);
}

static void conn_flush(conn *c) {
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
  conn *c = stream->data;
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
    respond_error(c, err == HPE_USER ? 413 : 400, "bad_request", "malformed or too large", &body);
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
      fprintf(stderr, "baseline: COMMIT failed: %s\n", sqlite3_errmsg(S.db));
      if (!sqlite3_get_autocommit(S.db)) {
        sqlite3_step(S.rollback);
        sqlite3_reset(S.rollback);
      }
    }
  }
  conn *c = S.pending;
  S.pending = NULL;
  while (c) {
    conn *next = c->pending_next;
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
  conn *c = calloc(1, sizeof *c);
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

/* ---- setup */

static void exec_sql(const char *sql) {
  char *msg = NULL;
  if (sqlite3_exec(S.db, sql, NULL, NULL, &msg) != SQLITE_OK) {
    fprintf(stderr, "baseline: %s: %s\n", sql, msg ? msg : "?");
    exit(1);
  }
}

static void open_db(const char *path) {
  if (sqlite3_open_v2(path, &S.db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX,
                      NULL) != SQLITE_OK)
    die("open");
  sqlite3_busy_timeout(S.db, 5000);
  exec_sql("PRAGMA journal_mode=WAL");
  exec_sql("PRAGMA synchronous=FULL");
  exec_sql("PRAGMA foreign_keys=ON");
  exec_sql("CREATE TABLE IF NOT EXISTS bench_rows (id INTEGER PRIMARY KEY, k INTEGER, v TEXT)");
  char seed[512];
  snprintf(seed, sizeof seed,
           "INSERT INTO bench_rows (id, k, v) SELECT n, n * 7 %% 1000, 'seed row ' || n FROM "
           "(WITH RECURSIVE seq(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM seq WHERE n < %d) "
           "SELECT n FROM seq) WHERE NOT EXISTS (SELECT 1 FROM bench_rows)",
           SEED_ROWS);
  exec_sql(seed);
  const struct {
    const char *sql;
    sqlite3_stmt **st;
  } stmts[] = {{"BEGIN", &S.begin},   {"COMMIT", &S.commit}, {"ROLLBACK", &S.rollback},
               {GET_SQL, &S.get},     {INSERT_SQL, &S.insert}};
  for (size_t i = 0; i < sizeof stmts / sizeof *stmts; i++)
    if (sqlite3_prepare_v3(S.db, stmts[i].sql, -1, SQLITE_PREPARE_PERSISTENT, stmts[i].st, NULL) !=
        SQLITE_OK)
      die(stmts[i].sql);
}

static void on_signal(uv_signal_t *h, int signum) {
  (void)h;
  (void)signum;
  if (S.in_txn) {
    sqlite3_step(S.commit);
    sqlite3_reset(S.commit);
  }
  sqlite3_stmt *all[] = {S.begin, S.commit, S.rollback, S.get, S.insert};
  for (size_t i = 0; i < sizeof all / sizeof *all; i++) sqlite3_finalize(all[i]);
  sqlite3_close(S.db);
  exit(0);
}

int main(int argc, char **argv) {
  if (argc != 3) {
    fprintf(stderr, "usage: baseline PORT DBFILE\n");
    return 2;
  }
  signal(SIGPIPE, SIG_IGN);
  S.loop = uv_default_loop();
  open_db(argv[2]);
  llhttp_settings_init(&S.settings);
  S.settings.on_message_begin = on_message_begin;
  S.settings.on_url = on_url;
  S.settings.on_body = on_body;
  S.settings.on_message_complete = on_message_complete;
  struct sockaddr_in addr;
  uv_ip4_addr("127.0.0.1", atoi(argv[1]), &addr);
  uv_tcp_init(S.loop, &S.listener);
  int rc = uv_tcp_bind(&S.listener, (const struct sockaddr *)&addr, 0);
  if (rc == 0) rc = uv_listen((uv_stream_t *)&S.listener, 4096, on_connection);
  if (rc != 0) {
    fprintf(stderr, "baseline: cannot listen on 127.0.0.1:%s: %s\n", argv[1], uv_strerror(rc));
    return 1;
  }
  uv_check_init(S.loop, &S.check);
  uv_check_start(&S.check, on_check);
  uv_signal_init(S.loop, &S.sigint);
  uv_signal_init(S.loop, &S.sigterm);
  uv_signal_start(&S.sigint, on_signal, SIGINT);
  uv_signal_start(&S.sigterm, on_signal, SIGTERM);
  fprintf(stderr, "baseline: listening on 127.0.0.1:%s\n", argv[1]);
  return uv_run(S.loop, UV_RUN_DEFAULT);
}
