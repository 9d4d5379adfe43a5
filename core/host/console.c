/*
** console.c - the operators' web console: its files at /console/, signing
** in and out, and the brand's console users.
**
** The console is a client of the admin API like any other (DESIGN "The
** console is a client"): its pages call /admin/{tenant}/... with the
** session cookie instead of a key, and gate.c gives the session's role the
** same table of rights (roles.c) a key's role gets. The only endpoints of
** its own are the session's, under /console/api/{tenant}/session:
**   POST    {user, password}  signs in: Set-Cookie tp_console (HttpOnly,
**                             SameSite=Strict, Path=/, Max-Age), and the
**                             CSRF token every write must send back
**   GET                       who is signed in (and the CSRF token again)
**   DELETE                    signs out (a write: it needs the token)
**
** Password hashes (base/passwd.h) are slow on purpose, so they run on a
** libuv worker: the request's response is deferred (net/http.h) and
** answered from the worker's after-callback, on the loop. The loop never
** waits for a hash. Wrong passwords count against the user (locked out
** for 15 minutes after console.sign_in_failures) and against the client's
** address (the admin keys' keyguard), and an unknown user costs as much
** time as a known one.
**
** Files: core/host/console/ (or console.dir) holds our HTML, CSS and JS,
** served as they are; /console/vendor/vue.js and chart.js are Debian's
** libjs-vue and libjs-chart.js from console.vendor_dir. Only names of
** [A-Za-z0-9._-] segments are served, never a dot-file or "..".
*/
#include "host/host_int.h"

#include <lauxlib.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "base/clock.h"
#include "base/json.h"
#include "base/log.h"
#include "base/passwd.h"
#include "base/session.h"
#include "host/keyguard.h"
#include "net/static.h"
#include "store/users.h"

#define LOCK_MS (15 * 60 * 1000)
#define VENDOR_MAX_AGE 86400        /* a day: the files change only with their package */

/* A password hashed or checked on a worker, for a response answered later. */
typedef struct tp_signin {
  struct tp_signin *next;
  uv_work_t work;
  tp_host *host;
  tp_tenant *tenant;
  tph_response *res;
  bool create;                /* hash a new user's password, else check one */
  bool known;                 /* check: the user exists (else a decoy hash is checked) */
  tpcu_user user;             /* the user to create, or the one signing in */
  char password[TPPW_MAX_PASSWORD + 1];
  size_t password_len;
  int64_t iterations;
  char peer[48];
  bool tls;                   /* came over TLS (the cookie is Secure) */
  int outcome;                /* check: 1 match; create: 0 hashed; -1 failed */
  atomic_int finished;        /* the worker is done with it */
  bool orphan;                /* the host stopped: the callback only frees it */
} tp_signin;

/* ---- the files */

void tp__console_open(tp_host *h) {
  h->sessions = tpse_new();
  h->files = tphs_new();
}

/* Waits, without running the loop (the host is stopping), for the workers
** still hashing; their callbacks, run by the loop's last turn, only free. */
void tp__console_drain(tp_host *h) {
  for (tp_signin *s = h->signins; s; s = s->next) {
    tp__await_worker(&s->finished);
    s->orphan = true;
  }
  h->signins = NULL;
}

void tp__console_close(tp_host *h) {
  tp__console_drain(h);
  tpse_free(h->sessions);
  h->sessions = NULL;
  tphs_free(h->files);
  h->files = NULL;
}

