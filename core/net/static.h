/*
** static.h - files served as they are on disk: a content type by extension,
** an ETag, conditional GETs (304), and gzip for clients that accept it.
**
** The host's console (host/console.c) is the caller: it decides which file
** a path names and vets it with tphs_safe_path first; this file never
** resolves a client's path itself. A file is read once and kept in memory
** with its gzip form; it is read again when its size or mtime changes, so an
** edit shows on the next request with no build step. Files are small (the
** largest is Chart.js, 200 KB); reading one blocks the loop once.
*/
#ifndef TP_STATIC_H
#define TP_STATIC_H

#include <stdbool.h>
#include <stddef.h>

#include "net/http.h"

typedef struct tphs_cache tphs_cache;

tphs_cache *tphs_new(void);
void tphs_free(tphs_cache *c);

/* True when rel (n bytes, no leading '/') is a path a client may name: one
** or more segments of [A-Za-z0-9._-], none empty or starting with '.', so
** no "..", no hidden file, no encoded byte, no absolute path. */
bool tphs_safe_path(const char *rel, size_t n);

/* The content type of a file by its extension, or NULL for one not served. */
const char *tphs_content_type(const char *path);

/* Answers req with the file at path (already vetted): 200 with the bytes
** (gzip when the client accepts it and it is smaller), 304 when
** If-None-Match names its ETag, 404 not_found when it is absent or not a
** regular file. max_age_s > 0: Cache-Control public with that max-age
** (vendor files, versioned by their package); 0: no-cache (revalidate by
** ETag every time: our own files). */
void tphs_serve(tphs_cache *c, const char *path, int max_age_s, const tph_request *req,
                tph_response *res);

#endif
