/*
** track.c - POST /v1/{tenant}/track: the mini-program's events, taken in
** by the host (no Lua runs) into the tenant's analytics database
** (store/track.h), outside the batch of its orders.
**
** A batch is 1-100 events, all kept or none: every event is checked first,
** and a refused batch answers 400 invalid_batch with one entry per bad field
** ({"field":"events[3].scene","message":...}). An event id already kept (or
** twice in the batch) is skipped and counted as a duplicate, so a client
** retries a batch whose answer it lost with the same ids.
**
** The visitor is the token's member when the request carries one (optional
** auth), and the device (body "device" or the X-Device-Id header) always:
** one event with both folds the device's anonymous events into the member.
** Times are the client's ("at", epoch ms): at most 48 hours old (a rollup
** folds late events in for that long) and 5 minutes ahead of the tenant's
** clock. A plugin's own events are "<plugin>.<name>", accepted when the
** brand runs the plugin and its manifest lists the name under `track`.
**
** Intake shares the loop with the orders, so it takes at most
** TRACK_SLICE_NS of each loop iteration: a batch arriving after that is
** answered 503 busy with Retry-After: 1, before its body is read, and the
** commit of the iteration's orders (and their answers) never waits behind
** more than one slice of events. Events are analytics; a buy is not.
**
** The iteration's batches share one transaction of the analytics file, which
** tp__flush_batch commits with the brands' batches (host/tenant.c); a batch's
** answer goes after it, like an order's (a commit that fails turns the
** answers of its batches into 503 commit_failed: net/http.c, settle).
*/
#include "host/host_int.h"

#include <lauxlib.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "base/clock.h"
#include "base/json.h"
#include "base/log.h"
#include "base/utf8.h"
#include "store/track.h"

#define MAX_LATE_MS (48LL * 3600 * 1000)
#define MAX_AHEAD_MS (5LL * 60 * 1000)
#define MAX_ERRORS 20
#define PURGE_EVERY_MS (60LL * 1000)  /* a small slice often: the loop never waits long */
#define PURGE_ROWS 10000             /* up to 14.4M events a day */
#define TRACK_SLICE_NS (1000 * 1000ull)   /* intake's share of one loop iteration */
#define CKPT_FRAMES 1000      /* a worker checkpoints once the WAL holds this many pages */
#define RESTART_FRAMES 4000   /* then the loop starts the WAL over past this (16 MiB) */

typedef struct batch {
  tp_buf errors;               /* the JSON array's items, comma-separated */
  int nerrors;
  tptk_event ev[TPTK_MAX_BATCH];
} batch;

static void field_error(batch *b, int i, const char *field, const char *message) {
  b->nerrors++;
  if (b->nerrors > MAX_ERRORS) return;
  char name[80];
  if (i >= 0) snprintf(name, sizeof name, "events[%d].%s", i + 1, field);
  else snprintf(name, sizeof name, "%s", field);
  if (b->errors.len) tp_buf_addc(&b->errors, ',');
  tp_buf_adds(&b->errors, "{\"field\":");
  tp_buf_add_json_str(&b->errors, name, strlen(name));
  tp_buf_adds(&b->errors, ",\"message\":");
  tp_buf_add_json_str(&b->errors, message, strlen(message));
  tp_buf_addc(&b->errors, '}');
}

/* An id as ids go here: 1-64 of A-Z a-z 0-9 _ - . : @ */
static bool ident(const char *s, size_t n) {
  if (n < 1 || n > 64) return false;
  for (size_t i = 0; i < n; i++) {
    unsigned char c = (unsigned char)s[i];
    if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
          c == '_' || c == '-' || c == '.' || c == ':' || c == '@'))
      return false;
  }
  return true;
}

/* t[key] of the table at idx as an ident (NULL if absent); an error if not one. */
static const char *get_ident(lua_State *L, int idx, const char *key, bool required, batch *b,
                             int i, const char *field) {
  int ty = lua_getfield(L, idx, key);
  const char *s = NULL;
  size_t n = 0;
  if (ty == LUA_TSTRING) s = lua_tolstring(L, -1, &n);
  lua_pop(L, 1);  /* the string stays alive: the table holds it */
  if (ty == LUA_TNIL || (ty == LUA_TSTRING && n == 0 && !required)) {
    if (required) field_error(b, i, field ? field : key, "is required");
    return NULL;
  }
  if (!s || !ident(s, n)) {
    field_error(b, i, field ? field : key, "must be 1-64 characters of A-Z a-z 0-9 _ - . : @");
    return NULL;
  }
  return s;
}

