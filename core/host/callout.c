/*
** callout.c - one call out as the sender makes it (callout.h): the headers an
** attempt carries (the Idempotency-Key, a signature), the reply a plugin's
** on_reply job gets, and reading WeChat's flat JSON answers.
*/
#include "host/callout.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/clock.h"
#include "base/json.h"
#include "base/crypto.h"
#include "base/utf8.h"
#include "base/version.h"

void tp__wipe_free(char *p) {
  if (p) memset(p, 0, strlen(p));
  free(p);
}

void tp__call_free(tp_call_out *c) {
  if (c->t) c->t->calls_out--;
  tp__wipe_free(c->sent_token);
  free(c->context);
  tp__wipe_free(c->url);  /* its query may hold a secret */
  free(c->body);
  if (c->headers.data) memset(c->headers.data, 0, c->headers.cap);  /* it held secrets */
  tp_buf_free(&c->headers);
  free(c->lines);
  free(c->outcome_body);
  free(c->outcome_ctype);
  free(c);
}

/*
** The value of a top-level "key" in a flat JSON object as WeChat answers
** ({"errcode":0,"errmsg":"ok"}, {"access_token":"...","expires_in":7200}):
** where it starts, or NULL. A scan, not a parser: WeChat's answers are flat,
** and a key found inside a string value would need a quote before its colon.
*/
const char *tp__json_value(const char *body, size_t n, const char *key) {
  if (!body || n == 0) return NULL;
  size_t klen = strlen(key);
  const char *end = body + n;
  for (const char *p = body; p && p + klen + 2 < end; p++) {
    p = memchr(p, '"', (size_t)(end - p));
    if (!p || p + klen + 2 > end) return NULL;
    if (memcmp(p + 1, key, klen) != 0 || p[klen + 1] != '"') continue;
    const char *v = p + klen + 2;
    while (v < end && (*v == ' ' || *v == '\t' || *v == '\n' || *v == '\r')) v++;
    if (v >= end || *v != ':') continue;
    for (v++; v < end && (*v == ' ' || *v == '\t' || *v == '\n' || *v == '\r'); v++) {}
    return v < end ? v : NULL;
  }
  return NULL;
}

/* The errcode of WeChat's answer: 0 when it has none. */
long long tp__answer_errcode(const tpo_response *res) {
  const char *v = tp__json_value(res->body, res->body_len, "errcode");
  return v ? strtoll(v, NULL, 10) : 0;
}

/* The reply a plugin's on_reply job gets (TpHttpReply in lua/api.c). */
/* The answer's JSON object without the destination's drop fields, into out;
** false (nothing to hand over) when it is no JSON object: an answer that
** cannot be filtered is not handed to the plugin whole. */
static bool drop_fields(const tp_call_out *c, const char *body, size_t n, tp_buf *out) {
  lua_State *L = c->t->host->scratch;
  char e[64];
  if (!L) return false;
  lua_settop(L, 0);
  bool ok = tpj_decode(L, body, n, e, sizeof e) == 0 && lua_istable(L, -1);
  for (int i = 0; ok && i < c->dest_conf->ndrop; i++) {
    lua_pushnil(L);
    lua_setfield(L, -2, c->dest_conf->drop[i]);
  }
  ok = ok && tpj_encode(L, -1, out, e, sizeof e) == 0;
  lua_settop(L, 0);
  lua_gc(L, LUA_GCCOLLECT);  /* the dropped secret goes with the garbage now */
  return ok;
}

void tp__reply_json(const tp_call_out *c, const tpo_response *res, bool ok, tp_buf *out) {
  tp_buf_printf(out, "{\"call_id\":%lld,\"to\":", (long long)c->id);
  tp_buf_add_json_str(out, c->dest, strlen(c->dest));
  tp_buf_printf(out, ",\"ok\":%s,\"status\":%d,\"attempts\":%d", ok ? "true" : "false",
                res ? res->status : 0, c->attempt);
  if (c->errcode && res && !res->error && res->status >= 200 && res->status < 300)
    tp_buf_printf(out, ",\"errcode\":%lld", tp__answer_errcode(res));
  if (res && !res->error && tp_utf8_valid(res->body, res->body_len)) {
    tp_buf kept;
    tp_buf_init(&kept);
    bool dropping = c->dest_conf && c->dest_conf->ndrop > 0;
    if (!dropping || drop_fields(c, res->body, res->body_len, &kept)) {
      tp_buf_adds(out, ",\"body\":");
      if (dropping) tp_buf_add_json_str(out, kept.data, kept.len);
      else tp_buf_add_json_str(out, res->body, res->body_len);
    }
    tp_buf_free(&kept);
  }
  const char *error = c->error ? c->error : res ? res->error : NULL;
  if (error) {
    tp_buf_adds(out, ",\"error\":");
    tp_buf_add_json_str(out, error, strlen(error));
  }
  if (c->context) {
    tp_buf_adds(out, ",\"context\":");
    tp_buf_adds(out, c->context);
  }
  tp_buf_addc(out, '}');
}