/* GET /console/<rel>: ours, or a vendor file by its fixed name. */
static void serve_file(tp_host *h, const tph_request *req, const char *rel, size_t n,
                       tph_response *res) {
  static const struct { const char *name, *path; } vendor[] = {
    {"vendor/vue.js", "vue/vue.min.js"},            /* libjs-vue 2.6: the global build */
    {"vendor/chart.js", "chart.js/chart.min.js"},   /* libjs-chart.js 3.9: UMD, window.Chart */
  };
  char path[1200];
  for (size_t i = 0; i < sizeof vendor / sizeof *vendor; i++)
    if (strlen(vendor[i].name) == n && memcmp(vendor[i].name, rel, n) == 0) {
      snprintf(path, sizeof path, "%s/%s", h->cfg->vendor_dir, vendor[i].path);
      tphs_serve(h->files, path, VENDOR_MAX_AGE, req, res);
      return;
    }
  if (n == 0) {
    rel = "index.html";
    n = 10;
  }
  if (!tphs_safe_path(rel, n) || strncmp(rel, "vendor/", 7) == 0) {
    tph_error(res, 404, "not_found", "no such console file");
    return;
  }
  snprintf(path, sizeof path, "%s/%.*s", h->cfg->console_dir, (int)n, rel);
  tphs_serve(h->files, path, 0, req, res);
  if (res->status == 200 && strcmp(res->content_type, "text/html; charset=utf-8") == 0) {
    /* Vue 2's template compiler builds render functions with new Function */
    tph_add_header(res, "Content-Security-Policy",
                   "default-src 'self'; script-src 'self' 'unsafe-eval'; style-src 'self' "
                   "'unsafe-inline'; img-src 'self' data:; frame-ancestors 'none'");
    tph_add_header(res, "X-Frame-Options", "DENY");
  }
}

/* ---- sessions */

/* The session cookie (id NULL: its removal). Secure when the request came
** over TLS through a proxy (X-Forwarded-Proto: https): a client that claims
** it falsely only keeps its own cookie from being sent back over plain HTTP. */
static bool over_tls(const tph_request *req) {
  const tph_header *proto = tph_find_header(req, "x-forwarded-proto");
  return proto && proto->vlen == 5 && strncasecmp(proto->value, "https", 5) == 0;
}

static void set_cookie(tp_host *h, bool tls, const char *id, tph_response *res) {
  char cookie[220];
  snprintf(cookie, sizeof cookie, TP_SESSION_COOKIE "=%s; Path=/; HttpOnly; SameSite=Strict; Max-Age=%lld%s",
           id ? id : "", id ? (long long)h->cfg->session_seconds : 0LL, tls ? "; Secure" : "");
  tph_add_header(res, "Set-Cookie", cookie);
}

static void session_json(tp_tenant *t, const tpse_session *s, tph_response *res) {
  tp_buf *b = &res->body;
  tp_buf_adds(b, "{\"tenant\":");
  tp_buf_add_json_str(b, t->conf->id, strlen(t->conf->id));
  tp_buf_adds(b, ",\"user\":");
  tp_buf_add_json_str(b, s->user, strlen(s->user));
  tp_buf_printf(b, ",\"role\":\"%s\",\"store\":", tpc_role_name(s->role));
  if (s->store[0]) tp_buf_add_json_str(b, s->store, strlen(s->store));
  else tp_buf_adds(b, "null");
  tp_buf_printf(b, ",\"csrf\":\"%s\",\"expires_ms\":%lld,\"timezone\":", s->csrf,
                (long long)s->expires_ms);
  tp_buf_add_json_str(b, t->conf->timezone, strlen(t->conf->timezone));
  tp_buf_printf(b, ",\"manual_clock\":%s}", t->conf->manual_clock ? "true" : "false");
}

static void work_run(uv_work_t *w) {
  tp_signin *s = w->data;
  if (s->create)
    s->outcome = tppw_hash(s->password, s->password_len, s->iterations, s->user.hash);
  else
    s->outcome = tppw_verify(s->password, s->password_len, s->user.hash);
  memset(s->password, 0, sizeof s->password);
  atomic_store(&s->finished, 1);
}

static void log_signin(const tp_tenant *t, const char *msg, const char *peer) {
  tp_buf *line = tp_log_begin(TP_LOG_INFO, msg);
  if (!line) return;
  tp_log_str(line, "tenant", t->conf->id);  /* never the user's name: it may be a phone */
  tp_log_str(line, "peer", peer[0] ? peer : "-");
  tp_log_end(line);
}

