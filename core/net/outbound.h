/*
** outbound.h - HTTP and HTTPS calls out of the host, on the event loop.
**
** What: tpo_send starts a request and returns at once; done is called from
** the loop when the answer is in, or when the call failed (could not
** connect, timed out, answered more than it may, TLS did not verify). One
** client serves the whole host and any number of calls at once.
**
** Why libcurl's multi interface, driven by libuv: a call to a slow upstream
** (a payment provider answering in two seconds, an ERP that hangs) must never
** hold up a request being served. curl_multi_socket_action tells the loop
** which sockets to watch (a uv_poll each) and when to wake it (one uv_timer);
** the loop tells curl when a socket is ready. Nothing here blocks, and a
** thousand calls in flight cost a thousand sockets, not a thousand threads.
**
** Connections are kept open between calls (at most TPO_IDLE_CONNECTIONS idle
** ones): curl's default keeps four times as many as calls are in flight, so
** after a burst it closed nearly every connection and the next burst opened
** them again, a TCP handshake (and a TLS one) per call.
**
** The rules every call keeps: TLS peers verified (the system's CAs, or the
** ca_file given), only http and https, no redirects followed (a redirect is
** an answer like any other), no signals, a whole-call timeout, and a cap on
** the answer's body (more is a failure, "response_too_large"). Nothing that
** was sent (headers carry secrets) is ever logged here.
*/
#ifndef TP_OUTBOUND_H
#define TP_OUTBOUND_H

#include <stddef.h>
#include <stdint.h>
#include <uv.h>

#include "base/buf.h"

#define TPO_IDLE_CONNECTIONS 256  /* kept open for the next calls (CURLMOPT_MAXCONNECTS) */

typedef struct tpo_client tpo_client;

typedef struct tpo_request {
  const char *method;             /* GET, POST, PUT, PATCH, DELETE */
  const char *url;                /* http:// or https:// */
  const char *const *headers;     /* "Name: value" lines */
  int nheaders;
  const char *body;
  size_t body_len;
  int64_t timeout_ms;             /* the whole call, connecting included */
  size_t max_response_bytes;
  const char *ca_file;            /* NULL: the system's CA store */
} tpo_request;

typedef struct tpo_response {
  int status;                     /* the HTTP status; 0 when no answer came */
  const char *error;              /* NULL when an answer came, else a code: timeout,
                                  ** connect_failed, tls_failed, response_too_large,
                                  ** transport_failed, cancelled */
  const char *message;            /* for people: curl's explanation; "" with no error */
  const char *body;               /* the answer's body (NUL-terminated), valid during done */
  size_t body_len;
  const char *content_type;       /* NULL if none */
  double seconds;                 /* from tpo_send to done */
} tpo_response;

typedef void (*tpo_done)(void *ud, const tpo_response *res);

/* A client on loop. NULL if libcurl cannot be set up. */
tpo_client *tpo_new(uv_loop_t *loop);
/* Starts req: done(ud, ...) is called exactly once, from the loop, never
** from inside tpo_send. 0, or -1 with err when the call cannot even start
** (a bad URL or method); then done is not called. */
int tpo_send(tpo_client *c, const tpo_request *req, tpo_done done, void *ud, char *err,
             size_t errcap);
/* Starts the calls sent since, now (curl would otherwise wait for its timer,
** at least 1 ms, and then start every call sent meanwhile at once: a burst
** that holds up the loop). done may be called from inside, for a call that
** failed at once. */
void tpo_kick(tpo_client *c);
/* Calls in flight. */
int tpo_inflight(const tpo_client *c);
/* Ends every call in flight (each done is called with error "cancelled")
** and closes the client; its memory is freed once the loop has run the
** handles' close callbacks (uv_run after it, as at shutdown). */
void tpo_free(tpo_client *c);

/* ---- one blocking call, for a libuv worker (never the loop)
**
** Why beside the multi client: a worker that carries a file in pieces
** (host/cluster.c, a brand moving between machines) writes each piece to its
** file as it arrives, so the loop never sees the bytes and no piece is held
** whole in memory. The same rules hold (http only, no redirects, no signals,
** a whole-call timeout). */

/* Called with each piece of the answer's body as it arrives; nonzero ends
** the call (the fetch fails with error "sink_failed"). */
typedef int (*tpo_sink)(void *ud, const void *p, size_t n);

/* GETs url (http:// only) with the header lines; a 2xx answer's body goes
** to sink (another status's, at most 4 KiB of it, into errbody, when
** given), more than max_bytes of it ends the call. 0 with the status in
** *status, or -1 with err (no answer came, the sink failed, too large). */
int tpo_fetch(const char *url, const char *const *headers, int nheaders, int64_t timeout_ms,
              size_t max_bytes, tpo_sink sink, void *ud, int *status, tp_buf *errbody, char *err,
              size_t errcap);

#endif
