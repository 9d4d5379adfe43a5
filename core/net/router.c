/*
** router.c - a trie of path segments per tenant.
*/
#include "net/router.h"

#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/url.h"

typedef struct endpoint {
  char method[8];
  char *pattern;
  void *data;
  struct endpoint *next;
} endpoint;

typedef struct node {
  char *literal;           /* NULL for a parameter node */
  char *param_name;
  tpr_type param_type;
  struct node *children;   /* literal children */
  struct node *param;      /* at most one parameter child */
  struct node *next;       /* sibling in the parent's literal list */
  endpoint *endpoints;
} node;

struct tpr_router {
  node root;
};

static void free_node(node *n);
static node *literal_child(node *parent, const char *seg, size_t n, bool create);
static endpoint *method_endpoint(node *n, const char *method);

tpr_router *tpr_new(void) { return calloc(1, sizeof(tpr_router)); }

static void free_children(node *n) {
  node *c = n->children;
  while (c) {
    node *next = c->next;
    free_node(c);
    c = next;
  }
  if (n->param) free_node(n->param);
  for (endpoint *e = n->endpoints, *next; e; e = next) {
    next = e->next;
    free(e->pattern);
    free(e);
  }
}

static void free_node(node *n) {
  free_children(n);
  free(n->literal);
  free(n->param_name);
  free(n);
}

void tpr_free(tpr_router *r) {
  if (!r) return;
  free_children(&r->root);
  free(r);
}

static bool valid_method(const char *m) {
  static const char *const methods[] = {"GET", "POST", "PUT", "PATCH", "DELETE"};
  for (size_t i = 0; i < sizeof methods / sizeof *methods; i++)
    if (strcmp(m, methods[i]) == 0) return true;
  return false;
}

static bool literal_char(char c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
         c == '-' || c == '_' || c == '.' || c == '~';
}

static bool valid_param_name(const char *s, size_t n) {
  if (n == 0 || n > 32 || !((s[0] >= 'a' && s[0] <= 'z') || s[0] == '_')) return false;
  for (size_t i = 1; i < n; i++)
    if (!((s[i] >= 'a' && s[i] <= 'z') || (s[i] >= '0' && s[i] <= '9') || s[i] == '_'))
      return false;
  return true;
}

/* Parses "{name}" / "{name:int}" / "{name:str}" into name and type. */
static int parse_param(const char *seg, size_t n, char *name, size_t cap, tpr_type *type) {
  if (n < 3 || seg[0] != '{' || seg[n - 1] != '}') return -1;
  const char *body = seg + 1;
  size_t blen = n - 2;
  const char *colon = memchr(body, ':', blen);
  size_t nlen = colon ? (size_t)(colon - body) : blen;
  if (!valid_param_name(body, nlen) || nlen >= cap) return -1;
  memcpy(name, body, nlen);
  name[nlen] = '\0';
  *type = TPR_STR;
  if (colon) {
    size_t tlen = blen - nlen - 1;
    if (tlen == 3 && memcmp(colon + 1, "int", 3) == 0) *type = TPR_INT;
    else if (!(tlen == 3 && memcmp(colon + 1, "str", 3) == 0)) return -1;
  }
  return 0;
}

static node *literal_child(node *parent, const char *seg, size_t n, bool create) {
  for (node *c = parent->children; c; c = c->next)
    if (strlen(c->literal) == n && memcmp(c->literal, seg, n) == 0) return c;
  if (!create) return NULL;
  node *c = calloc(1, sizeof *c);
  if (!c) return NULL;
  c->literal = strndup(seg, n);
  /* append, so that tpr_each lists routes in the order they were added */
  node **tail = &parent->children;
  while (*tail) tail = &(*tail)->next;
  *tail = c;
  return c;
}

typedef struct segment {
  const char *text;
  size_t len;
  bool param;
  char name[33];
  tpr_type type;
} segment;

