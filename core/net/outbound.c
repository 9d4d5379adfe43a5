/*
** outbound.c - libcurl's multi interface on the libuv loop (outbound.h).
**
** curl says which sockets it wants watched (on_socket: a uv_poll each, its
** context hung on the socket with curl_multi_assign) and when it wants to be
** woken (on_timer_set: the one uv_timer); the loop hands each readiness back
** with curl_multi_socket_action, and finished transfers are collected from
** curl_multi_info_read.
*/
#include "net/outbound.h"

#include <curl/curl.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/buf.h"
#include "base/clock.h"

typedef struct transfer {
  struct tpo_client *c;
  struct transfer *prev, *next;  /* the client's calls in flight */
  CURL *easy;
  struct curl_slist *headers;
  tp_buf body;
  size_t max;
  bool too_large;
  tpo_done done;
  void *ud;
  uint64_t start_ns;
  char errbuf[CURL_ERROR_SIZE];
} transfer;

typedef struct sock_ctx {
  uv_poll_t poll;
  curl_socket_t fd;
  struct tpo_client *c;
} sock_ctx;

struct tpo_client {
  uv_loop_t *loop;
  CURLM *multi;
  uv_timer_t timer;
  transfer *calls;
  int inflight;
  int open_handles;              /* the timer and the polls not yet closed */
  bool closing;
};

static void maybe_free(tpo_client *c) {
  if (c->closing && c->open_handles == 0) free(c);
}

static void on_handle_closed(uv_handle_t *h) {
  tpo_client *c = h->data;
  if (h->type == UV_POLL) {
    sock_ctx *ctx = (sock_ctx *)h;
    c = ctx->c;
    free(ctx);
  }
  c->open_handles--;
  maybe_free(c);
}

/* ---- finished calls */

static const char *error_code(CURLcode rc, bool too_large) {
  switch (rc) {
    case CURLE_OK: return NULL;
    case CURLE_OPERATION_TIMEDOUT: return "timeout";
    case CURLE_COULDNT_RESOLVE_HOST:
    case CURLE_COULDNT_RESOLVE_PROXY:
    case CURLE_COULDNT_CONNECT: return "connect_failed";
    case CURLE_PEER_FAILED_VERIFICATION:
    case CURLE_SSL_CONNECT_ERROR:
    case CURLE_SSL_CERTPROBLEM:
    case CURLE_SSL_CIPHER:
    case CURLE_SSL_CACERT_BADFILE:
    case CURLE_SSL_ISSUER_ERROR: return "tls_failed";
    case CURLE_FILESIZE_EXCEEDED: return "response_too_large";
    case CURLE_WRITE_ERROR: return too_large ? "response_too_large" : "transport_failed";
    default: return "transport_failed";
  }
}

static void unlink_call(tpo_client *c, transfer *t) {
  if (t->prev) t->prev->next = t->next;
  else c->calls = t->next;
  if (t->next) t->next->prev = t->prev;
  c->inflight--;
}

/* Removes t from curl and the client, tells its owner, and frees it. */
static void finish(transfer *t, CURLcode rc, const char *forced) {
  tpo_client *c = t->c;
  long status = 0;
  char *type = NULL;
  curl_easy_getinfo(t->easy, CURLINFO_RESPONSE_CODE, &status);
  curl_easy_getinfo(t->easy, CURLINFO_CONTENT_TYPE, &type);
  const char *error = forced ? forced : error_code(rc, t->too_large);
  tpo_response res = {.status = error ? 0 : (int)status, .error = error,
                      .message = forced ? forced : rc == CURLE_OK ? ""
                                 : t->errbuf[0] ? t->errbuf : curl_easy_strerror(rc),
                      .body = tp_buf_cstr(&t->body), .body_len = t->body.len,
                      .content_type = type,
                      .seconds = (double)(tp_clock_mono_ns() - t->start_ns) / 1e9};
  if (error) res.body_len = 0;
  unlink_call(c, t);
  curl_multi_remove_handle(c->multi, t->easy);
  t->done(t->ud, &res);  /* res.content_type lives in t->easy until the cleanup */
  curl_easy_cleanup(t->easy);
  curl_slist_free_all(t->headers);
  tp_buf_free(&t->body);
  free(t);
}

