/*
** sender.c - makes the calls out that plugins wrote to their tenant's outbox
** (tp.http.request, store/outbox.h) and hands each answer to the plugin.
**
** The way of a call: the handler's transaction commits with the row in it;
** before the loop next polls (a uv_prepare handle: no request is being
** answered then, so a failed commit here cannot be mistaken for one of
** theirs) the sender leases the due rows in a transaction of its own, commits
** it, and only then starts the calls (net/outbound.h). An answer, or a
** failure, joins the tenant's batch: a final one deletes the row and, when the
** call named on_reply, schedules that job with the reply (TpHttpReply); a
** timeout, a failed connection, a 429 or a 5xx with attempts left puts the row
** back with a doubling delay. One uv_timer wakes the sender for the earliest
** retry or lease that ends.
**
** Every attempt carries the call's Idempotency-Key; a kill -9 at any point
** leaves the row in the outbox, leased or not, and the next start sends it.
**
** WeChat's server APIs (a destination with token = {...}) take an
** access_token in the query, got from /cgi-bin/stable_token with the app
** secret. The sender keeps one per tenant and destination, in memory only:
** a call that finds none valid waits for the one fetch in flight (token_cache
** below), and is then sent with access_token=... appended to its URL; the
** token is kept until shortly before its expires_in, and an answer with
** errcode 40001 or 42001 (invalid, expired) drops it and sends the call once
** more with a new one. Neither the secret nor the token is in the outbox, a
** log line, a reply or a recorded run: the URL is never logged.
*/
#include "host/callout.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/clock.h"
#include "base/crypto.h"
#include "base/log.h"
#include "base/utf8.h"
#include "base/version.h"
#include "net/outbound.h"

#define MAX_INFLIGHT 1024          /* calls in flight, the whole host */
#define LEASE_GRACE_MS 5000        /* a lease outlives its call's timeout by this */
#define RETRY_MAX_MS (5 * 60 * 1000)
/* What one pass before the poll may do, so that the requests waiting in the
** poll are never queued behind a whole burst (a POST may make 50 calls, and
** their answers come back together): calls started, and time spent writing
** answers. The rest waits for the next pass, which comes right after the
** poll; the idle handle keeps that poll from sleeping meanwhile. */
#define SEND_PER_PASS 4
#define SETTLE_SLICE_NS (50 * 1000)

typedef struct token_cache token_cache;

typedef struct tp_sender {
  tp_host *h;
  tpo_client *client;
  uv_prepare_t prepare;
  uv_timer_t timer;
  uv_idle_t idle;                  /* running while a pass left work for the next */
  token_cache *tokens;
  struct tp_call_out *settle_head; /* outcomes not yet written, oldest first */
  struct tp_call_out **settle_tail;
  int64_t timer_due_ms;            /* wall time it is armed for; INT64_MAX: idle */
  int open_handles;
  bool closing;
} tp_sender;

typedef struct tp_call_out call;  /* one call in flight (host/callout.h) */

/* The access token of one tenant's destination (token = {...}). */
struct token_cache {
  token_cache *next;
  tp_sender *s;
  char tenant[TPT_MAX_ID + 1], dest[33];
  char *url;                       /* where to fetch it: the destination's url + path */
  char *appid, *secret;            /* the secret: a copy, wiped when freed */
  int64_t timeout_ms;
  char *token;                     /* NULL: none valid */
  int64_t expires_ms;              /* wall time it is dropped (a little before WeChat's) */
  bool fetching;
  call *waiting;                   /* calls waiting for it, through call.next */
};

/* ---- after an attempt */

static int64_t retry_delay(const call *c) {
  int64_t d = c->retry_base_ms;
  for (int i = 1; i < c->attempt && d < RETRY_MAX_MS; i++) d *= 2;
  return d < RETRY_MAX_MS ? d : RETRY_MAX_MS;
}

