/*
** Admin client: Content-Length, chunked and read-until-close answers from a
** one-shot server thread; refused, silent and non-HTTP peers are errors.
*/
#include "cli/adminclient.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <unistd.h>

#include "tp_test.h"

#define BODY "{\"reload\":\"shop\"}"

static char err[256];

/* Accepts one connection, reads the request until it ends with BODY, answers reply
** in 7-byte writes (so the client must reassemble) and closes. A request without the
** API key or the body gets a 400 instead. */
typedef struct server {
  int fd, port;
  const char *reply;
  char request[4096];
  pthread_t thread;
} server;

static void *serve_once(void *arg) {
  server *s = arg;
  int c = accept(s->fd, NULL, NULL);
  if (c < 0) return NULL;
  size_t n = 0, blen = strlen(BODY);
  for (;;) {
    ssize_t r = recv(c, s->request + n, sizeof s->request - 1 - n, 0);
    if (r <= 0) break;
    n += (size_t)r;
    s->request[n] = '\0';
    if (n >= blen && strcmp(s->request + n - blen, BODY) == 0) break;
  }
  const char *reply = s->reply;
  if (!strstr(s->request, "\r\nX-Api-Key: secret\r\n") || !strstr(s->request, "\r\n\r\n" BODY))
    reply = "HTTP/1.1 400 Bad Request\r\nContent-Length: 3\r\n\r\nbad";
  for (size_t at = 0, len = strlen(reply); at < len; at += 7) {
    send(c, reply + at, len - at < 7 ? len - at : 7, MSG_NOSIGNAL);
    usleep(2000);
  }
  close(c);
  return NULL;
}

static int listen_local(int *port) {
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
  socklen_t len = sizeof a;
  if (fd < 0 || bind(fd, (struct sockaddr *)&a, sizeof a) != 0 || listen(fd, 4) != 0 ||
      getsockname(fd, (struct sockaddr *)&a, &len) != 0)
    abort();
  *port = ntohs(a.sin_port);
  return fd;
}

static void start(server *s, const char *reply) {
  memset(s, 0, sizeof *s);
  s->reply = reply;
  s->fd = listen_local(&s->port);
  if (pthread_create(&s->thread, NULL, serve_once, s) != 0) abort();
}

static void finish(server *s) {
  pthread_join(s->thread, NULL);
  close(s->fd);
}

static int post(int port, int timeout_ms, int *status, tp_buf *out) {
  err[0] = '\0';
  return tp_admin_post("127.0.0.1", port, "/admin/reload", "secret", BODY, timeout_ms, status,
                       out, err, sizeof err);
}

static server S;
static tp_buf out;
static int status;

TEST(content_length_answer_after_100_continue) {
  start(&S, "HTTP/1.1 100 Continue\r\n\r\n"
            "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\ncontent-length: 11\r\n\r\n"
            "{\"ok\":true}");
  ASSERT_EQ(post(S.port, 2000, &status, &out), 0);
  finish(&S);
  ASSERT_EQ(status, 200);
  ASSERT_STR(tp_buf_cstr(&out), "{\"ok\":true}");
  ASSERT_CONTAINS(S.request, "POST /admin/reload HTTP/1.1\r\n");
  ASSERT_CONTAINS(S.request, "\r\nConnection: close\r\n");
  ASSERT_CONTAINS(S.request, "\r\nContent-Length: 17\r\n");
}

TEST(chunked_answer_is_decoded) {
  start(&S, "HTTP/1.1 202 Accepted\r\nTransfer-Encoding: chunked\r\n\r\n"
            "4\r\n{\"ok\r\n7;ext=1\r\n\":true}\r\n0\r\nX-Trailer: y\r\n\r\n");
  ASSERT_EQ(post(S.port, 2000, &status, &out), 0);
  finish(&S);
  ASSERT_EQ(status, 202);
  ASSERT_STR(tp_buf_cstr(&out), "{\"ok\":true}");
}

TEST(unframed_answer_is_read_until_close) {
  start(&S, "HTTP/1.0 500 Internal Server Error\r\n\r\noops");
  ASSERT_EQ(post(S.port, 2000, &status, &out), 0);
  finish(&S);
  ASSERT_EQ(status, 500);
  ASSERT_STR(tp_buf_cstr(&out), "oops");
}

TEST(non_http_and_truncated_answers_are_errors) {
  start(&S, "SSH-2.0-OpenSSH_9.2\r\n");
  ASSERT_EQ(post(S.port, 2000, &status, &out), -1);
  finish(&S);
  ASSERT_CONTAINS(err, "not an HTTP response");
  start(&S, "HTTP/1.1 200 OK\r\nContent-Length: 50\r\n\r\nshort");
  ASSERT_EQ(post(S.port, 2000, &status, &out), -1);
  finish(&S);
  ASSERT_CONTAINS(err, "closed in the response body");
  ASSERT_EQ(out.len, 0);
  start(&S, "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n");
  ASSERT_EQ(post(S.port, 2000, &status, &out), -1);
  finish(&S);
  ASSERT_CONTAINS(err, "chunked");
}

TEST(closed_port_is_an_error) {
  int port, fd = listen_local(&port);
  close(fd);
  ASSERT_EQ(post(port, 2000, &status, &out), -1);
  ASSERT_CONTAINS(err, "connect to 127.0.0.1:");
  ASSERT_CONTAINS(err, "refused");
}

TEST(silent_server_times_out) {
  /* The kernel completes the handshake from the backlog; nobody ever answers. */
  int port, fd = listen_local(&port);
  ASSERT_EQ(post(port, 200, &status, &out), -1);
  close(fd);
  ASSERT_CONTAINS(err, "timed out");
}

TEST(header_injection_is_refused) {
  ASSERT_EQ(tp_admin_post("127.0.0.1", 1, "/a", "k\r\nX-Evil: 1", BODY, 100, &status, &out, err,
                          sizeof err), -1);
  ASSERT_CONTAINS(err, "malformed");
}

int main(void) {
  tp_buf_init(&out);
  RUN(content_length_answer_after_100_continue);
  RUN(chunked_answer_is_decoded);
  RUN(unframed_answer_is_read_until_close);
  RUN(non_http_and_truncated_answers_are_errors);
  RUN(closed_port_is_an_error);
  RUN(silent_server_times_out);
  RUN(header_injection_is_refused);
  tp_buf_free(&out);
  return TEST_SUMMARY();
}
