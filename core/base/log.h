/*
** log.h - structured logging: one JSON object per line on stderr.
**
** A line is built with tp_log_begin(), fields are added, tp_log_end() queues it.
** While the server runs, lines are written once per loop iteration (tp_log_flush)
** so logging costs one write(2) per batch instead of one per request; outside
** the loop (start-up, CLI) every line is written at once.
*/
#ifndef TP_LOG_H
#define TP_LOG_H

#include <stdbool.h>
#include <stdint.h>

#include "base/buf.h"

/* TP_LOG_OFF is only a minimum level: a command that reports for itself logs nothing. */
typedef enum { TP_LOG_DEBUG, TP_LOG_INFO, TP_LOG_WARN, TP_LOG_ERROR, TP_LOG_OFF } tp_log_level;

void tp_log_set_level(tp_log_level min);
int tp_log_parse_level(const char *name, tp_log_level *out);  /* 0 or -1 */
void tp_log_set_batched(bool batched);
bool tp_log_enabled(tp_log_level level);

/* Returns the line being built, or NULL if the level is filtered out. */
tp_buf *tp_log_begin(tp_log_level level, const char *msg);
void tp_log_str(tp_buf *line, const char *key, const char *value);
void tp_log_strn(tp_buf *line, const char *key, const char *value, size_t n);
void tp_log_int(tp_buf *line, const char *key, int64_t value);
void tp_log_uint(tp_buf *line, const char *key, uint64_t value);
void tp_log_num(tp_buf *line, const char *key, double value);
void tp_log_end(tp_buf *line);
void tp_log_flush(void);
void tp_log_shutdown(void);

/* Convenience: a line with just a message and an optional detail string. */
void tp_log_msg(tp_log_level level, const char *msg, const char *detail);

#endif
