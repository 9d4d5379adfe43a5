/*
** adminclient.h - a tiny blocking HTTP/1.1 client for the CLI.
**
** `tidepool reload` and friends talk to a running server's admin API. The CLI
** has no event loop, so this is a plain socket with poll() bounding each wait
** by one overall deadline. It reads responses framed by Content-Length, by
** chunked transfer coding or by the server closing the connection.
*/
#ifndef TP_ADMINCLIENT_H
#define TP_ADMINCLIENT_H

#include <stddef.h>

#include "base/buf.h"

#define TP_ADMIN_MAX_RESPONSE (8u << 20)  /* bytes, head and body together */

/* POSTs body (JSON) to http://host:port/path with X-Api-Key: api_key and
** Connection: close; waits at most timeout_ms in total. On success returns 0 with the
** response status in *status and the body in out (tp_buf from core/base/buf.h). Returns -1 with
** err filled when the server cannot be reached or the answer is not HTTP.
** Name resolution is not bounded by the timeout: give a numeric address or localhost. */
int tp_admin_post(const char *host, int port, const char *path, const char *api_key,
                  const char *body, int timeout_ms, int *status, tp_buf *out,
                  char *err, size_t errcap);

#endif
