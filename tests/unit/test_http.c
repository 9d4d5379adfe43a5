/*
** test_http.c - the server's end of an iteration (http.h): an answer its
** handler marked clean goes out before the iteration's commit, any other
** after it, and a connection's answers stay in order, so a clean answer
** queued behind one that waits for the commit waits too.
**
** The hooks count commits; each response notes how many there had been when
** it was handled and when it was sent (finished), so the test does not
** depend on which requests share an iteration. An answer the host holds for
** its sync (hooks.hold) keeps the fate of its own commit, whatever commits
** fail while it waits.
*/
#include "net/http.h"

#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/buf.h"
#include "tp_test.h"

static uv_loop_t loop;
static tph_server *server;
static int port;
static int commits;

typedef struct seen {
  char target[320];
  int handled_at, sent_at;     /* commits so far, when handled and when sent */
} seen;
static seen log_[64];
static int nlog;

/* the store's flag, as the host keeps it: set by a failed commit, cleared
** when the iteration's answers are out */
static bool commit_failed, fail_next_commit;
static int handled;
static tph_response *held;  /* the answer hold kept back ("/held..." ones) */

static void handle(void *ud, const tph_request *req, tph_response *res) {
  (void)ud;
  handled++;
  res->clean = req->target_len >= 6 && memcmp(req->target, "/clean", 6) == 0;
  if (!res->clean) {
    res->commit_failed = &commit_failed;
    res->rests_on = &loop;
  }
  snprintf(res->route, sizeof res->route, "%.*s", (int)req->target_len, req->target);
  tp_buf_printf(&res->body, "{\"at\":%d}", commits);
  res->status = 200;
}
static void commit(void *ud) {
  (void)ud, commits++;
  if (fail_next_commit) commit_failed = true;
}
static bool hold(void *ud, tph_response *res) {
  (void)ud;
  if (strncmp(res->route, "/held", 5) != 0) return false;
  held = res;
  return true;
}
static void finished(void *ud, const tph_response *res, double s) {
  (void)ud, (void)s;
  if (nlog == 64) return;
  seen *e = &log_[nlog++];
  snprintf(e->target, sizeof e->target, "%s", res->route);
  int at = 0;
  sscanf(res->body.data, "{\"at\":%d}", &at);
  e->handled_at = at;
  e->sent_at = commits;
}
static void iteration_end(void *ud) { (void)ud, commit_failed = false; }

/* ---- a raw client: writes bytes, reads until n answers came */

typedef struct client {
  uv_tcp_t tcp;
  uv_connect_t connect;
  uv_write_t write;
  const char *send;
  tp_buf got;
  int want, answers;
} client;

static void on_alloc(uv_handle_t *h, size_t n, uv_buf_t *b) {
  (void)h;
  b->base = malloc(n);
  b->len = b->base ? n : 0;
}

static void on_read(uv_stream_t *s, ssize_t n, const uv_buf_t *b) {
  client *c = s->data;
  if (n > 0) tp_buf_add(&c->got, b->base, (size_t)n);
  free(b->base);
  int count = 0;
  for (const char *p = tp_buf_cstr(&c->got); (p = strstr(p, "HTTP/1.1 ")); p++) count++;
  c->answers = count;
  if (n < 0 || c->answers >= c->want) uv_read_stop(s);
}

static void on_written(uv_write_t *w, int status) { (void)w, (void)status; }

static void on_connect(uv_connect_t *r, int status) {
  client *c = r->data;
  if (status != 0) return;
  uv_buf_t b = uv_buf_init((char *)c->send, (unsigned)strlen(c->send));
  uv_write(&c->write, (uv_stream_t *)&c->tcp, &b, 1, on_written);
  uv_read_start((uv_stream_t *)&c->tcp, on_alloc, on_read);
}

static void start(client *c, const char *send, int want) {
  memset(c, 0, sizeof *c);
  c->send = send;
  c->want = want;
  tp_buf_init(&c->got);
  uv_tcp_init(&loop, &c->tcp);
  c->tcp.data = c;
  c->connect.data = c;
  struct sockaddr_in a;
  uv_ip4_addr("127.0.0.1", port, &a);
  uv_tcp_connect(&c->connect, &c->tcp, (struct sockaddr *)&a, on_connect);
}

/* Writes more on c's connection (a request pipelined behind the first). */
static void send_more(client *c, const char *more) {
  static uv_write_t w;
  uv_buf_t b = uv_buf_init((char *)more, (unsigned)strlen(more));
  uv_write(&w, (uv_stream_t *)&c->tcp, &b, 1, on_written);
}

static void stop(client *c) {
  uv_close((uv_handle_t *)&c->tcp, NULL);
  uv_run(&loop, UV_RUN_NOWAIT);
  tp_buf_free(&c->got);
}

static const seen *find(const char *target) {
  for (int i = 0; i < nlog; i++)
    if (strcmp(log_[i].target, target) == 0) return &log_[i];
  return NULL;
}

