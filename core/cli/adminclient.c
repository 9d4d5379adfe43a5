/*
** adminclient.c - blocking HTTP/1.1 POST with an overall deadline.
*/
#include "cli/adminclient.h"

#include <errno.h>
#include <netdb.h>
#include <poll.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <unistd.h>

#include "base/clock.h"

#define MAX_HEAD 65536

typedef enum { BODY_NONE, BODY_LENGTH, BODY_CHUNKED, BODY_CLOSE } framing;

/* What the response head says; the body starts at body_at in the raw bytes. */
typedef struct head {
  int status;
  size_t body_at;
  framing framing;
  size_t length;
} head;

static int remaining_ms(uint64_t deadline) {
  uint64_t now = tp_clock_mono_ns();
  return now >= deadline ? 0 : (int)((deadline - now + 999999) / 1000000);
}

/* Waits until fd is ready for ev; -1 with errno set on timeout or error. */
static int wait_fd(int fd, short ev, uint64_t deadline) {
  for (;;) {
    int ms = remaining_ms(deadline);
    if (ms <= 0) {
      errno = ETIMEDOUT;
      return -1;
    }
    struct pollfd p = {.fd = fd, .events = ev};
    int r = poll(&p, 1, ms);
    if (r > 0) return 0;
    if (r < 0 && errno != EINTR) return -1;
  }
}

/* Connects to the first address of host that answers; returns the fd or -1. */
static int dial(const char *host, int port, uint64_t deadline, char *err, size_t errcap) {
  struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM,
                           .ai_flags = AI_NUMERICSERV};
  struct addrinfo *res;
  char service[16];
  snprintf(service, sizeof service, "%d", port);
  int r = getaddrinfo(host, service, &hints, &res);
  if (r != 0) {
    snprintf(err, errcap, "resolve %s: %s", host, gai_strerror(r));
    return -1;
  }
  int fd = -1, saved = ECONNREFUSED;
  for (struct addrinfo *ai = res; ai; ai = ai->ai_next) {
    fd = socket(ai->ai_family, ai->ai_socktype | SOCK_NONBLOCK | SOCK_CLOEXEC, ai->ai_protocol);
    if (fd < 0) {
      saved = errno;
      continue;
    }
    if (connect(fd, ai->ai_addr, ai->ai_addrlen) == 0) break;
    if (errno == EINPROGRESS && wait_fd(fd, POLLOUT, deadline) == 0) {
      int soerr = 0;
      socklen_t len = sizeof soerr;
      getsockopt(fd, SOL_SOCKET, SO_ERROR, &soerr, &len);
      if (soerr == 0) break;
      errno = soerr;
    }
    saved = errno;
    close(fd);
    fd = -1;
  }
  freeaddrinfo(res);
  if (fd < 0) snprintf(err, errcap, "connect to %s:%d: %s", host, port, strerror(saved));
  return fd;
}

static int send_all(int fd, const char *p, size_t n, uint64_t deadline) {
  while (n > 0) {
    ssize_t w = send(fd, p, n, MSG_NOSIGNAL);  /* a closed peer must not kill the CLI */
    if (w >= 0) {
      p += w;
      n -= (size_t)w;
    } else if (errno == EAGAIN || errno == EWOULDBLOCK) {
      if (wait_fd(fd, POLLOUT, deadline) != 0) return -1;
    } else if (errno != EINTR) {
      return -1;
    }
  }
  return 0;
}

/* Offset of the next CRLF at or after i, or (size_t)-1. */
static size_t find_crlf(const char *p, size_t len, size_t i) {
  for (; i + 1 < len; i++)
    if (p[i] == '\r' && p[i + 1] == '\n') return i;
  return (size_t)-1;
}

/* A head still incomplete after MAX_HEAD bytes is refused rather than buffered on. */
static int head_incomplete(size_t n, char *err, size_t errcap) {
  if (n <= MAX_HEAD) return 0;
  snprintf(err, errcap, "response head too large");
  return -1;
}

static bool name_is(const char *name, size_t n, const char *want) {
  return n == strlen(want) && strncasecmp(name, want, n) == 0;
}

