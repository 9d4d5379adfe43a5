/*
** fuzz_http.c - request bytes through the whole serving path: a real host
** (the commerce plugins on a temporary database) listens on a loopback port,
** and every input is written to a fresh connection, half-closed, and served
** until the host closes it: llhttp parsing, limits, routing, authentication,
** JSON bodies, the Lua handlers and the commit. Every answer must be HTTP,
** and the host must close the connection once the input is used up.
**
** The seed corpus (tests/fuzz/corpus/fuzz_http, written by make_corpus.py)
** carries this config's admin key and valid user tokens, so the fuzzer starts
** from requests that reach the handlers.
*/
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>
#include <uv.h>

#include "config/config.h"
#include "host/host.h"
#include "net/http.h"
#include "base/log.h"

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define MAX_SERVE_MS 10000  /* far above any answer; past it the host kept a dead connection */

static char dir[] = "/tmp/tidepool-fuzz-http-XXXXXX";
static tpc_config cfg;
static tp_host host;
static uv_loop_t loop;
static tph_server *server;
static int port;
static bool verbose;

static const char config_text[] =
    "return {\n"
    "  listen = '127.0.0.1:0', data_dir = '%s/data', synchronous = 'off',\n"
    "  plugin_dirs = { '" TP_SOURCE_DIR "/plugins' },\n"
    "  limits = { header_timeout_ms = 2000, body_timeout_ms = 2000 },\n"
    "  tenants = { {\n"
    "    id = 'f', token_secret = 'fuzz-token-secret-0123456789abcdef',\n"
    "    api_keys = { 'fuzz-admin-key-0123456789' }, clock = 'manual',\n"
    "    plugins = { catalog = {}, orders = {}, coupons = {}, flash_sale = {},\n"
    "                payments = { secret = 'fuzz-payment-secret-0123456789' } },\n"
    "  } },\n"
    "}\n";

static void shut_down(void) {
  tp_host_detach(&host);
  tph_free(server);
  tp_host_commit(&host);
  tp_host_close(&host);
  uv_run(&loop, UV_RUN_DEFAULT);
  uv_loop_close(&loop);
  tpc_free(&cfg);
  tp_remove_tree(dir);
}

static void die(const char *what, const char *err) {
  fprintf(stderr, "fuzz_http: %s: %s\n", what, err);
  abort();
}

int LLVMFuzzerInitialize(int *argc, char ***argv) {
  (void)argc;
  (void)argv;
  char err[1024], path[256], text[2048];
  signal(SIGPIPE, SIG_IGN);
  tp_log_set_level(TP_LOG_ERROR);
  if (!mkdtemp(dir)) die("mkdtemp", strerror(errno));
  snprintf(path, sizeof path, "%s/tidepool.conf.lua", dir);
  snprintf(text, sizeof text, config_text, dir);
  FILE *f = fopen(path, "w");
  if (!f || fputs(text, f) < 0 || fclose(f) != 0) die("config", strerror(errno));
  if (tpc_load(path, &cfg, err, sizeof err) != 0) die("config", err);
  uv_loop_init(&loop);
  if (tp_host_open(&host, &cfg, err, sizeof err) != 0) die("host", err);
  tph_hooks hooks = {tp_host_handle, tp_host_commit, tp_host_finished, tp_host_iteration_end,
                     &host, tp_host_hold};
  server = tph_new(&loop, &cfg.limits, hooks);
  host.server = server;
  tp_host_attach(&host, &loop);
  if (tph_listen(server, "127.0.0.1", 0, &port, err, sizeof err) != 0) die("listen", err);
  atexit(shut_down);
  verbose = getenv("FUZZ_HTTP_VERBOSE") != NULL;
  return 0;
}

static int64_t now_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static int connect_loopback(void) {
  int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
  if (fd < 0) die("socket", strerror(errno));
  struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (connect(fd, (struct sockaddr *)&a, sizeof a) != 0 && errno != EINPROGRESS)
    die("connect", strerror(errno));
  return fd;
}

/* Whether the bytes the host sent look like HTTP responses: each starts with a
** status line. Only the first is checked; a pipelined input gets several. */
static void check_answer(const char *got, size_t n) {
  if (n > 0 && (n < 12 || memcmp(got, "HTTP/1.1 ", 9) != 0)) die("answer", "not an HTTP response");
}

/* Writes the input, half-closes, and turns the loop until the host closes. */
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  int fd = connect_loopback();
  size_t sent = 0, got = 0;
  char answer[4096];
  size_t kept = 0;
  bool shut = false;
  int64_t deadline = now_ms() + MAX_SERVE_MS;
  for (;;) {
    uv_run(&loop, UV_RUN_NOWAIT);
    if (sent < size) {
      ssize_t w = send(fd, data + sent, size - sent, MSG_NOSIGNAL);
      if (w > 0) sent += (size_t)w;
      else if (w < 0 && errno != EAGAIN && errno != ENOTCONN) sent = size;  /* host closed early */
    } else if (!shut) {
      shutdown(fd, SHUT_WR);
      shut = true;
    }
    char buf[4096];
    ssize_t r = recv(fd, buf, sizeof buf, 0);
    if (r > 0) {
      if (kept < sizeof answer) {
        size_t take = (size_t)r < sizeof answer - kept ? (size_t)r : sizeof answer - kept;
        memcpy(answer + kept, buf, take);
        kept += take;
      }
      got += (size_t)r;
    } else if (r == 0 || (errno != EAGAIN && errno != ENOTCONN)) {
      break;  /* the host closed (or reset) the connection */
    }
    if (now_ms() > deadline) die("serve", "the host kept a half-closed connection open");
    if (r < 0) {  /* nothing to read yet: sleep until the client or the host's loop has news */
      struct pollfd p[2] = {{.fd = fd, .events = POLLIN}, {.fd = uv_backend_fd(&loop), .events = POLLIN}};
      int wait = uv_backend_timeout(&loop);
      poll(p, 2, wait < 0 || wait > 50 ? 50 : wait);
    }
  }
  close(fd);
  check_answer(answer, kept);
  if (verbose)  /* FUZZ_HTTP_VERBOSE=1: what each input got, to check a corpus reaches handlers */
    fprintf(stderr, "---- %zu bytes in, %zu out:\n%.*s\n", size, got, (int)kept, answer);
  uv_run(&loop, UV_RUN_NOWAIT);  /* let the host see the close */
  return 0;
}
