/*
** dueindex.h - where each closed brand's timers stand, in one small file.
**
** A host with lazy brands (host/brands.c) must know, without opening a
** brand, when its next task and its next call out are due. Reading that from
** each brand's own file costs its schema (a hundred tables) per brand: about
** a millisecond, a second for a thousand brands. So when a brand closes, its
** due times go into <data_dir>/tidepool.due.db (no brand can be
** called "tidepool.due": ids have no dot), and a start takes them from there,
** for every brand whose own files have not changed since its row was written
** (a brand that was open when the host died has a newer file: it is read).
*/
#ifndef TP_STORE_DUEINDEX_H
#define TP_STORE_DUEINDEX_H

#include <sqlite3.h>
#include <stddef.h>
#include <stdint.h>

typedef struct tpdi_entry {
  int64_t next_due_ms;     /* INT64_MAX: none */
  int64_t outbox_due_ms;   /* INT64_MAX: none */
  int64_t clock_ms;        /* a manual clock's saved time */
  int64_t written_ms;      /* when the row was written (wall clock) */
} tpdi_entry;

typedef struct tpdi_index {
  sqlite3 *db;
  sqlite3_stmt *get, *put;
} tpdi_index;

/* Opens (creating) the index at path. 0, or -1 with err. */
int tpdi_open(tpdi_index *x, const char *path, char *err, size_t errcap);
void tpdi_close(tpdi_index *x);
/* 1 and *e when id has a row, 0 when not (or x is not open). */
int tpdi_get(tpdi_index *x, const char *id, tpdi_entry *e);
/* Writes id's row (e->written_ms as given). 0, or -1. */
int tpdi_put(tpdi_index *x, const char *id, const tpdi_entry *e);

#endif
