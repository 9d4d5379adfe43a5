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

/* ---- query strings: the one parser (req.query, the host's own query checks,
** the admin endpoints' parameters)
**
** A query is pairs separated by '&'; "k=v" gives key k and value v, "k" the
** value "", an empty part is skipped; keys and values are percent-decoded
** with '+' as a space. A part longer than TP_URL_MAX_PART bytes is refused. */

#define TP_URL_MAX_PART 2048

/* Called for each pair, decoded (not NUL-terminated); a nonzero return stops. */
typedef int (*tp_query_fn)(void *ud, const char *key, size_t klen, const char *value, size_t vlen);

/* Walks the n bytes of q (without '?'), calling each (may be NULL: only
** check). Returns 0, -1 when a part is not valid percent-encoded UTF-8 or is
** too long (nothing is called for it or after it), or what each returned. */
int tp_query_each(const char *q, size_t n, tp_query_fn each, void *ud);

/* The decoded value of the last key name in q, NUL-terminated into out (cap
** bytes). Returns 1 found, 0 absent (out ""), -1 bad encoding or longer than
** cap - 1. */
int tp_query_get(const char *q, size_t n, const char *name, char *out, size_t cap);

#endif
