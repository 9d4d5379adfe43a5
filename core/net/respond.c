/*
** respond.c - responses: the error shape, a pool of response objects, the
** queue of a connection's answers held until the iteration ends, writing
** one out, and request ids.
*/
#include "net/http_int.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/clock.h"

static const char *status_text(int status) {
  switch (status) {
    case 100: return "Continue";
    case 200: return "OK";
    case 201: return "Created";
    case 202: return "Accepted";
    case 204: return "No Content";
    case 304: return "Not Modified";
    case 400: return "Bad Request";
    case 401: return "Unauthorized";
    case 403: return "Forbidden";
    case 404: return "Not Found";
    case 405: return "Method Not Allowed";
    case 408: return "Request Timeout";
    case 409: return "Conflict";
    case 410: return "Gone";
    case 413: return "Content Too Large";
    case 414: return "URI Too Long";
    case 415: return "Unsupported Media Type";
    case 421: return "Misdirected Request";
    case 422: return "Unprocessable Content";
    case 429: return "Too Many Requests";
    case 431: return "Request Header Fields Too Large";
    case 500: return "Internal Server Error";
    case 501: return "Not Implemented";
    case 503: return "Service Unavailable";
    default: return status < 300 ? "OK" : status < 500 ? "Client Error" : "Server Error";
  }
}

void tph_error(tph_response *res, int status, const char *code, const char *fmt, ...) {
  tp_error e = {.status = status};
  tp_copy_str(e.code, sizeof e.code, code);
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(e.message, sizeof e.message, fmt, ap);
  va_end(ap);
  tph_answer_error(res, &e);
}

bool tph_add_header(tph_response *res, const char *name, const char *value) {
  size_t used = strlen(res->headers), n = strlen(name), v = strlen(value);
  if (used + n + v + 5 > sizeof res->headers || strpbrk(value, "\r\n") || strpbrk(name, "\r\n: "))
    return false;
  snprintf(res->headers + used, sizeof res->headers - used, "%s: %s\r\n", name, value);
  return true;
}

void tph_answer_error(tph_response *res, const tp_error *e) {
  res->status = e->status;
  res->content_type = "application/json";
  tp_copy_str(res->error_code, sizeof res->error_code, e->code);
  tp_error_render(e, res->request_id, &res->body);
}

tph_response *tph__response_new(tph_server *s) {
  tph_response *r = s->free_responses;
  tp_buf body;
  if (r) {
    s->free_responses = r->next;
    s->nfree--;
    body = r->body;
    tp_buf_reset(&body);
  } else {
    r = malloc(sizeof *r);
    if (!r) abort();
    tp_buf_init(&body);
  }
  memset(r, 0, sizeof *r);
  r->body = body;
  r->content_type = "application/json";
  r->start_ns = tp_clock_mono_ns();
  r->keep_alive = true;
  return r;
}

void tph__response_release(tph_server *s, tph_response *r) {
  if (s->nfree >= MAX_FREE_RESPONSES) {  /* a burst is over: give the memory back */
    tp_buf_free(&r->body);
    free(r);
    return;
  }
  if (r->body.cap > 16 * 1024) tp_buf_free(&r->body);  /* don't hoard big bodies */
  r->next = s->free_responses;
  s->free_responses = r;
  s->nfree++;
}