static void log_attempt(const call *c, const tpo_response *res, const char *outcome) {
  tp_buf *line = tp_log_begin(outcome[0] == 'o' ? TP_LOG_INFO : TP_LOG_WARN, "call out");
  if (!line) return;
  tp_log_str(line, "tenant", c->t->conf->id);
  tp_log_str(line, "plugin", c->plugin);
  tp_log_str(line, "to", c->dest);
  tp_log_int(line, "call_id", c->id);
  tp_log_int(line, "attempt", c->attempt);
  if (res && res->status) tp_log_int(line, "status", res->status);
  if (c->errcode && res && !res->error && res->status >= 200 && res->status < 300)
    tp_log_int(line, "errcode", tp__answer_errcode(res));
  const char *error = c->error ? c->error : res ? res->error : NULL;
  if (error) tp_log_str(line, "error", error);
  if (res) tp_log_num(line, "ms", res->seconds * 1000);
  tp_log_str(line, "outcome", outcome);
  tp_log_end(line);
}

/* Writes the attempt's outcome into the tenant's batch (write_outcomes
** commits it). A database failure leaves the row leased: it goes again when
** the lease ends. */
static void write_outcome(call *c, const tpo_response *res) {
  tp_sender *s = c->s;
  tp_host *h = s->h;
  tp_tenant *t = c->t;
  bool answered = !c->error && res && !res->error;
  int status = answered ? res->status : 0;
  /* a timeout, a refused connection, a 429 or a 5xx may pass; an answer too
  ** large will be as large again */
  bool too_large = res && res->error && strcmp(res->error, "response_too_large") == 0;
  bool retryable = !c->error && !too_large && (!answered || status == 429 || status >= 500);
  bool ok = answered && status >= 200 && status < 300;
  long long errcode = ok && c->errcode ? tp__answer_errcode(res) : 0;
  if (errcode != 0) {  /* WeChat's 200 with an error: -1 is "system busy, try again" */
    ok = false;
    retryable = errcode == -1;
  }
  bool final = !retryable || c->attempt >= c->max_attempts;
  int64_t now = tp_clock_wall_ms();  /* calls out keep real time, also on a test clock */
  if (res) tpm_call_out(h->metrics, t->conf->id, c->dest, res->seconds, ok);
  if (tp__join_batch(h, t) != 0 || tps_savepoint(&t->db) != 0) {
    log_attempt(c, res, "not recorded: the database is unavailable");
    return;
  }
  int rc = 0;
  char err[256] = "";
  if (!final) {
    char why[64];
    snprintf(why, sizeof why, "%s", answered ? "" : res ? res->error : c->error);
    if (answered) snprintf(why, sizeof why, "status %d", status);
    if (errcode != 0) snprintf(why, sizeof why, "errcode %lld", errcode);
    rc = tpob_retry(&t->outbox, c->id, now + retry_delay(c), why);
  } else {
    if (c->has_reply) {
      tp_buf payload;
      tp_buf_init(&payload);
      tp__reply_json(c, res, ok, &payload);
      tpq_job job = {.name = c->on_reply, .payload = payload.data, .payload_len = payload.len,
                     .due_ms = tp__now(t), .max_attempts = h->cfg->limits.job_max_attempts};
      int64_t job_id;
      rc = tpq_schedule(&t->queue, c->plugin, &job, tp__now(t), &job_id, err, sizeof err);
      tp_buf_free(&payload);
      t->queue_touched = true;
    }
    if (rc == 0)
      rc = c->has_reply || answered ? tpob_remove(&t->outbox, c->id)
                                    : tpob_bury(&t->outbox, c->id, now, c->error ? c->error : res->error);
  }
  if (rc == 0) tps_release(&t->db);
  else tps_rollback_to(&t->db);
  log_attempt(c, res, rc != 0 ? "not recorded" : !final ? "retry" : ok ? "ok" : "given up");
  t->outbox_touched = h->outbox_touched = true;  /* its next due time is read after the commit */
}

/* Takes c and its attempt's outcome (res: NULL when it could not be sent)
** for the next pass, which writes it. Not written here: curl calls back in
** the middle of the poll, where the write would join the batch of the
** requests being answered, and their answers would then wait for it to
** reach the disk. */
static void settle(call *c, const tpo_response *res) {
  tp_sender *s = c->s;
  if (res) {
    c->has_outcome = true;
    c->outcome = *res;
    snprintf(c->outcome_message, sizeof c->outcome_message, "%s", res->message ? res->message : "");
    c->outcome.message = c->outcome_message;
    if (res->body && res->body_len > 0) {
      c->outcome_body = malloc(res->body_len + 1);
      if (c->outcome_body) {
        memcpy(c->outcome_body, res->body, res->body_len);
        c->outcome_body[res->body_len] = '\0';
      } else {
        c->outcome.error = "transport_failed";  /* kept as a failed attempt: it is retried */
        c->outcome.status = 0;
      }
    }
    c->outcome.body = c->outcome_body ? c->outcome_body : "";
    if (!c->outcome_body) c->outcome.body_len = 0;
    c->outcome_ctype = res->content_type ? strdup(res->content_type) : NULL;
    c->outcome.content_type = c->outcome_ctype;
  }
  c->settle_next = NULL;
  *s->settle_tail = c;
  s->settle_tail = &c->settle_next;
}

