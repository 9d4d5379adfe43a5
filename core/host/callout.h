/*
** callout.h - one call out in flight, between sender.c (which takes, sends and
** settles calls) and callout.c (what a call carries and what its reply says).
*/
#ifndef TP_CALLOUT_H
#define TP_CALLOUT_H

#include "host/host_int.h"
#include "net/outbound.h"

struct tp_sender;
struct token_cache;

/* One call in flight. */
struct tp_call_out {
  struct tp_call_out *next;        /* waiting for a token */
  struct token_cache *tok;         /* NULL: the destination takes none */
  char *sent_token;                /* the token this attempt carried (wiped when freed) */
  bool token_retried;              /* 40001/42001 already led to one more try */
  bool errcode;                    /* the destination's errcode semantics */
  const tpc_destination *dest_conf; /* its drop list; NULL: the destination is gone */
  struct tp_sender *s;
  tp_tenant *t;
  int64_t id;
  char plugin[33], dest[33], on_reply[TPQ_MAX_NAME + 1];
  bool has_reply;
  char *context;                   /* JSON, or NULL */
  int attempt, max_attempts;
  int64_t retry_base_ms;
  const char *error;               /* set before sending: it cannot be sent */
  char message[256];
  char method[8];
  char *url, *body;
  size_t body_len;
  tp_buf headers;                  /* "Name: value" lines, secrets put in, NUL-separated */
  const char **lines;
  int nlines;
  int64_t timeout_ms;
  size_t max_response_bytes;
  const char *ca_file;
  /* the attempt's outcome, kept from curl's callback until the sender writes
  ** it (sender.c: settle, then write_outcomes) */
  struct tp_call_out *settle_next;
  bool has_outcome;
  tpo_response outcome;            /* its body, content type and message point below */
  char *outcome_body, *outcome_ctype;
  char outcome_message[200];
};
typedef struct tp_call_out tp_call_out;

/* Frees c (its headers held secrets: wiped first). */
void tp__call_free(tp_call_out *c);
/* Wipes a string that held a secret, then frees it. */
void tp__wipe_free(char *p);
/* In WeChat's flat JSON answer, where the value of key starts, or NULL. */
const char *tp__json_value(const char *body, size_t n, const char *key);
/* The errcode of WeChat's answer: 0 when it has none. */
long long tp__answer_errcode(const tpo_response *res);
/* The reply a plugin's on_reply job gets (TpHttpReply in lua/api.c). */
void tp__reply_json(const tp_call_out *c, const tpo_response *res, bool ok, tp_buf *out);
/* Adds the key, the agent and the destination's signature to c's header
** lines, and splits them for curl (c->error = "sign_failed" when it cannot sign). */
void tp__build_headers(tp_call_out *c, const char *key, const tpc_destination *d);

#endif