/* Writes the status line and headers by hand: this runs for every response. */
void tph__serialize(conn *c, const tph_response *r) {
  tp_buf *o = &c->out;
  tp_buf_reserve(o, 160 + r->body.len);
  tp_buf_adds(o, "HTTP/1.1 ");
  tp_buf_addi(o, r->status);
  tp_buf_addc(o, ' ');
  tp_buf_adds(o, status_text(r->status));
  tp_buf_adds(o, "\r\nContent-Type: ");
  tp_buf_adds(o, r->content_type);
  tp_buf_adds(o, "\r\nContent-Length: ");
  tp_buf_addu(o, r->body.len);
  tp_buf_adds(o, "\r\n");
  if (r->request_id[0]) {
    tp_buf_adds(o, "X-Request-Id: ");
    tp_buf_adds(o, r->request_id);
    tp_buf_adds(o, "\r\n");
  }
  if (r->allow[0]) {
    tp_buf_adds(o, "Allow: ");
    tp_buf_adds(o, r->allow);
    tp_buf_adds(o, "\r\n");
  }
  if (r->retry_after > 0) {
    tp_buf_adds(o, "Retry-After: ");
    tp_buf_addu(o, (uint64_t)r->retry_after);
    tp_buf_adds(o, "\r\n");
  }
  tp_buf_adds(o, r->headers);
  if (!r->keep_alive) tp_buf_adds(o, "Connection: close\r\n");
  tp_buf_adds(o, "\r\n");
  if (!r->method || strcmp(r->method, "HEAD") != 0)  /* HEAD: the length, not the body */
    tp_buf_add(o, r->body.data, r->body.len);
}

static void on_idle(uv_idle_t *h) { (void)h; }

/* Responses queued outside the poll phase (a timer's 408) must not wait for
** unrelated I/O: an active idle handle makes this iteration's poll return at
** once, so the check handle flushes them now. */
void tph__mark_pending(conn *c) {
  if (c->in_pending) return;
  if (!c->srv->pending) uv_idle_start(&c->srv->flush_soon, on_idle);
  c->in_pending = true;
  c->pending_next = c->srv->pending;
  c->srv->pending = c;
}

void tph__enqueue(conn *c, tph_response *r) {
  r->conn = c;
  if (!r->keep_alive) c->close_after = true;
  c->nqueued++;
  c->queued_bytes += r->body.len + 256;  /* with its head */
  if (c->queue_tail) c->queue_tail->next = r;
  else c->queue_head = r;
  c->queue_tail = r;
  tph__mark_pending(c);
}

void tph_resume(tph_response *r) {
  if (r->orphaned) {  /* the client went away while it waited */
    tp_buf_free(&r->body);
    free(r);
    return;
  }
  r->deferred = false;
  tph__mark_pending(r->conn);
}

void tph_abandon(tph_response *r) {
  if (r->orphaned) {
    tp_buf_free(&r->body);
    free(r);
    return;
  }
  r->deferred = false;  /* still queued on a closing connection: conn_free releases it */
}

/* ---- request ids */

bool tph__valid_request_id(const char *s, size_t n) {
  if (n == 0 || n > TPH_MAX_REQUEST_ID) return false;
  for (size_t i = 0; i < n; i++) {
    char ch = s[i];
    if (!((ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9') ||
          ch == '-' || ch == '_' || ch == '.' || ch == ':'))
      return false;
  }
  return true;
}

void tph__make_request_id(tph_server *s, char out[TPH_MAX_REQUEST_ID + 1]) {
  uint64_t x = s->id_seed + 0x9e3779b97f4a7c15ull * ++s->id_counter;
  x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ull;  /* splitmix64: ids look random, never repeat */
  x = (x ^ (x >> 27)) * 0x94d049bb133111ebull;
  x ^= x >> 31;
  for (int i = 15; i >= 0; i--, x >>= 4) out[i] = "0123456789abcdef"[x & 15];
  out[16] = '\0';
}

/* A response the host makes itself (timeout, parse error, connection limit):
** it has no request to take an id from, and the connection closes after it. */
tph_response *tph__closing_response(conn *c) {
  tph_response *r = tph__response_new(c->srv);
  tph__make_request_id(c->srv, r->request_id);
  r->keep_alive = false;
  r->method = "-";
  return r;
}

const tph_header *tph_find_header(const tph_request *req, const char *name) {
  size_t n = strlen(name);
  for (int i = 0; i < req->nheaders; i++)
    if (req->headers[i].nlen == n && memcmp(req->headers[i].name, name, n) == 0)
      return &req->headers[i];
  return NULL;
}
