/*
** transfer.c - a brand's files travelling between nodes that do not share a
** data folder (separate machines), for host/cluster.c's move.
**
** The old node, once it has released the brand (paused, committed, closed:
** its files are quiescent), serves them with the host admin key:
**
**   GET /admin/cluster/transfer/{t}
**       the manifest: {tenant, folder, chunk_max, files: [{file, bytes,
**       sha256}]}, "db" and, when it exists, "analytics" (store/transfer.h)
**   GET /admin/cluster/transfer/{t}?file=db&offset=N&length=M
**       bytes [N, N+M) of that file, M at most chunk_max (4 MiB), as
**       application/octet-stream; fewer only at the file's end
**
** Both read on a libuv worker (the response is deferred, net/http.h), so
** the loop never reads a file nor hashes one; a piece is the only thing ever
** in memory, never the file. At most MAX_SERVING run at once.
**
** The new node's adopt (cluster.c), given the old node, pulls on a worker
** with blocking libcurl calls (net/outbound.h's tpo_fetch): the manifest,
** then every piece of every file, written as it arrives to a temporary file
** in its own data folder and hashed on the way; then size, SHA-256 and
** PRAGMA integrity_check, fsync, and the rename into place under the brand's
** claim. Any failure leaves the folder as it was (temporary files removed)
** and the move is aborted by the CLI: the old node resumes.
**
** At stop the host waits for the workers (a pull in flight is cancelled at
** its next piece): none may outlive the files and responses it uses.
*/
#include <lauxlib.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "base/buf.h"
#include "base/clock.h"
#include "base/json.h"
#include "base/log.h"
#include "base/url.h"
#include "host/host_int.h"
#include "net/outbound.h"
#include "store/backup.h"
#include "store/owners.h"
#include "store/transfer.h"

#define MAX_SERVING 4                   /* source workers at once: the rest wait 503 */
#define MANIFEST_MAX (64u << 10)        /* bytes of a manifest */
#define MANIFEST_TIMEOUT_MS (600 * 1000) /* the source hashes every file first */
#define PIECE_TIMEOUT_MS (120 * 1000)

/* ---- the source: the manifest and the pieces */

typedef struct tp_xfer {
  uv_work_t work;
  tp_host *h;
  tph_response *res;
  struct tp_xfer *next;        /* h->transfers */
  char tenant[TPT_MAX_ID + 1];
  char path[1100];             /* the piece's file; for the manifest, the data folder */
  bool manifest;
  int64_t offset;
  size_t length;
  /* the worker's results */
  int rc;                      /* 0; 1 offset past the end; -1 failed */
  tp_buf body;
  char err[512];
  atomic_int finished;
  bool orphan;
} tp_xfer;

static void manifest_file(tp_xfer *x, int i, bool *first) {
  char path[1100], hex[TPXF_HEX];
  int64_t bytes;
  tpc_tenant_file(x->path, x->tenant, tpxf_suffix(tpxf_name(i), strlen(tpxf_name(i))), path, sizeof path);
  int rc = tpxf_digest(path, &bytes, hex, x->err, sizeof x->err);
  if (rc == 1) return;  /* no analytics file: nothing of it travels */
  if (rc != 0) {
    x->rc = -1;
    return;
  }
  tp_buf_printf(&x->body, "%s{\"file\":\"%s\",\"bytes\":%lld,\"sha256\":\"%s\"}", *first ? "" : ",",
                tpxf_name(i), (long long)bytes, hex);
  *first = false;
}

static void serve_work(uv_work_t *w) {
  tp_xfer *x = w->data;
  if (x->manifest) {
    bool first = true;
    for (int i = 0; i < TPXF_FILES && x->rc == 0; i++) manifest_file(x, i, &first);
    tp_buf_adds(&x->body, "]}");
  } else {
    int64_t total;
    x->rc = tpxf_read(x->path, x->offset, x->length, &x->body, &total, x->err, sizeof x->err);
  }
  atomic_store(&x->finished, 1);
}

static void unlink_xfer(tp_host *h, tp_xfer *x) {
  for (tp_xfer **p = &h->transfers; *p; p = &(*p)->next)
    if (*p == x) {
      *p = x->next;
      h->nserving--;
      return;
    }
}

