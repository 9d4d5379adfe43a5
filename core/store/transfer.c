/*
** transfer.c - a brand's files carried between data folders (transfer.h).
*/
#include "store/transfer.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <openssl/evp.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "config/config.h"

#define READ_PIECE (1u << 20)  /* the digest reads this much at a time */

static const struct {
  const char *name, *suffix;
} files[TPXF_FILES] = {{"db", ".db"}, {"analytics", ".analytics.db"}};

const char *tpxf_suffix(const char *name, size_t n) {
  for (int i = 0; i < TPXF_FILES; i++)
    if (strlen(files[i].name) == n && memcmp(files[i].name, name, n) == 0) return files[i].suffix;
  return NULL;
}

const char *tpxf_name(int i) { return i >= 0 && i < TPXF_FILES ? files[i].name : NULL; }

/* ---- the source */

static void to_hex(const unsigned char *md, unsigned n, char *hex) {
  static const char digits[] = "0123456789abcdef";
  for (unsigned i = 0; i < n; i++) {
    hex[2 * i] = digits[md[i] >> 4];
    hex[2 * i + 1] = digits[md[i] & 15];
  }
  hex[2 * n] = '\0';
}

/* The digest so far into hex; frees ctx. */
static void digest_end(EVP_MD_CTX *ctx, char hex[TPXF_HEX]) {
  unsigned char md[EVP_MAX_MD_SIZE];
  unsigned n = 0;
  EVP_DigestFinal_ex(ctx, md, &n);
  EVP_MD_CTX_free(ctx);
  to_hex(md, n, hex);
}

int tpxf_digest(const char *path, int64_t *bytes, char hex[TPXF_HEX], char *err, size_t errcap) {
  int fd = open(path, O_RDONLY | O_CLOEXEC);
  if (fd < 0) {
    if (errno == ENOENT) return 1;
    snprintf(err, errcap, "cannot open %s: %s", path, strerror(errno));
    return -1;
  }
  EVP_MD_CTX *ctx = EVP_MD_CTX_new();
  char *piece = malloc(READ_PIECE);
  int rc = ctx && piece && EVP_DigestInit_ex(ctx, EVP_sha256(), NULL) == 1 ? 0 : -1;
  if (rc != 0) snprintf(err, errcap, "out of memory");
  *bytes = 0;
  for (ssize_t r; rc == 0 && (r = read(fd, piece, READ_PIECE)) != 0;) {
    if (r < 0) {
      if (errno == EINTR) continue;
      snprintf(err, errcap, "cannot read %s: %s", path, strerror(errno));
      rc = -1;
      break;
    }
    EVP_DigestUpdate(ctx, piece, (size_t)r);
    *bytes += r;
  }
  close(fd);
  free(piece);
  if (ctx && rc == 0) digest_end(ctx, hex);
  else EVP_MD_CTX_free(ctx);
  return rc;
}

int tpxf_read(const char *path, int64_t offset, size_t length, tp_buf *out, int64_t *total, char *err,
              size_t errcap) {
  int fd = open(path, O_RDONLY | O_CLOEXEC);
  struct stat st;
  if (fd < 0 || fstat(fd, &st) != 0) {
    snprintf(err, errcap, "cannot open %s: %s", path, strerror(errno));
    if (fd >= 0) close(fd);
    return -1;
  }
  *total = (int64_t)st.st_size;
  if (offset < 0 || offset >= *total) {
    snprintf(err, errcap, "offset %lld is past the end (%lld bytes)", (long long)offset, (long long)*total);
    close(fd);
    return 1;
  }
  if (length > TPXF_CHUNK_MAX) length = TPXF_CHUNK_MAX;
  if ((int64_t)length > *total - offset) length = (size_t)(*total - offset);
  tp_buf_reserve(out, length);
  size_t got = 0;
  while (got < length) {
    ssize_t r = pread(fd, out->data + out->len + got, length - got, (off_t)(offset + (int64_t)got));
    if (r < 0 && errno == EINTR) continue;
    if (r <= 0) {
      snprintf(err, errcap, "cannot read %s: %s", path, r < 0 ? strerror(errno) : "it shrank");
      close(fd);
      return -1;
    }
    got += (size_t)r;
  }
  out->len += got;
  close(fd);
  return 0;
}

bool tpxf_quiescent(const char *path) {
  char wal[PATH_MAX];
  snprintf(wal, sizeof wal, "%s-wal", path);
  struct stat st;
  return stat(wal, &st) != 0 || st.st_size == 0;
}

/* ---- the receiver */

