/*
** gate.c - who may come in: the client's address (behind a trusted proxy),
** admin keys (a tenant's, or the host's) with lock-out of an address that
** guesses (keyguard.h), who may read /metrics, and a user's token with its
** member aliases (alias.h), and the brand's rate limits (ratelimit.h). Every
** refusal fills the response; no key is ever logged.
*/
#include "host/host_int.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/clock.h"
#include "base/log.h"
#include "base/passwd.h"
#include "base/ratelimit.h"
#include "base/session.h"
#include "base/token.h"
#include "host/keyguard.h"

/* The client's address: the peer's, or, when the peer is a trusted proxy, the
** last address of its X-Forwarded-For (the one that proxy added; what came
** before it is the client's own say). Into out, which has 48 bytes. */
const char *tp__client_address(const tp_host *h, const tph_request *req, char *out) {
  const char *peer = req->peer ? req->peer : "";
  bool trusted = false;
  for (int i = 0; i < h->cfg->ntrusted_proxies && !trusted; i++)
    trusted = strcmp(peer, h->cfg->trusted_proxies[i]) == 0;
  const tph_header *xff = trusted ? tph_find_header(req, "x-forwarded-for") : NULL;
  if (!xff) return peer;
  size_t end = xff->vlen, start;
  while (end > 0 && (xff->value[end - 1] == ' ' || xff->value[end - 1] == ',')) end--;
  for (start = end; start > 0 && xff->value[start - 1] != ',' && xff->value[start - 1] != ' '; start--) {}
  size_t n = end - start;
  if (n == 0 || n >= 48) return peer;
  for (size_t i = 0; i < n; i++) {  /* an address is hex digits, '.' and ':' */
    char ch = xff->value[start + i];
    if (!(isxdigit((unsigned char)ch) || ch == '.' || ch == ':')) return peer;
  }
  memcpy(out, xff->value + start, n);
  out[n] = '\0';
  return out;
}

/* ---- admin keys */

/* True if the X-Api-Key header is one of keys (compared as digests, every one
** of them, so the time taken says nothing about which came close). */
static bool key_matches(const tph_header *key, const unsigned char (*keys)[32], int n) {
  if (!key) return false;
  unsigned char digest[32];
  tpt_key_digest(key->value, key->vlen, digest);
  bool ok = false;
  for (int i = 0; i < n; i++) ok |= tpt_digest_equal(digest, keys[i]);
  return ok;
}

/* An address that guessed wrong too often is refused before its key is even
** read (keyguard.h): 429 with Retry-After. */
static bool guard_open(tp_host *h, const tph_request *req, tph_response *res) {
  int64_t wait = h->keyguard ? tpkg_locked(h->keyguard, req->peer, tp_clock_wall_ms()) : 0;
  if (wait == 0) return true;
  res->retry_after = (int)wait;
  tph_error(res, 429, "too_many_attempts", "too many wrong admin keys from this address; retry in %lld s",
            (long long)wait);
  return false;
}

/* Counts a wrong or missing key against the address, logged without the key. */
static void guard_failed(tp_host *h, const tph_request *req, const char *tenant) {
  if (!h->keyguard) return;
  bool locked = tpkg_failed(h->keyguard, req->peer, tp_clock_wall_ms(), h->cfg->limits.admin_key_failures);
  tp_buf *line = tp_log_begin(locked ? TP_LOG_WARN : TP_LOG_INFO,
                              locked ? "admin key guessing: address locked out" : "admin key refused");
  if (!line) return;
  tp_log_str(line, "tenant", tenant);
  tp_log_str(line, "peer", req->peer && req->peer[0] ? req->peer : "-");
  tp_log_end(line);
}

static void guard_succeeded(tp_host *h, const tph_request *req) {
  if (h->keyguard) tpkg_succeeded(h->keyguard, req->peer);
}

/* GET /metrics names every brand the host serves, with its traffic: it is for
** the machine itself (a loopback client: Prometheus beside the host) or for the
** host's admin key. Behind a trusted proxy the client is the forwarded one, so
** the proxy's own loopback address does not open it to the world. */
bool tp__metrics_allowed(tp_host *h, const tph_request *req) {
  const char *peer = req->peer ? req->peer : "";
  if (strncmp(peer, "127.", 4) == 0 || strcmp(peer, "::1") == 0 ||
      strncmp(peer, "::ffff:127.", 11) == 0)  /* loopback, also on a dual-stack listener */
    return true;
  const tph_header *key = tph_find_header(req, "x-api-key");
  if (!key || h->cfg->nadmin_keys == 0) return false;
  if (h->keyguard && tpkg_locked(h->keyguard, req->peer, tp_clock_wall_ms()) > 0) return false;
  if (key_matches(key, h->cfg->admin_keys, h->cfg->nadmin_keys)) return true;
  guard_failed(h, req, "-");
  return false;
}

