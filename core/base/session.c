/*
** session.c - signed-in console browsers (session.h). A few dozen at a time,
** so a plain array searched in order is enough.
*/
#include "base/session.h"

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/passwd.h"

struct tpse_table {
  tpse_session *s;
  int n, cap;
};

tpse_table *tpse_new(void) { return calloc(1, sizeof(tpse_table)); }

void tpse_free(tpse_table *t) {
  if (!t) return;
  OPENSSL_cleanse(t->s, (size_t)t->cap * sizeof *t->s);
  free(t->s);
  free(t);
}

static void digest(const char *id, size_t n, unsigned char out[32]) {
  unsigned len = 0;
  EVP_Digest(id, n, out, &len, EVP_sha256(), NULL);
}

static void drop(tpse_table *t, int i) {
  t->s[i] = t->s[--t->n];
  memset(&t->s[t->n], 0, sizeof t->s[t->n]);
}

const tpse_session *tpse_create(tpse_table *t, const char *tenant, const char *user, int role,
                                const char *store, int64_t now_ms, int64_t life_ms,
                                char id_out[65]) {
  for (int i = 0; i < t->n;)  /* the expired go first */
    if (t->s[i].expires_ms <= now_ms) drop(t, i);
    else i++;
  if (t->n == TPSE_MAX_SESSIONS) {
    int soonest = 0;
    for (int i = 1; i < t->n; i++)
      if (t->s[i].expires_ms < t->s[soonest].expires_ms) soonest = i;
    drop(t, soonest);
  }
  if (t->n == t->cap) {
    int cap = t->cap ? t->cap * 2 : 16;
    tpse_session *s = realloc(t->s, (size_t)cap * sizeof *s);
    if (!s) return NULL;
    t->s = s;
    t->cap = cap;
  }
  tpse_session *s = &t->s[t->n++];
  memset(s, 0, sizeof *s);
  tppw_token(id_out);
  digest(id_out, 64, s->id);
  snprintf(s->tenant, sizeof s->tenant, "%s", tenant);
  snprintf(s->user, sizeof s->user, "%s", user);
  snprintf(s->store, sizeof s->store, "%s", store ? store : "");
  s->role = role;
  tppw_token(s->csrf);
  s->created_ms = now_ms;
  s->expires_ms = now_ms + life_ms;
  return s;
}

static int find(const tpse_table *t, const char *id, size_t n) {
  if (n != 64) return -1;
  unsigned char d[32];
  digest(id, n, d);
  for (int i = 0; i < t->n; i++)
    if (CRYPTO_memcmp(t->s[i].id, d, 32) == 0) return i;
  return -1;
}

const tpse_session *tpse_find(tpse_table *t, const char *tenant, const char *id, size_t n,
                              int64_t now_ms) {
  int i = find(t, id, n);
  if (i < 0) return NULL;
  if (t->s[i].expires_ms <= now_ms) {
    drop(t, i);
    return NULL;
  }
  return strcmp(t->s[i].tenant, tenant) == 0 ? &t->s[i] : NULL;
}

bool tpse_end(tpse_table *t, const char *id, size_t n) {
  int i = find(t, id, n);
  if (i >= 0) drop(t, i);
  return i >= 0;
}

int tpse_end_user(tpse_table *t, const char *tenant, const char *user) {
  int ended = 0;
  for (int i = 0; i < t->n;)
    if (strcmp(t->s[i].tenant, tenant) == 0 && strcmp(t->s[i].user, user) == 0) {
      drop(t, i);
      ended++;
    } else {
      i++;
    }
  return ended;
}

int tpse_count(const tpse_table *t) { return t->n; }