/* The sender's own writes (leases, outcomes) need not reach the disk before
** anything is answered: a start ends every lease, and an outcome lost with
** the machine's power leaves its row in the outbox, so the call is sent
** again with the same Idempotency-Key, as after a kill between the answer
** and its commit. So they commit with synchronous=NORMAL: not synced at
** commit, but synced before any checkpoint and by the next durable commit
** (the WAL is one sequence). A batch already open is committed first, as it
** is: it holds writes that must be durable. */
static bool lazy_begin(tp_host *h, tp_tenant *t) {
  if (t->dirty) tp__flush_batch(h);
  return tps_set_durable(&t->db, false) == 0;
}

static void lazy_end(tp_tenant *t, bool lazy) {
  if (!lazy || tps_set_durable(&t->db, true) == 0) return;
  /* answering writes that may not be on disk would break the host's one
  ** promise; a restart is the way back to durable commits */
  tp_buf *line = tp_log_begin(TP_LOG_ERROR, "cannot make commits durable again; stopping");
  tp_log_str(line, "tenant", t->conf->id);
  tp_log_end(line);
  tp_log_flush();
  abort();
}

/* Writes the queued outcomes, a brand at a time, each brand's in one commit,
** for at most SETTLE_SLICE_NS (all of them when draining at stop). */
static void write_outcomes(tp_sender *s, bool all) {
  tp_host *h = s->h;
  uint64_t start = tp_clock_mono_ns();
  while (s->settle_head && (all || tp_clock_mono_ns() - start < SETTLE_SLICE_NS)) {
    tp_tenant *t = s->settle_head->t;
    bool lazy = lazy_begin(h, t);
    while (s->settle_head && s->settle_head->t == t &&
           (all || tp_clock_mono_ns() - start < SETTLE_SLICE_NS)) {
      call *c = s->settle_head;
      s->settle_head = c->settle_next;
      if (!s->settle_head) s->settle_tail = &s->settle_head;
      write_outcome(c, c->has_outcome ? &c->outcome : NULL);
      tp__call_free(c);
    }
    tp__flush_batch(h);
    lazy_end(t, lazy);
  }
  tp_host_iteration_end(h);
  tp__arm_timer(h);  /* the replies are jobs */
}

static void send_call(tp_sender *s, call *c);

/* An answer: settled, unless WeChat said the token was invalid or expired
** (40001, 42001) the first time, when the token goes and the call is sent
** again, within the same attempt, with a new one. */
static void on_answer(void *ud, const tpo_response *res) {
  call *c = ud;
  if (!c->s->closing && c->tok && !c->token_retried && !res->error && res->status == 200) {
    long long errcode = tp__answer_errcode(res);
    if (errcode == 40001 || errcode == 42001) {
      token_cache *tok = c->tok;
      if (tok->token && c->sent_token && strcmp(tok->token, c->sent_token) == 0) {
        tp__wipe_free(tok->token);  /* a call answered later with the old one keeps the new one */
        tok->token = NULL;
      }
      c->token_retried = true;
      send_call(c->s, c);
      return;
    }
  }
  if (c->s->closing) tp__call_free(c);  /* cancelled at shutdown: the lease sends it again */
  else settle(c, res);
}

/* ---- access tokens (token = {...}) */