static void serve_done(uv_work_t *w, int status) {
  tp_xfer *x = w->data;
  if (x->orphan) {
    tph_abandon(x->res);
  } else {
    unlink_xfer(x->h, x);
    tph_response *res = x->res;
    if (status != 0 || x->rc < 0) {
      tph_error(res, 500, "transfer_unreadable", "'%s' cannot be read: %s", x->tenant,
                status ? "cancelled" : x->err);
    } else if (x->rc == 1) {
      tph_error(res, 416, "range_not_satisfiable", "%s", x->err);
    } else {
      tp_buf old = res->body;  /* the piece moves into the response, not copied on the loop */
      res->body = x->body;
      x->body = old;
      res->content_type = x->manifest ? "application/json" : "application/octet-stream";
      res->status = 200;
    }
    tph_resume(res);
  }
  tp_buf_free(&x->body);
  free(x);
}

/* The query's one parameter name as out (cap), "" if absent; false with 400. */
static bool param(const char *q, size_t qn, const char *name, char *out, size_t cap, tph_response *res) {
  if (tp_query_get(q, qn, name, out, cap) >= 0) return true;
  tph_error(res, 400, "invalid_query", "query parameter '%s' is badly encoded or too long", name);
  return false;
}

static int only_known(void *ud, const char *k, size_t kn, const char *v, size_t vn) {
  (void)ud, (void)v, (void)vn;
  static const char *known[] = {"file", "offset", "length"};
  for (int i = 0; i < 3; i++)
    if (strlen(known[i]) == kn && memcmp(known[i], k, kn) == 0) return 0;
  return 1;
}

/* A non-negative decimal integer of at most 18 digits: true with *out. */
static bool decimal(const char *s, int64_t *out) {
  size_t n = strlen(s);
  if (n == 0 || n > 18 || strspn(s, "0123456789") != n) return false;
  *out = strtoll(s, NULL, 10);
  return true;
}

/* ?file, offset, length into x; false with 400 filled. */
static bool piece_of(tp_host *h, const tph_request *req, tp_xfer *x, tph_response *res) {
  const char *q = memchr(req->target, '?', req->target_len);
  size_t qn = q ? req->target_len - (size_t)(q + 1 - req->target) : 0;
  q = q ? q + 1 : "";
  char file[16], off[24], len[24];
  int64_t length;
  if (tp_query_each(q, qn, only_known, NULL) != 0) {
    tph_error(res, 400, "invalid_query", "the query takes file, offset and length only");
    return false;
  }
  if (!param(q, qn, "file", file, sizeof file, res) || !param(q, qn, "offset", off, sizeof off, res) ||
      !param(q, qn, "length", len, sizeof len, res))
    return false;
  x->manifest = qn == 0;
  if (x->manifest) {
    tp_copy_str(x->path, sizeof x->path, h->cfg->data_dir);
    return true;
  }
  const char *suffix = tpxf_suffix(file, strlen(file));
  if (!suffix) {
    tph_error(res, 400, "invalid_field", "'file' must be db or analytics");
  } else if (!decimal(off, &x->offset)) {
    tph_error(res, 400, "invalid_field", "'offset' must be a byte offset: a non-negative integer");
  } else if (!decimal(len, &length) || length < 1 || length > TPXF_CHUNK_MAX) {
    tph_error(res, 400, "invalid_field", "'length' must be 1-%u bytes", TPXF_CHUNK_MAX);
  } else {
    x->length = (size_t)length;
    tpc_tenant_file(h->cfg->data_dir, x->tenant, suffix, x->path, sizeof x->path);
    if (tp_is_file(x->path)) return true;
    tph_error(res, 404, "file_not_found", "'%s' has no %s file on this node", x->tenant, file);
  }
  return false;
}

/* Whether t's files may be read for a move now: released by this node and
** not yet moved (then they are closed and quiescent); false with 409. */
static bool releasable(tp_host *h, tp_tenant *t, tph_response *res) {
  char path[1100], why[200];
  if (t->owned || !t->paused_ms || t->open) {
    tph_error(res, 409, "not_released", "node %s has not released '%s' for a move (POST "
              "/admin/cluster/release first)", h->cfg->self->name, t->conf->id);
    return false;
  }
  if (tpxf_tombstone(h->cfg->data_dir, t->conf->id, why, sizeof why)) {
    tph_error(res, 409, "not_released", "'%s' %s: this node's copy is set aside", t->conf->id, why);
    return false;
  }
  for (int i = 0; i < TPXF_FILES; i++) {
    tpc_tenant_file(h->cfg->data_dir, t->conf->id, tpxf_suffix(tpxf_name(i), strlen(tpxf_name(i))), path,
                    sizeof path);
    if (!tpxf_quiescent(path)) {
      tph_error(res, 409, "not_quiescent", "'%s' was not closed cleanly: its %s log still holds "
                "writes", t->conf->id, tpxf_name(i));
      return false;
    }
  }
  return true;
}