/* t[key] as text of 1..max bytes, or NULL. */
static const char *get_text(lua_State *L, int idx, const char *key, size_t max, batch *b, int i) {
  int ty = lua_getfield(L, idx, key);
  const char *s = ty == LUA_TSTRING ? lua_tostring(L, -1) : NULL;
  size_t n = s ? strlen(s) : 0;
  lua_pop(L, 1);
  if (ty == LUA_TNIL) return NULL;
  if (!s || n < 1 || n > max) {
    char m[64];
    snprintf(m, sizeof m, "must be text of 1-%zu bytes", max);
    field_error(b, i, key, m);
    return NULL;
  }
  return s;
}

/* A kind the host knows, or "<plugin>.<name>" of a plugin the tenant runs. */
static bool known_kind(tp_tenant *t, const char *k) {
  static const char *const kinds[] = {"enter", "page_view", "product_view", "add_to_cart",
                                      "search", "share", NULL};
  for (int i = 0; kinds[i]; i++)
    if (strcmp(k, kinds[i]) == 0) return true;
  const char *dot = strchr(k, '.');
  if (!dot || dot == k || !dot[1] || strlen(dot + 1) > 32) return false;
  for (const char *c = dot + 1; *c; c++)
    if (!((*c >= 'a' && *c <= 'z') || (*c >= '0' && *c <= '9') || *c == '_')) return false;
  char plugin[40];
  size_t n = (size_t)(dot - k);
  if (n >= sizeof plugin) return false;
  memcpy(plugin, k, n);
  plugin[n] = '\0';
  tp_slot *s = tp__slot(t, plugin);
  return s && s->current && tpp_tracks(s->current, dot + 1);
}

/* The enter event's query (scene value, store, guide, live room, content, ref). */
static void read_enter(lua_State *L, int idx, tptk_event *e, batch *b, int i) {
  int ty = lua_getfield(L, idx, "scene");
  if (ty == LUA_TNIL) field_error(b, i, "scene", "is required on an enter (the WeChat scene value)");
  else if (!lua_isinteger(L, -1) || lua_tointeger(L, -1) < 1000 || lua_tointeger(L, -1) > 9999)
    field_error(b, i, "scene", "must be a WeChat scene value (an integer 1000-9999)");
  else e->scene = (int)lua_tointeger(L, -1);
  lua_pop(L, 1);
  ty = lua_getfield(L, idx, "query");
  if (ty == LUA_TTABLE) {
    int q = lua_gettop(L);
    e->store = get_ident(L, q, "store", false, b, i, "query.store");
    e->guide = get_ident(L, q, "guide", false, b, i, "query.guide");
    e->live = get_ident(L, q, "live", false, b, i, "query.live");
    e->content = get_ident(L, q, "content", false, b, i, "query.content");
    e->referrer = get_ident(L, q, "ref", false, b, i, "query.ref");
  } else if (ty != LUA_TNIL) {
    field_error(b, i, "query", "must be an object (the page's query)");
  }
  lua_pop(L, 1);  /* the query table stays alive: the event holds it */
}