/* The token cache of t's destination d, made or brought up to date with the
** config (a reload may change the appid or the secret: the token goes). */
static token_cache *token_for(tp_sender *s, const tp_tenant *t, const tpc_destination *d) {
  token_cache *tok = s->tokens;
  while (tok && (strcmp(tok->tenant, t->conf->id) != 0 || strcmp(tok->dest, d->name) != 0))
    tok = tok->next;
  if (!tok) {
    if (!(tok = calloc(1, sizeof *tok))) return NULL;
    snprintf(tok->tenant, sizeof tok->tenant, "%s", t->conf->id);
    snprintf(tok->dest, sizeof tok->dest, "%s", d->name);
    tok->s = s;
    tok->next = s->tokens;
    s->tokens = tok;
  }
  size_t ulen = strlen(d->url) + strlen(d->token_path) + 1;
  char *url = malloc(ulen);
  if (!url) return NULL;
  snprintf(url, ulen, "%s%s", d->url, d->token_path);
  if (!tok->url || strcmp(tok->url, url) != 0 || strcmp(tok->appid, d->token_appid) != 0 ||
      strcmp(tok->secret, d->token_secret->value) != 0) {
    free(tok->url);
    free(tok->appid);
    tp__wipe_free(tok->secret);
    tp__wipe_free(tok->token);
    tok->token = NULL;
    tok->url = url;
    tok->appid = strdup(d->token_appid);
    tok->secret = strdup(d->token_secret->value);
    url = NULL;
  }
  free(url);
  tok->timeout_ms = d->timeout_ms;
  return tok;
}

static void log_token(const token_cache *tok, const tpo_response *res, long long errcode,
                      long long expires_in, const char *outcome) {
  tp_buf *line = tp_log_begin(outcome[0] == 'o' ? TP_LOG_INFO : TP_LOG_WARN, "access token");
  if (!line) return;
  tp_log_str(line, "tenant", tok->tenant);
  tp_log_str(line, "to", tok->dest);
  if (res && res->status) tp_log_int(line, "status", res->status);
  if (res && res->error) tp_log_str(line, "error", res->error);
  if (errcode) tp_log_int(line, "errcode", errcode);
  if (expires_in) tp_log_int(line, "expires_in", expires_in);
  tp_log_str(line, "outcome", outcome);
  tp_log_end(line);
}

/* Sends c with tok's token appended to its URL's query. */
static void send_with_token(tp_sender *s, call *c, const token_cache *tok) {
  size_t n = strlen(c->url);
  tp_buf url;
  tp_buf_init(&url);
  tp_buf_add(&url, c->url, n);
  tp_buf_addc(&url, strchr(c->url, '?') ? '&' : '?');
  tp_buf_adds(&url, "access_token=");
  tp_buf_adds(&url, tok->token);  /* WeChat's tokens are URL-safe: checked when it came */
  tp__wipe_free(c->sent_token);
  c->sent_token = strdup(tok->token);
  tpo_request req = {.method = c->method, .url = tp_buf_cstr(&url), .headers = c->lines,
                     .nheaders = c->nlines, .body = c->body, .body_len = c->body_len,
                     .timeout_ms = c->timeout_ms, .max_response_bytes = c->max_response_bytes,
                     .ca_file = c->ca_file};
  char err[200];
  int rc = tpo_send(s->client, &req, on_answer, c, err, sizeof err);
  memset(url.data, 0, url.cap);
  tp_buf_free(&url);
  if (rc == 0) return;
  c->error = "transport_failed";
  settle(c, NULL);
}

/* The calls waiting for tok: sent with its token, or, when none came, put
** back for a retry (error token_failed) or, at shutdown, left to their
** leases. */
static void release_waiting(tp_sender *s, token_cache *tok) {
  call *c = tok->waiting;
  tok->waiting = NULL;
  while (c) {
    call *next = c->next;
    c->next = NULL;
    if (s->closing) {
      tp__call_free(c);
    } else if (tok->token) {
      send_with_token(s, c, tok);
    } else {
      tpo_response failed = {.error = "token_failed", .message = ""};
      settle(c, &failed);
    }
    c = next;
  }
}

