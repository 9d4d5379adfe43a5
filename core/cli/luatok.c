/*
** luatok.c - Lua source as tokens (luatok.h).
*/
#include "cli/luatok.h"

#include <ctype.h>
#include <stdlib.h>
#include <string.h>

static tplt_tok *push_tok(tplt_toks *ts, char kind, int line, int depth) {
  if (ts->n == ts->cap) {
    ts->cap = ts->cap ? ts->cap * 2 : 256;
    ts->t = realloc(ts->t, (size_t)ts->cap * sizeof *ts->t);
    if (!ts->t) abort();
  }
  tplt_tok *t = &ts->t[ts->n++];
  memset(t, 0, sizeof *t);
  t->kind = kind;
  t->line = line;
  t->depth = depth;
  return t;
}

/* At s: "[" "="* "[" opens a long bracket; returns its level, or -1. */
static int long_open(const char *s) {
  if (*s != '[') return -1;
  int level = 0;
  while (s[1 + level] == '=') level++;
  return s[1 + level] == '[' ? level : -1;
}

/* Skips a long bracket of level at s (its opening); copies its text to t. */
static const char *skip_long(const char *s, int level, int *line, tplt_tok *t) {
  s += level + 2;
  if (*s == '\n') (*line)++, s++;
  size_t k = 0;
  for (; *s; s++) {
    if (*s == ']') {
      int l = 0;
      while (s[1 + l] == '=') l++;
      if (l == level && s[1 + l] == ']') return s + level + 2;
    }
    if (*s == '\n') (*line)++;
    if (t && k + 1 < sizeof t->text) t->text[k++] = *s;
  }
  return s;
}

void tplt_tokenize(const char *s, tplt_toks *ts) {
  int line = 1, depth = 0;
  while (*s) {
    if (*s == '\n') {
      line++;
      s++;
    } else if (isspace((unsigned char)*s)) {
      s++;
    } else if (s[0] == '-' && s[1] == '-') {
      int level = long_open(s + 2);
      if (level >= 0) s = skip_long(s + 2, level, &line, NULL);
      else while (*s && *s != '\n') s++;
    } else if (long_open(s) >= 0) {
      tplt_tok *t = push_tok(ts, 's', line, depth);
      s = skip_long(s, long_open(s), &line, t);
    } else if (*s == '"' || *s == '\'') {
      tplt_tok *t = push_tok(ts, 's', line, depth);
      char q = *s++;
      size_t k = 0;
      while (*s && *s != q && *s != '\n') {
        if (*s == '\\' && s[1]) {
          s++;
          if (*s == '\n') line++;
        }
        if (k + 1 < sizeof t->text) t->text[k++] = *s;
        s++;
      }
      if (*s == q) s++;
    } else if (isalpha((unsigned char)*s) || *s == '_') {
      tplt_tok *t = push_tok(ts, 'n', line, depth);
      size_t k = 0;
      while (isalnum((unsigned char)*s) || *s == '_') {
        if (k + 1 < sizeof t->text) t->text[k++] = *s;
        s++;
      }
    } else if (isdigit((unsigned char)*s)) {
      tplt_tok *t = push_tok(ts, 'o', line, depth);
      t->text[0] = '0';
      while (isalnum((unsigned char)*s) || *s == '.' || *s == '_' ||
             ((*s == '-' || *s == '+') && (s[-1] == 'e' || s[-1] == 'E' || s[-1] == 'p' ||
                                             s[-1] == 'P')))
        s++;
    } else {
      if (*s == '}' && depth > 0) depth--;
      tplt_tok *t = push_tok(ts, 'o', line, depth);
      t->text[0] = *s;
      if (*s == '{') depth++;
      s++;
    }
  }
}

bool tplt_is_sym(const tplt_toks *ts, int i, char c) {
  return i >= 0 && i < ts->n && ts->t[i].kind == 'o' && ts->t[i].text[0] == c;
}

void tplt_free(tplt_toks *ts) {
  free(ts->t);
  memset(ts, 0, sizeof *ts);
}
