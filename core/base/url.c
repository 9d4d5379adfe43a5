/*
** url.c - percent-decoding, and the one query-string parser.
*/
#include "base/url.h"

#include <string.h>

#include "base/utf8.h"

static int hexval(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

long tp_url_decode(const char *s, size_t n, char *out, bool plus_is_space) {
  size_t o = 0;
  for (size_t i = 0; i < n; i++) {
    if (s[i] == '%') {
      if (i + 2 >= n) return -1;
      int hi = hexval(s[i + 1]), lo = hexval(s[i + 2]);
      if (hi < 0 || lo < 0 || (hi == 0 && lo == 0)) return -1;
      out[o++] = (char)(hi * 16 + lo);
      i += 2;
    } else {
      out[o++] = plus_is_space && s[i] == '+' ? ' ' : s[i];
    }
  }
  return tp_utf8_valid(out, o) ? (long)o : -1;
}

int tp_query_each(const char *q, size_t n, tp_query_fn each, void *ud) {
  char key[TP_URL_MAX_PART], value[TP_URL_MAX_PART];
  for (size_t i = 0; i < n;) {
    const char *amp = memchr(q + i, '&', n - i);
    size_t j = amp ? (size_t)(amp - q) : n;
    if (j > i) {
      if (j - i > TP_URL_MAX_PART) return -1;
      const char *eq = memchr(q + i, '=', j - i);
      size_t kn = eq ? (size_t)(eq - (q + i)) : j - i;
      long k = tp_url_decode(q + i, kn, key, true);
      long v = eq ? tp_url_decode(eq + 1, (size_t)(q + j - eq - 1), value, true) : 0;
      if (k < 0 || v < 0) return -1;
      int rc = each ? each(ud, key, (size_t)k, value, (size_t)v) : 0;
      if (rc) return rc;
    }
    i = j + 1;
  }
  return 0;
}

typedef struct {
  const char *name;
  size_t nlen;
  char *out;
  size_t cap;
  int found;
} query_get;

static int get_one(void *ud, const char *key, size_t klen, const char *value, size_t vlen) {
  query_get *g = ud;
  if (klen != g->nlen || memcmp(key, g->name, klen) != 0) return 0;
  if (vlen >= g->cap) return -1;
  memcpy(g->out, value, vlen);
  g->out[vlen] = '\0';
  g->found = 1;  /* a repeated key keeps its last value, as req.query does */
  return 0;
}

int tp_query_get(const char *q, size_t n, const char *name, char *out, size_t cap) {
  query_get g = {name, strlen(name), out, cap, 0};
  out[0] = '\0';
  if (tp_query_each(q, n, get_one, &g) != 0) {
    out[0] = '\0';
    return -1;
  }
  return g.found;
}
