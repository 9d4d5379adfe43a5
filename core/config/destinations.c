/*
** destinations.c - a tenant's `http` section: where its plugins may call
** (tp.http) and with which secrets.
**
**   http = {
**     erp = { url = "https://erp.example.com/api", plugins = { "webhooks" },
**             timeout_ms = 5000, max_response_bytes = 65536, max_attempts = 5,
**             retry_base_ms = 1000, ca_file = "/etc/ssl/erp-ca.pem",
**             secrets = { token = env("ERP_TOKEN") }, sign = "token" },
**   }
**
** A destination is an allow-list entry: a plugin not named in its plugins
** cannot call it, and a call names a destination, never a URL, so no plugin
** can send a brand's data anywhere the brand did not list. Secrets live here
** and are put into a call's headers by the host as it sends; with sign, the
** host also signs every attempt's body with that secret (host/sender.c).
*/
#define _GNU_SOURCE  /* memmem */
#include "config/config_int.h"

#include <ctype.h>
#include <lauxlib.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/buf.h"
#include "base/crypto.h"

static int cmp_destination(const void *a, const void *b) {
  return strcmp(((const tpc_destination *)a)->name, ((const tpc_destination *)b)->name);
}

static int load_names(checker *c, int idx, tpc_destination *d) {
  tpc__field(c, idx, "plugins");
  size_t old = tpc__path_push(c, ".plugins");
  int top = lua_gettop(c->L), rc = 0;
  size_t n = lua_istable(c->L, top) ? lua_rawlen(c->L, top) : 0;
  if (!lua_istable(c->L, top) || n == 0 || n > TPC_MAX_PLUGINS) {
    rc = tpc__failf(c, "must be a list of 1-%d plugin names (who may call it)", TPC_MAX_PLUGINS);
  } else {
    d->plugins = calloc(n, sizeof *d->plugins);
    for (size_t i = 1; rc == 0 && i <= n; i++) {
      lua_rawgeti(c->L, top, (lua_Integer)i);
      const char *name = lua_type(c->L, -1) == LUA_TSTRING ? lua_tostring(c->L, -1) : NULL;
      if (!name || !tpc_valid_plugin_name(name)) rc = tpc__failf(c, "[%zu]: must be a plugin name", i);
      else snprintf(d->plugins[d->nplugins++], sizeof *d->plugins, "%s", name);
      lua_pop(c->L, 1);
    }
  }
  lua_pop(c->L, 1);
  tpc__path_pop(c, old);
  return rc;
}

static int load_secrets(checker *c, int idx, void *arg) {
  tpc_destination *d = arg;
  if (lua_isnil(c->L, idx)) return 0;
  if (!lua_istable(c->L, idx)) return tpc__failf(c, "must be a table of name = value");
  d->secrets = calloc(TPC_MAX_SECRETS, sizeof *d->secrets);
  lua_pushnil(c->L);
  while (lua_next(c->L, idx)) {
    const char *name = lua_type(c->L, -2) == LUA_TSTRING ? lua_tostring(c->L, -2) : "";
    size_t old = tpc__path_push(c, ".%s", name);
    int rc = 0;
    if (!tpc_valid_plugin_name(name)) rc = tpc__failf(c, "a secret's name must be [a-z][a-z0-9_]*");
    else if (d->nsecrets == TPC_MAX_SECRETS) rc = tpc__failf(c, "at most %d secrets", TPC_MAX_SECRETS);
    else if (lua_type(c->L, -1) != LUA_TSTRING || lua_rawlen(c->L, -1) == 0 ||
             strlen(lua_tostring(c->L, -1)) != lua_rawlen(c->L, -1))
      rc = tpc__failf(c, "must be a non-empty string without NUL bytes");
    tpc__path_pop(c, old);
    if (rc != 0) {
      lua_pop(c->L, 2);
      return -1;
    }
    tpc_secret *s = &d->secrets[d->nsecrets++];
    snprintf(s->name, sizeof s->name, "%s", name);
    s->value = strdup(lua_tostring(c->L, -1));
    lua_pop(c->L, 1);
  }
  return 0;
}

static const tpc_secret *find_secret(const tpc_destination *d, const char *name) {
  for (int i = 0; i < d->nsecrets; i++)
    if (strcmp(d->secrets[i].name, name) == 0) return &d->secrets[i];
  return NULL;
}

