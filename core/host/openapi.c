/*
** openapi.c - GET /v1/{tenant}/openapi.json and GET /admin/{tenant}/openapi.json:
** OpenAPI 3.0.3 documents of the routes the tenant serves now, one for the
** mini-program (users) and one for operators (behind the tenant's API key).
**
** Two documents, not one with tags: a mini-program developer generates a
** client from the user document and gets no operation the app must never
** call, and the operator surface (refunds, imports, payouts) is shown only to
** a caller holding the key. Each document has a relative `servers` entry, so
** its absolute paths resolve against wherever it was fetched from.
**
** Each document is generated per request by walking one of the tenant's
** routers, the very ones requests are dispatched on, so it shows what is mounted: the
** host's built-ins and the routes of the plugin generations serving now (a
** reload swaps the routers, and the next document follows). A plugin route's
** doc fields were checked and rendered to JSON when the plugin loaded
** (lua/routedoc.c, tp_route_doc); here they are only assembled, and every other
** string is escaped as it is written, so the output is always valid JSON.
*/
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "host/host_int.h"
#include "base/version.h"

/* ---- the operations, collected from the routers */

typedef struct operation {
  const tp_route *route;
  char path[400];          /* the OpenAPI path: /v1/leaf/catalog/products/{id} */
  char id[400];            /* operationId, unique in the document */
} operation;

typedef struct operations {
  operation *items;
  int n, cap;
  const char *prefix;      /* "/v1/leaf" or "/admin/leaf" while a router is walked */
} operations;

/* The route's pattern with the tenant filled in and {id:int} written {id}. */
static void openapi_path(const char *prefix, const char *pattern, char *out, size_t cap) {
  size_t o = (size_t)snprintf(out, cap, "%s", prefix);
  for (const char *c = pattern; *c && o + 1 < cap; c++) {
    if (*c == ':') {  /* only parameters have one: skip the type up to '}' */
      while (c[1] && c[1] != '}') c++;
      continue;
    }
    out[o++] = *c;
  }
  out[o < cap ? o : cap - 1] = '\0';
}

static void collect(const char *method, const char *pattern, void *data, void *ud) {
  (void)method;
  operations *ops = ud;
  if (ops->n == ops->cap) {
    ops->cap = ops->cap ? 2 * ops->cap : 32;
    ops->items = realloc(ops->items, (size_t)ops->cap * sizeof *ops->items);
    if (!ops->items) abort();  /* like tp_buf: no answer without memory */
  }
  operation *op = &ops->items[ops->n++];
  memset(op, 0, sizeof *op);
  op->route = data;
  openapi_path(ops->prefix, pattern, op->path, sizeof op->path);
}

static const char *owner(const tp_route *r) { return r->plugin ? r->plugin->name : "host"; }

/* owner_method_segments, e.g. catalog_get_catalog_products_id: readable in
** generated clients. Characters other than letters and digits become '_'. */
static void base_id(const tp_route *r, char *out, size_t cap) {
  char raw[400];
  snprintf(raw, sizeof raw, "%s_%s%s", owner(r), r->method, r->path);
  size_t o = 0;
  for (const char *c = raw; *c && o + 1 < cap; c++) {
    if (*c == ':') {  /* {id:int} -> id */
      while (c[1] && c[1] != '}') c++;
      continue;
    }
    if (*c == '{' || *c == '}') continue;
    char ch = isalnum((unsigned char)*c) ? (char)tolower((unsigned char)*c) : '_';
    if (ch == '_' && o > 0 && out[o - 1] == '_') continue;  /* one '_' between words */
    out[o++] = ch;
  }
  while (o > 0 && out[o - 1] == '_') o--;
  out[o] = '\0';
}

static bool id_taken(const operations *ops, int upto, const char *id) {
  for (int j = 0; j < upto; j++)
    if (strcmp(ops->items[j].id, id) == 0) return true;
  return false;
}

/* Two routes can yield the same base (GET /a-b and GET /a_b, or one path in
** both routers): later ones get _2, _3, ... */
static void assign_ids(operations *ops) {
  for (int i = 0; i < ops->n; i++) {
    operation *op = &ops->items[i];
    char base[360];
    base_id(op->route, base, sizeof base);
    snprintf(op->id, sizeof op->id, "%s", base);
    for (int k = 2; id_taken(ops, i, op->id); k++)
      snprintf(op->id, sizeof op->id, "%s_%d", base, k);
  }
}

/* ---- writing */