int tpxf_sink_open(tpxf_sink *s, const char *tmp_path, char *err, size_t errcap) {
  memset(s, 0, sizeof *s);
  tp_copy_str(s->path, sizeof s->path, tmp_path);
  s->fd = open(tmp_path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0640);
  EVP_MD_CTX *ctx = EVP_MD_CTX_new();
  s->sha = ctx;
  if (s->fd < 0 || !ctx || EVP_DigestInit_ex(ctx, EVP_sha256(), NULL) != 1) {
    snprintf(err, errcap, "cannot create %s: %s", tmp_path, s->fd < 0 ? strerror(errno) : "out of memory");
    tpxf_sink_abort(s);
    return -1;
  }
  return 0;
}

int tpxf_sink_write(tpxf_sink *s, const void *p, size_t n) {
  const char *c = p;
  for (size_t done = 0; done < n;) {
    ssize_t w = write(s->fd, c + done, n - done);
    if (w < 0 && errno == EINTR) continue;
    if (w < 0) return -1;
    done += (size_t)w;
  }
  EVP_DigestUpdate(s->sha, p, n);
  s->bytes += (int64_t)n;
  return 0;
}

int tpxf_sink_finish(tpxf_sink *s, int64_t want_bytes, const char *want_hex, char *err, size_t errcap) {
  char hex[TPXF_HEX];
  digest_end(s->sha, hex);
  s->sha = NULL;
  int synced = fsync(s->fd);
  close(s->fd);
  s->fd = -1;
  if (synced != 0) {
    snprintf(err, errcap, "cannot sync %s: %s", s->path, strerror(errno));
    return -1;
  }
  if (s->bytes != want_bytes) {
    snprintf(err, errcap, "size_mismatch: %lld bytes arrived, the source said %lld", (long long)s->bytes,
             (long long)want_bytes);
    return -1;
  }
  if (strcmp(hex, want_hex) != 0) {
    snprintf(err, errcap, "digest_mismatch: the bytes that arrived have SHA-256 %.16s..., the source said "
             "%.16s...", hex, want_hex);
    return -1;
  }
  return 0;
}

void tpxf_sink_abort(tpxf_sink *s) {
  if (s->sha) EVP_MD_CTX_free(s->sha);
  s->sha = NULL;
  if (s->fd >= 0) close(s->fd);
  s->fd = -1;
  if (s->path[0]) unlink(s->path);
}

int tpxf_check_db(const char *path, char *err, size_t errcap) {
  sqlite3 *db = NULL;
  sqlite3_stmt *st = NULL;
  int rc = -1;
  if (sqlite3_open_v2(path, &db, SQLITE_OPEN_READONLY, NULL) == SQLITE_OK &&
      sqlite3_prepare_v2(db, "PRAGMA integrity_check(1)", -1, &st, NULL) == SQLITE_OK) {
    const char *r = sqlite3_step(st) == SQLITE_ROW ? (const char *)sqlite3_column_text(st, 0) : NULL;
    if (r && strcmp(r, "ok") == 0) rc = 0;
    else snprintf(err, errcap, "integrity_check: %s", r ? r : sqlite3_errmsg(db));
  } else {
    snprintf(err, errcap, "integrity_check: cannot open %s: %s", path, db ? sqlite3_errmsg(db) : "out of memory");
  }
  sqlite3_finalize(st);
  sqlite3_close(db);
  /* a WAL-mode file read leaves an empty log and its index beside it, which
  ** would stay behind the rename: the file alone is whole (tpxf_quiescent) */
  char side[PATH_MAX];
  const char *extra[] = {"-wal", "-shm"};
  for (int i = 0; i < 2 && tpxf_quiescent(path); i++) {
    snprintf(side, sizeof side, "%s%s", path, extra[i]);
    unlink(side);
  }
  return rc;
}

/* ---- installing and setting aside */

static void stamp(int64_t ms, char *out, size_t cap) {
  time_t s = (time_t)(ms / 1000);
  struct tm tm;
  gmtime_r(&s, &tm);
  char base[32];
  strftime(base, sizeof base, "%Y%m%dT%H%M%S", &tm);
  snprintf(out, cap, "%s.%03dZ", base, (int)(ms % 1000));
}

static void sync_folder_of(const char *path) {
  char dir[PATH_MAX];
  tp_copy_str(dir, sizeof dir, path);
  char *slash = strrchr(dir, '/');
  if (slash) *slash = '\0';
  else tp_copy_str(dir, sizeof dir, ".");
  int fd = open(slash && !dir[0] ? "/" : dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0) return;
  if (fsync(fd) != 0) { /* the rename stands; a crash might undo it, as any unsynced rename */ }
  close(fd);
}

