/*
** error.h - the one shape of every error answer, the host's and plugins' alike:
**
**     {"error":{"code":"sold_out","message":"...","request_id":"...","details":{...}}}
**
** An error is described where it happens (a tp_error: status, stable code,
** message, optional details as JSON) and rendered here, once: the HTTP
** server's own refusals (tph_error), the host's, and a plugin's tp.fail go
** through tp_error_render, so no answer can take another shape.
*/
#ifndef TP_ERROR_H
#define TP_ERROR_H

#include <stddef.h>

#include "base/buf.h"

typedef struct tp_error {
  int status;            /* 400-599 */
  char code[40];         /* stable, snake_case: what a client branches on */
  char message[512];     /* for a person; never personal data */
  const char *details;   /* a JSON value, or NULL */
  size_t details_len;
} tp_error;

/* Fills e (details none) with a printf-style message. */
void tp_error_set(tp_error *e, int status, const char *code, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
/* Replaces out's contents with e's JSON; request_id is left out when empty. */
void tp_error_render(const tp_error *e, const char *request_id, tp_buf *out);

#endif