/* The answer of a sign-in, on the loop once its hash is checked. */
static void signed_in(tp_signin *s) {
  tp_host *h = s->host;
  tp_tenant *t = s->tenant;
  tph_response *res = s->res;
  int64_t now = tp_clock_wall_ms();
  if (tp__join_batch(h, t) != 0) {
    tph_error(res, 503, "store_unavailable", "the tenant's database cannot start a transaction");
    return;
  }
  res->commit_failed = &t->db.commit_failed;
  res->rests_on = t;
  if (s->known && s->outcome == 1) {
    tpcu_succeeded(t->db.db, s->user.name);
    if (h->keyguard) tpkg_succeeded(h->keyguard, s->peer);
    char id[65];
    const tpse_session *se = tpse_create(h->sessions, t->conf->id, s->user.name, s->user.role,
                                         s->user.store, now, h->cfg->session_seconds * 1000, id);
    if (!se) {
      tph_error(res, 503, "out_of_memory", "no room for a session; retry");
      return;
    }
    set_cookie(h, s->tls, id, res);
    session_json(t, se, res);
    res->status = 200;
    log_signin(t, "console sign-in", s->peer);
    return;
  }
  if (h->keyguard) tpkg_failed(h->keyguard, s->peer, now, h->cfg->limits.admin_key_failures);
  if (s->known) tpcu_failed(t->db.db, s->user.name, (int)h->cfg->sign_in_failures, now, LOCK_MS);
  log_signin(t, "console sign-in refused", s->peer);
  tph_error(res, 401, "sign_in_failed", "wrong user name or password");
}

/* The answer of a new user, once its password is hashed. */
static void user_created(tp_signin *s) {
  tp_tenant *t = s->tenant;
  tph_response *res = s->res;
  if (s->outcome != 0) {
    tph_error(res, 500, "hash_failed", "the password could not be hashed");
    return;
  }
  if (tp__join_batch(s->host, t) != 0 || tpcu_put(t->db.db, &s->user) != 0) {
    tph_error(res, 503, "store_unavailable", "the user could not be saved");
    return;
  }
  tpse_end_user(s->host->sessions, t->conf->id, s->user.name);  /* a new password ends old sessions */
  res->commit_failed = &t->db.commit_failed;
  res->rests_on = t;
  tp_buf_adds(&res->body, "{\"name\":");
  tp_buf_add_json_str(&res->body, s->user.name, strlen(s->user.name));
  tp_buf_printf(&res->body, ",\"role\":\"%s\",\"store\":", tpc_role_name(s->user.role));
  if (s->user.store[0]) tp_buf_add_json_str(&res->body, s->user.store, strlen(s->user.store));
  else tp_buf_adds(&res->body, "null");
  tp_buf_adds(&res->body, "}");
  res->status = 201;
}

static void work_done(uv_work_t *w, int status) {
  tp_signin *s = w->data;
  (void)status;
  if (!s->orphan) {
    s->tenant->deferred--;
    for (tp_signin **p = &s->host->signins; *p; p = &(*p)->next)
      if (*p == s) {
        *p = s->next;
        break;
      }
    if (s->create) user_created(s);
    else signed_in(s);
  }
  if (s->orphan) tph_abandon(s->res);  /* the host stopped: nobody is answered */
  else tph_resume(s->res);
  free(s);
}

/* Runs s on a worker and defers its response; without a loop (a test
** harness) it runs here. */
static void start_work(tp_host *h, tp_signin *s, tph_response *res) {
  s->host = h;
  s->res = res;
  s->work.data = s;
  if (h->loop && uv_queue_work(h->loop, &s->work, work_run, work_done) == 0) {
    res->deferred = true;
    s->tenant->deferred++;  /* the brand stays open until it is answered (brands.c) */
    s->next = h->signins;
    h->signins = s;
    return;
  }
  work_run(&s->work);
  if (s->create) user_created(s);
  else signed_in(s);
  free(s);
}

/* body.key as a string of at most max bytes into *out; false with 400. */
static bool body_field(lua_State *L, const char *key, size_t max, bool required, const char **out,
                       size_t *n, tph_response *res) {
  int type = lua_getfield(L, 1, key);
  *out = type == LUA_TSTRING ? lua_tolstring(L, -1, n) : NULL;
  if ((type == LUA_TNIL && !required) || (*out && *n <= max && strlen(*out) == *n)) return true;
  tph_error(res, 400, "invalid_field", "'%s' must be a string of at most %zu bytes", key, max);
  return false;
}