/* Splits and checks a pattern without touching the trie. */
static int parse_pattern(const char *pattern, segment *segs, int *nsegs, char *err,
                         size_t errcap) {
  if (pattern[0] != '/' || strlen(pattern) > 256) {
    snprintf(err, errcap, "pattern '%s' must start with '/' and be at most 256 bytes", pattern);
    return -1;
  }
  int n = 0, nparams = 0;
  for (const char *p = pattern + 1; *p;) {
    const char *slash = strchr(p, '/');
    size_t len = slash ? (size_t)(slash - p) : strlen(p);
    if (len == 0 || n == TPR_MAX_DEPTH || (slash && !slash[1])) {
      snprintf(err, errcap, "pattern '%s' has an empty segment, a trailing '/' or is too deep",
               pattern);
      return -1;
    }
    segment *sg = &segs[n++];
    *sg = (segment){.text = p, .len = len, .param = p[0] == '{'};
    if (sg->param) {
      if (parse_param(p, len, sg->name, sizeof sg->name, &sg->type) != 0 ||
          ++nparams > TPR_MAX_PARAMS) {
        snprintf(err, errcap, "pattern '%s': bad parameter '%.*s' (want {name}, {name:int} or {name:str})",
                 pattern, (int)len, p);
        return -1;
      }
      for (int i = 0; i < n - 1; i++)
        if (segs[i].param && strcmp(segs[i].name, sg->name) == 0) {
          snprintf(err, errcap, "pattern '%s': parameter '%s' appears twice", pattern, sg->name);
          return -1;
        }
    } else {
      for (size_t i = 0; i < len; i++)
        if (!literal_char(p[i])) {
          snprintf(err, errcap, "pattern '%s': character '%c' not allowed in a literal segment",
                   pattern, p[i]);
          return -1;
        }
    }
    p += len + (slash ? 1 : 0);
  }
  *nsegs = n;
  return 0;
}

/* Walks the existing trie along segs: a parameter that differs from the one
** already at that depth, or a method already bound, is a conflict. */
static int check_conflicts(const tpr_router *r, const char *method, const char *pattern,
                           const segment *segs, int n, char *err, size_t errcap) {
  const node *cur = &r->root;
  for (int i = 0; i < n && cur; i++) {
    if (!segs[i].param) {
      cur = literal_child((node *)cur, segs[i].text, segs[i].len, false);
      continue;
    }
    if (cur->param && (strcmp(cur->param->param_name, segs[i].name) != 0 ||
                       cur->param->param_type != segs[i].type)) {
      snprintf(err, errcap, "pattern '%s': parameter '%s' conflicts with {%s} of another route",
               pattern, segs[i].name, cur->param->param_name);
      return -1;
    }
    cur = cur->param;
  }
  if (cur && method_endpoint((node *)cur, method)) {
    snprintf(err, errcap, "route %s %s is declared twice", method, pattern);
    return -1;
  }
  return 0;
}

int tpr_add(tpr_router *r, const char *method, const char *pattern, void *data,
            char *err, size_t errcap) {
  segment segs[TPR_MAX_DEPTH];
  int n = 0;
  if (!valid_method(method)) {
    snprintf(err, errcap, "unsupported method '%s'", method);
    return -1;
  }
  if (parse_pattern(pattern, segs, &n, err, errcap) != 0 ||
      check_conflicts(r, method, pattern, segs, n, err, errcap) != 0)
    return -1;
  node *cur = &r->root;
  for (int i = 0; i < n; i++) {
    if (!segs[i].param) {
      cur = literal_child(cur, segs[i].text, segs[i].len, true);
    } else {
      if (!cur->param) {
        cur->param = calloc(1, sizeof(node));
        if (!cur->param) goto nomem;
        cur->param->param_name = strdup(segs[i].name);
        cur->param->param_type = segs[i].type;
      }
      cur = cur->param;
    }
    if (!cur) goto nomem;
  }
  endpoint *e = calloc(1, sizeof *e), **tail = &cur->endpoints;
  if (!e) goto nomem;
  while (*tail) tail = &(*tail)->next;
  strcpy(e->method, method);
  e->pattern = strdup(pattern);
  e->data = data;
  *tail = e;
  return 0;
nomem:
  snprintf(err, errcap, "out of memory");
  return -1;
}

/* ---- matching */

typedef struct {
  const char *method;
  tpr_match *m;
  const char *segs[TPR_MAX_DEPTH];
  size_t lens[TPR_MAX_DEPTH];
  int nsegs;
  size_t scratch_used;
  node *path_node;       /* a node the path reached, lacking the method */
  const char *bad_param;
} finder;