/* An admin request for a tenant the host does not serve is answered as one
** for a tenant it does, with a missing or wrong key (and counted as such): to
** a stranger, a wrong tenant and a missing one look alike. */
void tp__refuse_unknown_admin(tp_host *h, const tph_request *req, const char *tid, size_t tlen,
                              tph_response *res) {
  if (!guard_open(h, req, res)) return;
  const tph_header *key = tph_find_header(req, "x-api-key");
  guard_failed(h, req, "-");
  if (!key || key->vlen == 0)
    tph_error(res, 401, "api_key_required", "admin routes need the tenant's X-Api-Key header");
  else
    tph_error(res, 403, "invalid_api_key", "the API key is not valid for tenant '%.*s'",
              (int)(tlen > 64 ? 64 : tlen), tid);
}

/* The index of the key among keys (compared as digests, every one), or -1. */
static int key_index(const tph_header *key, const unsigned char (*keys)[32], int n) {
  unsigned char digest[32];
  tpt_key_digest(key->value, key->vlen, digest);
  int found = -1;
  for (int i = 0; i < n; i++)
    if (tpt_digest_equal(digest, keys[i])) found = i;
  return found;
}

const char *tp__session_cookie(const tph_request *req, size_t *n) {
  const tph_header *c = tph_find_header(req, "cookie");
  if (!c) return NULL;
  static const char name[] = TP_SESSION_COOKIE "=";
  const char *p = c->value, *end = c->value + c->vlen;
  while (p < end) {
    while (p < end && (*p == ' ' || *p == ';')) p++;
    const char *v = p;
    while (p < end && *p != ';') p++;
    if ((size_t)(p - v) > sizeof name - 1 && memcmp(v, name, sizeof name - 1) == 0) {
      *n = (size_t)(p - v) - (sizeof name - 1);
      return v + sizeof name - 1;
    }
  }
  return NULL;
}

/* A console session in place of a key: the cookie names a live session of
** this tenant, and a write carries its CSRF token in X-CSRF-Token. */
static bool check_session(tp_tenant *t, const tph_request *req, const char *id, size_t n,
                          tph_response *res, tp_principal *who) {
  const tpse_session *s = t->host->sessions
                              ? tpse_find(t->host->sessions, t->conf->id, id, n, tp_clock_wall_ms())
                              : NULL;
  if (!s) {
    tph_error(res, 401, "session_expired", "the console session has ended; sign in again");
    return false;
  }
  bool safe = strcmp(req->method, "GET") == 0 || strcmp(req->method, "HEAD") == 0;
  const tph_header *csrf = safe ? NULL : tph_find_header(req, "x-csrf-token");
  if (!safe && (!csrf || !tppw_token_equal(s->csrf, csrf->value, csrf->vlen))) {
    tph_error(res, 403, "csrf_required", "a console write needs the session's X-CSRF-Token header");
    return false;
  }
  who->role = s->role;
  tp_copy_str(who->store, sizeof who->store, s->store);
  who->session = true;
  return true;
}

bool tp__check_admin(tp_tenant *t, const tph_request *req, tph_response *res, tp_principal *who) {
  if (!guard_open(t->host, req, res)) return false;
  const tph_header *key = tph_find_header(req, "x-api-key");
  memset(who, 0, sizeof *who);
  size_t cookie_len = 0;
  const char *cookie = !key ? tp__session_cookie(req, &cookie_len) : NULL;
  if (cookie) return check_session(t, req, cookie, cookie_len, res, who);
  if (key && key->vlen > 0) {
    int i = key_index(key, t->conf->api_keys, t->conf->napi_keys);
    if (i >= 0) {
      guard_succeeded(t->host, req);
      who->role = t->conf->key_roles[i] ? (int)t->conf->key_roles[i] : TPC_ROLE_OWNER;
      tp_copy_str(who->store, sizeof who->store, t->conf->key_stores[i]);
      return true;
    }
  }
  if (!key || key->vlen == 0) {
    guard_failed(t->host, req, t->conf->id);
    tph_error(res, 401, "api_key_required", "admin routes need the tenant's X-Api-Key header");
    return false;
  }
  guard_failed(t->host, req, t->conf->id);
  tph_error(res, 403, "invalid_api_key", "the API key is not valid for tenant '%s'", t->conf->id);
  return false;
}

bool tp__check_host_key(tp_host *h, const tph_request *req, const char *what, tph_response *res) {
  if (!guard_open(h, req, res)) return false;
  const tph_header *key = tph_find_header(req, "x-api-key");
  if (!key_matches(key, h->cfg->admin_keys, h->cfg->nadmin_keys)) {
    guard_failed(h, req, "-");
    tph_error(res, key ? 403 : 401, key ? "invalid_api_key" : "api_key_required",
              "%s needs one of the host's admin_keys in X-Api-Key", what);
    return false;
  }
  guard_succeeded(h, req);
  return true;
}