/* WeChat Pay APIv3's request signature (sign = {scheme = "wechatpay2", ...}):
** SHA256withRSA with the merchant's key over five lines, method, the URL
** from its path on (query included, as sent), timestamp, nonce and body,
** each ending in \n; the Authorization header carries it with the mchid and
** the merchant certificate's serial. New for each attempt, so a retry is
** never refused as stale. -1 when the key cannot sign (config checks it). */
static int sign_wechatpay2(tp_call_out *c, const tpc_destination *d) {
  char ts[24], nonce[33];
  snprintf(ts, sizeof ts, "%lld", (long long)(tp_clock_wall_ms() / 1000));
  tpx_random_hex(nonce, 16);
  const char *path = strstr(c->url, "://");
  path = path ? strchr(path + 3, '/') : NULL;
  tp_buf text, sig;
  tp_buf_init(&text);
  tp_buf_init(&sig);
  tp_buf_printf(&text, "%s\n%s\n%s\n%s\n", c->method, path ? path : "/", ts, nonce);
  tp_buf_add(&text, c->body ? c->body : "", c->body ? c->body_len : 0);
  tp_buf_addc(&text, '\n');
  int rc = tpx_rsa_sign_b64(d->sign->value, strlen(d->sign->value), text.data, text.len, &sig,
                            c->message, sizeof c->message);
  if (rc == 0)
    tp_buf_printf(&c->headers, "Authorization: WECHATPAY2-SHA256-RSA2048 mchid=\"%s\",nonce_str=\"%s\","
                  "timestamp=\"%s\",serial_no=\"%s\",signature=\"%s\"\nAccept: application/json\n",
                  d->sign_mchid, nonce, ts, d->sign_serial, tp_buf_cstr(&sig));
  tp_buf_free(&text);
  tp_buf_free(&sig);
  return rc;
}

/* Splits c's header lines (with secrets in) for curl, and adds the key, the
** agent and, for a destination that signs, its signature: with sign = "NAME"
** the timestamp and v1=hex(HMAC-SHA-256(secret, "<timestamp>.<body>")), with
** the wechatpay2 scheme the Authorization header; new for each attempt, so a
** receiver can refuse an old one replayed. */
void tp__build_headers(tp_call_out *c, const char *key, const tpc_destination *d) {
  tp_buf_printf(&c->headers, "Idempotency-Key: %s\n", key);
  if (d->sign_scheme == TPC_SIGN_HMAC) {
    char ts[24], mac[65];
    snprintf(ts, sizeof ts, "%lld", (long long)(tp_clock_wall_ms() / 1000));
    tp_buf signed_text;
    tp_buf_init(&signed_text);
    tp_buf_adds(&signed_text, ts);
    tp_buf_addc(&signed_text, '.');
    tp_buf_add(&signed_text, c->body ? c->body : "", c->body_len);
    tpx_hmac_sha256_hex(d->sign->value, strlen(d->sign->value), signed_text.data, signed_text.len, mac);
    tp_buf_free(&signed_text);
    tp_buf_printf(&c->headers, "X-Tidepool-Timestamp: %s\nX-Tidepool-Signature: v1=%s\n", ts, mac);
  } else if (d->sign_scheme == TPC_SIGN_WECHATPAY2 && sign_wechatpay2(c, d) != 0) {
    c->error = "sign_failed";
  }
  tp_buf_printf(&c->headers, "User-Agent: tidepool/%s\n", TIDEPOOL_VERSION);
  int n = 0;
  for (size_t i = 0; i < c->headers.len; i++) n += c->headers.data[i] == '\n';
  c->lines = calloc((size_t)n + 1, sizeof *c->lines);
  char *p = c->headers.data;
  for (char *nl; p && (nl = memchr(p, '\n', c->headers.len - (size_t)(p - c->headers.data)));
       p = nl + 1) {
    *nl = '\0';
    c->lines[c->nlines++] = p;
  }
}