/* Checks event i (the table on top of L) into b->ev[i]. */
static void read_event(tp_tenant *t, lua_State *L, batch *b, int i, int64_t now_ms,
                       const char *device, const char *member) {
  tptk_event *e = &b->ev[i];
  memset(e, 0, sizeof *e);
  int idx = lua_gettop(L);
  if (!lua_istable(L, idx)) {
    field_error(b, i, "", "must be an object");
    return;
  }
  e->device = device;
  e->member = member;
  e->id = get_ident(L, idx, "id", true, b, i, NULL);
  e->session = get_ident(L, idx, "session", true, b, i, NULL);
  int ty = lua_getfield(L, idx, "kind");
  e->kind = ty == LUA_TSTRING ? lua_tostring(L, -1) : NULL;
  lua_pop(L, 1);
  if (!e->kind || !known_kind(t, e->kind)) {
    field_error(b, i, "kind", "must be enter, page_view, product_view, add_to_cart, search, share "
                "or <plugin>.<event> that a plugin the brand runs declares (manifest track)");
    e->kind = NULL;
  }
  ty = lua_getfield(L, idx, "at");
  if (ty == LUA_TNIL) {
    field_error(b, i, "at", "is required (epoch milliseconds)");
  } else if (!lua_isinteger(L, -1)) {
    field_error(b, i, "at", "must be an integer (epoch milliseconds)");
  } else {
    e->at_ms = lua_tointeger(L, -1);
    if (e->at_ms < now_ms - MAX_LATE_MS) field_error(b, i, "at", "is more than 48 hours ago");
    else if (e->at_ms > now_ms + MAX_AHEAD_MS) field_error(b, i, "at", "is in the future");
  }
  lua_pop(L, 1);
  if (!e->kind) return;
  if (strcmp(e->kind, "enter") == 0) {
    read_enter(L, idx, e, b, i);
  } else if (strcmp(e->kind, "product_view") == 0 || strcmp(e->kind, "add_to_cart") == 0) {
    e->product = get_ident(L, idx, "product", true, b, i, NULL);
  } else if (strcmp(e->kind, "share") == 0) {
    e->detail = get_ident(L, idx, "share_id", true, b, i, NULL);
  } else if (strcmp(e->kind, "search") == 0) {
    e->detail = get_text(L, idx, "keyword", 100, b, i);
  } else if (strcmp(e->kind, "page_view") == 0) {
    e->detail = get_text(L, idx, "page", 200, b, i);
  } else {  /* a plugin's event may name a product */
    e->product = get_ident(L, idx, "product", false, b, i, NULL);
  }
}

static void take_batch(tp_host *h, tp_tenant *t, const tph_request *req, tph_response *res);

/* ---- checkpoints off the loop (store/track.h)
**
** A commit of the analytics file never checkpoints. Once its WAL holds
** CKPT_FRAMES pages, a libuv worker copies them into the file on a connection
** of its own while intake goes on writing; when it is done and the WAL has
** grown past RESTART_FRAMES meanwhile, the loop copies what came since (a few
** pages: what arrived during one worker's checkpoint) and starts the WAL over.
** Measured beside a flash sale (tests/bench/analytics.py): the buy's p99 was 35
** ms with SQLite's own checkpoints on the loop, and a few ms without. */
typedef struct tp_ckpt_job {
  uv_work_t req;
  tp_tenant *t;
  int rc;
  atomic_int finished;  /* set by the worker: its connection is free again */
  bool orphan;          /* the host stopped waiting for it: touch no tenant */
} ckpt_job;

static void ckpt_work(uv_work_t *w) {
  ckpt_job *j = w->data;
  j->rc = tptk_checkpoint_passive(&j->t->track);
  atomic_store(&j->finished, 1);
}

/* After a worker's checkpoint: starts the WAL over if it has grown past
** RESTART_FRAMES; whether it still has to (a reader, or intake's transaction,
** was in the way). */
static bool restart_still_due(tptk_db *k) {
  return k->wal_frames >= RESTART_FRAMES && tptk_checkpoint_restart(k) != 0;
}

static void ckpt_done(uv_work_t *w, int status) {
  ckpt_job *j = w->data;
  if (!j->orphan) {
    tptk_db *k = &j->t->track;
    j->t->track_ckpt = NULL;
    k->ckpt_running = false;
    /* now, or before the next batch when intake's transaction is open */
    k->restart_due = status == 0 && j->rc == 0 && restart_still_due(k);
  }
  free(j);
}

static void maybe_checkpoint(tp_host *h, tp_tenant *t) {
  tptk_db *k = &t->track;
  if (!h->loop || k->ckpt_running || k->wal_frames < CKPT_FRAMES) return;
  ckpt_job *j = calloc(1, sizeof *j);
  if (!j) return;
  j->t = t;
  j->req.data = j;
  atomic_init(&j->finished, 0);
  if (uv_queue_work(h->loop, &j->req, ckpt_work, ckpt_done) != 0) {
    free(j);
    return;
  }
  k->ckpt_running = true;
  t->track_ckpt = j;
}