/* ---- users */

/* A merged member's token enters as its survivor's; an erased one's is refused. */
static bool resolve_member(tp_tenant *t, tph_response *res) {
  char survivor[TPT_MAX_ID + 1];
  switch (tpal_resolve(&t->aliases, res->user, survivor)) {
    case TPAL_SELF: return true;
    case TPAL_ALIAS: memcpy(res->user, survivor, strlen(survivor) + 1); return true;
    case TPAL_ERASED:
      tph_error(res, 401, "member_erased", "this member's personal data was erased at their request");
      break;
    case TPAL_ERROR:
      tph_error(res, 503, "unavailable", "cannot read the member's aliases; try again");
      break;
  }
  res->user[0] = '\0';
  return false;
}

/* Returns false (response filled) if the route's auth rule is not met. */
bool tp__authenticate(tp_tenant *t, const tp_route *r, const tph_request *req,
                         tph_response *res) {
  if (r->auth == TP_AUTH_ADMIN) {
    const char *q = memchr(req->target, '?', req->target_len);
    size_t qlen = q ? req->target_len - (size_t)(q + 1 - req->target) : 0;
    return tp__check_admin(t, req, res, &t->host->principal) &&
           tp__role_admits(&t->host->principal, r, &t->host->match, q ? q + 1 : "", qlen, res);
  }
  const tph_header *auth = tph_find_header(req, "authorization");
  if (!auth) {
    if (r->auth != TP_AUTH_USER) return true;
    tph_error(res, 401, "auth_required", "this route needs a user: send Authorization: Bearer <token>");
    return false;
  }
  if (auth->vlen < 8 || strncasecmp(auth->value, "Bearer ", 7) != 0) {
    tph_error(res, 401, "invalid_token", "the Authorization header must be 'Bearer <token>'");
    return false;
  }
  tpt_result rc = tpt_verify(auth->value + 7, auth->vlen - 7, t->conf->id, t->conf->token_secret,
                             t->conf->token_secret_len, tp_clock_wall_ms() / 1000, res->user);
  if (rc != TPT_OK) {
    tph_error(res, rc == TPT_WRONG_TENANT ? 403 : 401, tpt_result_code(rc), "%s",
              tpt_result_message(rc));
    res->user[0] = '\0';
    return false;
  }
  return resolve_member(t, res);
}

/* ---- rate limits (base/ratelimit.h) */

/* A device id as sdk/tp/risk.lua takes it: 1-64 printable ASCII, no spaces. */
static bool device_id(const char *s, size_t n) {
  if (n < 1 || n > 64) return false;
  for (size_t i = 0; i < n; i++)
    if ((unsigned char)s[i] < 33 || (unsigned char)s[i] > 126) return false;
  return true;
}

bool tp__rate_admit(tp_host *h, tp_tenant *tn, tprl_class cls, const tph_request *req,
                    tph_response *res) {
  tprl_table *t = h->ratelimit;
  const tprl_limits *l = &tn->conf->rate_limits;
  const char *brand = tn->conf->id;
  if (!t || !l->any) return true;  /* the usual case for a brand without limits */
  tprl_who who = {{NULL}, {0}};
  who.id[TPRL_USER] = res->user;
  who.len[TPRL_USER] = strlen(res->user);
  who.id[TPRL_ADDRESS] = req->peer && req->peer[0] ? req->peer : "-";
  who.len[TPRL_ADDRESS] = strlen(who.id[TPRL_ADDRESS]);
  const tph_header *device = cls != TPRL_ADMIN && l->rate[cls][TPRL_DEVICE].interval_us
                                 ? tph_find_header(req, "x-device-id") : NULL;
  if (device && device_id(device->value, device->vlen)) {
    who.id[TPRL_DEVICE] = device->value;
    who.len[TPRL_DEVICE] = device->vlen;
  }
  const tph_header *key = cls == TPRL_ADMIN ? tph_find_header(req, "x-api-key") : NULL;
  if (key) {
    who.id[TPRL_KEY] = key->value;
    who.len[TPRL_KEY] = key->vlen;
  }
  tprl_kind refused = TPRL_ADDRESS;
  int64_t wait = tprl_take(t, l, brand, cls, &who, (int64_t)(tp_clock_mono_ns() / 1000), &refused);
  if (wait == 0) return true;
  int64_t seconds = (wait + 999999) / 1000000;
  res->retry_after = (int)(seconds < 1 ? 1 : seconds > 86400 ? 86400 : seconds);
  tph_error(res, 429, "rate_limited", "too many %s requests from %s; retry in %d s",
            tprl_class_name(cls), tprl_kind_whose(refused), res->retry_after);
  return false;
}
