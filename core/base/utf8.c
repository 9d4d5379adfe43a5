/*
** utf8.c - UTF-8 validation.
*/
#include "base/utf8.h"

size_t tp_utf8_seq_len(const char *s, size_t avail) {
  const unsigned char *u = (const unsigned char *)s;
  if (avail == 0) return 0;
  if (u[0] < 0x80) return 1;
  size_t len;
  unsigned min;
  unsigned cp;
  if ((u[0] & 0xe0) == 0xc0) { len = 2; cp = u[0] & 0x1f; min = 0x80; }
  else if ((u[0] & 0xf0) == 0xe0) { len = 3; cp = u[0] & 0x0f; min = 0x800; }
  else if ((u[0] & 0xf8) == 0xf0) { len = 4; cp = u[0] & 0x07; min = 0x10000; }
  else return 0;
  if (avail < len) return 0;
  for (size_t i = 1; i < len; i++) {
    if ((u[i] & 0xc0) != 0x80) return 0;
    cp = (cp << 6) | (u[i] & 0x3f);
  }
  if (cp < min || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff)) return 0;
  return len;
}

bool tp_utf8_valid(const char *s, size_t n) {
  size_t i = 0;
  while (i < n) {
    if ((unsigned char)s[i] < 0x80) { i++; continue; }
    size_t len = tp_utf8_seq_len(s + i, n - i);
    if (len == 0) return false;
    i += len;
  }
  return true;
}
