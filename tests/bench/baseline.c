/*
** baseline.c - the ceiling tidepool is measured against (tests/bench/run.sh).
**
** A bare libuv + llhttp + SQLite server doing the same work as the bench
** plugin with the same durability: WAL, synchronous=FULL, group commit. Every
** request parsed during one loop iteration runs inside one BEGIN ... COMMIT;
** a uv_check handle (end of the iteration) commits, and only then are the
** responses of that iteration handed to the sockets (benchloop.c, shared with
** sidebyside/flashloop.c). Nothing else: no routing table, no Lua, no
** savepoints, no logging, no request ids, no timeouts.
**
**   GET  /v1/bench/bench/rows/{id}   -> 200 {"id":..,"k":..,"v":".."} | 404
**   POST /v1/bench/bench/rows {"k":int,"v":"str"} -> 201 {"id":..}
**   GET  /healthz, GET /metrics (commit count and batch sizes)
**
** usage: baseline PORT DBFILE   (listens on 127.0.0.1; SIGINT/SIGTERM stop it)
*/
#define _POSIX_C_SOURCE 200809L

#include "benchloop.h"

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* The bench plugin's statements (tests/bench/plugins/bench/plugin.lua). */
#define GET_SQL "SELECT id, k, v FROM bench_rows WHERE id = ?"
#define INSERT_SQL "INSERT INTO bench_rows (k, v) VALUES (?, ?)"
#define SEED_ROWS 10000
#define ROWS_PREFIX "/v1/bench/bench/rows"

static struct {
  sqlite3 *db;
  sqlite3_stmt *get, *insert;
} S;

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

static void get_row(bl_conn *c, int64_t id, buf *body) {
  if (bl_begin() != 0) {
    bl_respond_error(c, 500, "store_error", "cannot begin", body);
    return;
  }
  bl_batch_add();
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
    bl_respond(c, 200, "application/json", body);
  } else if (rc == SQLITE_DONE) {
    bl_respond_error(c, 404, "row_not_found", "no such row", body);
  } else {
    bl_respond_error(c, 500, "store_error", "select failed", body);
  }
  sqlite3_reset(S.get);
  sqlite3_clear_bindings(S.get);
}

static void post_row(bl_conn *c, const bl_request *req, buf *body) {
  int64_t k = 0;
  buf v = {0}, key = {0};
  if (parse_row(req->body, req->body_len, &k, &v, &key) != 0) {
    bl_respond_error(c, 400, "invalid_body", "want {\\\"k\\\": integer, \\\"v\\\": string}", body);
  } else if (bl_begin() != 0) {
    bl_respond_error(c, 500, "store_error", "cannot begin", body);
  } else {
    bl_batch_add();
    sqlite3_bind_int64(S.insert, 1, k);
    sqlite3_bind_text(S.insert, 2, v.data ? v.data : "", (int)v.len, SQLITE_STATIC);
    int rc = sqlite3_step(S.insert);
    sqlite3_reset(S.insert);
    sqlite3_clear_bindings(S.insert);
    if (rc == SQLITE_DONE) {
      body->len = 0;
      buf_printf(body, "{\"id\":%lld}", (long long)sqlite3_last_insert_rowid(S.db));
      bl_respond(c, 201, "application/json", body);
    } else {
      bl_respond_error(c, 500, "store_error", "insert failed", body);
    }
  }
  free(v.data);
  free(key.data);
}

static void dispatch(bl_conn *c, const bl_request *req) {
  static buf body;  /* reused scratch */
  const char *u = req->path;
  size_t n = req->path_len;
  size_t plen = sizeof ROWS_PREFIX - 1;
  if (n == plen && memcmp(u, ROWS_PREFIX, plen) == 0) {
    if (req->method == HTTP_POST) post_row(c, req, &body);
    else bl_respond_error(c, 405, "method_not_allowed", "POST only", &body);
  } else if (n > plen + 1 && memcmp(u, ROWS_PREFIX "/", plen + 1) == 0) {
    int64_t id = 0;
    size_t i = plen + 1;
    for (; i < n && u[i] >= '0' && u[i] <= '9' && id < INT64_MAX / 10 - 9; i++) id = id * 10 + (u[i] - '0');
    if (i != n) bl_respond_error(c, 404, "route_not_found", "no such route", &body);
    else if (req->method != HTTP_GET) bl_respond_error(c, 405, "method_not_allowed", "GET only", &body);
    else get_row(c, id, &body);
  } else if (n == 8 && memcmp(u, "/healthz", 8) == 0) {
    body.len = 0;
    buf_adds(&body, "{\"status\":\"ok\"}");
    bl_respond(c, 200, "application/json", &body);
  } else if (n == 8 && memcmp(u, "/metrics", 8) == 0) {
    bl_metrics(&body);
    bl_respond(c, 200, "text/plain; version=0.0.4", &body);
  } else {
    bl_respond_error(c, 404, "route_not_found", "no such route", &body);
  }
}

/* ---- setup */

static void open_db(const char *path) {
  S.db = bl_open_db(path);
  bl_exec("CREATE TABLE IF NOT EXISTS bench_rows (id INTEGER PRIMARY KEY, k INTEGER, v TEXT)");
  char seed[512];
  snprintf(seed, sizeof seed,
           "INSERT INTO bench_rows (id, k, v) SELECT n, n * 7 %% 1000, 'seed row ' || n FROM "
           "(WITH RECURSIVE seq(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM seq WHERE n < %d) "
           "SELECT n FROM seq) WHERE NOT EXISTS (SELECT 1 FROM bench_rows)",
           SEED_ROWS);
  bl_exec(seed);
  S.get = bl_prepare(GET_SQL);
  S.insert = bl_prepare(INSERT_SQL);
}

int main(int argc, char **argv) {
  if (argc != 3) {
    fprintf(stderr, "usage: baseline PORT DBFILE\n");
    return 2;
  }
  static const bl_server server = {.name = "baseline", .dispatch = dispatch};
  bl_init(&server);
  open_db(argv[2]);
  return bl_run(argv[1], "listening");
}