/* WeChat's answer to the token request: {"access_token":"...","expires_in":7200},
** or an errcode. */
static void on_token(void *ud, const tpo_response *res) {
  token_cache *tok = ud;
  tp_sender *s = tok->s;
  tok->fetching = false;
  long long errcode = 0, expires_in = 0;
  if (!res->error && res->status == 200) {
    errcode = tp__answer_errcode(res);
    const char *v = tp__json_value(res->body, res->body_len, "access_token");
    const char *e = tp__json_value(res->body, res->body_len, "expires_in");
    expires_in = e ? strtoll(e, NULL, 10) : 0;
    size_t n = 0;
    if (v && *v == '"') {
      v++;
      while (v + n < res->body + res->body_len &&
             (strchr("-_.~", v[n]) || (v[n] >= '0' && v[n] <= '9') || (v[n] >= 'a' && v[n] <= 'z') ||
              (v[n] >= 'A' && v[n] <= 'Z')) && v[n])
        n++;
    }
    if (errcode == 0 && n > 0 && n <= 2048 && v[n] == '"' && expires_in > 0) {
      tp__wipe_free(tok->token);
      tok->token = strndup(v, n);
      /* dropped a tenth of its life early, at most 5 minutes: stable_token
      ** hands out a new one in the last 5 minutes */
      int64_t margin = expires_in * 100 < 300000 ? expires_in * 100 : 300000;
      tok->expires_ms = tp_clock_wall_ms() + expires_in * 1000 - margin;
    }
  }
  if (!s->closing) log_token(tok, res, errcode, tok->token ? expires_in : 0, tok->token ? "ok" : "failed");
  release_waiting(s, tok);
}

/* Sends c now if its destination's token is valid, else queues it for the
** fetch (starting one if none is in flight). */
static void send_or_wait(tp_sender *s, call *c) {
  token_cache *tok = c->tok;
  if (tok->token && tp_clock_wall_ms() >= tok->expires_ms) {
    tp__wipe_free(tok->token);
    tok->token = NULL;
  }
  if (tok->token) {
    send_with_token(s, c, tok);
    return;
  }
  c->next = tok->waiting;
  tok->waiting = c;
  if (tok->fetching) return;
  tp_buf body;
  tp_buf_init(&body);
  tp_buf_adds(&body, "{\"grant_type\":\"client_credential\",\"appid\":");
  tp_buf_add_json_str(&body, tok->appid, strlen(tok->appid));
  tp_buf_adds(&body, ",\"secret\":");
  tp_buf_add_json_str(&body, tok->secret, strlen(tok->secret));
  tp_buf_adds(&body, ",\"force_refresh\":false}");
  static const char *const headers[] = {"Content-Type: application/json",
                                        "User-Agent: tidepool/" TIDEPOOL_VERSION};
  tpo_request req = {.method = "POST", .url = tok->url, .headers = headers, .nheaders = 2,
                     .body = body.data, .body_len = body.len, .timeout_ms = tok->timeout_ms,
                     .max_response_bytes = 65536, .ca_file = c->ca_file};
  char err[200];
  tok->fetching = true;
  int rc = tpo_send(s->client, &req, on_token, tok, err, sizeof err);
  memset(body.data, 0, body.cap);
  tp_buf_free(&body);
  if (rc != 0) {
    tok->fetching = false;
    tpo_response failed = {.error = "transport_failed", .message = ""};
    log_token(tok, &failed, 0, 0, "failed");
    release_waiting(s, tok);
  }
}

/* ---- taking due calls */

typedef struct taking {
  tp_sender *s;
  tp_tenant *t;
  call **calls;
  int n;
} taking;