/* Parses "HTTP/1.x NNN ..." and the headers: 1 done, 0 needs more bytes, -1 bad.
** Interim 1xx responses (100 Continue) are skipped. */
static int parse_head(const char *p, size_t len, head *h, char *err, size_t errcap) {
  size_t at = 0;
  for (;;) {
    const char *s = p + at;
    size_t avail = len - at;
    /* Refuse a non-HTTP peer at once rather than waiting for the timeout. */
    if (strncmp(s, "HTTP/1.", avail < 7 ? avail : 7) != 0) {
      snprintf(err, errcap, "not an HTTP response");
      return -1;
    }
    size_t line = find_crlf(p, len, at);
    if (line == (size_t)-1) return head_incomplete(avail, err, errcap);
    if (line - at < 12 || s[7] < '0' || s[7] > '9' || s[8] != ' ' ||
        (line - at > 12 && s[12] != ' ') ||
        s[9] < '1' || s[9] > '5' || s[10] < '0' || s[10] > '9' || s[11] < '0' || s[11] > '9') {
      snprintf(err, errcap, "not an HTTP response: bad status line");
      return -1;
    }
    memset(h, 0, sizeof *h);
    h->status = (s[9] - '0') * 100 + (s[10] - '0') * 10 + (s[11] - '0');
    bool chunked = false, has_length = false, has_te = false;
    size_t i = line + 2;
    for (;;) {
      size_t eol = find_crlf(p, len, i);
      if (eol == (size_t)-1) return head_incomplete(len - at, err, errcap);
      if (eol == i) {
        i += 2;
        break;
      }
      const char *colon = memchr(p + i, ':', eol - i);
      if (!colon) {
        snprintf(err, errcap, "malformed response header");
        return -1;
      }
      const char *v = colon + 1, *ve = p + eol;
      while (v < ve && (*v == ' ' || *v == '\t')) v++;
      while (ve > v && (ve[-1] == ' ' || ve[-1] == '\t')) ve--;
      size_t nlen = (size_t)(colon - (p + i)), vlen = (size_t)(ve - v);
      if (name_is(p + i, nlen, "content-length")) {
        size_t n = 0;
        const char *d = v;
        for (; d < ve && *d >= '0' && *d <= '9' && n < TP_ADMIN_MAX_RESPONSE; d++)
          n = n * 10 + (size_t)(*d - '0');
        if (d == v || d != ve || (has_length && n != h->length)) {
          snprintf(err, errcap, "bad Content-Length in response");
          return -1;
        }
        has_length = true;
        h->length = n;
      } else if (name_is(p + i, nlen, "transfer-encoding")) {
        /* Chunked is what frames the body only when it is the last coding. */
        has_te = true;
        chunked = vlen >= 7 && strncasecmp(ve - 7, "chunked", 7) == 0;
      }
      i = eol + 2;
    }
    if (h->status >= 100 && h->status < 200 && h->status != 101) {
      at = i;
      continue;
    }
    h->body_at = i;
    if (h->status < 200 || h->status == 204 || h->status == 304) h->framing = BODY_NONE;
    else if (chunked) h->framing = BODY_CHUNKED;
    else if (has_te) h->framing = BODY_CLOSE;
    else if (has_length) h->framing = BODY_LENGTH;
    else h->framing = BODY_CLOSE;
    return 1;
  }
}

/* Decodes a chunked body into out: 1 done, 0 needs more bytes, -1 bad. *pos is where
** the first chunk not yet appended starts, so each byte is decoded once. */
static int decode_chunked(const char *p, size_t len, size_t *pos, tp_buf *out) {
  size_t i = *pos;
  for (;;) {
    size_t eol = find_crlf(p, len, i);
    if (eol == (size_t)-1) return len - i > 1024 ? -1 : 0;
    size_t size = 0, j = i;
    for (; j < eol; j++) {
      char c = p[j];
      int v = c >= '0' && c <= '9' ? c - '0' : c >= 'a' && c <= 'f' ? c - 'a' + 10
            : c >= 'A' && c <= 'F' ? c - 'A' + 10 : -1;
      if (v < 0) break;
      if (size > TP_ADMIN_MAX_RESPONSE) return -1;
      size = size * 16 + (size_t)v;
    }
    if (j == i || (j < eol && p[j] != ';' && p[j] != ' ' && p[j] != '\t')) return -1;
    i = eol + 2;
    if (size == 0) {  /* trailers, then an empty line */
      for (;;) {
        eol = find_crlf(p, len, i);
        if (eol == (size_t)-1) return 0;
        if (eol == i) return 1;
        i = eol + 2;
      }
    }
    if (len - i < size || len - i - size < 2) return 0;
    if (p[i + size] != '\r' || p[i + size + 1] != '\n') return -1;
    tp_buf_add(out, p + i, size);
    i += size + 2;
    *pos = i;
  }
}

