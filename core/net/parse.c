/*
** parse.c - llhttp's callbacks: a request's target, headers and body taken
** into its connection under the limits (431, 413), and a complete request
** handed to the host (hooks.handle) with its answer queued.
*/
#include "net/http_int.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

static int limit_error(conn *c, int status, const char *code, const char *msg) {
  c->err_status = status;
  c->err_code = code;
  tp_copy_str(c->err_msg, sizeof c->err_msg, msg);
  return HPE_USER;
}

/* Counts n more bytes of request line, headers or trailers against the limit. */
static int count_head(conn *c, size_t n) {
  c->head_bytes += n;
  if (c->head_bytes > (size_t)c->srv->limits.max_header_bytes)
    return limit_error(c, 431, "headers_too_large", "the request line and headers are too large");
  return 0;
}

static int add_head(conn *c, const char *at, size_t n, bool lower) {
  if (count_head(c, n) != 0) return HPE_USER;
  size_t start = c->head.len;
  tp_buf_add(&c->head, at, n);
  if (lower)
    for (size_t i = start; i < c->head.len; i++)
      if (c->head.data[i] >= 'A' && c->head.data[i] <= 'Z') c->head.data[i] += 32;
  return 0;
}

static int on_message_begin(llhttp_t *p) {
  conn *c = p->data;
  c->phase = PHASE_HEADERS;
  tph__arm(c, c->srv->limits.header_timeout_ms);
  return 0;
}

static int on_url(llhttp_t *p, const char *at, size_t n) {
  conn *c = p->data;
  c->target_len += (uint32_t)n;
  return add_head(c, at, n, false);
}

/* Chunked trailer fields arrive through the header callbacks after the body.
** They count against the header limit but are never taken as headers: an
** Authorization or X-Api-Key a proxy did not see must not authenticate. */
static int on_header_field(llhttp_t *p, const char *at, size_t n) {
  conn *c = p->data;
  if (c->in_trailers) return count_head(c, n);
  if (!c->field_open) {
    if (c->nspans == c->srv->limits.max_headers)
      return limit_error(c, 431, "too_many_headers", "the request has too many header fields");
    if (c->nspans == c->spans_cap) {
      c->spans_cap = c->spans_cap ? c->spans_cap * 2 : 16;
      c->spans = realloc(c->spans, (size_t)c->spans_cap * sizeof *c->spans);
      if (!c->spans) abort();
    }
    c->spans[c->nspans] = (header_span){(uint32_t)c->head.len, 0, 0, 0};
    c->field_open = true;
  }
  c->spans[c->nspans].nlen += (uint32_t)n;
  return add_head(c, at, n, true);
}

static int on_header_field_complete(llhttp_t *p) {
  conn *c = p->data;
  if (c->in_trailers) return 0;
  if (!c->field_open) on_header_field(p, "", 0);
  c->spans[c->nspans].voff = (uint32_t)c->head.len;
  return 0;
}

static int on_header_value(llhttp_t *p, const char *at, size_t n) {
  conn *c = p->data;
  if (c->in_trailers) return count_head(c, n);
  c->spans[c->nspans].vlen += (uint32_t)n;
  return add_head(c, at, n, false);
}

static int on_header_value_complete(llhttp_t *p) {
  conn *c = p->data;
  if (c->in_trailers) return 0;
  c->field_open = false;
  c->nspans++;
  return 0;
}

static bool header_is(conn *c, const header_span *h, const char *name, const char *value) {
  size_t nl = strlen(name), vl = strlen(value);
  return h->nlen == nl && memcmp(c->head.data + h->noff, name, nl) == 0 && h->vlen == vl &&
         strncasecmp(c->head.data + h->voff, value, vl) == 0;
}

static int on_headers_complete(llhttp_t *p) {
  conn *c = p->data;
  c->in_trailers = true;
  c->phase = PHASE_BODY;
  tph__arm(c, c->srv->limits.body_timeout_ms);
  if ((p->flags & F_CONTENT_LENGTH) && p->content_length > (uint64_t)c->srv->limits.max_body_bytes)
    return limit_error(c, 413, "body_too_large", "the request body is larger than allowed");
  for (int i = 0; i < c->nspans; i++)
    if (header_is(c, &c->spans[i], "expect", "100-continue") && !c->queue_head && !c->writing) {
      tp_buf_adds(&c->out, "HTTP/1.1 100 Continue\r\n\r\n");
      tph__mark_pending(c);  /* written when this iteration ends, before its body is read */
    }
  return 0;
}

static int on_body(llhttp_t *p, const char *at, size_t n) {
  conn *c = p->data;
  if (c->body.len + n > (size_t)c->srv->limits.max_body_bytes)
    return limit_error(c, 413, "body_too_large", "the request body is larger than allowed");
  tp_buf_add(&c->body, at, n);
  return 0;
}

static void reset_request(conn *c) {
  tp_buf_reset(&c->head);
  tp_buf_reset(&c->body);
  if (c->body.cap > 256 * 1024) tp_buf_free(&c->body);
  c->target_len = 0;
  c->nspans = 0;
  c->field_open = false;
  c->in_trailers = false;
  c->head_bytes = 0;
}

static int on_message_complete(llhttp_t *p) {
  conn *c = p->data;
  tph_server *s = c->srv;
  tph_header *hs = s->scratch_headers;
  tph_request req = {.method = llhttp_method_name((llhttp_method_t)p->method),
                     .target = c->head.data, .target_len = c->target_len,
                     .headers = hs, .nheaders = c->nspans,
                     .body = c->body.data ? c->body.data : "", .body_len = c->body.len};
  tph_response *r = tph__response_new(s);
  for (int i = 0; i < c->nspans; i++) {
    header_span *sp = &c->spans[i];
    hs[i] = (tph_header){c->head.data + sp->noff, sp->nlen, c->head.data + sp->voff, sp->vlen};
  }
  const tph_header *rid = tph_find_header(&req, "x-request-id");
  if (rid && tph__valid_request_id(rid->value, rid->vlen)) {
    memcpy(r->request_id, rid->value, rid->vlen);
    r->request_id[rid->vlen] = '\0';
  } else {
    tph__make_request_id(s, r->request_id);
  }
  req.request_id = r->request_id;
  req.peer = c->peer;
  r->method = req.method;
  r->keep_alive = llhttp_should_keep_alive(p) && !s->stopping;
  s->hooks.handle(s->hooks.ud, &req, r);
  tph__enqueue(c, r);
  reset_request(c);
  c->phase = PHASE_IDLE;
  tph__arm(c, s->limits.idle_timeout_ms);
  if (c->close_after) return HPE_PAUSED;  /* parse nothing after a closing request */
  /* a pipelining client may not pile up answers faster than it reads them:
  ** stop parsing, keep the rest, go on once the answers are sent */
  if (c->nqueued >= MAX_QUEUED ||
      c->queued_bytes + c->out.len + c->inflight.len > MAX_OUTPUT_BYTES)
    return HPE_PAUSED;
  return 0;
}

void tph__parser_settings(llhttp_settings_t *st) {
  llhttp_settings_init(st);
  st->on_message_begin = on_message_begin;
  st->on_url = on_url;
  st->on_header_field = on_header_field;
  st->on_header_field_complete = on_header_field_complete;
  st->on_header_value = on_header_value;
  st->on_header_value_complete = on_header_value_complete;
  st->on_headers_complete = on_headers_complete;
  st->on_body = on_body;
  st->on_message_complete = on_message_complete;
}