/* A value that goes into the Authorization header between quotes. */
static bool header_quotable(const char *s) {
  if (!*s || strlen(s) > 64) return false;
  for (; *s; s++)
    if (*s < 0x21 || *s > 0x7e || *s == '"' || *s == ',' || *s == '\\') return false;
  return true;
}

/* sign = "NAME" (HMAC with that secret) or sign = {scheme = "wechatpay2", key
** = "NAME", mchid = "...", serial = "..."}: WeChat Pay APIv3's Authorization,
** the key an RSA private key in PEM (checked here, so a bad key fails the
** load, not the first payment). */
static int load_sign_table(checker *c, int idx, void *arg) {
  tpc_destination *d = arg;
  static const char *const keys[] = {"scheme", "key", "mchid", "serial", NULL};
  if (tpc__check_keys(c, idx, keys) != 0) return -1;
  char *scheme = NULL, *key = NULL;
  int rc = tpc__get_string(c, idx, "scheme", true, NULL, &scheme) != 0 ||
           tpc__get_string(c, idx, "key", true, NULL, &key) != 0 ||
           tpc__get_string(c, idx, "mchid", true, NULL, &d->sign_mchid) != 0 ||
           tpc__get_string(c, idx, "serial", true, NULL, &d->sign_serial) != 0 ? -1 : 0;
  if (rc == 0 && strcmp(scheme, "wechatpay2") != 0)
    rc = tpc__failf(c, "scheme: must be \"wechatpay2\" (got '%s')", scheme);
  if (rc == 0 && !(d->sign = find_secret(d, key)))
    rc = tpc__failf(c, "key: names no secret of this destination ('%s')", key);
  if (rc == 0 && (!header_quotable(d->sign_mchid) || !header_quotable(d->sign_serial)))
    rc = tpc__failf(c, "mchid and serial: must be 1-64 printable characters without quotes or commas");
  char why[128];
  if (rc == 0 && tpx_rsa_check_private(d->sign->value, strlen(d->sign->value), why, sizeof why) != 0)
    rc = tpc__failf(c, "key: secret '%s' is %s", key, why);
  d->sign_scheme = TPC_SIGN_WECHATPAY2;
  free(scheme);
  free(key);
  return rc;
}

static int load_sign(checker *c, int idx, tpc_destination *d) {
  lua_getfield(c->L, idx, "sign");
  int type = lua_type(c->L, -1);
  lua_pop(c->L, 1);
  if (type == LUA_TTABLE) return tpc__section(c, idx, "sign", load_sign_table, d);
  char *sign = NULL;
  if (tpc__get_string(c, idx, "sign", false, NULL, &sign) != 0) return -1;
  int rc = 0;
  if (sign && !(d->sign = find_secret(d, sign)))
    rc = tpc__failf(c, "sign: names no secret of this destination ('%s')", sign);
  if (sign && rc == 0) d->sign_scheme = TPC_SIGN_HMAC;
  free(sign);
  return rc;
}

/* token = {path, appid, secret = "NAME"}: the access_token WeChat's server
** APIs take in their query, fetched by the host with the app secret NAME (a
** secret of this destination), so neither ever reaches a plugin. */
static int load_token(checker *c, int idx, void *arg) {
  tpc_destination *d = arg;
  if (lua_isnil(c->L, idx)) return 0;
  if (!lua_istable(c->L, idx)) return tpc__failf(c, "must be a table {path, appid, secret}");
  static const char *const keys[] = {"path", "appid", "secret", NULL};
  if (tpc__check_keys(c, idx, keys) != 0) return -1;
  char *secret = NULL;
  int rc = tpc__get_string(c, idx, "path", false, "/cgi-bin/stable_token", &d->token_path) != 0 ||
           tpc__get_string(c, idx, "appid", true, NULL, &d->token_appid) != 0 ||
           tpc__get_string(c, idx, "secret", true, NULL, &secret) != 0 ? -1 : 0;
  if (rc == 0 && (d->token_path[0] != '/' || strpbrk(d->token_path, " \r\n?#")))
    rc = tpc__failf(c, "path: must start with / and carry no query, fragment or spaces");
  if (rc == 0 && !header_quotable(d->token_appid))
    rc = tpc__failf(c, "appid: must be 1-64 printable characters without quotes or commas");
  if (rc == 0 && !(d->token_secret = find_secret(d, secret)))
    rc = tpc__failf(c, "secret: names no secret of this destination ('%s')", secret);
  d->errcode = true;
  free(secret);
  return rc;
}