void tp__transfer_serve(tp_host *h, tp_tenant *t, const tph_request *req, tph_response *res) {
  if (!releasable(h, t, res)) return;
  tp_xfer *x = calloc(1, sizeof *x);
  if (!x) {
    tph_error(res, 503, "busy", "out of memory; try again");
    return;
  }
  tp_copy_str(x->tenant, sizeof x->tenant, t->conf->id);
  tp_buf_init(&x->body);
  if (!piece_of(h, req, x, res)) {
    free(x);
    return;
  }
  if (x->manifest) {
    char folder[33] = "";
    tp_copy_str(folder, sizeof folder, h->folder);
    tp_buf_printf(&x->body, "{\"tenant\":\"%s\",\"folder\":\"%s\",\"chunk_max\":%u,\"files\":[", x->tenant,
                  folder, TPXF_CHUNK_MAX);
  }
  x->h = h;
  x->res = res;
  x->work.data = x;
  atomic_init(&x->finished, 0);
  if (!h->loop || h->nserving >= MAX_SERVING || uv_queue_work(h->loop, &x->work, serve_work, serve_done) != 0) {
    tp_buf_free(&x->body);
    free(x);
    res->retry_after = 1;
    tph_error(res, 503, "busy", "%d pieces are being read already; ask again", MAX_SERVING);
    return;
  }
  res->deferred = true;
  x->next = h->transfers;
  h->transfers = x;
  h->nserving++;
}

/* ---- the receiver: a pull on a worker */

typedef struct pulled_file {
  const char *name, *suffix;
  int64_t bytes;
  char sha256[TPXF_HEX];
  char tmp[1100];
} pulled_file;

struct tp_pull {
  uv_work_t work;
  tp_host *h;
  tp_tenant *t;
  tph_response *res;
  tp_pulled_fn done;
  char url[400];               /* http://host:port/admin/cluster/transfer/{t} */
  char key[300];               /* "X-Api-Key: ..." */
  char data_dir[1024];
  char tenant[TPT_MAX_ID + 1];
  int64_t now_ms;
  atomic_int cancel;           /* the host stops: give up at the next piece */
  atomic_int finished;
  bool orphan;
  /* the worker's results */
  pulled_file files[TPXF_FILES];
  int nfiles;
  tp_pull_result r;
};

static int into_buf(void *ud, const void *p, size_t n) {
  tp_buf_add(ud, p, n);
  return 0;
}

/* Fills r's error: status and code, and what happened. Returns -1. */
static int fail(tp_pull *p, int status, const char *code, const char *fmt, const char *detail) {
  p->r.status = status;
  tp_copy_str(p->r.code, sizeof p->r.code, code);
  snprintf(p->r.message, sizeof p->r.message, fmt, detail);
  return -1;
}

/* GET url into out; a non-2xx answer or no answer is a failure. */
static int fetch_into(tp_pull *p, const char *url, int64_t timeout_ms, size_t max, tpo_sink sink, void *ud) {
  const char *headers[] = {p->key};
  char err[512];
  int status = 0;
  tp_buf errbody;
  tp_buf_init(&errbody);
  int rc = tpo_fetch(url, headers, 1, timeout_ms, max, sink, ud, &status, &errbody, err, sizeof err);
  if (rc == 0 && status != 200) {
    snprintf(err, sizeof err, "the source answered %d: %.300s", status, tp_buf_cstr(&errbody));
    rc = -1;
  }
  tp_buf_free(&errbody);
  if (rc != 0) return fail(p, 502, "transfer_failed", "the source node did not hand the files over: %s", err);
  return 0;
}