#define GET(path) "GET " path " HTTP/1.1\r\nHost: t\r\n\r\n"

TEST(a_clean_answer_goes_before_the_commit_the_others_after_it) {
  nlog = 0;
  client a, b, c;
  start(&a, GET("/clean-a"), 1);
  start(&b, GET("/dirty-b"), 1);
  start(&c, GET("/clean-c"), 1);
  while (a.answers < 1 || b.answers < 1 || c.answers < 1) uv_run(&loop, UV_RUN_ONCE);
  const seen *ca = find("/clean-a"), *db = find("/dirty-b"), *cc = find("/clean-c");
  ASSERT_TRUE(ca && db && cc);
  ASSERT_EQ(ca->sent_at, ca->handled_at);      /* before its iteration's commit */
  ASSERT_EQ(cc->sent_at, cc->handled_at);
  ASSERT_EQ(db->sent_at, db->handled_at + 1);  /* after it */
  stop(&a);
  stop(&b);
  stop(&c);
}

TEST(a_clean_answer_behind_one_that_waits_waits_too) {
  nlog = 0;
  client p;
  start(&p, GET("/dirty-1") GET("/clean-2"), 2);  /* pipelined on one connection */
  while (p.answers < 2) uv_run(&loop, UV_RUN_ONCE);
  const seen *d = find("/dirty-1"), *c = find("/clean-2");
  ASSERT_TRUE(d && c);
  ASSERT_EQ(d->sent_at, d->handled_at + 1);
  ASSERT_TRUE(c->sent_at >= d->sent_at);       /* in order: never ahead of the first */
  ASSERT_TRUE(strstr(tp_buf_cstr(&p.got), "{\"at\"") != NULL);
  ASSERT_TRUE(log_[0].target[1] == 'd');       /* sent in the order asked */
  stop(&p);
}

/* The statuses of the answers c got, in order, as "200 503". */
static void statuses(client *c, char *out, size_t cap) {
  out[0] = '\0';
  for (const char *p = tp_buf_cstr(&c->got); (p = strstr(p, "HTTP/1.1 ")); p++)
    snprintf(out + strlen(out), cap - strlen(out), "%s%.3s", out[0] ? " " : "", p + 9);
}

TEST(a_rolled_back_write_behind_a_held_answer_is_refused) {
  held = NULL;
  client p;
  start(&p, GET("/held-a"), 2);
  while (!held) uv_run(&loop, UV_RUN_ONCE);  /* committed, and held for its sync */
  fail_next_commit = true;                   /* b, pipelined behind it, is rolled back */
  int before = handled;
  send_more(&p, GET("/dirty-b"));
  while (handled == before) uv_run(&loop, UV_RUN_ONCE);
  fail_next_commit = false;
  ASSERT_EQ(p.answers, 0);                   /* both wait behind a */
  tph_resume(held);                          /* a's sync is done: the flag is long cleared */
  while (p.answers < 2) uv_run(&loop, UV_RUN_ONCE);
  char got[64];
  statuses(&p, got, sizeof got);
  ASSERT_STR(got, "200 503");
  stop(&p);
}

TEST(a_held_answer_is_not_refused_for_a_later_failure) {
  held = NULL;
  client p;
  start(&p, GET("/held-a"), 1);
  while (!held) uv_run(&loop, UV_RUN_ONCE);
  fail_next_commit = true;                   /* the iteration a goes in has a failed commit */
  tph_resume(held);
  while (p.answers < 1) uv_run(&loop, UV_RUN_ONCE);
  fail_next_commit = false;
  char got[64];
  statuses(&p, got, sizeof got);
  ASSERT_STR(got, "200");
  stop(&p);
}

int main(void) {
  signal(SIGPIPE, SIG_IGN);
  uv_loop_init(&loop);
  tpc_limits l = {.max_connections = 100, .max_header_bytes = 16384, .max_headers = 64,
                  .max_body_bytes = 1 << 20, .header_timeout_ms = 5000, .body_timeout_ms = 5000,
                  .idle_timeout_ms = 5000, .shutdown_timeout_ms = 1000};
  tph_hooks hooks = {handle, commit, finished, iteration_end, NULL, hold};
  server = tph_new(&loop, &l, hooks);
  char err[256];
  if (tph_listen(server, "127.0.0.1", 0, &port, err, sizeof err) != 0) {
    fprintf(stderr, "listen: %s\n", err);
    return 1;
  }
  RUN(a_clean_answer_goes_before_the_commit_the_others_after_it);
  RUN(a_clean_answer_behind_one_that_waits_waits_too);
  RUN(a_rolled_back_write_behind_a_held_answer_is_refused);
  RUN(a_held_answer_is_not_refused_for_a_later_failure);
  tph_free(server);
  uv_run(&loop, UV_RUN_DEFAULT);
  uv_loop_close(&loop);
  return TEST_SUMMARY();
}
