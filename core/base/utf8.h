/*
** utf8.h - UTF-8 validation (RFC 3629: no overlongs, no surrogates, <= U+10FFFF).
*/
#ifndef TP_UTF8_H
#define TP_UTF8_H

#include <stdbool.h>
#include <stddef.h>

/* Length of the valid sequence starting at s (1-4), or 0 if invalid. */
size_t tp_utf8_seq_len(const char *s, size_t avail);
bool tp_utf8_valid(const char *s, size_t n);

#endif