static void add_key_str(tp_buf *b, const char *key, const char *value) {
  tp_buf_printf(b, "\"%s\":", key);
  tp_buf_add_json_str(b, value, strlen(value));
}

/* The path parameters of a pattern, from its {name} and {name:int} segments. */
static bool add_path_params(tp_buf *b, const char *pattern) {
  bool any = false;
  for (const char *c = strchr(pattern, '{'); c; c = strchr(c + 1, '{')) {
    const char *end = strchr(c, '}');
    if (!end) break;  /* the router refused such a pattern */
    const char *colon = memchr(c, ':', (size_t)(end - c));
    size_t nlen = (size_t)((colon ? colon : end) - c - 1);
    bool integer = colon && strncmp(colon, ":int}", 5) == 0;
    tp_buf_adds(b, any ? ",{\"name\":" : "{\"name\":");
    tp_buf_add_json_str(b, c + 1, nlen);
    tp_buf_printf(b, ",\"in\":\"path\",\"required\":true,\"schema\":%s}",
                  integer ? "{\"type\":\"integer\",\"format\":\"int64\",\"minimum\":0}"
                          : "{\"type\":\"string\"}");
    any = true;
  }
  return any;
}

static void add_parameters(tp_buf *b, const tp_route *r) {
  size_t mark = b->len;
  tp_buf_adds(b, ",\"parameters\":[");
  bool any = add_path_params(b, r->path);
  if (r->doc.params) {
    if (any) tp_buf_addc(b, ',');
    tp_buf_adds(b, r->doc.params);
    any = true;
  }
  if (any) tp_buf_addc(b, ']');
  else b->len = mark;  /* no parameters: no empty list */
}

static void add_success(tp_buf *b, const tp_route *r, int status, const char *description) {
  tp_buf_printf(b, "\"%d\":{\"description\":\"%s\",\"content\":{\"application/json\":{",
                status, description);
  if (r->doc.response) {
    tp_buf_adds(b, "\"schema\":");
    tp_buf_adds(b, r->doc.response);
  }
  if (r->csv) tp_buf_adds(b, "},\"text/csv\":{\"schema\":{\"type\":\"string\"}");
  tp_buf_adds(b, "}}},");
}

/* The success response, the declared error responses (routes[i].errors,
** rendered at load), then `default` for what any route may answer (401, 429,
** 500 ...). A route that creates (status 201) and reads an Idempotency-Key
** answers a retry with 200 and the first answer's body: both are listed. */
static void add_responses(tp_buf *b, const tp_route *r) {
  int status = r->doc.status ? r->doc.status : 200;
  tp_buf_adds(b, ",\"responses\":{");
  bool idempotent = !r->doc.also[0] && status != 200 &&
                    (r->idempotent || (r->doc.params && strstr(r->doc.params,
                                       "{\"name\":\"Idempotency-Key\",\"in\":\"header\"")));
  for (int s = 200; s <= 299; s++) {  /* in status order */
    if (s == status) add_success(b, r, s, "Success");
    else if (idempotent && s == 200)
      add_success(b, r, s, "A retry with the Idempotency-Key of an accepted request: its answer");
    for (int k = 0; k < 3; k++)
      if (r->doc.also[k] == s)
        add_success(b, r, s, "Success, as the route answers some requests (a repeat of an "
                    "accepted one, or as its description says)");
  }
  if (r->doc.errors) {
    tp_buf_adds(b, r->doc.errors);
    tp_buf_addc(b, ',');
  }
  tp_buf_adds(b, "\"default\":{\"description\":\"An error: {\\\"error\\\":{\\\"code\\\","
                 "\\\"message\\\",\\\"details\\\"}} with its status\",\"content\":"
                 "{\"application/json\":{\"schema\":{\"$ref\":\"#/components/schemas/Error\"}}}}}");
}

static void add_security(tp_buf *b, tp_auth auth) {
  static const char *const security[] = {
    [TP_AUTH_NONE] = "[]",
    [TP_AUTH_OPTIONAL] = "[{},{\"userToken\":[]}]",
    [TP_AUTH_USER] = "[{\"userToken\":[]}]",
    [TP_AUTH_ADMIN] = "[{\"adminKey\":[]}]",
  };
  tp_buf_adds(b, ",\"security\":");
  tp_buf_adds(b, security[auth]);
}

