/*
** log.c - structured logging.
*/
#include "log.h"

#include <string.h>
#include <time.h>
#include <unistd.h>

#include "clock.h"

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

tp_buf *tp_log_begin(tp_log_level level, const char *msg) {
  if (level < min_level) return NULL;
  char ts[40];
  tp_clock_format_iso(tp_clock_wall_ms(), ts, sizeof ts);
  tp_buf_reset(&line);
  tp_buf_adds(&line, "{\"ts\":\"");
  tp_buf_adds(&line, ts);
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

void tp_log_int(tp_buf *l, const char *key, int64_t value) {
  if (!l) return;
  tp_buf_printf(l, ",\"%s\":%lld", key, (long long)value);
}

void tp_log_num(tp_buf *l, const char *key, double value) {
  if (!l) return;
  tp_buf_printf(l, ",\"%s\":%.3f", key, value);
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