int tpxf_displace(const char *final, int64_t now_ms, char *err, size_t errcap) {
  char side[PATH_MAX], when[40];
  const char *extra[] = {"-wal", "-shm"};
  for (int i = 0; i < 2; i++) {  /* an earlier copy's log would be replayed over this file */
    snprintf(side, sizeof side, "%s%s", final, extra[i]);
    if (unlink(side) != 0 && errno != ENOENT) {
      snprintf(err, errcap, "cannot remove %s: %s", side, strerror(errno));
      return -1;
    }
  }
  if (access(final, F_OK) == 0) {  /* never dropped silently */
    stamp(now_ms, when, sizeof when);
    snprintf(side, sizeof side, "%s.replaced-%s", final, when);
    if (rename(final, side) != 0) {
      snprintf(err, errcap, "cannot set %s aside: %s", final, strerror(errno));
      return -1;
    }
  }
  return 0;
}

int tpxf_install(const char *tmp, const char *final, int64_t now_ms, char *err, size_t errcap) {
  if (tpxf_displace(final, now_ms, err, errcap) != 0) return -1;
  if (rename(tmp, final) != 0) {
    snprintf(err, errcap, "cannot rename %s: %s", tmp, strerror(errno));
    return -1;
  }
  sync_folder_of(final);
  return 0;
}

static void tombstone_path(const char *data_dir, const char *tenant, char *out, size_t cap) {
  tpc_tenant_file(data_dir, tenant, ".moved", out, cap);
}

static int write_tombstone(const char *path, const char *node, const char *when, char *err, size_t errcap) {
  char tmp[PATH_MAX + 8];
  snprintf(tmp, sizeof tmp, "%s.tmp", path);
  FILE *f = fopen(tmp, "w");
  int rc = f && fprintf(f, "moved to node %s at %s\n", node, when) > 0 ? 0 : -1;
  if (f && (fflush(f) != 0 || fsync(fileno(f)) != 0)) rc = -1;
  if (f && fclose(f) != 0) rc = -1;
  if (rc == 0 && rename(tmp, path) != 0) rc = -1;
  if (rc != 0) {
    snprintf(err, errcap, "cannot write %s: %s", path, strerror(errno));
    unlink(tmp);
  }
  return rc;
}

int tpxf_set_aside(const char *data_dir, const char *tenant, const char *node, int64_t now_ms, char *aside,
                   size_t cap, char *err, size_t errcap) {
  char when[40], path[PATH_MAX], side[PATH_MAX + 48];
  stamp(now_ms, when, sizeof when);
  tombstone_path(data_dir, tenant, path, sizeof path);
  if (write_tombstone(path, node, when, err, errcap) != 0) return -1;  /* first: refused from now on */
  if (aside && cap) aside[0] = '\0';
  for (int i = 0; i < TPXF_FILES; i++) {
    const char *extra[] = {"", "-wal", "-shm"};
    for (int k = 0; k < 3; k++) {
      tpc_tenant_file(data_dir, tenant, files[i].suffix, path, sizeof path);
      strncat(path, extra[k], sizeof path - strlen(path) - 1);
      if (access(path, F_OK) != 0) continue;
      snprintf(side, sizeof side, "%s.moved-%s", path, when);
      if (rename(path, side) != 0) {
        snprintf(err, errcap, "cannot set %s aside: %s", path, strerror(errno));
        return -1;
      }
      if (aside && cap && !aside[0]) tp_copy_str(aside, cap, strrchr(side, '/') ? strrchr(side, '/') + 1 : side);
    }
  }
  sync_folder_of(path);
  return 0;
}

int tpxf_tombstone(const char *data_dir, const char *tenant, char *out, size_t cap) {
  char path[PATH_MAX];
  tombstone_path(data_dir, tenant, path, sizeof path);
  FILE *f = fopen(path, "r");
  if (!f) return 0;
  if (!fgets(out, (int)cap, f)) tp_copy_str(out, cap, "moved to another node");
  out[strcspn(out, "\n")] = '\0';
  fclose(f);
  return 1;
}

int tpxf_clear_tombstone(const char *data_dir, const char *tenant, char *err, size_t errcap) {
  char path[PATH_MAX];
  tombstone_path(data_dir, tenant, path, sizeof path);
  if (unlink(path) != 0 && errno != ENOENT) {
    snprintf(err, errcap, "cannot remove %s: %s", path, strerror(errno));
    return -1;
  }
  sync_folder_of(path);
  return 0;
}
