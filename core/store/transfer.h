/*
** transfer.h - a brand's files carried from one node's data folder to
** another's (a move between machines, host/cluster.c), in bounded pieces.
**
** What travels: the files a brand has in its data folder (config.h's
** tpc_tenant_file): "db" (<tenant>.db, its orders, members, jobs, outbox)
** and "analytics" (<tenant>.analytics.db, store/track.h) when it exists.
** Those two names are the only ones a request may give: a file is chosen
** from this list, never from a path, so no ".." or "/" ever reaches open().
**
** When: only after the old node has released the brand (committed, closed:
** host/cluster.c), so the files are quiescent. A file whose WAL still holds
** frames (<file>-wal not empty) was not closed cleanly and is refused.
**
** How (the source): tpxf_digest gives a file's size and SHA-256, read in
** 1 MiB pieces; tpxf_read one piece of at most TPXF_CHUNK_MAX bytes. Neither
** ever holds a whole file in memory.
**
** How (the receiver): a sink writes the pieces into a temporary file of its
** own data folder (".<tenant><suffix>.incoming"), hashing as it goes;
** tpxf_sink_finish syncs it and compares size and digest with the source's;
** tpxf_check_db runs PRAGMA integrity_check; tpxf_install replaces the file
** (a stale WAL and shared-memory file of an earlier copy removed first, the
** rename and its folder synced).
**
** After a move the old node sets its copy aside (tpxf_set_aside): each file
** renamed <file>.moved-<UTC time>, and a tombstone <tenant>.moved naming the
** new node, which tpxf_tombstone reads: a node refuses to open a brand with
** a tombstone, so a stale copy is never served by mistake (and never deleted
** silently). An adopt that installs the brand anew removes it.
**
** Every function blocks: the host calls them on libuv workers.
*/
#ifndef TP_STORE_TRANSFER_H
#define TP_STORE_TRANSFER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "base/buf.h"

#define TPXF_CHUNK_MAX (4u << 20)  /* bytes one piece may carry */
#define TPXF_FILES 2               /* "db", "analytics" */
#define TPXF_HEX 65                /* a SHA-256 in hex, and its NUL */

/* The suffix of transferable file name[0..n) (".db", ".analytics.db"), or
** NULL when it is none of them. */
const char *tpxf_suffix(const char *name, size_t n);
/* The i-th transferable file's name ("db", "analytics"), i < TPXF_FILES. */
const char *tpxf_name(int i);

/* Size and SHA-256 (lowercase hex) of the file at path. 0; 1 when there is
** no such file; -1 with err. */
int tpxf_digest(const char *path, int64_t *bytes, char hex[TPXF_HEX], char *err, size_t errcap);
/* Appends to out the bytes [offset, offset + length) of path (fewer at its
** end; length at most TPXF_CHUNK_MAX), its size into *total. 0; 1 with err
** when offset is at or past the end; -1 with err (no such file). */
int tpxf_read(const char *path, int64_t offset, size_t length, tp_buf *out, int64_t *total, char *err,
              size_t errcap);
/* Whether path's WAL (path-wal) is absent or empty: its file is whole. */
bool tpxf_quiescent(const char *path);

/* The receiving end of one file. */
typedef struct tpxf_sink {
  int fd;
  void *sha;        /* the running digest (OpenSSL's EVP_MD_CTX) */
  int64_t bytes;    /* written so far */
  char path[1200];  /* the temporary file */
} tpxf_sink;

/* Creates (replacing) the temporary file at tmp_path. 0, or -1 with err. */
int tpxf_sink_open(tpxf_sink *s, const char *tmp_path, char *err, size_t errcap);
/* Appends n bytes. 0, or -1 (a write failed: errno). */
int tpxf_sink_write(tpxf_sink *s, const void *p, size_t n);
/* Syncs and closes the file and checks it is want_bytes long with SHA-256
** want_hex. 0, or -1 with err (the file stays for tpxf_sink_abort). */
int tpxf_sink_finish(tpxf_sink *s, int64_t want_bytes, const char *want_hex, char *err, size_t errcap);
/* Closes (if still open) and deletes the temporary file. */
void tpxf_sink_abort(tpxf_sink *s);

/* PRAGMA integrity_check on the SQLite file at path (opened read-only).
** 0, or -1 with err. */
int tpxf_check_db(const char *path, char *err, size_t errcap);
/* Makes room for final: its WAL and shared-memory files removed, final
** itself (if any) renamed final.replaced-<stamp>. 0, or -1 with err. */
int tpxf_displace(const char *final, int64_t now_ms, char *err, size_t errcap);
/* Moves tmp to final: final's WAL and shared-memory files removed (they
** would be replayed over the new file), an existing final renamed
** final.replaced-<stamp>, the rename and the folder synced. 0, or -1 with err. */
int tpxf_install(const char *tmp, const char *final, int64_t now_ms, char *err, size_t errcap);

/* After tenant moved to node: renames its files in data_dir aside and
** writes the tombstone. Its first file's new name into aside (cap bytes).
** 0, or -1 with err (what was renamed stays renamed; the tombstone is
** written first, so the brand is refused either way). */
int tpxf_set_aside(const char *data_dir, const char *tenant, const char *node, int64_t now_ms, char *aside,
                   size_t cap, char *err, size_t errcap);
/* 1 with its text (the node it moved to, and when) into out when tenant has
** a tombstone in data_dir, else 0. */
int tpxf_tombstone(const char *data_dir, const char *tenant, char *out, size_t cap);
/* Removes tenant's tombstone (it is installed here anew). 0, or -1 with err. */
int tpxf_clear_tombstone(const char *data_dir, const char *tenant, char *err, size_t errcap);

#endif