/* The manifest's files into p (a Lua state of the worker's own decodes it). */
static int parse_manifest(tp_pull *p, const tp_buf *body) {
  lua_State *L = luaL_newstate();
  if (!L) return fail(p, 500, "transfer_failed", "%s", "out of memory");
  tpj_open(L);
  char err[200];
  int rc = 0;
  if (tpj_decode(L, body->data, body->len, err, sizeof err) != 0 || !lua_istable(L, -1)) rc = -1;
  if (rc == 0 && lua_getfield(L, -1, "files") != LUA_TTABLE) rc = -1;
  for (int i = 1; rc == 0 && lua_rawgeti(L, -1, i) == LUA_TTABLE; i++) {  /* stack: manifest files file */
    pulled_file *f = &p->files[p->nfiles];
    lua_getfield(L, -1, "file");
    lua_getfield(L, -2, "bytes");
    lua_getfield(L, -3, "sha256");  /* stack: manifest files file name bytes sha */
    size_t n = 0, hn = 0;
    const char *name = lua_type(L, -3) == LUA_TSTRING ? lua_tolstring(L, -3, &n) : NULL;
    const char *sha = lua_type(L, -1) == LUA_TSTRING ? lua_tolstring(L, -1, &hn) : NULL;
    f->suffix = name ? tpxf_suffix(name, n) : NULL;
    f->bytes = lua_isinteger(L, -2) ? lua_tointeger(L, -2) : -1;
    if (p->nfiles >= TPXF_FILES || !f->suffix || f->bytes < 0 || !sha || hn != 64 ||
        strspn(sha, "0123456789abcdef") != 64) {
      rc = -1;
      break;
    }
    for (int k = 0; k < p->nfiles; k++)
      if (p->files[k].suffix == f->suffix) rc = -1;  /* one file twice */
    f->name = tpxf_suffix("db", 2) == f->suffix ? "db" : "analytics";
    memcpy(f->sha256, sha, 65);
    p->nfiles++;
    lua_pop(L, 4);  /* stack: manifest files */
  }
  lua_close(L);
  return rc == 0 ? 0 : fail(p, 502, "transfer_failed", "the source's manifest is not one: %s", err[0] ? err : "bad files");
}

typedef struct piece_sink {
  tpxf_sink *sink;
  tp_pull *p;
} piece_sink;

static int into_sink(void *ud, const void *data, size_t n) {
  piece_sink *ps = ud;
  if (atomic_load(&ps->p->cancel)) return -1;
  return tpxf_sink_write(ps->sink, data, n);
}

/* One file, piece by piece, into its temporary file; checked. */
static int pull_file(tp_pull *p, pulled_file *f) {
  tpxf_sink sink;
  char err[512], url[600];
  snprintf(f->tmp, sizeof f->tmp, "%s/.%s%s.incoming", p->data_dir, p->tenant, f->suffix);
  if (tpxf_sink_open(&sink, f->tmp, err, sizeof err) != 0)
    return fail(p, 500, "transfer_unwritable", "%s", err);
  piece_sink ps = {&sink, p};
  for (int64_t off = 0; off < f->bytes;) {
    int64_t len = f->bytes - off < TPXF_CHUNK_MAX ? f->bytes - off : TPXF_CHUNK_MAX;
    snprintf(url, sizeof url, "%s?file=%s&offset=%lld&length=%lld", p->url, f->name, (long long)off,
             (long long)len);
    int64_t before = sink.bytes;
    if (atomic_load(&p->cancel)) {
      fail(p, 503, "cancelled", "%s", "the host is stopping");
    } else if (fetch_into(p, url, PIECE_TIMEOUT_MS, (size_t)len, into_sink, &ps) == 0 && sink.bytes - before != len) {
      snprintf(err, sizeof err, "%lld of %lld bytes at %lld", (long long)(sink.bytes - before), (long long)len,
               (long long)off);
      fail(p, 502, "transfer_failed", "a piece came short: %s", err);
    }
    if (p->r.code[0]) {
      tpxf_sink_abort(&sink);
      return -1;
    }
    off += len;
  }
  if (tpxf_sink_finish(&sink, f->bytes, f->sha256, err, sizeof err) != 0 ||
      tpxf_check_db(f->tmp, err, sizeof err) != 0) {
    tpxf_sink_abort(&sink);
    return fail(p, 502, "transfer_corrupt", "the files that arrived are not the source's: %s", err);
  }
  p->r.bytes += f->bytes;
  return 0;
}