static void add_operation(tp_buf *b, const operation *op) {
  const tp_route *r = op->route;
  char method[8];
  size_t k = 0;
  for (; r->method[k] && k + 1 < sizeof method; k++)
    method[k] = (char)tolower((unsigned char)r->method[k]);
  method[k] = '\0';
  tp_buf_printf(b, "\"%s\":{\"tags\":[", method);
  tp_buf_add_json_str(b, owner(r), strlen(owner(r)));
  tp_buf_adds(b, "],");
  add_key_str(b, "operationId", op->id);
  if (r->doc.summary) {
    tp_buf_addc(b, ',');
    add_key_str(b, "summary", r->doc.summary);
  }
  if (r->doc.description) {
    tp_buf_addc(b, ',');
    add_key_str(b, "description", r->doc.description);
  }
  add_parameters(b, r);
  if (r->doc.body) {
    tp_buf_printf(b, ",\"requestBody\":{\"required\":%s,\"content\":{\"application/json\":"
                  "{\"schema\":", r->doc.body_required ? "true" : "false");
    tp_buf_adds(b, r->doc.body);
    tp_buf_adds(b, "}}}");
  }
  add_responses(b, r);
  add_security(b, r->auth);
  tp_buf_addc(b, '}');
}

/* One path item per path, its operations in the order they were mounted. */
static void add_paths(tp_buf *b, const operations *ops) {
  tp_buf_adds(b, "\"paths\":{");
  bool first = true;
  for (int i = 0; i < ops->n; i++) {
    bool seen = false;
    for (int j = 0; j < i && !seen; j++) seen = strcmp(ops->items[j].path, ops->items[i].path) == 0;
    if (seen) continue;
    if (!first) tp_buf_addc(b, ',');
    first = false;
    tp_buf_add_json_str(b, ops->items[i].path, strlen(ops->items[i].path));
    tp_buf_adds(b, ":{");
    for (int j = i; j < ops->n; j++) {
      if (strcmp(ops->items[j].path, ops->items[i].path) != 0) continue;
      if (j > i) tp_buf_addc(b, ',');
      add_operation(b, &ops->items[j]);
    }
    tp_buf_addc(b, '}');
  }
  tp_buf_addc(b, '}');
}

/* info.description: which plugins (and versions) the routes come from. */
static void add_info(tp_buf *b, const tp_tenant *t, bool admin) {
  tp_buf text;
  tp_buf_init(&text);
  tp_buf_printf(&text, "The %s routes tenant %s serves now (under /%s/%s), generated from the "
                "route declarations of its plugins and the host's built-in endpoints. The %s "
                "routes are in /%s/%s/openapi.json.\n\nPlugins:",
                admin ? "operator" : "mini-program (user)", t->conf->id, admin ? "admin" : "v1",
                t->conf->id, admin ? "user" : "operator", admin ? "v1" : "admin", t->conf->id);
  int serving = 0;
  for (int i = 0; i < t->nslots; i++) {
    const tp_plugin *p = t->slots[i].current;
    if (p) tp_buf_printf(&text, "%s %s %s", serving++ ? "," : "", p->name, p->version);
  }
  if (!serving) tp_buf_adds(&text, " none");
  tp_buf_addc(&text, '.');
  for (int i = 0, failed = 0; i < t->nslots; i++)
    if (!t->slots[i].current)
      tp_buf_printf(&text, "%s %s", failed++ ? "," : "\n\nNot serving (failed to load):",
                    t->slots[i].conf->name);
  tp_buf_adds(b, "\"info\":{\"title\":");
  char title[128];
  snprintf(title, sizeof title, "tidepool %sAPI for tenant %s", admin ? "admin " : "",
           t->conf->id);
  tp_buf_add_json_str(b, title, strlen(title));
  tp_buf_adds(b, ",\"version\":\"" TIDEPOOL_VERSION "\",\"description\":");
  tp_buf_add_json_str(b, text.data, text.len);
  tp_buf_adds(b, "}");
  tp_buf_free(&text);
}

static void add_tags(tp_buf *b, const tp_tenant *t) {
  tp_buf_adds(b, "\"tags\":[");
  for (int i = 0; i < t->nslots; i++) {
    const tp_plugin *p = t->slots[i].current;
    if (!p) continue;
    char description[96];
    snprintf(description, sizeof description, "Plugin %s, version %s", p->name, p->version);
    tp_buf_adds(b, "{");
    add_key_str(b, "name", p->name);
    tp_buf_addc(b, ',');
    add_key_str(b, "description", description);
    tp_buf_adds(b, "},");
  }
  tp_buf_adds(b, "{\"name\":\"host\",\"description\":\"Built-in endpoints of the tidepool "
                 "host\"}]");
}