static int64_t take_row(void *ud, const tpob_row *row) {
  taking *k = ud;
  call *c = calloc(1, sizeof *c);
  if (!c) return 0;
  c->s = k->s;
  c->t = k->t;
  k->t->calls_out++;  /* tp__call_free counts it out: the brand stays open meanwhile */
  c->id = row->id;
  snprintf(c->plugin, sizeof c->plugin, "%s", row->plugin);
  snprintf(c->dest, sizeof c->dest, "%s", row->dest);
  c->has_reply = row->on_reply != NULL;
  if (row->on_reply) snprintf(c->on_reply, sizeof c->on_reply, "%s", row->on_reply);
  c->context = row->context ? strdup(row->context) : NULL;
  c->attempt = row->attempts + 1;
  c->max_attempts = row->max_attempts;
  tp_buf_init(&c->headers);
  const tpc_destination *d = tpc_find_destination(k->t->conf, row->dest);
  int64_t lease = 1000;
  if (!d || !tpc_destination_allows(d, row->plugin)) {
    c->error = "destination_unknown";  /* the brand's config changed since the call was made */
    c->retry_base_ms = 1000;
  } else {
    c->retry_base_ms = d->retry_base_ms;
    c->errcode = d->errcode;
    c->dest_conf = d;
    if (d->token_path && !(c->tok = token_for(k->s, k->t, d))) c->error = "transport_failed";
    c->timeout_ms = d->timeout_ms;
    c->max_response_bytes = (size_t)d->max_response_bytes;
    c->ca_file = d->ca_file;
    lease = d->timeout_ms + LEASE_GRACE_MS;
    tp_buf url;  /* the destination's url, then the path with its secrets put in */
    tp_buf_init(&url);
    tp_buf_adds(&url, d->url);
    char uerr[200];
    if (tpc_expand_secrets_url(d, row->path, strlen(row->path), &url, uerr, sizeof uerr) != 0) {
      c->error = "secret_unknown";  /* the config changed since the call was made */
      snprintf(c->message, sizeof c->message, "%s", uerr);
    }
    c->url = strdup(tp_buf_cstr(&url));
    memset(url.data, 0, url.cap);  /* it may hold a secret */
    tp_buf_free(&url);
    if (row->body) {
      c->body = malloc(row->body_len + 1);
      memcpy(c->body, row->body, row->body_len);
      c->body_len = row->body_len;
    }
    snprintf(c->method, sizeof c->method, "%s", row->method);
    char err[200];
    if (tpc_expand_secrets(d, row->headers, strlen(row->headers), &c->headers, err, sizeof err) != 0) {
      c->error = "secret_unknown";
      snprintf(c->message, sizeof c->message, "%s", err);
    } else {
      tp__build_headers(c, row->key, d);
    }
  }
  k->calls[k->n++] = c;
  return lease;
}

static void send_call(tp_sender *s, call *c) {
  if (!c->error && c->tok) {
    send_or_wait(s, c);
    return;
  }
  if (!c->error) {
    tpo_request req = {.method = c->method, .url = c->url, .headers = c->lines,
                       .nheaders = c->nlines, .body = c->body, .body_len = c->body_len,
                       .timeout_ms = c->timeout_ms, .max_response_bytes = c->max_response_bytes,
                       .ca_file = c->ca_file};
    char err[200];
    if (tpo_send(s->client, &req, on_answer, c, err, sizeof err) == 0) return;
    c->error = "transport_failed";
  }
  settle(c, NULL);
}

/* Leases t's due calls, commits the leases, then sends them. */
static void kick(tp_sender *s, tp_tenant *t) {
  tp_host *h = s->h;
  int room = MAX_INFLIGHT - tpo_inflight(s->client);
  if (room <= 0) return;  /* the answers' settling touches the outbox again */
  if (room > SEND_PER_PASS) room = SEND_PER_PASS;
  taking k = {.s = s, .t = t, .calls = calloc((size_t)room, sizeof(call *))};
  /* the leases' commit waiting for the disk blocked the loop at every kick */
  bool lazy = lazy_begin(h, t);
  if (!k.calls || tp__join_batch(h, t) != 0) {
    free(k.calls);
    lazy_end(t, lazy);
    return;
  }
  int leased = tpob_take(&t->outbox, t->conf->id, tp_clock_wall_ms(), room, take_row, &k);
  bool committed = tp__flush_batch(h) == 0 && leased >= 0;
  lazy_end(t, lazy);
  for (int i = 0; i < k.n; i++) {
    if (committed) send_call(s, k.calls[i]);
    else tp__call_free(k.calls[i]);  /* not leased after all: they stay due */
  }
  free(k.calls);
  t->outbox_touched = h->outbox_touched = true;
}

/* ---- the loop's side */

static void on_due(uv_timer_t *timer);

static void arm(tp_sender *s) {
  tp_host *h = s->h;
  int64_t earliest = INT64_MAX;
  for (int i = 0; i < h->ntenants; i++)
    if (h->tenants[i].outbox_due_ms < earliest) earliest = h->tenants[i].outbox_due_ms;
  if (earliest == s->timer_due_ms) return;
  s->timer_due_ms = earliest;
  if (earliest == INT64_MAX) {
    uv_timer_stop(&s->timer);
    return;
  }
  int64_t delay = earliest - tp_clock_wall_ms();
  uv_timer_start(&s->timer, on_due, delay > 0 ? (uint64_t)delay + 1 : 1, 0);
}

