/*
** test_outbound.c - outbound calls on the loop (outbound.h), against the
** host's own HTTP server (http.h) as the upstream, on loopback: an answer
** with what was sent, a call that times out while others are answered, a
** body over the cap, a port nobody listens on, a bad method or URL, and
** calls cancelled when the client closes. The blocking tpo_fetch (for a
** worker) from a thread of its own: the body handed to the sink piece by
** piece, a cap, a sink that fails, an error answer kept apart.
*/
#include "net/outbound.h"

#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/buf.h"
#include "net/http.h"
#include "tp_test.h"

static uv_loop_t loop;
static tph_server *upstream;
static int port;
static uv_tcp_t silent;          /* accepts and never answers */
static int silent_port;

/* ---- the upstream: answers what it was sent, or a big body for /big */

static void handle(void *ud, const tph_request *req, tph_response *res) {
  (void)ud;
  if (req->target_len == 4 && memcmp(req->target, "/big", 4) == 0) {
    for (int i = 0; i < 5000; i++) tp_buf_adds(&res->body, "0123456789");
    res->status = 200;
    return;
  }
  if (req->target_len == 5 && memcmp(req->target, "/fail", 5) == 0) {
    tph_error(res, 409, "not_released", "refused");
    return;
  }
  const tph_header *key = tph_find_header(req, "idempotency-key");
  tp_buf_printf(&res->body, "{\"method\":\"%s\",\"target\":\"%.*s\",\"key\":\"%.*s\",\"body\":\"%.*s\"}",
                req->method, (int)req->target_len, req->target, key ? (int)key->vlen : 0,
                key ? key->value : "", (int)req->body_len, req->body);
  res->status = strcmp(req->method, "DELETE") == 0 ? 503 : 201;
}
static void commit(void *ud) { (void)ud; }
static void finished(void *ud, const tph_response *res, double s) { (void)ud, (void)res, (void)s; }
static void iteration_end(void *ud) { (void)ud; }

static void on_silent(uv_stream_t *server, int status) {
  if (status < 0) return;
  uv_tcp_t *client = malloc(sizeof *client);
  uv_tcp_init(&loop, client);
  if (uv_accept(server, (uv_stream_t *)client) != 0) uv_close((uv_handle_t *)client, (uv_close_cb)free);
  /* kept open, never read: the caller's timeout must end the call */
}

static void start_upstreams(void) {
  tpc_limits l = {.max_connections = 100, .max_header_bytes = 16384, .max_headers = 64,
                  .max_body_bytes = 1 << 20, .header_timeout_ms = 5000, .body_timeout_ms = 5000,
                  .idle_timeout_ms = 5000, .shutdown_timeout_ms = 1000};
  tph_hooks hooks = {handle, commit, finished, iteration_end, NULL, NULL};
  upstream = tph_new(&loop, &l, hooks);
  char err[256];
  if (tph_listen(upstream, "127.0.0.1", 0, &port, err, sizeof err) != 0) {
    fprintf(stderr, "listen: %s\n", err);
    exit(1);
  }
  struct sockaddr_in a;
  uv_ip4_addr("127.0.0.1", 0, &a);
  uv_tcp_init(&loop, &silent);
  uv_tcp_bind(&silent, (struct sockaddr *)&a, 0);
  uv_listen((uv_stream_t *)&silent, 16, on_silent);
  struct sockaddr_in name;
  int len = sizeof name;
  uv_tcp_getsockname(&silent, (struct sockaddr *)&name, &len);
  silent_port = ntohs(name.sin_port);
}

/* ---- calls */

typedef struct result {
  int done, status;
  char error[32], body[512];
  size_t body_len;
  double seconds;
} result;

static void on_done(void *ud, const tpo_response *res) {
  result *r = ud;
  r->done++;
  r->status = res->status;
  snprintf(r->error, sizeof r->error, "%s", res->error ? res->error : "");
  snprintf(r->body, sizeof r->body, "%.*s", (int)res->body_len, res->body);
  r->body_len = res->body_len;
  r->seconds = res->seconds;
}

static int call(tpo_client *c, const char *method, const char *path, int to_port, const char *body,
                int64_t timeout_ms, size_t max, result *r) {
  char url[128], err[128];
  snprintf(url, sizeof url, "http://127.0.0.1:%d%s", to_port, path);
  const char *headers[] = {"Idempotency-Key: k-42", "Content-Type: application/json"};
  tpo_request req = {.method = method, .url = url, .headers = headers, .nheaders = 2,
                     .body = body, .body_len = body ? strlen(body) : 0, .timeout_ms = timeout_ms,
                     .max_response_bytes = max};
  return tpo_send(c, &req, on_done, r, err, sizeof err);
}