static bool decode_body(tp_host *h, const tph_request *req, tph_response *res) {
  const tph_header *ct = tph_find_header(req, "content-type");
  if (!ct || ct->vlen < 16 || strncasecmp(ct->value, "application/json", 16) != 0) {
    tph_error(res, 415, "unsupported_media_type", "send the body as Content-Type: application/json");
    return false;
  }
  char err[200] = "";
  lua_settop(h->scratch, 0);
  if (tpj_decode(h->scratch, req->body, req->body_len, err, sizeof err) != 0 ||
      !lua_istable(h->scratch, 1)) {
    tph_error(res, 400, "invalid_json", "the body must be a JSON object%s%s", err[0] ? ": " : "", err);
    return false;
  }
  return true;
}

/* Password checks on the workers at once, at most: a flood of sign-ins must
** not take every libuv worker (the analytics checkpoints share them). */
#define MAX_IN_FLIGHT 4

static int in_flight(const tp_host *h) {
  int n = 0;
  for (const tp_signin *s = h->signins; s; s = s->next) n++;
  return n;
}

static void sign_in(tp_host *h, tp_tenant *t, const tph_request *req, tph_response *res) {
  if (in_flight(h) >= MAX_IN_FLIGHT) {
    res->retry_after = 1;
    tph_error(res, 503, "busy", "too many sign-ins at once; retry in a second");
    return;
  }
  int64_t wait = h->keyguard ? tpkg_locked(h->keyguard, req->peer, tp_clock_wall_ms()) : 0;
  if (wait > 0) {
    res->retry_after = (int)wait;
    tph_error(res, 429, "too_many_attempts", "too many wrong sign-ins from this address; retry in %lld s",
              (long long)wait);
    return;
  }
  if (!decode_body(h, req, res)) return;
  const char *name, *password;
  size_t nlen, plen;
  if (!body_field(h->scratch, "user", TPCU_MAX_NAME, true, &name, &nlen, res) ||
      !body_field(h->scratch, "password", TPPW_MAX_PASSWORD, true, &password, &plen, res))
    return;
  tp_signin *s = calloc(1, sizeof *s);
  if (!s) {
    tph_error(res, 503, "out_of_memory", "retry");
    return;
  }
  s->tenant = t;
  s->tls = over_tls(req);
  tp_copy_str(s->peer, sizeof s->peer, req->peer ? req->peer : "");
  memcpy(s->password, password, plen);
  s->password_len = plen;
  int found = tpcu_valid_name(name) ? tpcu_get(t->db.db, name, &s->user) : 0;
  if (found < 0) {
    free(s);
    tph_error(res, 503, "store_unavailable", "cannot read the console users");
    return;
  }
  if (found && s->user.locked_until_ms > tp_clock_wall_ms()) {
    res->retry_after = (int)((s->user.locked_until_ms - tp_clock_wall_ms()) / 1000 + 1);
    free(s);
    tph_error(res, 429, "account_locked", "too many wrong passwords for this user; retry in %d s",
              res->retry_after);
    return;
  }
  s->known = found == 1;
  if (!s->known)  /* a decoy of the same cost: an unknown name takes as long as a known one */
    snprintf(s->user.hash, sizeof s->user.hash, "pbkdf2-sha256$%lld$%032d$%064d",
             (long long)h->cfg->password_iterations, 0, 0);
  start_work(h, s, res);
}