/* Waits, without running the loop (the host is stopping: nothing else may
** run now), until no worker uses a tenant's checkpoint connection; the job's
** callback, run by the loop's last turn, then only frees it. */
void tp__track_drain(tp_host *h) {
  for (int i = 0; i < h->ntenants; i++) {
    tp_tenant *t = &h->tenants[i];
    ckpt_job *j = t->track_ckpt;
    if (!j) continue;
    tp__await_worker(&j->finished);
    j->orphan = true;
    t->track_ckpt = NULL;
    t->track.ckpt_running = false;
  }
}

/* The iteration's first batch, before its transaction begins: what follows
** the last commit (the WAL started over if the worker's checkpoint finished
** while a transaction was open, a checkpoint once the WAL has grown, the purge
** once a minute) needs no transaction open. */
static void between_commits(tp_host *h, tp_tenant *t) {
  tptk_db *k = &t->track;
  if (k->in_txn) return;
  if (k->restart_due) k->restart_due = restart_still_due(k);
  maybe_checkpoint(h, t);
  int64_t now_ms = tp__now(t);
  if (now_ms - k->purged_at_ms > PURGE_EVERY_MS) {  /* raw events live retention days */
    k->purged_at_ms = now_ms;
    tptk_purge(k, now_ms - (int64_t)t->conf->track_retention_days * 86400000, PURGE_ROWS);
  }
}

static void post_track(tp_host *h, tp_tenant *t, const tph_request *req, tph_response *res) {
  if (h->track_ns >= TRACK_SLICE_NS) {
    tpm_refusal(h->metrics, "busy");
    res->retry_after = 1;
    tph_error(res, 503, "busy", "the host is busy; send the batch again in a second");
    return;
  }
  uint64_t start = tp_clock_mono_ns();
  take_batch(h, t, req, res);
  h->track_ns += tp_clock_mono_ns() - start;
}

static void take_batch(tp_host *h, tp_tenant *t, const tph_request *req, tph_response *res) {
  lua_State *L = h->scratch;
  lua_settop(L, 0);
  const tph_header *ct = tph_find_header(req, "content-type");
  if (!ct || ct->vlen < 16 || strncasecmp(ct->value, "application/json", 16) != 0) {
    tph_error(res, 415, "unsupported_media_type", "request bodies must be Content-Type: application/json");
    return;
  }
  char err[256] = "";
  if (!tp_utf8_valid(req->body, req->body_len)) {
    tph_error(res, 400, "invalid_json", "the request body is not valid UTF-8");
    return;
  }
  if (tpj_decode(L, req->body, req->body_len, err, sizeof err) != 0 || !lua_istable(L, 1)) {
    tph_error(res, 400, "invalid_json", "the body must be a JSON object%s%s", err[0] ? ": " : "", err);
    lua_settop(L, 0);
    return;
  }
  static batch b;  /* one request at a time, on the loop's thread */
  tp_buf_reset(&b.errors);
  b.nerrors = 0;
  int64_t now_ms = tp__now(t);
  const char *member = res->user[0] ? res->user : NULL;
  const char *device = get_ident(L, 1, "device", false, &b, -1, NULL);
  const tph_header *dh = tph_find_header(req, "x-device-id");
  if (!device && dh && !b.nerrors) {
    lua_pushlstring(L, dh->value, dh->vlen);
    lua_setfield(L, 1, "device");
    device = get_ident(L, 1, "device", false, &b, -1, "X-Device-Id");
  }
  if (!device && !member && !b.nerrors)
    field_error(&b, -1, "device", "is required without a user's token (or send X-Device-Id)");
  int n = 0;
  if (lua_getfield(L, 1, "events") != LUA_TTABLE) {
    field_error(&b, -1, "events", "is required: an array of 1-100 events");
  } else {
    int arr = lua_gettop(L);
    n = (int)luaL_len(L, arr);
    if (n < 1 || n > TPTK_MAX_BATCH) {
      field_error(&b, -1, "events", "must be an array of 1-100 events");
      n = 0;
    }
    for (int i = 0; i < n; i++) {
      lua_rawgeti(L, arr, i + 1);
      read_event(t, L, &b, i, now_ms, device, member);
      lua_pop(L, 1);  /* the event stays alive in the array */
    }
  }
  if (b.nerrors) {
    tp_buf d;
    tp_buf_init(&d);
    tp_buf_printf(&d, "{\"errors\":[%.*s]}", (int)b.errors.len, b.errors.data);
    tp_error e = {.status = 400, .details = d.data, .details_len = d.len};
    tp_copy_str(e.code, sizeof e.code, "invalid_batch");
    snprintf(e.message, sizeof e.message, "%d field%s refused; no event of the batch was kept",
             b.nerrors, b.nerrors == 1 ? " was" : "s were");
    tph_answer_error(res, &e);
    tp_buf_free(&d);
    lua_settop(L, 0);
    t->track.refused += n;
    return;
  }
  between_commits(h, t);
  int inserted = 0;
  tp__join_track(h, t);  /* committed at the iteration's end, before the answer goes */
  int rc = tptk_insert(&t->track, b.ev, n, now_ms, &inserted, err, sizeof err);
  lua_settop(L, 0);
  if (rc != 0) {
    tp_buf *line = tp_log_begin(TP_LOG_ERROR, "track: the events could not be written");
    tp_log_str(line, "tenant", t->conf->id);
    tp_log_str(line, "error", err);
    tp_log_end(line);
    res->retry_after = 1;
    tph_error(res, 503, "unavailable", "the events could not be written; send the batch again");
    return;
  }
  res->commit_failed = &t->track.commit_failed;
  res->status = 200;
  tp_buf_printf(&res->body, "{\"accepted\":%d,\"duplicates\":%d}", inserted, n - inserted);
}