static void run_until(const int *done, int want) {
  while (*done < want) uv_run(&loop, UV_RUN_ONCE);
}

TEST(an_answer_carries_what_was_sent) {
  tpo_client *c = tpo_new(&loop);
  result r = {0};
  ASSERT_EQ(call(c, "POST", "/v1/x?y=1", port, "{\"a\":1}", 5000, 65536, &r), 0);
  ASSERT_EQ(tpo_inflight(c), 1);
  ASSERT_EQ(r.done, 0);  /* never from inside tpo_send */
  run_until(&r.done, 1);
  ASSERT_EQ(r.status, 201);
  ASSERT_STR(r.error, "");
  ASSERT_STR(r.body, "{\"method\":\"POST\",\"target\":\"/v1/x?y=1\",\"key\":\"k-42\",\"body\":\"{\"a\":1}\"}");
  result g = {0}, d = {0};
  ASSERT_EQ(call(c, "GET", "/g", port, NULL, 5000, 65536, &g), 0);
  ASSERT_EQ(call(c, "DELETE", "/d", port, NULL, 5000, 65536, &d), 0);
  run_until(&g.done, 1);
  run_until(&d.done, 1);
  ASSERT_TRUE(strstr(g.body, "\"method\":\"GET\"") != NULL);
  ASSERT_EQ(d.status, 503);  /* an answer, whatever its status, is no error */
  ASSERT_STR(d.error, "");
  ASSERT_EQ(tpo_inflight(c), 0);
  tpo_free(c);
  uv_run(&loop, UV_RUN_NOWAIT);
}

/* ---- a counting upstream: how many connections callers opened. It answers
** every request head it reads (GETs, no body) with 200 "ok". */

static int counting_port, accepted;
static uv_tcp_t *counting;  /* malloc'd: the end of the test run closes and frees what is open */

static void on_count_alloc(uv_handle_t *h, size_t n, uv_buf_t *b) {
  (void)h;
  b->base = malloc(n);
  b->len = b->base ? n : 0;
}

static void on_count_written(uv_write_t *w, int status) {
  (void)status;
  free(w);
}

static void on_count_read(uv_stream_t *s, ssize_t n, const uv_buf_t *b) {
  static const char ok[] = "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok";
  for (ssize_t i = 0; n > 0 && i + 3 < n; i++) {
    if (memcmp(b->base + i, "\r\n\r\n", 4) != 0) continue;
    uv_write_t *w = malloc(sizeof *w);
    uv_buf_t out = uv_buf_init((char *)ok, sizeof ok - 1);
    if (w && uv_write(w, s, &out, 1, on_count_written) != 0) free(w);
  }
  free(b->base);
  if (n < 0) uv_close((uv_handle_t *)s, (uv_close_cb)free);
}

static void on_count_accept(uv_stream_t *server, int status) {
  if (status < 0) return;
  uv_tcp_t *client = malloc(sizeof *client);
  uv_tcp_init(&loop, client);
  if (uv_accept(server, (uv_stream_t *)client) != 0) {
    uv_close((uv_handle_t *)client, (uv_close_cb)free);
    return;
  }
  accepted++;
  uv_read_start((uv_stream_t *)client, on_count_alloc, on_count_read);
}

static void start_counting(void) {
  struct sockaddr_in a;
  uv_ip4_addr("127.0.0.1", 0, &a);
  counting = malloc(sizeof *counting);
  uv_tcp_init(&loop, counting);
  uv_tcp_bind(counting, (struct sockaddr *)&a, 0);
  uv_listen((uv_stream_t *)counting, 128, on_count_accept);
  struct sockaddr_in name;
  int len = sizeof name;
  uv_tcp_getsockname(counting, (struct sockaddr *)&name, &len);
  counting_port = ntohs(name.sin_port);
}

/* Ten bursts of sixteen calls, one after the other: the first burst's
** connections serve all the others. curl's default cache keeps four idle
** connections per call in flight, so as a burst ended it closed them, and
** the next one connected again. */
TEST(connections_stay_open_between_bursts) {
  tpo_client *c = tpo_new(&loop);
  start_counting();
  for (int round = 0; round < 10; round++) {
    result r[16];
    memset(r, 0, sizeof r);
    for (int i = 0; i < 16; i++) ASSERT_EQ(call(c, "GET", "/", counting_port, NULL, 5000, 65536, &r[i]), 0);
    tpo_kick(c);
    for (int i = 0; i < 16; i++) run_until(&r[i].done, 1);
    for (int i = 0; i < 16; i++) ASSERT_EQ(r[i].status, 200);
  }
  ASSERT_TRUE(accepted >= 1 && accepted <= 16);
  tpo_free(c);
  uv_close((uv_handle_t *)counting, (uv_close_cb)free);
}