static void collect(tpo_client *c) {
  CURLMsg *msg;
  int left;
  while ((msg = curl_multi_info_read(c->multi, &left)) != NULL) {
    if (msg->msg != CURLMSG_DONE) continue;
    transfer *t = NULL;
    curl_easy_getinfo(msg->easy_handle, CURLINFO_PRIVATE, (char **)&t);
    finish(t, msg->data.result, NULL);
  }
}

/* ---- curl's wishes, the loop's answers */

static void on_poll(uv_poll_t *p, int status, int events) {
  sock_ctx *ctx = (sock_ctx *)p;
  int flags = status < 0 ? CURL_CSELECT_ERR : 0;
  if (events & UV_READABLE) flags |= CURL_CSELECT_IN;
  if (events & UV_WRITABLE) flags |= CURL_CSELECT_OUT;
  int running;
  tpo_client *c = ctx->c;  /* ctx may be closing after the action; c is not */
  curl_multi_socket_action(c->multi, ctx->fd, flags, &running);
  collect(c);
}

static int on_socket(CURL *easy, curl_socket_t fd, int action, void *userp, void *socketp) {
  (void)easy;
  tpo_client *c = userp;
  sock_ctx *ctx = socketp;
  if (action == CURL_POLL_REMOVE) {
    if (ctx) {
      uv_poll_stop(&ctx->poll);
      curl_multi_assign(c->multi, fd, NULL);
      uv_close((uv_handle_t *)&ctx->poll, on_handle_closed);
    }
    return 0;
  }
  if (!ctx) {
    ctx = calloc(1, sizeof *ctx);
    if (!ctx || uv_poll_init_socket(c->loop, &ctx->poll, fd) != 0) {
      free(ctx);
      return -1;
    }
    ctx->fd = fd;
    ctx->c = c;
    ctx->poll.data = c;
    c->open_handles++;
    curl_multi_assign(c->multi, fd, ctx);
  }
  int events = (action & CURL_POLL_IN ? UV_READABLE : 0) | (action & CURL_POLL_OUT ? UV_WRITABLE : 0);
  uv_poll_start(&ctx->poll, events, on_poll);
  return 0;
}

static void on_timeout(uv_timer_t *timer) {
  tpo_client *c = timer->data;
  int running;
  curl_multi_socket_action(c->multi, CURL_SOCKET_TIMEOUT, 0, &running);
  collect(c);
}

static int on_timer_set(CURLM *multi, long timeout_ms, void *userp) {
  (void)multi;
  tpo_client *c = userp;
  if (timeout_ms < 0) {
    uv_timer_stop(&c->timer);
  } else {
    /* never 0: libuv before 1.45 runs a 0 ms timer restarted from its own
    ** callback again at once, without polling (see host/runner.c) */
    uv_timer_start(&c->timer, on_timeout, timeout_ms > 0 ? (uint64_t)timeout_ms : 1, 0);
  }
  return 0;
}

static size_t on_data(char *data, size_t size, size_t n, void *ud) {
  transfer *t = ud;
  size_t len = size * n;
  if (t->body.len + len > t->max) {
    t->too_large = true;
    return 0;  /* curl ends the call with CURLE_WRITE_ERROR */
  }
  tp_buf_add(&t->body, data, len);
  return len;
}

/* ---- the client */

static int global_rc = -1;
static void global_init(void) { global_rc = curl_global_init(CURL_GLOBAL_DEFAULT) == CURLE_OK ? 0 : -1; }

/* curl_global_init once, whichever thread comes first. */
static int curl_ready(void) {
  static pthread_once_t once = PTHREAD_ONCE_INIT;
  pthread_once(&once, global_init);
  return global_rc;
}