#define TRACK_BODY                                                                          \
  "{\"type\":\"object\",\"required\":[\"events\"],\"properties\":{"                          \
  "\"device\":{\"type\":\"string\",\"description\":\"the device id (or X-Device-Id)\"},"      \
  "\"events\":{\"type\":\"array\",\"minItems\":1,\"maxItems\":100,\"items\":{\"type\":\"object\"," \
  "\"required\":[\"id\",\"kind\",\"at\",\"session\"],\"properties\":{"                       \
  "\"id\":{\"type\":\"string\",\"description\":\"unique per event: a repeat is skipped\"},"   \
  "\"kind\":{\"type\":\"string\",\"description\":\"enter, page_view, product_view, add_to_cart, " \
  "search, share, or <plugin>.<event>\"},"                                                   \
  "\"at\":{\"type\":\"integer\",\"description\":\"epoch milliseconds, at most 48 h ago\"},"  \
  "\"session\":{\"type\":\"string\",\"description\":\"the launch's id; its enter carries the source\"}," \
  "\"scene\":{\"type\":\"integer\",\"description\":\"enter: the WeChat scene value\"},"       \
  "\"query\":{\"type\":\"object\",\"description\":\"enter: store, guide, live, content, ref\"}," \
  "\"product\":{\"type\":\"string\"},\"share_id\":{\"type\":\"string\"},"                     \
  "\"keyword\":{\"type\":\"string\"},\"page\":{\"type\":\"string\"}}}}}}"
#define TRACK_ANSWER                                                                        \
  "{\"type\":\"object\",\"required\":[\"accepted\",\"duplicates\"],\"properties\":{"         \
  "\"accepted\":{\"type\":\"integer\"},\"duplicates\":{\"type\":\"integer\"}}}"
#define TRACK_ERRORS                                                                        \
  TP_DOC_ERROR("400", "invalid_batch, invalid_json", "\"invalid_batch\",\"invalid_json\"") "," \
  TP_DOC_ERROR("415", "unsupported_media_type", "\"unsupported_media_type\"") "," \
  TP_DOC_ERROR("503", "busy, unavailable", "\"busy\",\"unavailable\"")

static tp_route track_route = {
    .method = "POST", .path = "/track", .label = "track POST /v1/{tenant}/track",
    .auth = TP_AUTH_OPTIONAL, .rate_class = TPRL_WRITE,
    .builtin = (void (*)(void))(tp_builtin_fn)post_track,
    .doc = {.summary = "Report the mini-program's events (1-100, all or nothing; repeats skipped)",
            .body = TRACK_BODY, .body_required = true, .response = TRACK_ANSWER,
            .errors = TRACK_ERRORS}};

const tp_route *tp__track_route(void) { return &track_route; }
