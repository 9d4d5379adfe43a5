/*
** routedoc.c - the documentation fields of a plugin's route (summary,
** description, query, headers, body, response, status, errors), checked when
** the plugin loads and kept rendered as JSON for the OpenAPI document.
**
** errors = { [409] = { "sold_out", "limit_reached" }, [404] = { "not_found" } }
** lists the error responses a route gives on purpose (tp.fail's status and
** code): each status becomes one OpenAPI response whose schema is the shared
** Error with error.code narrowed to an enum of the codes listed. A code that
** ends in '*' stands for every code with that prefix (risk_*: sdk/tp/risk.lua
** refuses with risk_<the rule's code>).
*/
#include "lua/routedoc.h"

#include <lauxlib.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/json.h"
#include "base/suggest.h"

#define DOC_MAX_SUMMARY 200
#define DOC_MAX_PARAMS 64      /* per route, for each of query and headers */
#define DOC_MAX_PARAM_NAME 64
#define DOC_MAX_STATUSES 16    /* error statuses per route */
#define DOC_MAX_CODES 32       /* codes per error status */
#define DOC_MAX_CODE 64        /* bytes of one code */

static int doc_error(char *err, size_t errcap, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static int doc_error(char *err, size_t errcap, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(err, errcap, fmt, ap);
  va_end(ap);
  return -1;
}

static char *dup_buf(const tp_buf *b) {
  char *s = malloc(b->len + 1);
  if (!s) abort();  /* like tp_buf: no sane way on without memory */
  memcpy(s, b->data ? b->data : "", b->len);
  s[b->len] = '\0';
  return s;
}

/* routes[i].key: a string (of at most max bytes when max > 0), copied to
** *out; absent leaves *out NULL. */
static int doc_text(lua_State *L, int t, int i, const char *key, size_t max, const char **out,
                    char *err, size_t errcap) {
  int type = tpst_rawfield(L, t, key);
  size_t n = 0;
  const char *s = type == LUA_TSTRING ? lua_tolstring(L, -1, &n) : NULL;
  int rc = 0;
  if (type == LUA_TNIL) {
    /* not declared */
  } else if (!s || (max && n > max)) {
    rc = max ? doc_error(err, errcap, "routes[%d].%s must be a string of at most %zu bytes", i,
                         key, max)
             : doc_error(err, errcap, "routes[%d].%s must be a string", i, key);
  } else if (strlen(s) != n) {
    rc = doc_error(err, errcap, "routes[%d].%s must be a string without NUL bytes", i, key);
  } else {
    *out = strdup(s);
    if (!*out) abort();
  }
  lua_pop(L, 1);
  return rc;
}

/* ---- a route's JSON Schemas: the OpenAPI 3.0 subset, checked at load so
** that a typo (type = "objekt", proprties) is the plugin's error, not an
** invalid document for the whole tenant */

static const char *const SCHEMA_KEYS[] = {
    "type", "properties", "items", "required", "enum", "nullable", "description", "format",
    "pattern", "default", "example", "minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum",
    "multipleOf", "minLength", "maxLength", "minItems", "maxItems", "uniqueItems", "minProperties",
    "maxProperties", "additionalProperties", "allOf", "anyOf", "oneOf", "not", "title", "readOnly",
    "writeOnly", "deprecated", NULL};
static const char *const SCHEMA_TYPES[] = {"string", "integer", "number", "boolean", "array",
                                           "object", NULL};

static bool one_of(const char *s, const char *const *names) {
  for (const char *const *n = names; *n; n++)
    if (strcmp(s, *n) == 0) return true;
  return false;
}

static bool is_list(lua_State *L, int idx) {
  lua_Integer n = (lua_Integer)lua_rawlen(L, idx), count = 0;
  lua_pushnil(L);
  while (lua_next(L, idx)) {
    lua_pop(L, 1);
    if (!lua_isinteger(L, -1) || lua_tointeger(L, -1) < 1 || lua_tointeger(L, -1) > n) {
      lua_pop(L, 1);
      return false;
    }
    count++;
  }
  return count == n;
}

static int check_schema(lua_State *L, int idx, const char *where, int depth, char *err, size_t errcap);

/* Each element of the list at idx is a schema. */
static int check_schemas(lua_State *L, int idx, const char *where, int depth, char *err, size_t errcap) {
  if (!lua_istable(L, idx) || !is_list(L, idx) || lua_rawlen(L, idx) == 0)
    return doc_error(err, errcap, "%s must be a list of schemas", where);
  for (lua_Integer k = 1; k <= (lua_Integer)lua_rawlen(L, idx); k++) {
    char sub[300];
    snprintf(sub, sizeof sub, "%.250s[%lld]", where, (long long)k);  /* a long path is cut */
    lua_rawgeti(L, idx, k);
    int rc = check_schema(L, lua_gettop(L), sub, depth + 1, err, errcap);
    lua_pop(L, 1);
    if (rc != 0) return -1;
  }
  return 0;
}

static int check_schema(lua_State *L, int idx, const char *where, int depth, char *err, size_t errcap) {
  idx = lua_absindex(L, idx);
  if (depth > 32) return doc_error(err, errcap, "%s nests deeper than 32 schemas", where);
  if (!lua_istable(L, idx)) return doc_error(err, errcap, "%s must be a schema (a table)", where);
  lua_pushnil(L);
  while (lua_next(L, idx)) {
    /* stack: key value */
    int v = lua_gettop(L);
    const char *key = lua_type(L, -2) == LUA_TSTRING ? lua_tostring(L, -2) : NULL;
    char sub[300], hint[80];
    int rc = 0;
    if (!key) {
      rc = doc_error(err, errcap, "%s: a schema's keys are names", where);
    } else if (strncmp(key, "x-", 2) == 0) {
      /* an extension: anything goes */
    } else if (!one_of(key, SCHEMA_KEYS)) {
      rc = doc_error(err, errcap, "%s: unknown schema key '%s'%s", where, key,
                     tp_suggest_hint(key, SCHEMA_KEYS, hint, sizeof hint));
    } else if (strcmp(key, "type") == 0) {
      if (lua_type(L, v) != LUA_TSTRING || !one_of(lua_tostring(L, v), SCHEMA_TYPES))
        rc = doc_error(err, errcap, "%s.type must be string, integer, number, boolean, array or object%s",
                       where, lua_type(L, v) == LUA_TSTRING
                                  ? tp_suggest_hint(lua_tostring(L, v), SCHEMA_TYPES, hint, sizeof hint) : "");
    } else if (strcmp(key, "properties") == 0) {
      if (!lua_istable(L, v)) rc = doc_error(err, errcap, "%s.properties must be a table of name = schema", where);
      lua_pushnil(L);
      while (rc == 0 && lua_next(L, v)) {
        snprintf(sub, sizeof sub, "%.200s.properties.%.64s", where,
                 lua_type(L, -2) == LUA_TSTRING ? lua_tostring(L, -2) : "?");
        rc = lua_type(L, -2) != LUA_TSTRING ? doc_error(err, errcap, "%s: a property's name must be a string", sub)
                                            : check_schema(L, lua_gettop(L), sub, depth + 1, err, errcap);
        lua_pop(L, rc == 0 ? 1 : 2);
      }
    } else if (strcmp(key, "items") == 0 || strcmp(key, "not") == 0) {
      snprintf(sub, sizeof sub, "%.250s.%.32s", where, key);
      rc = check_schema(L, v, sub, depth + 1, err, errcap);
    } else if (strcmp(key, "additionalProperties") == 0) {
      snprintf(sub, sizeof sub, "%.250s.additionalProperties", where);
      if (lua_type(L, v) != LUA_TBOOLEAN) rc = check_schema(L, v, sub, depth + 1, err, errcap);
    } else if (strcmp(key, "allOf") == 0 || strcmp(key, "anyOf") == 0 || strcmp(key, "oneOf") == 0) {
      snprintf(sub, sizeof sub, "%.250s.%.32s", where, key);
      rc = check_schemas(L, v, sub, depth, err, errcap);
    } else if (strcmp(key, "required") == 0 || strcmp(key, "enum") == 0) {
      if (!lua_istable(L, v) || !is_list(L, v) || lua_rawlen(L, v) == 0)
        rc = doc_error(err, errcap, "%s.%s must be a non-empty list", where, key);
      for (lua_Integer k = 1; rc == 0 && key[0] == 'r' && k <= (lua_Integer)lua_rawlen(L, v); k++) {
        if (lua_rawgeti(L, v, k) != LUA_TSTRING)
          rc = doc_error(err, errcap, "%s.required must list property names", where);
        lua_pop(L, 1);
      }
    } else if (strcmp(key, "nullable") == 0 || strcmp(key, "uniqueItems") == 0 ||
               strcmp(key, "readOnly") == 0 || strcmp(key, "writeOnly") == 0 ||
               strcmp(key, "deprecated") == 0 || strcmp(key, "exclusiveMinimum") == 0 ||
               strcmp(key, "exclusiveMaximum") == 0) {
      if (lua_type(L, v) != LUA_TBOOLEAN) rc = doc_error(err, errcap, "%s.%s must be true or false", where, key);
    } else if (strcmp(key, "description") == 0 || strcmp(key, "format") == 0 ||
               strcmp(key, "pattern") == 0 || strcmp(key, "title") == 0) {
      if (lua_type(L, v) != LUA_TSTRING) rc = doc_error(err, errcap, "%s.%s must be a string", where, key);
    } else if (strcmp(key, "default") != 0 && strcmp(key, "example") != 0) {  /* the numbers */
      if (lua_type(L, v) != LUA_TNUMBER) rc = doc_error(err, errcap, "%s.%s must be a number", where, key);
    }
    if (rc != 0) {
      lua_settop(L, idx);
      return -1;
    }
    lua_settop(L, v - 1);  /* the key, for lua_next */
  }
  return 0;
}

/* routes[i].key: a table that encodes as a JSON object (a JSON Schema),
** kept as its JSON text. */
static int doc_schema(lua_State *L, int t, int i, const char *key, const char **out, char *err,
                      size_t errcap) {
  int type = tpst_rawfield(L, t, key);
  int rc = 0;
  if (type == LUA_TNIL) {
    lua_pop(L, 1);
    return 0;
  }
  tp_buf json;
  tp_buf_init(&json);
  char e[256];
  char where[64];
  snprintf(where, sizeof where, "routes[%d].%s", i, key);
  if (type != LUA_TTABLE)
    rc = doc_error(err, errcap, "routes[%d].%s must be a table (a JSON Schema)", i, key);
  else if (tpj_encode(L, -1, &json, e, sizeof e) != 0)
    rc = doc_error(err, errcap, "routes[%d].%s cannot be JSON: %s", i, key, e);
  else if (json.data[0] != '{')
    rc = doc_error(err, errcap, "routes[%d].%s must be a JSON Schema object, not a list", i, key);
  else if (check_schema(L, lua_gettop(L), where, 0, err, errcap) != 0)
    rc = -1;
  else
    *out = dup_buf(&json);
  tp_buf_free(&json);
  lua_pop(L, 1);
  return rc;
}

/* true when the schema at idx (a table) has a non-empty `required` list: a
** body that requires a field cannot be left out, one that requires none can. */
static bool requires_fields(lua_State *L, int idx) {
  bool any = tpst_rawfield(L, idx, "required") == LUA_TTABLE && lua_rawlen(L, -1) > 0;
  lua_pop(L, 1);
  return any;
}

/* a-z, 0-9 and _, or such a prefix and '*' ("risk_*": every code it starts) */
static bool valid_code(const char *s, size_t n) {
  if (n == 0 || n > DOC_MAX_CODE || strlen(s) != n) return false;
  if (s[n - 1] == '*' && --n == 0) return false;
  for (size_t k = 0; k < n; k++)
    if (!((s[k] >= 'a' && s[k] <= 'z') || (s[k] >= '0' && s[k] <= '9') || s[k] == '_'))
      return false;
  return true;
}

static int cmp_ints(const void *a, const void *b) {
  int x = *(const int *)a, y = *(const int *)b;
  return (x > y) - (x < y);
}

/* The schema of error.code for the n codes of the list at idx (checked): an
** enum of the exact codes, and a pattern for each prefix ("risk_*"). */
static void render_codes(lua_State *L, int idx, int n, tp_buf *out) {
  int exact = 0, prefixes = 0;
  for (int k = 1; k <= n; k++) {
    size_t len;
    lua_rawgeti(L, idx, k);
    const char *code = lua_tolstring(L, -1, &len);
    if (code[len - 1] == '*') prefixes++;
    else exact++;
    lua_pop(L, 1);
  }
  tp_buf_adds(out, "{\"type\":\"string\"");
  if (prefixes) tp_buf_adds(out, ",\"anyOf\":[");
  for (int pass = 0; pass < 2; pass++) {  /* the enum of the exact codes, then the patterns */
    if (pass == 0 && exact) tp_buf_adds(out, prefixes ? "{\"enum\":[" : ",\"enum\":[");
    bool first = true;
    for (int k = 1; k <= n; k++) {
      size_t len;
      lua_rawgeti(L, idx, k);
      const char *code = lua_tolstring(L, -1, &len);
      bool prefix = code[len - 1] == '*';
      if (pass == 0 && !prefix) {
        if (!first) tp_buf_addc(out, ',');
        tp_buf_add_json_str(out, code, len);
        first = false;
      } else if (pass == 1 && prefix) {
        tp_buf_adds(out, exact || !first ? ",{\"pattern\":\"^" : "{\"pattern\":\"^");
        tp_buf_add(out, code, len - 1);  /* a-z, 0-9, _: nothing to escape */
        tp_buf_adds(out, "\"}");
        first = false;
      }
      lua_pop(L, 1);
    }
    if (pass == 0 && exact) tp_buf_adds(out, prefixes ? "]}" : "]");
  }
  if (prefixes) tp_buf_addc(out, ']');
  tp_buf_addc(out, '}');
}

/* routes[i].errors[status] (the list at idx): checked and appended to out as
** one OpenAPI response, "409":{...}. */
static int render_error(lua_State *L, int idx, int i, int status, tp_buf *out, char *err,
                        size_t errcap) {
  int n = (int)lua_rawlen(L, idx);
  lua_pushnil(L);
  for (int count = 0; lua_next(L, idx); count++) {  /* a list and nothing else */
    lua_pop(L, 1);
    if (!lua_isinteger(L, -1) || lua_tointeger(L, -1) < 1 || lua_tointeger(L, -1) > n ||
        count >= n) {
      lua_pop(L, 1);
      return doc_error(err, errcap, "routes[%d].errors[%d] must be a list of error codes", i,
                       status);
    }
  }
  if (n < 1 || n > DOC_MAX_CODES)
    return doc_error(err, errcap, "routes[%d].errors[%d] must list 1-%d error codes", i, status,
                     DOC_MAX_CODES);
  tp_buf codes;
  tp_buf_init(&codes);
  int rc = 0;
  for (int k = 1; k <= n && rc == 0; k++) {
    size_t len = 0;
    const char *code = lua_rawgeti(L, idx, k) == LUA_TSTRING ? lua_tolstring(L, -1, &len) : NULL;
    if (!code || !valid_code(code, len))
      rc = doc_error(err, errcap, "routes[%d].errors[%d][%d] must be an error code: 1-%d bytes "
                     "of a-z, 0-9 and _ (a prefix ends in *)", i, status, k, DOC_MAX_CODE);
    for (int j = 1; rc == 0 && j < k; j++) {
      lua_rawgeti(L, idx, j);
      if (lua_rawequal(L, -1, -2))
        rc = doc_error(err, errcap, "routes[%d].errors[%d] lists '%s' twice", i, status, code);
      lua_pop(L, 1);
    }
    if (rc == 0) {
      tp_buf_adds(&codes, k > 1 ? ", " : "");
      tp_buf_add(&codes, code, len);
    }
    lua_pop(L, 1);
  }
  if (rc == 0) {
    tp_buf_printf(out, "%s\"%d\":{\"description\":", out->len ? "," : "", status);
    tp_buf_add_json_str(out, codes.data, codes.len);
    tp_buf_adds(out, ",\"content\":{\"application/json\":{\"schema\":{\"allOf\":["
                     "{\"$ref\":\"#/components/schemas/Error\"},{\"type\":\"object\","
                     "\"properties\":{\"error\":{\"type\":\"object\",\"properties\":"
                     "{\"code\":");
    render_codes(L, idx, n, out);
    tp_buf_adds(out, "}}}}]}}}}");
  }
  tp_buf_free(&codes);
  return rc;
}

/* routes[i].errors: { [status] = { code, ... } } for statuses 400-599,
** rendered into out in status order. */
static int doc_errors(lua_State *L, int t, int i, tp_buf *out, char *err, size_t errcap) {
  int type = tpst_rawfield(L, t, "errors");
  int tbl = lua_gettop(L);
  int rc = 0;
  int statuses[DOC_MAX_STATUSES], n = 0;
  if (type == LUA_TNIL) goto done;
  if (type != LUA_TTABLE) {
    rc = doc_error(err, errcap, "routes[%d].errors must be a table of status = { code, ... }",
                   i);
    goto done;
  }
  lua_pushnil(L);
  while (lua_next(L, tbl)) {
    lua_pop(L, 1);
    lua_Integer status = lua_isinteger(L, -1) ? lua_tointeger(L, -1) : 0;
    if (status < 400 || status > 599) {
      lua_pop(L, 1);
      rc = doc_error(err, errcap, "routes[%d].errors keys must be statuses from 400 to 599", i);
      goto done;
    }
    if (n == DOC_MAX_STATUSES) {
      lua_pop(L, 1);
      rc = doc_error(err, errcap, "routes[%d].errors lists more than %d statuses", i,
                     DOC_MAX_STATUSES);
      goto done;
    }
    statuses[n++] = (int)status;
  }
  qsort(statuses, (size_t)n, sizeof *statuses, cmp_ints);
  for (int k = 0; k < n && rc == 0; k++) {
    if (lua_rawgeti(L, tbl, statuses[k]) != LUA_TTABLE)
      rc = doc_error(err, errcap, "routes[%d].errors[%d] must be a list of error codes", i,
                     statuses[k]);
    else
      rc = render_error(L, lua_gettop(L), i, statuses[k], out, err, errcap);
    lua_pop(L, 1);
  }
done:
  lua_settop(L, tbl - 1);
  return rc;
}

static bool success_status(lua_State *L, int idx, int *out) {
  lua_Integer status = lua_isinteger(L, idx) ? lua_tointeger(L, idx) : 0;
  *out = (int)status;
  return status >= 200 && status <= 299;
}

/* routes[i].status: the success status, or a list of 2-4 different ones, the
** usual first, for a route that answers some requests with another ({ 201,
** 200 }: a repeat of an accepted request answers 200). */
static int doc_status(lua_State *L, int t, int i, tp_route_doc *doc, char *err, size_t errcap) {
  int type = tpst_rawfield(L, t, "status");
  int top = lua_gettop(L), rc = 0;
  doc->status = 200;
  memset(doc->also, 0, sizeof doc->also);
  if (type == LUA_TTABLE) {
    int n = (int)lua_rawlen(L, top);
    bool ok = n >= 2 && n <= 4;
    for (int k = 1; ok && k <= n; k++) {
      lua_rawgeti(L, top, k);
      int *slot = k == 1 ? &doc->status : &doc->also[k - 2];
      ok = success_status(L, -1, slot);
      for (int j = 0; ok && j < k - 2; j++) ok = doc->also[j] != *slot;
      ok = ok && (k == 1 || doc->status != *slot);
      lua_pop(L, 1);
    }
    if (!ok)
      rc = doc_error(err, errcap, "routes[%d].status must be an integer from 200 to 299, or a "
                     "list of 2-4 different ones (the usual first)", i);
  } else if (type != LUA_TNIL && !success_status(L, top, &doc->status)) {
    rc = doc_error(err, errcap, "routes[%d].status must be an integer from 200 to 299", i);
  }
  lua_settop(L, top - 1);
  return rc;
}

static bool header_name_char(char c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
         c == '-' || c == '_';
}

static bool valid_param_name(const char *s, size_t n, bool header) {
  if (n == 0 || n > DOC_MAX_PARAM_NAME || strlen(s) != n) return false;
  for (size_t k = 0; header && k < n; k++)
    if (!header_name_char(s[k])) return false;
  return true;
}

static int cmp_names(const void *a, const void *b) {
  return strcmp(*(const char *const *)a, *(const char *const *)b);
}

/* The parameter names of the table at idx, checked and sorted (the output
** should not depend on Lua's table order). The strings are the table's keys,
** alive as long as it is. */
static int param_names(lua_State *L, int idx, int i, const char *field, const char **names,
                       int *n, char *err, size_t errcap) {
  bool header = strcmp(field, "headers") == 0;
  *n = 0;
  lua_pushnil(L);
  while (lua_next(L, idx)) {
    lua_pop(L, 1);
    size_t len;
    const char *name = lua_type(L, -1) == LUA_TSTRING ? lua_tolstring(L, -1, &len) : NULL;
    if (!name || !valid_param_name(name, len, header)) {
      lua_pop(L, 1);
      return header ? doc_error(err, errcap, "routes[%d].headers keys must be header names of "
                                "1-%d letters, digits, '-' or '_'", i, DOC_MAX_PARAM_NAME)
                    : doc_error(err, errcap, "routes[%d].query keys must be parameter names "
                                "of 1-%d bytes", i, DOC_MAX_PARAM_NAME);
    }
    if (*n == DOC_MAX_PARAMS) {
      lua_pop(L, 1);
      return doc_error(err, errcap, "routes[%d].%s declares more than %d parameters", i, field,
                       DOC_MAX_PARAMS);
    }
    names[(*n)++] = name;
  }
  qsort(names, (size_t)*n, sizeof *names, cmp_names);
  return 0;
}

/* Checks routes[i].field[name] (a table at spec) and appends it as an
** OpenAPI parameter object. */
static int render_param(lua_State *L, int spec, int i, const char *field, const char *name,
                        tp_buf *out, char *err, size_t errcap) {
  bool header = strcmp(field, "headers") == 0;
  lua_pushnil(L);
  while (lua_next(L, spec)) {
    lua_pop(L, 1);
    const char *k = lua_type(L, -1) == LUA_TSTRING ? lua_tostring(L, -1) : "?";
    if (strcmp(k, "description") && strcmp(k, "required") && (header || strcmp(k, "type"))) {
      lua_pop(L, 1);
      return doc_error(err, errcap, "routes[%d].%s.%s has an unknown field '%s' (known: %s)", i,
                       field, name, k, header ? "description, required"
                                              : "type, description, required");
    }
  }
  const char *type = "string";
  if (!header) {
    type = tpst_rawfield(L, spec, "type") == LUA_TSTRING ? lua_tostring(L, -1) : "";
    lua_pop(L, 1);  /* the string stays alive in spec */
    if (strcmp(type, "string") && strcmp(type, "integer") && strcmp(type, "boolean"))
      return doc_error(err, errcap, "routes[%d].query.%s.type must be \"string\", \"integer\" "
                       "or \"boolean\"", i, name);
  }
  int rt = tpst_rawfield(L, spec, "required");
  bool required = lua_toboolean(L, -1);
  lua_pop(L, 1);
  if (rt != LUA_TNIL && rt != LUA_TBOOLEAN)
    return doc_error(err, errcap, "routes[%d].%s.%s.required must be a boolean", i, field, name);
  int dt = tpst_rawfield(L, spec, "description");
  size_t dlen = 0;
  const char *description = dt == LUA_TSTRING ? lua_tolstring(L, -1, &dlen) : NULL;
  if (dt != LUA_TNIL && dt != LUA_TSTRING) {
    lua_pop(L, 1);
    return doc_error(err, errcap, "routes[%d].%s.%s.description must be a string", i, field,
                     name);
  }
  tp_buf_adds(out, out->len ? ",{\"name\":" : "{\"name\":");
  tp_buf_add_json_str(out, name, strlen(name));
  tp_buf_printf(out, ",\"in\":\"%s\",\"required\":%s", header ? "header" : "query",
                required ? "true" : "false");
  if (description) {
    tp_buf_adds(out, ",\"description\":");
    tp_buf_add_json_str(out, description, dlen);
  }
  tp_buf_printf(out, ",\"schema\":{\"type\":\"%s\"}}", type);
  lua_pop(L, 1);
  return 0;
}

/* routes[i].field (query or headers): name -> spec, appended to out as
** OpenAPI parameter objects in name order. */
static int doc_params(lua_State *L, int t, int i, const char *field, tp_buf *out, char *err,
                      size_t errcap) {
  int type = tpst_rawfield(L, t, field);
  int tbl = lua_gettop(L);
  int rc = 0;
  if (type == LUA_TNIL) {
    /* none declared */
  } else if (type != LUA_TTABLE) {
    rc = strcmp(field, "headers") == 0
             ? doc_error(err, errcap, "routes[%d].headers must be a table of header name = "
                         "{description = string?, required = boolean?}", i)
             : doc_error(err, errcap, "routes[%d].query must be a table of name = {type = "
                         "\"string\"|\"integer\"|\"boolean\", description = string?, "
                         "required = boolean?}", i);
  } else {
    const char *names[DOC_MAX_PARAMS];
    int n;
    rc = param_names(L, tbl, i, field, names, &n, err, errcap);
    for (int k = 0; rc == 0 && k < n; k++) {
      if (tpst_rawfield(L, tbl, names[k]) != LUA_TTABLE)
        rc = doc_error(err, errcap, "routes[%d].%s.%s must be a table {%sdescription = string?, "
                       "required = boolean?}", i, field, names[k],
                       strcmp(field, "query") == 0 ? "type = ..., " : "");
      else
        rc = render_param(L, lua_gettop(L), i, field, names[k], out, err, errcap);
      lua_pop(L, 1);
    }
  }
  lua_settop(L, tbl - 1);
  return rc;
}

void tprd_free(tp_route_doc *d) {
  free((void *)d->summary);
  free((void *)d->description);
  free((void *)d->params);
  free((void *)d->body);
  free((void *)d->response);
  free((void *)d->errors);
  memset(d, 0, sizeof *d);
}

/* Checks the doc fields of routes[i] (the table at t) and keeps them in doc,
** rendered for the OpenAPI document. */
int tprd_read(lua_State *L, int t, int i, tp_route_doc *doc, char *err, size_t errcap) {
  tp_buf params, errors;
  tp_buf_init(&params);
  tp_buf_init(&errors);
  int rc = -1;
  if (doc_text(L, t, i, "summary", DOC_MAX_SUMMARY, &doc->summary, err, errcap) == 0 &&
      doc_text(L, t, i, "description", 0, &doc->description, err, errcap) == 0 &&
      doc_params(L, t, i, "query", &params, err, errcap) == 0 &&
      doc_params(L, t, i, "headers", &params, err, errcap) == 0 &&
      doc_schema(L, t, i, "body", &doc->body, err, errcap) == 0 &&
      doc_schema(L, t, i, "response", &doc->response, err, errcap) == 0 &&
      doc_status(L, t, i, doc, err, errcap) == 0 &&
      doc_errors(L, t, i, &errors, err, errcap) == 0) {
    if (params.len) doc->params = dup_buf(&params);
    if (errors.len) doc->errors = dup_buf(&errors);
    if (doc->body) {
      tpst_rawfield(L, t, "body");  /* a table: doc_schema checked it */
      doc->body_required = requires_fields(L, lua_gettop(L));
      lua_pop(L, 1);
    }
    rc = 0;
  }
  tp_buf_free(&params);
  tp_buf_free(&errors);
  if (rc != 0) tprd_free(doc);
  return rc;
}

