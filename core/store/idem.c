/*
** idem.c - stored answers of Idempotency-Keys (_tp_idempotency), see idem.h.
*/
#include "store/idem.h"

#include <openssl/evp.h>
#include <stdio.h>
#include <string.h>

/* WITHOUT ROWID: the key is the row, one b-tree write instead of two. */
static const char schema[] =
    "CREATE TABLE IF NOT EXISTS _tp_idempotency ("
    " scope TEXT NOT NULL,"         /* the user id, '' for none */
    " key TEXT NOT NULL,"
    " body_hash BLOB NOT NULL,"     /* tpid_fingerprint of the request */
    " status INTEGER NOT NULL,"
    " body BLOB NOT NULL,"          /* the answer, as sent */
    " created_ms INTEGER NOT NULL,"
    " PRIMARY KEY (scope, key)) WITHOUT ROWID;"
    "CREATE INDEX IF NOT EXISTS _tp_idempotency_created ON _tp_idempotency(created_ms);"
    /* a member merged into a survivor: her answers are the survivor's (a key
    ** both used stays the survivor's); erased: her answers go with her data */
    "CREATE TRIGGER IF NOT EXISTS _tp_idempotency_merge AFTER INSERT ON _tp_aliases BEGIN"
    " UPDATE OR IGNORE _tp_idempotency SET scope = new.survivor"
    "  WHERE scope = new.id AND new.survivor IS NOT NULL;"
    " DELETE FROM _tp_idempotency WHERE scope = new.id; END;"
    "CREATE TRIGGER IF NOT EXISTS _tp_idempotency_remerge AFTER UPDATE OF survivor ON _tp_aliases"
    " WHEN new.id = old.id BEGIN"
    " UPDATE OR IGNORE _tp_idempotency SET scope = new.survivor"
    "  WHERE scope = new.id AND new.survivor IS NOT NULL;"
    " DELETE FROM _tp_idempotency WHERE scope = new.id; END;";

static const struct {
  size_t offset;
  const char *sql;
} statements[] = {
  {offsetof(tpid_table, find),
   "SELECT body_hash, status, body FROM _tp_idempotency"
   " WHERE scope = ?1 AND key = ?2 AND created_ms > ?3"},
  {offsetof(tpid_table, put),
   "INSERT OR REPLACE INTO _tp_idempotency(scope, key, body_hash, status, body, created_ms)"
   " VALUES (?1, ?2, ?3, ?4, ?5, ?6)"},
  {offsetof(tpid_table, sweep),
   "DELETE FROM _tp_idempotency WHERE (scope, key) IN (SELECT scope, key FROM _tp_idempotency"
   " WHERE created_ms <= ?1 ORDER BY created_ms LIMIT ?2)"},
};
#define NSTATEMENTS (sizeof statements / sizeof *statements)

static sqlite3_stmt **slot(tpid_table *x, size_t i) {
  return (sqlite3_stmt **)((char *)x + statements[i].offset);
}

int tpid_open(tpid_table *x, tps_db *db, char *err, size_t errcap) {
  memset(x, 0, sizeof *x);
  x->db = db;
  if (tps_exec_script(db, schema, err, errcap) != 0) return -1;
  for (size_t i = 0; i < NSTATEMENTS; i++)
    if (sqlite3_prepare_v3(db->db, statements[i].sql, -1, SQLITE_PREPARE_PERSISTENT, slot(x, i),
                           NULL) != SQLITE_OK) {
      snprintf(err, errcap, "idempotency: %s", sqlite3_errmsg(db->db));
      tpid_close(x);
      return -1;
    }
  return 0;
}

void tpid_close(tpid_table *x) {
  for (size_t i = 0; i < NSTATEMENTS; i++) sqlite3_finalize(*slot(x, i));
  memset(x, 0, sizeof *x);
}

/* Steps st with the host's privileges (a merge re-keys from inside a
** plugin's call); the caller resets it. */
static int step(tpid_table *x, sqlite3_stmt *st) {
  const char *owner = x->db->owner;
  tps_set_owner(x->db, NULL);
  int rc = sqlite3_step(st);
  tps_set_owner(x->db, owner);
  return rc;
}