void tp__console_handle(tp_host *h, const tph_request *req, const char *path, size_t plen,
                        tph_response *res) {
  tp_copy_str(res->route, sizeof res->route, "console");
  if (plen == 8) {  /* "/console": the app is the folder */
    tph_add_header(res, "Location", "/console/");
    res->status = 301;
    return;
  }
  const char *rel = path + 9;
  size_t n = plen - 9;
  bool get = strcmp(req->method, "GET") == 0 || strcmp(req->method, "HEAD") == 0;
  if (n >= 4 && memcmp(rel, "api/", 4) == 0) {
    const char *tid = rel + 4, *slash = memchr(tid, '/', n - 4);
    size_t tlen = slash ? (size_t)(slash - tid) : n - 4;
    tp_tenant *t = tp__tenant(h, tid, tlen);
    if (!slash || (size_t)(rel + n - slash) != 8 || memcmp(slash, "/session", 8) != 0) {
      tph_error(res, 404, "not_found", "the console's own API is /console/api/{tenant}/session");
      return;
    }
    tp_copy_str(res->route, sizeof res->route, "console /console/api/{tenant}/session");
    if (!t) {
      tph_error(res, 404, "tenant_not_found", "no tenant '%.*s'", (int)(tlen > 64 ? 64 : tlen), tid);
      return;
    }
    tp_copy_str(res->tenant, sizeof res->tenant, t->conf->id);
    tph_add_header(res, "Cache-Control", "no-store");
    if (!tp__tenant_serving(h, t, res)) return;  /* as any request to the brand */
    if (strcmp(req->method, "POST") == 0) {
      sign_in(h, t, req, res);
      return;
    }
    size_t idlen = 0;
    const char *id = tp__session_cookie(req, &idlen);
    const tpse_session *s = id ? tpse_find(h->sessions, t->conf->id, id, idlen, tp_clock_wall_ms()) : NULL;
    if (strcmp(req->method, "GET") == 0) {
      if (s) {
        session_json(t, s, res);
        res->status = 200;
      } else {
        tph_error(res, 401, "session_expired", "not signed in, or the session has ended");
      }
    } else if (strcmp(req->method, "DELETE") == 0) {
      const tph_header *csrf = tph_find_header(req, "x-csrf-token");
      if (s && (!csrf || !tppw_token_equal(s->csrf, csrf->value, csrf->vlen))) {
        tph_error(res, 403, "csrf_required", "signing out needs the session's X-CSRF-Token header");
        return;
      }
      if (s) tpse_end(h->sessions, id, idlen);
      set_cookie(h, over_tls(req), NULL, res);
      tp_buf_adds(&res->body, "{\"signed_out\":true}");
      res->status = 200;
    } else {
      snprintf(res->allow, sizeof res->allow, "GET, POST, DELETE");
      tph_error(res, 405, "method_not_allowed", "%s is not allowed here (allowed: GET, POST, DELETE)",
                req->method);
    }
    return;
  }
  if (!get) {
    snprintf(res->allow, sizeof res->allow, "GET, HEAD");
    tph_error(res, 405, "method_not_allowed", "%s is not allowed here (allowed: GET, HEAD)", req->method);
    return;
  }
  serve_file(h, req, rel, n, res);
}

/* ---- /admin/{tenant}/console/users (the owner's: roles.c) */

static void get_users(tp_host *h, tp_tenant *t, const tph_request *req, tph_response *res) {
  (void)h, (void)req;
  tp_buf_adds(&res->body, "{\"users\":");
  if (tpcu_list(t->db.db, &res->body) != 0) {
    tp_buf_reset(&res->body);
    tph_error(res, 503, "store_unavailable", "cannot read the console users");
    return;
  }
  tp_buf_adds(&res->body, "}");
  res->status = 200;
}