/* Every file into place, under the brand's claim; any stale file of it
** that did not travel is set aside. */
static int install(tp_pull *p) {
  char final[1100], err[512];
  tpc_tenant_file(p->data_dir, p->tenant, ".db", final, sizeof final);
  int claim = tpbk_claim(final, err, sizeof err);
  if (claim < 0) return fail(p, 409, "not_released", "%s", err);
  int rc = 0;
  for (int i = 0; rc == 0 && i < TPXF_FILES; i++) {
    const char *suffix = tpxf_suffix(tpxf_name(i), strlen(tpxf_name(i)));
    pulled_file *f = NULL;
    for (int k = 0; k < p->nfiles; k++)
      if (p->files[k].suffix == suffix) f = &p->files[k];
    tpc_tenant_file(p->data_dir, p->tenant, suffix, final, sizeof final);
    rc = f ? tpxf_install(f->tmp, final, p->now_ms, err, sizeof err) : tpxf_displace(final, p->now_ms, err, sizeof err);
  }
  if (rc == 0) rc = tpxf_clear_tombstone(p->data_dir, p->tenant, err, sizeof err);
  tpbk_unclaim(claim);
  return rc == 0 ? 0 : fail(p, 500, "transfer_unwritable", "%s", err);
}

static void pull_work(uv_work_t *w) {
  tp_pull *p = w->data;
  uint64_t start = tp_clock_mono_ns();
  tp_buf manifest;
  tp_buf_init(&manifest);
  int rc = fetch_into(p, p->url, MANIFEST_TIMEOUT_MS, MANIFEST_MAX, into_buf, &manifest);
  if (rc == 0) rc = parse_manifest(p, &manifest);
  tp_buf_free(&manifest);
  int done = 0;
  for (; rc == 0 && done < p->nfiles; done++) rc = pull_file(p, &p->files[done]);
  if (rc == 0) rc = install(p);
  for (int i = 0; rc != 0 && i < done; i++) unlink(p->files[i].tmp);  /* what arrived, gone */
  p->r.ms = (double)(tp_clock_mono_ns() - start) / 1e6;
  atomic_store(&p->finished, 1);
}

static void pull_done(uv_work_t *w, int status) {
  tp_pull *p = w->data;
  if (p->orphan) {
    tph_abandon(p->res);
  } else {
    p->t->adopting = NULL;
    if (status != 0 && !p->r.code[0]) fail(p, 503, "cancelled", "%s", "the pull was cancelled");
    p->done(p->h, p->t, p->res, &p->r);
    tph_resume(p->res);
  }
  memset(p->key, 0, sizeof p->key);
  free(p);
}

int tp__transfer_pull(tp_host *h, tp_tenant *t, const tpc_node *from, tph_response *res, tp_pulled_fn done) {
  char host[64];
  int port;
  if (!h->loop || !h->cfg->cli_admin_key || tpc_parse_listen(from->listen, host, sizeof host, &port) != 0)
    return -1;
  tp_pull *p = calloc(1, sizeof *p);
  if (!p) return -1;
  p->h = h;
  p->t = t;
  p->res = res;
  p->done = done;
  p->now_ms = tp_clock_wall_ms();
  snprintf(p->url, sizeof p->url, "http://%s:%d/admin/cluster/transfer/%s", host, port, t->conf->id);
  snprintf(p->key, sizeof p->key, "X-Api-Key: %s", h->cfg->cli_admin_key);
  tp_copy_str(p->data_dir, sizeof p->data_dir, h->cfg->data_dir);
  tp_copy_str(p->tenant, sizeof p->tenant, t->conf->id);
  atomic_init(&p->cancel, 0);
  atomic_init(&p->finished, 0);
  p->work.data = p;
  if (uv_queue_work(h->loop, &p->work, pull_work, pull_done) != 0) {
    free(p);
    return -1;
  }
  res->deferred = true;
  t->adopting = p;
  return 0;
}

void tp__transfer_drain(tp_host *h) {
  for (tp_xfer *x = h->transfers; x; x = x->next) {
    tp__await_worker(&x->finished);
    x->orphan = true;
  }
  h->transfers = NULL;
  h->nserving = 0;
  for (int i = 0; i < h->ntenants; i++) {
    tp_pull *p = h->tenants[i].adopting;
    if (!p) continue;
    atomic_store(&p->cancel, 1);
    tp__await_worker(&p->finished);
    p->orphan = true;
    h->tenants[i].adopting = NULL;
  }
}