/* Percent-decodes a segment into the scratch; NULL if malformed or empty. */
static char *decode_segment(finder *f, const char *s, size_t n, size_t *out_len) {
  char *out = f->m->scratch + f->scratch_used;
  long o = tp_url_decode(s, n, out, false);
  if (o <= 0) return NULL;
  out[o] = '\0';
  f->scratch_used += (size_t)o + 1;
  *out_len = (size_t)o;
  return out;
}

static bool parse_int(const char *s, size_t n, int64_t *v) {
  if (n == 0 || n > 18) return false;
  int64_t x = 0;
  for (size_t i = 0; i < n; i++) {
    if (s[i] < '0' || s[i] > '9') return false;
    x = x * 10 + (s[i] - '0');
  }
  *v = x;
  return true;
}

static endpoint *method_endpoint(node *n, const char *method) {
  for (endpoint *e = n->endpoints; e; e = e->next)
    if (strcmp(e->method, method) == 0) return e;
  return NULL;
}

static bool walk(finder *f, node *n, int depth) {
  if (depth == f->nsegs) {
    endpoint *e = method_endpoint(n, f->method);
    if (e) {
      f->m->data = e->data;
      f->m->pattern = e->pattern;
      return true;
    }
    if (n->endpoints && !f->path_node) f->path_node = n;
    return false;
  }
  const char *seg = f->segs[depth];
  size_t len = f->lens[depth];
  node *lit = literal_child(n, seg, len, false);
  if (lit && walk(f, lit, depth + 1)) return true;
  node *p = n->param;
  if (!p || len == 0) return false;  /* an empty segment is no parameter */
  size_t mark = f->scratch_used;
  int nparams = f->m->nparams;
  tpr_param *param = &f->m->params[nparams];
  param->value = decode_segment(f, seg, len, &param->len);
  param->name = p->param_name;
  param->type = p->param_type;
  bool ok = param->value != NULL;
  if (ok && p->param_type == TPR_INT) ok = parse_int(param->value, param->len, &param->ival);
  if (!ok) {
    if (!f->bad_param) f->bad_param = p->param_name;
    f->scratch_used = mark;
    return false;
  }
  f->m->nparams++;
  if (walk(f, p, depth + 1)) return true;
  f->m->nparams = nparams;
  f->scratch_used = mark;
  return false;
}

tpr_result tpr_find(const tpr_router *r, const char *method, const char *path,
                    size_t len, tpr_match *m) {
  finder f = {.method = method, .m = m};
  m->data = NULL;
  m->pattern = NULL;
  m->nparams = 0;
  m->allow[0] = '\0';
  m->bad_param = NULL;
  if (len == 0 || path[0] != '/' || len > TPR_MAX_PATH) return TPR_NOT_FOUND;
  size_t i = 1;
  while (i <= len) {
    size_t start = i;
    while (i < len && path[i] != '/') i++;
    if (f.nsegs == TPR_MAX_DEPTH) return TPR_NOT_FOUND;
    f.segs[f.nsegs] = path + start;
    f.lens[f.nsegs] = i - start;
    f.nsegs++;
    i++;
  }
  if (f.nsegs == 1 && f.lens[0] == 0) f.nsegs = 0;  /* "/" */
  if (walk(&f, (node *)&r->root, 0)) return TPR_FOUND;
  if (f.path_node) {
    size_t o = 0;
    for (endpoint *e = f.path_node->endpoints; e; e = e->next)
      o += (size_t)snprintf(m->allow + o, sizeof m->allow - o, "%s%s", o ? ", " : "", e->method);
    return TPR_METHOD_NOT_ALLOWED;
  }
  if (f.bad_param) {
    m->bad_param = f.bad_param;
    return TPR_BAD_PARAM;
  }
  return TPR_NOT_FOUND;
}

static void each_node(const node *n, void (*fn)(const char *, const char *, void *, void *),
                      void *ud) {
  for (endpoint *e = n->endpoints; e; e = e->next) fn(e->method, e->pattern, e->data, ud);
  for (node *c = n->children; c; c = c->next) each_node(c, fn, ud);
  if (n->param) each_node(n->param, fn, ud);
}

void tpr_each(const tpr_router *r,
              void (*fn)(const char *method, const char *pattern, void *data, void *ud),
              void *ud) {
  each_node(&r->root, fn, ud);
}