/* POST {name, password, role, store?}: adds a user, or replaces its password and role. */
static void post_user(tp_host *h, tp_tenant *t, const tph_request *req, tph_response *res) {
  if (!decode_body(h, req, res)) return;
  lua_State *L = h->scratch;
  const char *name, *password, *role, *store;
  size_t n1, n2, n3, n4;
  if (!body_field(L, "name", TPCU_MAX_NAME, true, &name, &n1, res) ||
      !body_field(L, "password", TPPW_MAX_PASSWORD, true, &password, &n2, res) ||
      !body_field(L, "role", 20, true, &role, &n3, res) ||
      !body_field(L, "store", TPC_MAX_STORE, false, &store, &n4, res))
    return;
  tpc_role r = tpc_role_parse(role);
  if (!tpcu_valid_name(name)) {
    tph_error(res, 400, "invalid_field", "'name' must be 1-%d of [A-Za-z0-9._@-]", TPCU_MAX_NAME);
  } else if (!tppw_acceptable(password, n2)) {
    tph_error(res, 400, "invalid_field", "'password' must be %d-%d characters, no control characters",
              TPPW_MIN_PASSWORD, TPPW_MAX_PASSWORD);
  } else if (!r) {
    tph_error(res, 400, "invalid_field", "'role' must be one of owner, operator, store_manager, finance, developer");
  } else if ((r == TPC_ROLE_STORE_MANAGER) != (store != NULL && n4 > 0)) {
    tph_error(res, 400, "invalid_field", "'store' is required for a store_manager, and only for one");
  } else {
    tp_signin *s = calloc(1, sizeof *s);
    if (!s) {
      tph_error(res, 503, "out_of_memory", "retry");
      return;
    }
    s->create = true;
    s->tenant = t;
    tp_copy_str(s->user.name, sizeof s->user.name, name);
    s->user.role = r;
    tp_copy_str(s->user.store, sizeof s->user.store, store ? store : "");
    s->user.created_ms = tp_clock_wall_ms();
    memcpy(s->password, password, n2);
    s->password_len = n2;
    s->iterations = h->cfg->password_iterations;
    start_work(h, s, res);
  }
}

static void delete_user(tp_host *h, tp_tenant *t, const tph_request *req, tph_response *res) {
  (void)req;
  const char *name = h->match.params[0].value;
  int rc = tp__join_batch(h, t) == 0 ? tpcu_delete(t->db.db, name) : -1;
  if (rc < 0) {
    tph_error(res, 503, "store_unavailable", "cannot remove the user");
  } else if (rc == 0) {
    tph_error(res, 404, "user_not_found", "no console user of that name");
  } else {
    tpse_end_user(h->sessions, t->conf->id, name);
    res->commit_failed = &t->db.commit_failed;
    res->rests_on = t;
    tp_buf_adds(&res->body, "{\"deleted\":true}");
    res->status = 200;
  }
}

#define USER_BODY                                                                          \
  "{\"type\":\"object\",\"required\":[\"name\",\"password\",\"role\"],\"properties\":{"   \
  "\"name\":{\"type\":\"string\"},\"password\":{\"type\":\"string\",\"minLength\":10},"     \
  "\"role\":{\"type\":\"string\",\"enum\":[\"owner\",\"operator\",\"store_manager\","       \
  "\"finance\",\"developer\"]},\"store\":{\"type\":\"string\"}}}"
#define USER_ANSWER                                                                        \
  "{\"type\":\"object\",\"properties\":{\"name\":{\"type\":\"string\"},\"role\":{\"type\":" \
  "\"string\"},\"store\":{\"type\":\"string\",\"nullable\":true}}}"
#define CONSOLE_ROUTE(m, p, fn, ...)                                                       \
  {.method = m, .path = p, .label = "admin " m " /admin/{tenant}" p, .auth = TP_AUTH_ADMIN, \
   .builtin = (void (*)(void))(tp_builtin_fn)fn, .doc = {__VA_ARGS__}}

static tp_route routes[] = {
  CONSOLE_ROUTE("GET", "/console/users", get_users, .summary = "The brand's console users (owner only)",
                .response = "{\"type\":\"object\",\"properties\":{\"users\":{\"type\":\"array\","
                            "\"items\":{\"type\":\"object\"}}}}"),
  CONSOLE_ROUTE("POST", "/console/users", post_user, .body = USER_BODY, .body_required = true,
                .status = 201, .summary = "Add a console user, or set a user's password and role",
                .response = USER_ANSWER),
  CONSOLE_ROUTE("DELETE", "/console/users/{name}", delete_user,
                .summary = "Remove a console user and end its sessions",
                .response = "{\"type\":\"object\",\"properties\":{\"deleted\":{\"type\":\"boolean\"}}}"),
};

const tp_route *tp__console_routes(int *n) {
  *n = (int)(sizeof routes / sizeof *routes);
  return routes;
}