TEST(a_silent_upstream_times_out_while_others_are_answered) {
  tpo_client *c = tpo_new(&loop);
  result slow = {0}, fast = {0};
  ASSERT_EQ(call(c, "POST", "/slow", silent_port, "{}", 300, 65536, &slow), 0);
  ASSERT_EQ(call(c, "POST", "/fast", port, "{}", 5000, 65536, &fast), 0);
  run_until(&fast.done, 1);
  ASSERT_EQ(slow.done, 0);   /* the fast one did not wait for the slow one */
  ASSERT_EQ(fast.status, 201);
  run_until(&slow.done, 1);
  ASSERT_STR(slow.error, "timeout");
  ASSERT_EQ(slow.status, 0);
  ASSERT_TRUE(slow.seconds >= 0.25 && slow.seconds < 3);
  tpo_free(c);
  uv_run(&loop, UV_RUN_NOWAIT);
}

TEST(a_body_over_the_cap_is_a_failure) {
  tpo_client *c = tpo_new(&loop);
  result r = {0}, ok = {0};
  ASSERT_EQ(call(c, "GET", "/big", port, NULL, 5000, 1000, &r), 0);
  ASSERT_EQ(call(c, "GET", "/big", port, NULL, 5000, 100000, &ok), 0);
  run_until(&r.done, 1);
  run_until(&ok.done, 1);
  ASSERT_STR(r.error, "response_too_large");
  ASSERT_EQ(r.body_len, 0);
  ASSERT_EQ(ok.status, 200);
  ASSERT_EQ(ok.body_len, 50000);
  tpo_free(c);
  uv_run(&loop, UV_RUN_NOWAIT);
}

TEST(nobody_listening_bad_method_and_bad_url) {
  tpo_client *c = tpo_new(&loop);
  uv_tcp_t probe;  /* a port that was free a moment ago */
  struct sockaddr_in a, name;
  uv_ip4_addr("127.0.0.1", 0, &a);
  uv_tcp_init(&loop, &probe);
  uv_tcp_bind(&probe, (struct sockaddr *)&a, 0);
  int len = sizeof name;
  uv_tcp_getsockname(&probe, (struct sockaddr *)&name, &len);
  int closed_port = ntohs(name.sin_port);
  uv_close((uv_handle_t *)&probe, NULL);
  uv_run(&loop, UV_RUN_NOWAIT);
  result r = {0};
  ASSERT_EQ(call(c, "GET", "/", closed_port, NULL, 2000, 1000, &r), 0);
  run_until(&r.done, 1);
  ASSERT_STR(r.error, "connect_failed");
  char err[128];
  tpo_request bad = {.method = "BREW", .url = "http://127.0.0.1/", .timeout_ms = 1000,
                     .max_response_bytes = 10};
  ASSERT_EQ(tpo_send(c, &bad, on_done, &r, err, sizeof err), -1);
  ASSERT_TRUE(strstr(err, "method") != NULL);
  tpo_request file = {.method = "GET", .url = "file:///etc/passwd", .timeout_ms = 1000,
                      .max_response_bytes = 10};
  ASSERT_EQ(tpo_send(c, &file, on_done, &r, err, sizeof err), -1);
  ASSERT_TRUE(strstr(err, "http://") != NULL);
  ASSERT_EQ(r.done, 1);
  tpo_free(c);
  uv_run(&loop, UV_RUN_NOWAIT);
}

TEST(closing_the_client_cancels_what_is_in_flight) {
  tpo_client *c = tpo_new(&loop);
  result r = {0};
  ASSERT_EQ(call(c, "POST", "/slow", silent_port, "{}", 10000, 1000, &r), 0);
  for (int i = 0; i < 5; i++) uv_run(&loop, UV_RUN_NOWAIT);  /* connected, waiting */
  tpo_free(c);
  ASSERT_EQ(r.done, 1);
  ASSERT_STR(r.error, "cancelled");
  uv_run(&loop, UV_RUN_NOWAIT);
}

/* ---- tpo_fetch, from a thread while the loop serves */

typedef struct fetch_job {
  const char *path;
  size_t max;
  int fail_after;     /* the sink fails on this call (0: never) */
  int calls, rc, status;
  tp_buf body, errbody;
  char err[256];
  uv_async_t wake;
  int done;
} fetch_job;

static int sink(void *ud, const void *p, size_t n) {
  fetch_job *j = ud;
  if (++j->calls == j->fail_after) return -1;
  tp_buf_add(&j->body, p, n);
  return 0;
}

