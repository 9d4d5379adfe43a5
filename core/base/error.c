/*
** error.c - rendering the one error shape (error.h).
*/
#include "base/error.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

void tp_error_set(tp_error *e, int status, const char *code, const char *fmt, ...) {
  e->status = status;
  tp_copy_str(e->code, sizeof e->code, code);
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(e->message, sizeof e->message, fmt, ap);
  va_end(ap);
  e->details = NULL;
  e->details_len = 0;
}

void tp_error_render(const tp_error *e, const char *request_id, tp_buf *out) {
  tp_buf_reset(out);
  tp_buf_adds(out, "{\"error\":{\"code\":");
  tp_buf_add_json_str(out, e->code, strlen(e->code));
  tp_buf_adds(out, ",\"message\":");
  tp_buf_add_json_str(out, e->message, strlen(e->message));
  if (request_id && request_id[0]) {
    tp_buf_adds(out, ",\"request_id\":");
    tp_buf_add_json_str(out, request_id, strlen(request_id));
  }
  if (e->details) {
    tp_buf_adds(out, ",\"details\":");
    tp_buf_add(out, e->details, e->details_len);
  }
  tp_buf_adds(out, "}}");
}
