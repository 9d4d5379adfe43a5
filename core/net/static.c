/*
** static.c - files as they are on disk, with ETag, 304 and gzip (static.h).
*/
#include "net/static.h"

#include <openssl/evp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <zlib.h>

#define MAX_FILE_BYTES (4u << 20)   /* nothing we serve comes near it */
#define MAX_ENTRIES 64

typedef struct entry {
  char *path;
  off_t size;
  struct timespec mtime;
  char *data;                 /* the bytes as on disk */
  size_t len;
  char *gz;                   /* gzip of them; NULL when it saves nothing */
  size_t gz_len;
  char etag[24];              /* "\"" + 20 hex of SHA-256 + "\"" */
} entry;

struct tphs_cache {
  entry entries[MAX_ENTRIES];
  int n;
};

tphs_cache *tphs_new(void) { return calloc(1, sizeof(tphs_cache)); }

static void entry_clear(entry *e) {
  free(e->data);
  free(e->gz);
  e->data = e->gz = NULL;
  e->len = e->gz_len = 0;
}

void tphs_free(tphs_cache *c) {
  if (!c) return;
  for (int i = 0; i < c->n; i++) {
    entry_clear(&c->entries[i]);
    free(c->entries[i].path);
  }
  free(c);
}

bool tphs_safe_path(const char *rel, size_t n) {
  if (n == 0 || n > 200) return false;
  bool seg_start = true;
  for (size_t i = 0; i < n; i++) {
    char ch = rel[i];
    if (ch == '/') {
      if (seg_start) return false;  /* empty segment, or a leading '/' */
      seg_start = true;
      continue;
    }
    if (seg_start && ch == '.') return false;  /* "..", ".hidden" */
    seg_start = false;
    if (!((ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9') ||
          ch == '.' || ch == '-' || ch == '_'))
      return false;
  }
  return !seg_start;  /* no trailing '/' */
}

const char *tphs_content_type(const char *path) {
  static const struct { const char *ext, *type; } types[] = {
    {".html", "text/html; charset=utf-8"},
    {".js", "application/javascript; charset=utf-8"},
    {".css", "text/css; charset=utf-8"},
    {".json", "application/json"},
    {".svg", "image/svg+xml"},
    {".png", "image/png"},
    {".ico", "image/x-icon"},
  };
  const char *dot = strrchr(path, '.');
  if (!dot || strchr(dot, '/')) return NULL;
  for (size_t i = 0; i < sizeof types / sizeof *types; i++)
    if (strcmp(dot, types[i].ext) == 0) return types[i].type;
  return NULL;
}

/* gzip of e->data, kept only when it is smaller. */
static void compress_entry(entry *e) {
  z_stream z;
  memset(&z, 0, sizeof z);
  if (deflateInit2(&z, 9, Z_DEFLATED, 15 + 16, 9, Z_DEFAULT_STRATEGY) != Z_OK) return;
  size_t cap = deflateBound(&z, (uLong)e->len);
  e->gz = malloc(cap);
  if (e->gz) {
    z.next_in = (Bytef *)e->data;
    z.avail_in = (uInt)e->len;
    z.next_out = (Bytef *)e->gz;
    z.avail_out = (uInt)cap;
    if (deflate(&z, Z_FINISH) == Z_STREAM_END && z.total_out < e->len) {
      e->gz_len = z.total_out;
    } else {
      free(e->gz);
      e->gz = NULL;
    }
  }
  deflateEnd(&z);
}

/* The entry of path, read afresh when the file changed; NULL if it cannot be
** served (absent, not a regular file, too big). */
static entry *lookup(tphs_cache *c, const char *path) {
  struct stat st;
  if (stat(path, &st) != 0 || !S_ISREG(st.st_mode) || st.st_size > (off_t)MAX_FILE_BYTES) return NULL;
  entry *e = NULL;
  for (int i = 0; i < c->n && !e; i++)
    if (strcmp(c->entries[i].path, path) == 0) e = &c->entries[i];
  if (e && e->data && e->size == st.st_size && e->mtime.tv_sec == st.st_mtim.tv_sec &&
      e->mtime.tv_nsec == st.st_mtim.tv_nsec)
    return e;
  if (!e) {
    if (c->n == MAX_ENTRIES) {  /* a full cache starts again; it holds our few files */
      for (int i = 0; i < c->n; i++) {
        entry_clear(&c->entries[i]);
        free(c->entries[i].path);
      }
      c->n = 0;
    }
    e = &c->entries[c->n];
    memset(e, 0, sizeof *e);
    e->path = strdup(path);
    if (!e->path) return NULL;
    c->n++;
  }
  entry_clear(e);
  size_t len;
  e->data = tp_read_file(path, MAX_FILE_BYTES, &len);
  if (!e->data) return NULL;
  e->len = len;
  e->size = st.st_size;
  e->mtime = st.st_mtim;
  unsigned char md[EVP_MAX_MD_SIZE];
  unsigned mdlen = 0;
  EVP_Digest(e->data, e->len, md, &mdlen, EVP_sha256(), NULL);
  e->etag[0] = '"';
  for (int i = 0; i < 10; i++) snprintf(e->etag + 1 + 2 * i, 3, "%02x", md[i]);
  e->etag[21] = '"';
  e->etag[22] = '\0';
  compress_entry(e);
  return e;
}

/* Whether the header's comma-separated list holds token (case-insensitive;
** "gzip;q=0" counts as refusing it). */
static bool header_lists(const tph_header *h, const char *token, bool etag) {
  if (!h) return false;
  size_t tl = strlen(token);
  const char *p = h->value, *end = h->value + h->vlen;
  while (p < end) {
    while (p < end && (*p == ' ' || *p == ',')) p++;
    const char *s = p;
    while (p < end && *p != ',') p++;
    const char *e = p;
    while (e > s && e[-1] == ' ') e--;
    if (etag) {
      if ((size_t)(e - s) == 1 && *s == '*') return true;
      if ((size_t)(e - s) >= 2 && s[0] == 'W' && s[1] == '/') s += 2;
      if ((size_t)(e - s) == tl && memcmp(s, token, tl) == 0) return true;
    } else {
      const char *semi = memchr(s, ';', (size_t)(e - s));
      const char *name_end = semi ? semi : e;
      while (name_end > s && name_end[-1] == ' ') name_end--;
      if ((size_t)(name_end - s) == tl && strncasecmp(s, token, tl) == 0) {
        if (semi) {
          const char *q = semi + 1;
          while (q < e && *q == ' ') q++;
          if (e - q >= 3 && strncmp(q, "q=0", 3) == 0 && (e - q == 3 || strspn(q + 3, ".0") ==
                                                             (size_t)(e - q - 3)))
            return false;
        }
        return true;
      }
    }
  }
  return false;
}

void tphs_serve(tphs_cache *c, const char *path, int max_age_s, const tph_request *req,
                tph_response *res) {
  const char *type = tphs_content_type(path);
  entry *e = type && c ? lookup(c, path) : NULL;
  if (!e) {
    tph_error(res, 404, "not_found", "no such file");
    return;
  }
  char cache[64];
  if (max_age_s > 0) snprintf(cache, sizeof cache, "public, max-age=%d", max_age_s);
  else snprintf(cache, sizeof cache, "no-cache");
  tph_add_header(res, "ETag", e->etag);
  tph_add_header(res, "Cache-Control", cache);
  tph_add_header(res, "X-Content-Type-Options", "nosniff");
  if (e->gz) tph_add_header(res, "Vary", "Accept-Encoding");
  res->content_type = type;
  if (header_lists(tph_find_header(req, "if-none-match"), e->etag, true)) {
    res->status = 304;
    return;
  }
  bool gzip = e->gz && header_lists(tph_find_header(req, "accept-encoding"), "gzip", false);
  if (gzip) tph_add_header(res, "Content-Encoding", "gzip");
  tp_buf_add(&res->body, gzip ? e->gz : e->data, gzip ? e->gz_len : e->len);
  res->status = 200;
}
