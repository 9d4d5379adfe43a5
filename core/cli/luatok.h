/*
** luatok.h - Lua source as tokens, enough for `tidepool check` to point at
** lines: a manifest's keys and routes (srcline.h), the statements a plugin
** builds at every call (stmtlint.h).
**
** Comments and spaces are dropped. Strings, short ('...', "...", with their
** escapes) or long ([[...]], [==[...]==]), are one token each; a name is one;
** a number is one token "0"; every other character is a token of its own (so
** ".." is two "." tokens). Each token knows its line and how many braces are
** open around it. A source that ends inside a string or a comment ends there.
*/
#ifndef TP_LUATOK_H
#define TP_LUATOK_H

#include <stdbool.h>

typedef struct tplt_tok {
  char kind;        /* 'n' name, 's' string, 'o' anything else */
  char text[128];   /* a name, a string's contents (truncated) or the symbol */
  int line;
  int depth;        /* braces open around the token ('{' and '}': outside them) */
} tplt_tok;

typedef struct tplt_toks {
  tplt_tok *t;
  int n, cap;
} tplt_toks;

/* Whether token i (any int: out of range is false) is the symbol c. */
bool tplt_is_sym(const tplt_toks *ts, int i, char c);

/* Appends src's tokens to ts (zeroed at first); aborts when out of memory. */
void tplt_tokenize(const char *src, tplt_toks *ts);
void tplt_free(tplt_toks *ts);

#endif
