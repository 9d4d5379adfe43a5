/*
** log.c - structured logging.
*/
#include "base/log.h"

#include <string.h>
#include <time.h>
#include <unistd.h>

#include "base/clock.h"

static tp_buf pending;       /* complete lines not yet written */
static tp_buf line;          /* the line being built */
static bool batched;
static tp_log_level min_level = TP_LOG_INFO;

static const char *const level_names[] = {"debug", "info", "warn", "error"};

void tp_log_set_level(tp_log_level min) { min_level = min; }
void tp_log_set_batched(bool on) {
  batched = on;
  if (!on) tp_log_flush();
}
bool tp_log_enabled(tp_log_level level) { return level >= min_level; }

int tp_log_parse_level(const char *name, tp_log_level *out) {
  for (int i = 0; i < 4; i++)
    if (strcmp(name, level_names[i]) == 0) {
      *out = (tp_log_level)i;
      return 0;
    }
  return -1;
}

/* Appends the ISO time; the date and time up to the second is formatted once
** per second, the milliseconds per line. */
static void add_timestamp(tp_buf *b) {
  static int64_t cached_sec = -1;
  static char cached[32];  /* "2026-11-23T11:08:32." */
  int64_t ms = tp_clock_wall_ms();
  if (ms / 1000 != cached_sec) {
    cached_sec = ms / 1000;
    tp_clock_format_iso(cached_sec * 1000, cached, sizeof cached);
    cached[20] = '\0';  /* keep "...:32." */
  }
  int frac = (int)(ms % 1000);
  char tail[5] = {(char)('0' + frac / 100), (char)('0' + frac / 10 % 10), (char)('0' + frac % 10), 'Z', '\0'};
  tp_buf_adds(b, cached);
  tp_buf_adds(b, tail);
}

tp_buf *tp_log_begin(tp_log_level level, const char *msg) {
  if (level < min_level) return NULL;
  tp_buf_reset(&line);
  tp_buf_adds(&line, "{\"ts\":\"");
  add_timestamp(&line);
  tp_buf_adds(&line, "\",\"level\":\"");
  tp_buf_adds(&line, level_names[level]);
  tp_buf_adds(&line, "\",\"msg\":");
  tp_buf_add_json_str(&line, msg, strlen(msg));
  return &line;
}

void tp_log_strn(tp_buf *l, const char *key, const char *value, size_t n) {
  if (!l || !value) return;
  tp_buf_addc(l, ',');
  tp_buf_add_json_str(l, key, strlen(key));
  tp_buf_addc(l, ':');
  tp_buf_add_json_str(l, value, n);
}

void tp_log_str(tp_buf *l, const char *key, const char *value) {
  if (value) tp_log_strn(l, key, value, strlen(value));
}

static void add_key(tp_buf *l, const char *key) {
  tp_buf_adds(l, ",\"");
  tp_buf_adds(l, key);  /* keys are our own identifiers: nothing to escape */
  tp_buf_adds(l, "\":");
}

void tp_log_int(tp_buf *l, const char *key, int64_t value) {
  if (!l) return;
  add_key(l, key);
  tp_buf_addi(l, value);
}

void tp_log_uint(tp_buf *l, const char *key, uint64_t value) {
  if (!l) return;
  add_key(l, key);
  tp_buf_addu(l, value);
}

/* Three decimals, without printf: durations on every request line. */
void tp_log_num(tp_buf *l, const char *key, double value) {
  if (!l) return;
  add_key(l, key);
  if (value < 0 || value > 1e15) {
    tp_buf_printf(l, "%.3f", value);
    return;
  }
  uint64_t thousandths = (uint64_t)(value * 1000 + 0.5);
  tp_buf_addu(l, thousandths / 1000);
  unsigned frac = (unsigned)(thousandths % 1000);
  char tail[4] = {'.', (char)('0' + frac / 100), (char)('0' + frac / 10 % 10), (char)('0' + frac % 10)};
  tp_buf_add(l, tail, 4);
}

void tp_log_end(tp_buf *l) {
  if (!l) return;
  tp_buf_adds(l, "}\n");
  tp_buf_add(&pending, l->data, l->len);
  if (!batched || pending.len > 64 * 1024) tp_log_flush();
}

void tp_log_flush(void) {
  size_t off = 0;
  while (off < pending.len) {
    ssize_t n = write(STDERR_FILENO, pending.data + off, pending.len - off);
    if (n <= 0) break;  /* stderr gone: drop the lines rather than spin */
    off += (size_t)n;
  }
  tp_buf_reset(&pending);
}

void tp_log_shutdown(void) {
  tp_log_flush();
  tp_buf_free(&pending);
  tp_buf_free(&line);
}

void tp_log_msg(tp_log_level level, const char *msg, const char *detail) {
  tp_buf *l = tp_log_begin(level, msg);
  tp_log_str(l, "detail", detail);
  tp_log_end(l);
}