/* drop = {"session_key", ...}: at most 8 field names of an answer's JSON. */
static int load_drop(checker *c, int idx, void *arg) {
  tpc_destination *d = arg;
  if (lua_isnil(c->L, idx)) return 0;
  size_t n = lua_istable(c->L, idx) ? lua_rawlen(c->L, idx) : 0;
  if (n == 0 || n > 8) return tpc__failf(c, "must be a list of 1-8 field names");
  d->drop = calloc(n, sizeof *d->drop);
  for (size_t i = 1; i <= n; i++) {
    lua_rawgeti(c->L, idx, (lua_Integer)i);
    size_t len = 0;
    const char *name = lua_type(c->L, -1) == LUA_TSTRING ? lua_tolstring(c->L, -1, &len) : NULL;
    if (!name || len == 0 || len > 64) {
      lua_pop(c->L, 1);
      return tpc__failf(c, "[%zu]: must be a field name of 1-64 bytes", i);
    }
    snprintf(d->drop[d->ndrop++], sizeof *d->drop, "%s", name);
    lua_pop(c->L, 1);
  }
  return 0;
}

static int load_destination(checker *c, int idx, tpc_destination *d) {
  static const char *const keys[] = {"url", "plugins", "timeout_ms", "max_response_bytes",
                                     "max_attempts", "retry_base_ms", "ca_file", "secrets", "sign",
                                     "errcode", "token", "drop", NULL};
  if (!lua_istable(c->L, idx)) return tpc__failf(c, "must be a table");
  if (tpc__check_keys(c, idx, keys) != 0) return -1;
  if (tpc__get_string(c, idx, "url", true, NULL, &d->url) != 0) return -1;
  if ((strncmp(d->url, "http://", 7) != 0 && strncmp(d->url, "https://", 8) != 0) ||
      strpbrk(d->url, " \r\n?#"))
    return tpc__failf(c, "url: must be http:// or https:// with no query, fragment or spaces");
  size_t n = strlen(d->url);
  while (n > 8 && d->url[n - 1] == '/') d->url[--n] = '\0';  /* a call's path brings its own / */
  char *ca = NULL;
  int rc = load_names(c, idx, d) != 0 ||
           tpc__get_int(c, idx, "timeout_ms", 10000, 100, 600000, &d->timeout_ms) != 0 ||
           tpc__get_int(c, idx, "max_response_bytes", 1 << 20, 1, 64 << 20, &d->max_response_bytes) != 0 ||
           tpc__get_int(c, idx, "max_attempts", 5, 1, 100, &d->max_attempts) != 0 ||
           tpc__get_int(c, idx, "retry_base_ms", 1000, 10, 3600000, &d->retry_base_ms) != 0 ||
           tpc__get_string(c, idx, "ca_file", false, NULL, &ca) != 0 ||
           tpc__section(c, idx, "secrets", load_secrets, d) != 0
               ? -1 : 0;
  if (ca) d->ca_file = tpc_resolve_path(c->cfg->dir, ca);
  free(ca);
  if (rc == 0) rc = load_sign(c, idx, d);
  if (rc == 0) {
    lua_getfield(c->L, idx, "errcode");
    int type = lua_type(c->L, -1);
    d->errcode = lua_toboolean(c->L, -1);
    lua_pop(c->L, 1);
    if (type != LUA_TNIL && type != LUA_TBOOLEAN) rc = tpc__failf(c, "errcode: must be a boolean");
  }
  if (rc == 0) rc = tpc__section(c, idx, "token", load_token, d);
  if (rc == 0) rc = tpc__section(c, idx, "drop", load_drop, d);
  return rc;
}

int tpc__load_destinations(checker *c, int idx, void *arg) {
  tpc_tenant *t = arg;
  if (lua_isnil(c->L, idx)) return 0;
  if (!lua_istable(c->L, idx)) return tpc__failf(c, "must be a table of destination name = {url, plugins, ...}");
  t->destinations = calloc(TPC_MAX_DESTINATIONS, sizeof *t->destinations);
  lua_pushnil(c->L);
  while (lua_next(c->L, idx)) {
    const char *name = lua_type(c->L, -2) == LUA_TSTRING ? lua_tostring(c->L, -2) : "";
    size_t old = tpc__path_push(c, ".%s", name);
    int rc;
    if (!tpc_valid_plugin_name(name)) {
      rc = tpc__failf(c, "a destination's name must be [a-z][a-z0-9_]*, at most 32 bytes");
    } else if (t->ndestinations == TPC_MAX_DESTINATIONS) {
      rc = tpc__failf(c, "at most %d destinations", TPC_MAX_DESTINATIONS);
    } else {
      tpc_destination *d = &t->destinations[t->ndestinations++];
      snprintf(d->name, sizeof d->name, "%s", name);
      rc = load_destination(c, lua_gettop(c->L), d);
    }
    tpc__path_pop(c, old);
    if (rc != 0) {
      lua_pop(c->L, 2);
      return -1;
    }
    lua_pop(c->L, 1);
  }
  qsort(t->destinations, (size_t)t->ndestinations, sizeof *t->destinations, cmp_destination);
  return 0;
}