static int done(sqlite3_stmt *st, int rc) {
  sqlite3_reset(st);
  sqlite3_clear_bindings(st);
  return rc;
}

bool tpid_key_valid(const char *key, size_t n) {
  if (n == 0 || n > TPID_MAX_KEY) return false;
  for (size_t i = 0; i < n; i++)
    if ((unsigned char)key[i] < 0x21 || (unsigned char)key[i] > 0x7e) return false;
  return true;
}

static void add_part(EVP_MD_CTX *c, const char *s, size_t n) {
  unsigned char len[8];
  for (int i = 0; i < 8; i++) len[i] = (unsigned char)((uint64_t)n >> (8 * i));
  EVP_DigestUpdate(c, len, sizeof len);
  if (n) EVP_DigestUpdate(c, s, n);
}

int tpid_fingerprint(const char *route, const char *method, const char *path, size_t plen,
                      const char *query, size_t qlen, const char *body, size_t blen,
                      unsigned char out[32]) {
  EVP_MD_CTX *c = EVP_MD_CTX_new();
  unsigned int n = 32;
  if (!c || !EVP_DigestInit_ex(c, EVP_sha256(), NULL)) {
    EVP_MD_CTX_free(c);
    return -1;
  }
  add_part(c, route, strlen(route));
  add_part(c, method, strlen(method));
  add_part(c, path, plen);
  add_part(c, query, qlen);
  add_part(c, body, blen);
  int ok = EVP_DigestFinal_ex(c, out, &n);
  EVP_MD_CTX_free(c);
  return ok ? 0 : -1;
}

tpid_found tpid_find(tpid_table *x, const char *scope, const char *key, size_t klen,
                     const unsigned char print[32], int64_t now_ms, int *status, tp_buf *body) {
  sqlite3_stmt *st = x->find;
  sqlite3_bind_text(st, 1, scope, -1, SQLITE_STATIC);
  sqlite3_bind_text(st, 2, key, (int)klen, SQLITE_STATIC);
  sqlite3_bind_int64(st, 3, now_ms - TPID_TTL_MS);
  int rc = step(x, st);
  if (rc == SQLITE_DONE) return done(st, TPID_MISS);
  if (rc != SQLITE_ROW) return done(st, TPID_ERROR);
  if (sqlite3_column_bytes(st, 0) != 32 || memcmp(sqlite3_column_blob(st, 0), print, 32) != 0)
    return done(st, TPID_REUSED);
  *status = sqlite3_column_int(st, 1);
  const void *b = sqlite3_column_blob(st, 2);
  if (b) tp_buf_add(body, b, (size_t)sqlite3_column_bytes(st, 2));
  return done(st, TPID_HIT);
}

int tpid_put(tpid_table *x, const char *scope, const char *key, size_t klen,
             const unsigned char print[32], int status, const char *body, size_t blen,
             int64_t now_ms) {
  if (blen > TPID_MAX_BODY) return -1;
  if (++x->writes >= TPID_SWEEP_EVERY) {  /* keeps the table at about a day of writes */
    x->writes = 0;
    if (tpid_sweep(x, now_ms, TPID_SWEEP) < 0) return -2;
  }
  sqlite3_stmt *st = x->put;
  sqlite3_bind_text(st, 1, scope, -1, SQLITE_STATIC);
  sqlite3_bind_text(st, 2, key, (int)klen, SQLITE_STATIC);
  sqlite3_bind_blob(st, 3, print, 32, SQLITE_STATIC);
  sqlite3_bind_int(st, 4, status);
  sqlite3_bind_blob(st, 5, blen ? body : "", (int)blen, SQLITE_STATIC);
  sqlite3_bind_int64(st, 6, now_ms);
  return done(st, step(x, st) == SQLITE_DONE ? 0 : -2);
}

int tpid_sweep(tpid_table *x, int64_t now_ms, int limit) {
  sqlite3_stmt *st = x->sweep;
  sqlite3_bind_int64(st, 1, now_ms - TPID_TTL_MS);
  sqlite3_bind_int(st, 2, limit);
  if (done(st, step(x, st)) != SQLITE_DONE) return -1;
  return sqlite3_changes(x->db->db);
}