static void on_due(uv_timer_t *timer) {
  tp_sender *s = timer->data;
  s->timer_due_ms = INT64_MAX;
  int64_t now = tp_clock_wall_ms();
  for (int i = 0; i < s->h->ntenants; i++)
    if (s->h->tenants[i].outbox_due_ms <= now) s->h->tenants[i].outbox_touched = s->h->outbox_touched = true;
  /* the prepare handle, right after the timers, takes them. A uv timer counts
  ** from the loop's cached time, which may lag the wall clock: one that fired
  ** a little early is armed again for what is not due yet */
  arm(s);
}

static void on_idle(uv_idle_t *idle) { (void)idle; }

/* Keeps the next poll from sleeping while this pass left work behind. */
static void keep_going(tp_sender *s, bool more) {
  if (more) uv_idle_start(&s->idle, on_idle);
  else uv_idle_stop(&s->idle);
}

/* A pass, before the loop polls: write the answers that came back, then take
** what is due and start it. No request is being answered now, so a failed
** commit is ours alone. */
static void on_prepare(uv_prepare_t *p) {
  tp_sender *s = p->data;
  tp_host *h = s->h;
  if (s->settle_head) write_outcomes(s, false);
  if (!h->outbox_touched || h->running_tasks) {
    keep_going(s, s->settle_head != NULL);
    return;
  }
  h->outbox_touched = false;
  bool more = false;
  for (int i = 0; i < h->ntenants; i++) {
    tp_tenant *t = &h->tenants[i];
    if (!t->outbox_touched) continue;
    t->outbox_touched = false;
    int64_t now = tp_clock_wall_ms();
    if (tp__brand_use(h, t, "call out") != 0) {  /* a closed brand's call is due: open it */
      t->outbox_due_ms = t->owned ? now + 60000 : INT64_MAX;  /* moved away: its new node calls */
      continue;
    }
    if (t->dirty) tp__flush_batch(h);
    t->outbox_due_ms = tpob_next_due(&t->outbox);
    if (t->outbox_due_ms <= now) {
      kick(s, t);
      t->outbox_due_ms = tpob_next_due(&t->outbox);
      /* more due than one pass sends: the next pass takes them */
      t->outbox_touched = t->outbox_due_ms <= now && tpo_inflight(s->client) < MAX_INFLIGHT;
      if (t->outbox_touched) more = h->outbox_touched = true;
    }
  }
  tpo_kick(s->client);  /* this pass's calls go now, not all together at curl's next timer */
  tp_host_iteration_end(h);
  arm(s);
  keep_going(s, more || s->settle_head != NULL);
}

static void on_closed(uv_handle_t *hd) {
  tp_sender *s = hd->data;
  if (--s->open_handles > 0) return;
  while (s->tokens) {
    token_cache *tok = s->tokens;
    s->tokens = tok->next;
    free(tok->url);
    free(tok->appid);
    tp__wipe_free(tok->secret);
    tp__wipe_free(tok->token);
    free(tok);
  }
  free(s);
}

void tp__sender_start(tp_host *h) {
  tp_sender *s = calloc(1, sizeof *s);
  if (!s) return;
  s->h = h;
  s->client = tpo_new(h->loop);
  if (!s->client) {
    tp_log_msg(TP_LOG_ERROR, "calls out are off", "libcurl could not be set up");
    free(s);
    return;
  }
  uv_prepare_init(h->loop, &s->prepare);
  s->prepare.data = s;
  uv_prepare_start(&s->prepare, on_prepare);
  uv_timer_init(h->loop, &s->timer);
  s->timer.data = s;
  uv_idle_init(h->loop, &s->idle);
  s->idle.data = s;
  s->settle_tail = &s->settle_head;
  s->timer_due_ms = INT64_MAX;
  s->open_handles = 3;
  h->sender = s;
  h->outbox_touched = true;  /* what a start found due goes now */
}

void tp__sender_stop(tp_host *h) {
  tp_sender *s = h->sender;
  if (!s) return;
  write_outcomes(s, true);  /* what came back is written, not sent again */
  h->sender = NULL;
  s->closing = true;
  tpo_free(s->client);  /* in flight: cancelled, their leases end at the next start */
  uv_prepare_stop(&s->prepare);
  uv_timer_stop(&s->timer);
  uv_idle_stop(&s->idle);
  uv_close((uv_handle_t *)&s->prepare, on_closed);
  uv_close((uv_handle_t *)&s->timer, on_closed);
  uv_close((uv_handle_t *)&s->idle, on_closed);
}