/* Reads until the body is complete (the server may keep the connection open). */
static int read_response(int fd, uint64_t deadline, tp_buf *raw, int *status, tp_buf *out,
                         char *err, size_t errcap) {
  head h = {0};
  bool have_head = false;
  size_t chunk_at = 0;  /* decode_chunked's position, relative to the body */
  for (;;) {
    tp_buf_reserve(raw, 4096);
    ssize_t n = recv(fd, raw->data + raw->len, raw->cap - raw->len - 1, 0);
    if (n < 0) {
      if (errno == EINTR) continue;
      if ((errno == EAGAIN || errno == EWOULDBLOCK) && wait_fd(fd, POLLIN, deadline) == 0)
        continue;
      snprintf(err, errcap, "read response: %s", strerror(errno));
      return -1;
    }
    raw->len += (size_t)n;
    bool eof = n == 0;
    if (raw->len > TP_ADMIN_MAX_RESPONSE) {
      snprintf(err, errcap, "response larger than %u bytes", TP_ADMIN_MAX_RESPONSE);
      return -1;
    }
    if (!have_head) {
      int r = parse_head(raw->data, raw->len, &h, err, errcap);
      if (r < 0) return -1;
      if (r == 0) {
        if (!eof) continue;
        snprintf(err, errcap, "connection closed %s",
                 raw->len ? "in the response head" : "without a response");
        return -1;
      }
      have_head = true;
    }
    const char *b = raw->data + h.body_at;
    size_t blen = raw->len - h.body_at;
    int done = 0;
    switch (h.framing) {
      case BODY_NONE: done = 1; break;
      case BODY_LENGTH:
        if (blen >= h.length) {
          tp_buf_add(out, b, h.length);
          done = 1;
        }
        break;
      case BODY_CHUNKED: done = decode_chunked(b, blen, &chunk_at, out); break;
      case BODY_CLOSE:
        if (eof) {
          tp_buf_add(out, b, blen);
          done = 1;
        }
        break;
    }
    if (done < 0) {
      snprintf(err, errcap, "bad chunked encoding in response");
      return -1;
    }
    if (done) {
      *status = h.status;
      return 0;
    }
    if (eof) {
      snprintf(err, errcap, "connection closed in the response body");
      return -1;
    }
  }
}

/* Request fields go into the head verbatim: control bytes would forge headers. */
static bool clean(const char *s) {
  for (; *s; s++)
    if ((unsigned char)*s < 0x20 || *s == 0x7f) return false;
  return true;
}

int tp_admin_post(const char *host, int port, const char *path, const char *api_key,
                  const char *body, int timeout_ms, int *status, tp_buf *out,
                  char *err, size_t errcap) {
  tp_buf_reset(out);
  if (!body) body = "";
  if (!host[0] || !clean(host) || path[0] != '/' || !clean(path) || strchr(path, ' ') ||
      !clean(api_key) || port <= 0 || port > 65535) {
    snprintf(err, errcap, "bad admin request: host, port, path or API key is malformed");
    return -1;
  }
  uint64_t deadline = tp_clock_mono_ns() + (uint64_t)(timeout_ms > 0 ? timeout_ms : 0) * 1000000u;
  int fd = dial(host, port, deadline, err, errcap);
  if (fd < 0) return -1;

  tp_buf req, raw;
  tp_buf_init(&req);
  tp_buf_init(&raw);
  bool v6 = strchr(host, ':') != NULL;  /* an IPv6 literal needs brackets in Host */
  tp_buf_printf(&req,
                "POST %s HTTP/1.1\r\nHost: %s%s%s:%d\r\nX-Api-Key: %s\r\n"
                "Content-Type: application/json\r\nContent-Length: %zu\r\n"
                "Connection: close\r\n\r\n",
                path, v6 ? "[" : "", host, v6 ? "]" : "", port, api_key, strlen(body));
  tp_buf_adds(&req, body);
  int rc = 0;
  if (send_all(fd, req.data, req.len, deadline) != 0) {
    snprintf(err, errcap, "send to %s:%d: %s", host, port, strerror(errno));
    rc = -1;
  } else {
    rc = read_response(fd, deadline, &raw, status, out, err, errcap);
  }
  close(fd);
  tp_buf_free(&req);
  tp_buf_free(&raw);
  if (rc != 0) tp_buf_reset(out);
  return rc;
}
