/*
** url.h - percent-decoding for path segments and query strings.
*/
#ifndef TP_URL_H
#define TP_URL_H

#include <stdbool.h>
#include <stddef.h>

/* Decodes n bytes of s into out (at least n bytes). '+' becomes a space when
** plus_is_space (query strings). Returns the decoded length, or -1 for a bad
** %-escape, an encoded NUL or a result that is not valid UTF-8. */
long tp_url_decode(const char *s, size_t n, char *out, bool plus_is_space);

#endif