static const char servers[] =
  "\"servers\":[{\"url\":\"/\",\"description\":\"The host this document was fetched from: "
  "the paths are absolute (/v1/{tenant}/..., /admin/{tenant}/...)\"}]";

static const char components[] =
  "\"components\":{"
  "\"schemas\":{\"Error\":{\"type\":\"object\",\"required\":[\"error\"],\"properties\":"
  "{\"error\":{\"type\":\"object\",\"required\":[\"code\",\"message\"],\"properties\":{"
  "\"code\":{\"type\":\"string\",\"description\":\"Stable, machine-readable\"},"
  "\"message\":{\"type\":\"string\",\"description\":\"For people; may change\"},"
  "\"details\":{\"description\":\"Whatever the plugin attached (tp.fail's details)\"}}}}}},"
  "\"securitySchemes\":{"
  "\"userToken\":{\"type\":\"http\",\"scheme\":\"bearer\",\"description\":"
  "\"A mini-program user's token for this tenant (v1.<tenant>.<user>.<exp>.<sig>)\"},"
  "\"adminKey\":{\"type\":\"apiKey\",\"in\":\"header\",\"name\":\"X-Api-Key\",\"description\":"
  "\"One of the tenant's API keys\"}}}";

/* The document of one of the tenant's routers: the users' (admin false) or
** the operators'. */
static void write_document(tp_tenant *t, bool admin, tph_response *res) {
  char prefix[96];
  snprintf(prefix, sizeof prefix, "/%s/%s", admin ? "admin" : "v1", t->conf->id);
  operations ops = {.prefix = prefix};
  tpr_each(admin ? t->admin : t->routes, collect, &ops);
  assign_ids(&ops);
  tp_buf *b = &res->body;
  tp_buf_adds(b, "{\"openapi\":\"3.0.3\",");
  add_info(b, t, admin);
  tp_buf_addc(b, ',');
  tp_buf_adds(b, servers);
  tp_buf_addc(b, ',');
  add_tags(b, t);
  tp_buf_addc(b, ',');
  add_paths(b, &ops);
  tp_buf_addc(b, ',');
  tp_buf_adds(b, components);
  tp_buf_addc(b, '}');
  free(ops.items);
  res->status = 200;
}

/* GET /v1/{tenant}/openapi.json */
static void get_openapi(tp_host *h, tp_tenant *t, const tph_request *req, tph_response *res) {
  (void)h, (void)req;
  write_document(t, false, res);
}

/* GET /admin/{tenant}/openapi.json */
static void get_admin_openapi(tp_host *h, tp_tenant *t, const tph_request *req,
                              tph_response *res) {
  (void)h, (void)req;
  write_document(t, true, res);
}

#define DOCUMENT                                                                         \
  "{\"type\":\"object\",\"description\":\"an OpenAPI 3.0.3 document\",\"required\":[\"openapi\"," \
  "\"paths\"],\"properties\":{\"openapi\":{\"type\":\"string\"},\"paths\":{\"type\":\"object\"}}}"

static tp_route openapi_routes[2] = {
  {.method = "GET", .path = "/openapi.json", .label = "host GET /v1/{tenant}/openapi.json",
   .auth = TP_AUTH_NONE, .builtin = (void (*)(void))(tp_builtin_fn)get_openapi,
   .doc = {.summary = "This document: OpenAPI 3.0.3 for every user route the tenant serves now",
           .description = "Generated on each request from the routes mounted at that moment, "
                          "so it follows hot reloads. The operator routes are in "
                          "/admin/{tenant}/openapi.json.",
           .response = DOCUMENT}},
  {.method = "GET", .path = "/openapi.json", .label = "host GET /admin/{tenant}/openapi.json",
   .auth = TP_AUTH_ADMIN, .builtin = (void (*)(void))(tp_builtin_fn)get_admin_openapi,
   .doc = {.summary = "This document: OpenAPI 3.0.3 for every operator route the tenant serves "
                      "now",
           .description = "Generated on each request from the routes mounted at that moment, "
                          "so it follows hot reloads. The user routes are in "
                          "/v1/{tenant}/openapi.json.",
           .response = DOCUMENT}},
};

const tp_route *tp__openapi_route(bool admin) { return &openapi_routes[admin ? 1 : 0]; }