static void fetch_thread(void *arg) {
  fetch_job *j = arg;
  char url[128];
  bool silent_one = j->path[0] == '!';  /* "!": the upstream that never answers */
  snprintf(url, sizeof url, "http://127.0.0.1:%d%s", silent_one ? silent_port : port, silent_one ? "/" : j->path);
  const char *headers[] = {"X-Api-Key: k"};
  j->rc = tpo_fetch(url, headers, 1, 2000, j->max, sink, j, &j->status, &j->errbody, j->err, sizeof j->err);
  uv_async_send(&j->wake);
}

static void on_wake(uv_async_t *a) { ((fetch_job *)a->data)->done = 1; }

static void fetch(fetch_job *j, const char *path, size_t max, int fail_after) {
  memset(j, 0, sizeof *j);
  j->path = path;
  j->max = max;
  j->fail_after = fail_after;
  tp_buf_init(&j->body);
  tp_buf_init(&j->errbody);
  uv_async_init(&loop, &j->wake, on_wake);
  j->wake.data = j;
  uv_thread_t tid;
  uv_thread_create(&tid, fetch_thread, j);
  run_until(&j->done, 1);
  uv_thread_join(&tid);
  uv_close((uv_handle_t *)&j->wake, NULL);
  uv_run(&loop, UV_RUN_NOWAIT);
}

static void fetch_free(fetch_job *j) {
  tp_buf_free(&j->body);
  tp_buf_free(&j->errbody);
}

TEST(a_blocking_fetch_hands_the_body_to_the_sink) {
  fetch_job j;
  fetch(&j, "/big", 1 << 20, 0);
  ASSERT_EQ(j.rc, 0);
  ASSERT_EQ(j.status, 200);
  ASSERT_EQ(j.body.len, 50000);
  ASSERT_TRUE(memcmp(j.body.data + 49990, "0123456789", 10) == 0);
  fetch_free(&j);
  fetch(&j, "/big", 1000, 0);  /* more than max: the call ends */
  ASSERT_EQ(j.rc, -1);
  ASSERT_CONTAINS(j.err, "response_too_large");
  ASSERT_TRUE(j.body.len <= 1000);
  fetch_free(&j);
  fetch(&j, "/big", 1 << 20, 1);  /* the sink cannot write: the call ends */
  ASSERT_EQ(j.rc, -1);
  ASSERT_CONTAINS(j.err, "sink_failed");
  fetch_free(&j);
}

TEST(a_blocking_fetch_keeps_an_error_answer_apart_and_times_out) {
  fetch_job j;
  fetch(&j, "/fail", 1 << 20, 0);  /* an answer, but an error's: not the sink's */
  ASSERT_EQ(j.rc, 0);
  ASSERT_EQ(j.status, 409);
  ASSERT_EQ(j.body.len, 0);
  ASSERT_CONTAINS(tp_buf_cstr(&j.errbody), "not_released");
  fetch_free(&j);
  fetch(&j, "!", 1 << 20, 0);  /* the silent upstream: the whole-call timeout */
  ASSERT_EQ(j.rc, -1);
  ASSERT_EQ(j.body.len, 0);
  fetch_free(&j);
  char err[128];
  int status;
  ASSERT_EQ(tpo_fetch("https://example.com/", NULL, 0, 1000, 10, sink, NULL, &status, NULL, err, sizeof err), -1);
  ASSERT_CONTAINS(err, "http://");
}

static void close_open(uv_handle_t *h, void *arg) {
  (void)arg;
  if (!uv_is_closing(h)) uv_close(h, h->type == UV_TCP && h != (uv_handle_t *)&silent ? (uv_close_cb)free : NULL);
}

int main(void) {
  signal(SIGPIPE, SIG_IGN);
  uv_loop_init(&loop);
  start_upstreams();
  RUN(an_answer_carries_what_was_sent);
  RUN(connections_stay_open_between_bursts);
  RUN(a_silent_upstream_times_out_while_others_are_answered);
  RUN(a_body_over_the_cap_is_a_failure);
  RUN(nobody_listening_bad_method_and_bad_url);
  RUN(closing_the_client_cancels_what_is_in_flight);
  RUN(a_blocking_fetch_hands_the_body_to_the_sink);
  RUN(a_blocking_fetch_keeps_an_error_answer_apart_and_times_out);
  tph_free(upstream);
  uv_close((uv_handle_t *)&silent, NULL);
  uv_walk(&loop, close_open, NULL);
  uv_run(&loop, UV_RUN_DEFAULT);
  uv_loop_close(&loop);
  return TEST_SUMMARY();
}
