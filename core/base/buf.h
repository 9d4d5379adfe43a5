/*
** buf.h - growable byte buffers.
**
** Every piece of output the host builds (responses, log lines, metrics, JSON)
** goes through one of these. Growth aborts only when malloc fails, which the
** host treats as fatal: there is no sane way to answer a request without memory.
*/
#ifndef TP_BUF_H
#define TP_BUF_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef struct tp_buf {
  char *data;
  size_t len;
  size_t cap;
} tp_buf;

void tp_buf_init(tp_buf *b);
void tp_buf_free(tp_buf *b);
void tp_buf_reset(tp_buf *b);                 /* len = 0, keeps memory */
void tp_buf_grow(tp_buf *b, size_t extra);     /* what tp_buf_reserve calls when it must */
void tp_buf_add(tp_buf *b, const void *p, size_t n);
void tp_buf_adds(tp_buf *b, const char *s);

/* Room for extra more bytes (and a NUL after them). Inline, as tp_buf_addc:
** the JSON encoder calls them for every comma and colon it writes. */
static inline void tp_buf_reserve(tp_buf *b, size_t extra) {
  if (b->cap - b->len <= extra) tp_buf_grow(b, extra);
}

static inline void tp_buf_addc(tp_buf *b, char c) {
  tp_buf_reserve(b, 1);
  b->data[b->len++] = c;
}

void tp_buf_addi(tp_buf *b, int64_t v);
void tp_buf_addu(tp_buf *b, uint64_t v);
void tp_buf_printf(tp_buf *b, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
/* Appends s as a quoted JSON string; invalid UTF-8 bytes become U+FFFD. */
void tp_buf_add_json_str(tp_buf *b, const char *s, size_t n);
/* Copies src into dst of cap bytes, truncating; always NUL-terminates. */
void tp_copy_str(char *dst, size_t cap, const char *src);
/* Returns the contents as a NUL-terminated string (the buffer keeps owning it). */
const char *tp_buf_cstr(tp_buf *b);
/* Reads a whole file of at most max bytes into a NUL-terminated buffer the
** caller frees; *len (optional) gets its size. NULL with errno set on
** failure (EFBIG when it is larger than max). */
char *tp_read_file(const char *path, size_t max, size_t *len);
/* Deletes dir and everything below it, without following symbolic links;
** 0, or -1 with errno set (what could be removed is gone). */
int tp_remove_tree(const char *dir);
/* Creates dir and the folders above it that are missing (mode 0750);
** 0, or -1 with errno set. */
int tp_mkdir_p(const char *dir);
/* True if path is a regular file, or a directory (symbolic links followed). */
bool tp_is_file(const char *path);
bool tp_is_dir(const char *path);

#endif
