/*
** srcline.c - the line of plugin.lua that a load error is about: the
** manifest's keys, its routes and their fields found among the source's
** tokens (luatok.h), and the rules that map the host's messages to them
** (srcline.h).
*/
#include "cli/srcline.h"

#include <ctype.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/luatok.h"

typedef tplt_tok tok;
typedef tplt_toks toks;

/* The token of key in the table constructor opened at open (a name before
** '=', or the string of ["key"] =), at the start of an entry; -1 if none. */
static int find_key(const toks *ts, int open, const char *key) {
  if (!tplt_is_sym(ts, open, '{')) return -1;
  int d = ts->t[open].depth + 1;
  for (int j = open + 1; j < ts->n && ts->t[j].depth >= d; j++) {
    if (ts->t[j].depth != d || !(tplt_is_sym(ts, j - 1, '{') || tplt_is_sym(ts, j - 1, ',') ||
                                 tplt_is_sym(ts, j - 1, ';')))
      continue;
    if (ts->t[j].kind == 'n' && strcmp(ts->t[j].text, key) == 0 && tplt_is_sym(ts, j + 1, '=') &&
        !tplt_is_sym(ts, j + 2, '='))
      return j;
    if (tplt_is_sym(ts, j, '[') && j + 3 < ts->n && ts->t[j + 1].kind == 's' &&
        strcmp(ts->t[j + 1].text, key) == 0 && tplt_is_sym(ts, j + 2, ']') && tplt_is_sym(ts, j + 3, '='))
      return j + 1;
  }
  return -1;
}

/* The first token of key's value in the constructor at open; -1 if none. */
static int value_of(const toks *ts, int open, const char *key) {
  int k = find_key(ts, open, key);
  if (k < 0) return -1;
  return ts->t[k].kind == 'n' ? k + 2 : k + 3;
}

/* The first token of the i-th (1-based) positional element of the
** constructor at open; -1 if none. Keyed entries are not counted. */
static int element(const toks *ts, int open, int i) {
  if (!tplt_is_sym(ts, open, '{')) return -1;
  int d = ts->t[open].depth + 1, count = 0;
  bool start = true;
  for (int j = open + 1; j < ts->n && ts->t[j].depth >= d; j++) {
    if (ts->t[j].depth != d) continue;
    if (tplt_is_sym(ts, j, ',') || tplt_is_sym(ts, j, ';')) {
      start = true;
      continue;
    }
    if (!start) continue;
    start = false;
    bool keyed = (ts->t[j].kind == 'n' && tplt_is_sym(ts, j + 1, '=') && !tplt_is_sym(ts, j + 2, '=')) ||
                 tplt_is_sym(ts, j, '[');
    if (!keyed && ++count == i) return j;
  }
  return -1;
}

/* The manifest's constructor: what the last top-level return returns, or the
** table a name it returns was assigned; -1 if neither is a constructor. */
static int find_manifest(const toks *ts) {
  int ret = -1;
  for (int j = 0; j < ts->n; j++)
    if (ts->t[j].depth == 0 && ts->t[j].kind == 'n' && strcmp(ts->t[j].text, "return") == 0)
      ret = j;
  if (ret < 0 || ret + 1 >= ts->n) return -1;
  if (tplt_is_sym(ts, ret + 1, '{')) return ret + 1;
  if (ts->t[ret + 1].kind != 'n') return -1;
  for (int j = ret - 1; j >= 0; j--)
    if (ts->t[j].depth == 0 && ts->t[j].kind == 'n' &&
        strcmp(ts->t[j].text, ts->t[ret + 1].text) == 0 && tplt_is_sym(ts, j + 1, '=') &&
        tplt_is_sym(ts, j + 2, '{'))
      return j + 2;
  return -1;
}

static int line_of(const toks *ts, int i) { return i >= 0 && i < ts->n ? ts->t[i].line : 0; }

/* The line of routes[i].field (field NULL: the route itself). */
static int route_line(const toks *ts, int manifest, int i, const char *field) {
  int el = element(ts, value_of(ts, manifest, "routes"), i);
  if (el < 0) return line_of(ts, find_key(ts, manifest, "routes"));
  int k = field ? find_key(ts, el, field) : -1;
  return line_of(ts, k >= 0 ? k : el);
}

/* The line of the route declared with method and path (the last one that
** matches: a clash is reported for the later of two routes). */
static int route_by_path(const toks *ts, int manifest, const char *method, const char *path) {
  int routes = value_of(ts, manifest, "routes"), found = -1;
  for (int i = 1;; i++) {
    int el = element(ts, routes, i);
    if (el < 0) break;
    int p = value_of(ts, el, "path"), m = value_of(ts, el, "method");
    if (p >= 0 && ts->t[p].kind == 's' && strcmp(ts->t[p].text, path) == 0 &&
        (m < 0 || ts->t[m].kind != 's' || strcmp(ts->t[m].text, method) == 0))
      found = p - 2;
  }
  return line_of(ts, found);
}

/* The line that a host message about the manifest names, or 0. */
int tpsl_manifest_line(const char *src, const char *msg) {
  toks ts = {0};
  tplt_tokenize(src, &ts);
  int m = find_manifest(&ts), line = 0, i;
  char key[80], key2[80], method[16], path[300];
  if (m < 0) {
    /* nothing to search */
  } else if (sscanf(msg, "routes[%d].%79[a-z_]", &i, key) == 2) {
    line = route_line(&ts, m, i, key);
  } else if (sscanf(msg, "routes[%d]", &i) == 1) {
    line = route_line(&ts, m, i, NULL);
  } else if (sscanf(msg, "route %15s %299s of plugin", method, path) == 2) {
    line = route_by_path(&ts, m, method, path);
  } else if (sscanf(msg, "personal_jobs[%d]", &i) == 1) {
    line = line_of(&ts, element(&ts, value_of(&ts, m, "personal_jobs"), i));
  } else if (sscanf(msg, "migration %d:", &i) == 1) {
    line = line_of(&ts, element(&ts, value_of(&ts, m, "migrations"), i));
  } else if (sscanf(msg, "unknown manifest field '%79[^']'", key) == 1 ||
             sscanf(msg, "manifest field '%79[^']'", key) == 1) {
    line = line_of(&ts, find_key(&ts, m, key));
    if (!line) line = line_of(&ts, m);  /* a required field is missing */
  } else if (strncmp(msg, "manifest name ", 14) == 0) {
    line = line_of(&ts, find_key(&ts, m, "name"));
  } else if (sscanf(msg, "%79[a-z].%79[^ ] must be a function", key, key2) == 2) {
    int k = find_key(&ts, value_of(&ts, m, key), key2);
    line = line_of(&ts, k >= 0 ? k : find_key(&ts, m, key));
  } else if (sscanf(msg, "%79[a-z]: names must be", key) == 1) {
    line = line_of(&ts, find_key(&ts, m, key));
  }
  tplt_free(&ts);
  return line;
}
