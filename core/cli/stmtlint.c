/*
** stmtlint.c - statements whose text a plugin builds at every call (stmtlint.h).
**
** A small reader of Lua's lexical rules, enough to tell code from comments and
** strings: short strings with their escapes, long brackets of any level
** ([[...]], [==[...]==]) as strings and as comments.
*/
#include "cli/stmtlint.h"

#include <stdbool.h>
#include <string.h>

static bool is_name_start(char c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_';
}

static bool is_name_char(char c) {
  return is_name_start(c) || (c >= '0' && c <= '9');
}

/* p at '[': past the long bracket that opens there ([[, [=[, ...) and its
** close, or NULL if none opens there. */
static const char *skip_long(const char *p) {
  const char *q = p + 1;
  size_t level = 0;
  while (*q == '=') q++, level++;
  if (*q != '[') return NULL;
  for (q++; *q; q++) {
    if (*q != ']') continue;
    const char *e = q + 1;
    size_t n = 0;
    while (*e == '=') e++, n++;
    if (n == level && *e == ']') return e + 1;
  }
  return q;  /* unclosed: to the end */
}

/* p at a quote: past its string (escapes included), or to the line's end. */
static const char *skip_short(const char *p) {
  char quote = *p++;
  while (*p && *p != quote && *p != '\n') p += p[0] == '\\' && p[1] ? 2 : 1;
  return *p == quote ? p + 1 : p;
}

/* p at "--": past the comment. */
static const char *skip_comment(const char *p) {
  if (p[2] == '[') {
    const char *end = skip_long(p + 2);
    if (end) return end;
  }
  while (*p && *p != '\n') p++;
  return p;
}

/* Past spaces and comments. */
static const char *skip_blank(const char *p) {
  for (;;) {
    while (*p == ' ' || *p == '\t' || *p == '\n' || *p == '\r') p++;
    if (p[0] != '-' || p[1] != '-') return p;
    p = skip_comment(p);
  }
}

/* p at a string literal: past it, else NULL. */
static const char *string_literal(const char *p) {
  if (*p == '"' || *p == '\'') return skip_short(p);
  return *p == '[' ? skip_long(p) : NULL;
}

/* p at a name: past a constant's name (a.b.NAME, its last part in capitals),
** else NULL. */
static const char *constant_name(const char *p) {
  const char *part = p;
  for (;;) {
    if (!is_name_start(*p)) return NULL;
    part = p;
    while (is_name_char(*p)) p++;
    if (*p != '.' || p[1] == '.') break;
    p++;
  }
  bool capital = false;
  for (const char *c = part; c < p; c++) {
    if (*c >= 'a' && *c <= 'z') return NULL;
    capital |= *c >= 'A' && *c <= 'Z';
  }
  return capital ? p : NULL;
}

/* p just past "tp.db.X(": whether the first argument joins only constants. */
static bool joins_constants(const char *p) {
  int joins = 0;
  for (;;) {
    p = skip_blank(p);
    const char *end = string_literal(p);
    if (!end) end = constant_name(p);
    if (!end) return false;
    p = skip_blank(end);
    if (p[0] == '.' && p[1] == '.' && p[2] != '.') {
      joins++;
      p += 2;
      continue;
    }
    return joins > 0 && (*p == ',' || *p == ')');
  }
}

/* p at 't': past "tp.db.exec(" (or query, one), else NULL. */
static const char *db_call(const char *src, const char *p) {
  if (p > src && (is_name_char(p[-1]) || p[-1] == '.' || p[-1] == ':')) return NULL;
  if (strncmp(p, "tp.db.", 6) != 0) return NULL;
  p += 6;
  static const char *const fns[] = {"exec", "query", "one"};
  for (size_t i = 0; i < sizeof fns / sizeof *fns; i++) {
    size_t n = strlen(fns[i]);
    if (strncmp(p, fns[i], n) != 0 || is_name_char(p[n])) continue;
    const char *q = skip_blank(p + n);
    return *q == '(' ? q + 1 : NULL;
  }
  return NULL;
}

int tpst_scan(const char *src, tpst_found_fn found, void *ud) {
  int count = 0, line = 1;
  const char *p = src;
  while (*p) {
    const char *next = NULL;
    if (p[0] == '-' && p[1] == '-') next = skip_comment(p);
    else if (*p == '"' || *p == '\'') next = skip_short(p);
    else if (*p == '[') next = skip_long(p);
    else if (*p == 't' && (next = db_call(src, p)) != NULL) {
      if (joins_constants(next)) {
        count++;
        if (found) found(ud, line);
      }
    }
    if (!next || next == p) next = p + 1;
    for (; p < next; p++) line += *p == '\n';
  }
  return count;
}
