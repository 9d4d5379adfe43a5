/*
** buf.c - growable byte buffers.
*/
#define _XOPEN_SOURCE 700  /* nftw */
#include "base/buf.h"

#include <errno.h>
#include <ftw.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "base/utf8.h"

void tp_buf_init(tp_buf *b) {
  b->data = NULL;
  b->len = b->cap = 0;
}

void tp_buf_free(tp_buf *b) {
  free(b->data);
  tp_buf_init(b);
}

void tp_buf_reset(tp_buf *b) { b->len = 0; }

void tp_buf_grow(tp_buf *b, size_t extra) {
  if (b->cap - b->len > extra) return;  /* always keep room for a NUL */
  size_t cap = b->cap ? b->cap : 256;
  while (cap - b->len <= extra) cap *= 2;
  char *p = realloc(b->data, cap);
  if (!p) {
    fputs("tidepool: out of memory\n", stderr);
    abort();
  }
  b->data = p;
  b->cap = cap;
}

void tp_buf_add(tp_buf *b, const void *p, size_t n) {
  if (n == 0) return;
  tp_buf_reserve(b, n);
  memcpy(b->data + b->len, p, n);
  b->len += n;
}

void tp_buf_adds(tp_buf *b, const char *s) { tp_buf_add(b, s, strlen(s)); }

/* Integers are on every hot path (JSON, headers, logs): no printf. */
void tp_buf_addu(tp_buf *b, uint64_t v) {
  char tmp[20];
  size_t i = sizeof tmp;
  do {
    tmp[--i] = (char)('0' + v % 10);
    v /= 10;
  } while (v);
  tp_buf_add(b, tmp + i, sizeof tmp - i);
}

void tp_buf_addi(tp_buf *b, int64_t v) {
  if (v < 0) {
    tp_buf_addc(b, '-');
    tp_buf_addu(b, (uint64_t)0 - (uint64_t)v);  /* INT64_MIN too */
  } else {
    tp_buf_addu(b, (uint64_t)v);
  }
}

/* One pass when the text fits the room already there (almost always). */
void tp_buf_printf(tp_buf *b, const char *fmt, ...) {
  tp_buf_reserve(b, 64);
  va_list ap;
  va_start(ap, fmt);
  int n = vsnprintf(b->data + b->len, b->cap - b->len, fmt, ap);
  va_end(ap);
  if (n < 0) return;
  if ((size_t)n >= b->cap - b->len) {
    tp_buf_reserve(b, (size_t)n + 1);
    va_start(ap, fmt);
    vsnprintf(b->data + b->len, (size_t)n + 1, fmt, ap);
    va_end(ap);
  }
  b->len += (size_t)n;
}

/* Written in place, a chunk at a time: room for the worst case (every byte
** as \u00XX) is made once per chunk, not once per piece. Most strings a
** plugin answers are ASCII or UTF-8 text copied as it is. */
#define JSON_STR_CHUNK 4096

void tp_buf_add_json_str(tp_buf *b, const char *s, size_t n) {
  static const char hex[] = "0123456789abcdef";
  size_t i = 0;
  bool opened = false;
  do {
    size_t end = n - i < JSON_STR_CHUNK ? n : i + JSON_STR_CHUNK;
    /* the quotes, and a UTF-8 sequence that runs up to 3 bytes past end */
    tp_buf_reserve(b, 6 * (end - i) + 8);
    char *o = b->data + b->len;
    if (!opened) *o++ = '"', opened = true;
    while (i < end) {
      unsigned char c = (unsigned char)s[i];
      if ((unsigned)(c - 0x20) < 0x5f && c != '"' && c != '\\') {  /* printable ASCII */
        *o++ = (char)c;
        i++;
      } else if (c >= 0x80) {
        size_t len = tp_utf8_seq_len(s + i, n - i);
        if (len == 0) {  /* invalid byte: never emit invalid UTF-8 */
          memcpy(o, "\\ufffd", 6);
          o += 6;
          i++;
        } else {
          memcpy(o, s + i, len);
          o += len;
          i += len;
        }
      } else {
        *o++ = '\\';
        switch (c) {
          case '"': *o++ = '"'; break;
          case '\\': *o++ = '\\'; break;
          case '\n': *o++ = 'n'; break;
          case '\r': *o++ = 'r'; break;
          case '\t': *o++ = 't'; break;
          default:  /* the other controls and DEL */
            memcpy(o, "u00", 3);
            o[3] = hex[c >> 4];
            o[4] = hex[c & 15];
            o += 5;
        }
        i++;
      }
    }
    if (i >= n) *o++ = '"';
    b->len = (size_t)(o - b->data);
  } while (i < n);
}

void tp_copy_str(char *dst, size_t cap, const char *src) {
  size_t n = strlen(src);
  if (n >= cap) n = cap - 1;
  memcpy(dst, src, n);
  dst[n] = '\0';
}

const char *tp_buf_cstr(tp_buf *b) {
  tp_buf_reserve(b, 1);
  b->data[b->len] = '\0';
  return b->data;
}

char *tp_read_file(const char *path, size_t max, size_t *len) {
  FILE *f = fopen(path, "rb");
  if (!f) return NULL;
  tp_buf b;
  tp_buf_init(&b);
  char chunk[8192];
  size_t n;
  while ((n = fread(chunk, 1, sizeof chunk, f)) > 0 && b.len <= max) tp_buf_add(&b, chunk, n);
  bool failed = ferror(f) != 0;
  fclose(f);
  if (failed || b.len > max) {
    tp_buf_free(&b);
    errno = failed ? EIO : EFBIG;
    return NULL;
  }
  if (len) *len = b.len;
  tp_buf_addc(&b, '\0');
  return b.data;
}

static int remove_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw) {
  (void)st;
  (void)flag;
  (void)ftw;
  return remove(path);
}

int tp_remove_tree(const char *dir) { return nftw(dir, remove_entry, 16, FTW_DEPTH | FTW_PHYS); }

int tp_mkdir_p(const char *dir) {
  char tmp[4096];
  if (strlen(dir) >= sizeof tmp) {
    errno = ENAMETOOLONG;
    return -1;
  }
  tp_copy_str(tmp, sizeof tmp, dir);
  for (char *p = tmp + 1; *p; p++)
    if (*p == '/') {
      *p = '\0';
      if (mkdir(tmp, 0750) != 0 && errno != EEXIST) return -1;
      *p = '/';
    }
  return mkdir(tmp, 0750) != 0 && errno != EEXIST ? -1 : 0;
}

bool tp_is_file(const char *path) {
  struct stat st;
  return stat(path, &st) == 0 && S_ISREG(st.st_mode);
}

bool tp_is_dir(const char *path) {
  struct stat st;
  return stat(path, &st) == 0 && S_ISDIR(st.st_mode);
}