tpo_client *tpo_new(uv_loop_t *loop) {
  if (curl_ready() != 0) return NULL;
  tpo_client *c = calloc(1, sizeof *c);
  if (!c) return NULL;
  c->loop = loop;
  c->multi = curl_multi_init();
  if (!c->multi) {
    free(c);
    return NULL;
  }
  curl_multi_setopt(c->multi, CURLMOPT_MAXCONNECTS, (long)TPO_IDLE_CONNECTIONS);
  curl_multi_setopt(c->multi, CURLMOPT_SOCKETFUNCTION, on_socket);
  curl_multi_setopt(c->multi, CURLMOPT_SOCKETDATA, c);
  curl_multi_setopt(c->multi, CURLMOPT_TIMERFUNCTION, on_timer_set);
  curl_multi_setopt(c->multi, CURLMOPT_TIMERDATA, c);
  uv_timer_init(loop, &c->timer);
  c->timer.data = c;
  c->open_handles = 1;
  return c;
}

static bool known_method(const char *m) {
  static const char *const methods[] = {"GET", "POST", "PUT", "PATCH", "DELETE", NULL};
  for (const char *const *k = methods; *k; k++)
    if (strcmp(m, *k) == 0) return true;
  return false;
}

int tpo_send(tpo_client *c, const tpo_request *req, tpo_done done, void *ud, char *err,
             size_t errcap) {
  if (c->closing) {
    snprintf(err, errcap, "the client is closing");
    return -1;
  }
  if (!req->method || !known_method(req->method)) {
    snprintf(err, errcap, "method must be GET, POST, PUT, PATCH or DELETE");
    return -1;
  }
  if (!req->url || (strncmp(req->url, "http://", 7) != 0 && strncmp(req->url, "https://", 8) != 0)) {
    snprintf(err, errcap, "the URL must start with http:// or https://");
    return -1;
  }
  transfer *t = calloc(1, sizeof *t);
  if (!t || !(t->easy = curl_easy_init())) {
    free(t);
    snprintf(err, errcap, "out of memory");
    return -1;
  }
  t->c = c;
  t->done = done;
  t->ud = ud;
  t->max = req->max_response_bytes;
  tp_buf_init(&t->body);
  CURL *e = t->easy;
  curl_easy_setopt(e, CURLOPT_URL, req->url);
  curl_easy_setopt(e, CURLOPT_PRIVATE, (char *)t);
  curl_easy_setopt(e, CURLOPT_ERRORBUFFER, t->errbuf);
  curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, on_data);
  curl_easy_setopt(e, CURLOPT_WRITEDATA, t);
  curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L);
  curl_easy_setopt(e, CURLOPT_TIMEOUT_MS, (long)req->timeout_ms);
  curl_easy_setopt(e, CURLOPT_PROTOCOLS_STR, "http,https");
  curl_easy_setopt(e, CURLOPT_FOLLOWLOCATION, 0L);
  curl_easy_setopt(e, CURLOPT_SSL_VERIFYPEER, 1L);
  curl_easy_setopt(e, CURLOPT_SSL_VERIFYHOST, 2L);
  curl_easy_setopt(e, CURLOPT_MAXFILESIZE_LARGE, (curl_off_t)req->max_response_bytes);
  if (req->ca_file) curl_easy_setopt(e, CURLOPT_CAINFO, req->ca_file);
  if (strcmp(req->method, "GET") == 0) {
    curl_easy_setopt(e, CURLOPT_HTTPGET, 1L);
  } else {
    if (strcmp(req->method, "POST") != 0) curl_easy_setopt(e, CURLOPT_CUSTOMREQUEST, req->method);
    curl_easy_setopt(e, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)req->body_len);
    curl_easy_setopt(e, CURLOPT_COPYPOSTFIELDS, req->body ? req->body : "");
  }
  for (int i = 0; i < req->nheaders; i++) t->headers = curl_slist_append(t->headers, req->headers[i]);
  t->headers = curl_slist_append(t->headers, "Expect:");  /* no 100-continue round trip */
  curl_easy_setopt(e, CURLOPT_HTTPHEADER, t->headers);
  t->start_ns = tp_clock_mono_ns();
  t->next = c->calls;
  if (c->calls) c->calls->prev = t;
  c->calls = t;
  c->inflight++;
  if (curl_multi_add_handle(c->multi, e) != CURLM_OK) {
    unlink_call(c, t);
    curl_easy_cleanup(e);
    curl_slist_free_all(t->headers);
    free(t);
    snprintf(err, errcap, "the call could not be started");
    return -1;
  }
  return 0;
}