void tpc__free_destinations(tpc_tenant *t) {
  for (int i = 0; i < t->ndestinations; i++) {
    tpc_destination *d = &t->destinations[i];
    free(d->url);
    free(d->plugins);
    free(d->ca_file);
    free(d->drop);
    free(d->sign_mchid);
    free(d->sign_serial);
    free(d->token_path);
    free(d->token_appid);
    for (int j = 0; j < d->nsecrets; j++) {
      memset(d->secrets[j].value, 0, strlen(d->secrets[j].value));
      free(d->secrets[j].value);
    }
    free(d->secrets);
  }
  free(t->destinations);
}

const tpc_destination *tpc_find_destination(const tpc_tenant *t, const char *name) {
  for (int i = 0; i < t->ndestinations; i++)
    if (strcmp(t->destinations[i].name, name) == 0) return &t->destinations[i];
  return NULL;
}

const char *tpc_destination_secret(const tpc_destination *d, const char *name, size_t *len) {
  const tpc_secret *s = find_secret(d, name);
  if (s && len) *len = strlen(s->value);
  return s ? s->value : NULL;
}

bool tpc_destination_allows(const tpc_destination *d, const char *plugin) {
  for (int i = 0; i < d->nplugins; i++)
    if (strcmp(d->plugins[i], plugin) == 0) return true;
  return false;
}

/* Appends value to out, percent-encoded but for RFC 3986's unreserved bytes. */
static void add_url_encoded(tp_buf *out, const char *value) {
  for (const unsigned char *v = (const unsigned char *)value; *v; v++) {
    if (isalnum(*v) || *v == '-' || *v == '.' || *v == '_' || *v == '~') tp_buf_addc(out, (char)*v);
    else tp_buf_printf(out, "%%%02X", *v);
  }
}

static int expand(const tpc_destination *d, const char *in, size_t n, tp_buf *out, bool url,
                  char *err, size_t errcap) {
  static const char mark[] = "{{secret:";
  const char *end = in + n;
  while (in < end) {
    const char *at = memmem(in, (size_t)(end - in), mark, sizeof mark - 1);
    if (!at) break;
    const char *name = at + sizeof mark - 1;
    const char *close = memmem(name, (size_t)(end - name), "}}", 2);
    if (!close) break;  /* not a placeholder: kept as written */
    const tpc_secret *s = NULL;
    for (int i = 0; i < d->nsecrets && !s; i++)
      if (strlen(d->secrets[i].name) == (size_t)(close - name) &&
          memcmp(d->secrets[i].name, name, (size_t)(close - name)) == 0)
        s = &d->secrets[i];
    if (!s) {
      snprintf(err, errcap, "destination '%s' has no secret '%.*s'", d->name,
               (int)(close - name > 32 ? 32 : close - name), name);
      return -1;
    }
    if (!url && strpbrk(s->value, "\r\n")) {
      snprintf(err, errcap, "destination '%s': secret '%s' holds a line break and cannot go in a "
               "header", d->name, s->name);
      return -1;
    }
    if (out) {
      tp_buf_add(out, in, (size_t)(at - in));
      if (url) add_url_encoded(out, s->value);
      else tp_buf_adds(out, s->value);
    }
    in = close + 2;
  }
  if (out) tp_buf_add(out, in, (size_t)(end - in));
  return 0;
}

int tpc_expand_secrets(const tpc_destination *d, const char *in, size_t n, tp_buf *out, char *err,
                       size_t errcap) {
  return expand(d, in, n, out, false, err, errcap);
}

int tpc_expand_secrets_url(const tpc_destination *d, const char *in, size_t n, tp_buf *out,
                           char *err, size_t errcap) {
  return expand(d, in, n, out, true, err, errcap);
}