void tpo_kick(tpo_client *c) {
  if (!c || !c->inflight) return;
  on_timeout(&c->timer);
}

int tpo_inflight(const tpo_client *c) { return c ? c->inflight : 0; }

void tpo_free(tpo_client *c) {
  if (!c || c->closing) return;
  c->closing = true;
  while (c->calls) finish(c->calls, CURLE_ABORTED_BY_CALLBACK, "cancelled");
  curl_multi_cleanup(c->multi);
  uv_timer_stop(&c->timer);
  uv_close((uv_handle_t *)&c->timer, on_handle_closed);
}

/* ---- one blocking call */

typedef struct fetch {
  tpo_sink sink;
  void *ud;
  tp_buf *errbody;
  long status;
  size_t got, max;
  bool sink_failed, too_large;
  CURL *easy;
} fetch;

static size_t on_fetch_data(char *p, size_t size, size_t n, void *ud) {
  fetch *f = ud;
  size_t len = size * n;
  if (f->status == 0) curl_easy_getinfo(f->easy, CURLINFO_RESPONSE_CODE, &f->status);
  if (f->status < 200 || f->status > 299) {  /* an error's body: kept short, for the message */
    if (f->errbody && f->errbody->len < 4096) tp_buf_add(f->errbody, p, len < 4096 ? len : 4096);
    return len;
  }
  if (f->got + len > f->max) {
    f->too_large = true;
    return 0;
  }
  f->got += len;
  if (f->sink(f->ud, p, len) != 0) {
    f->sink_failed = true;
    return 0;
  }
  return len;
}

int tpo_fetch(const char *url, const char *const *headers, int nheaders, int64_t timeout_ms,
              size_t max_bytes, tpo_sink sink, void *ud, int *status, tp_buf *errbody, char *err,
              size_t errcap) {
  if (strncmp(url, "http://", 7) != 0) {
    snprintf(err, errcap, "the URL must start with http://");
    return -1;
  }
  fetch f = {.sink = sink, .ud = ud, .errbody = errbody, .max = max_bytes};
  if (curl_ready() != 0 || !(f.easy = curl_easy_init())) {
    snprintf(err, errcap, "libcurl could not be set up");
    return -1;
  }
  char errbuf[CURL_ERROR_SIZE] = "";
  struct curl_slist *list = NULL;
  for (int i = 0; i < nheaders; i++) list = curl_slist_append(list, headers[i]);
  CURL *e = f.easy;
  curl_easy_setopt(e, CURLOPT_URL, url);
  curl_easy_setopt(e, CURLOPT_HTTPGET, 1L);
  curl_easy_setopt(e, CURLOPT_HTTPHEADER, list);
  curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, on_fetch_data);
  curl_easy_setopt(e, CURLOPT_WRITEDATA, &f);
  curl_easy_setopt(e, CURLOPT_ERRORBUFFER, errbuf);
  curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L);
  curl_easy_setopt(e, CURLOPT_TIMEOUT_MS, (long)timeout_ms);
  curl_easy_setopt(e, CURLOPT_PROTOCOLS_STR, "http");
  curl_easy_setopt(e, CURLOPT_FOLLOWLOCATION, 0L);
  CURLcode rc = curl_easy_perform(e);
  curl_easy_getinfo(e, CURLINFO_RESPONSE_CODE, &f.status);
  curl_easy_cleanup(e);
  curl_slist_free_all(list);
  *status = (int)f.status;
  if (rc == CURLE_OK) return 0;
  snprintf(err, errcap, "%s", f.sink_failed ? "sink_failed: the piece could not be written"
                              : f.too_large ? "response_too_large"
                              : errbuf[0] ? errbuf : curl_easy_strerror(rc));
  return -1;
}
