/*
** flashloop.c - tests/bench/sidebyside.sh's bare servers, on the loop
** baseline.c also runs on (../benchloop.c: buffers, write path, group commit).
**
**   flashloop PORT DBFILE SECRET   the flash-sale buy with tidepool's SQL
**   flashloop --ceiling PORT       answers every request 200 {"ok":true}, no work
**
** The buy: POST /v1/bench/flash-sales/<id>/buy with "Authorization: Bearer
** v1.bench.<user>.<exp>.<sig>" and a JSON body ({} or {"qty":n}). Per request
** it verifies the token (HMAC-SHA-256 with OpenSSL, like core/base/token.c), then
** inside a SAVEPOINT runs the statements tidepool's plugins run for a buy
** without an Idempotency-Key (plugins/flash_sale/plugin.lua buy,
** plugins/orders/lib/create.lua, plugins/catalog/plugin.lua reserve,
** core/store/sched.c schedule): read the sale, count the user against the limit
** (an upsert whose changed-row count is the answer), take the sale's units
** (conditional UPDATE), count the user's unpaid orders and read when the unpaid
** sweep is due, read the catalog's SKU and take its stock (conditional UPDATE),
** insert the order and its line, and, when the sweep is due after the order's
** deadline or not scheduled (plugins/orders/lib/unpaid.lua), schedule it (its
** job row: a DELETE by key and a second INSERT only when its key clashes) and
** record its due. DBFILE is a database tidepool's own migrations made (sidebyside.sh
** starts tidepool once on an empty data dir and copies its bench.db), so the
** tables, CHECKs, triggers and indexes are the plugins' and the host's as they
** are, never a copy that drifts. WAL, synchronous=FULL, foreign_keys=ON. All requests parsed in
** one loop iteration share one BEGIN ... COMMIT (one fsync); a uv_check handle
** commits and only then hands that iteration's responses to the sockets.
** No routing table, Lua, request ids, logs or timeouts.
**
** Also: GET /healthz, GET /orders/count -> {"orders":N}, GET /metrics.
** SIGINT/SIGTERM stop it.
*/
#define _POSIX_C_SOURCE 200809L

#include "../benchloop.h"

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/params.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define TENANT "bench"
#define BUY_PREFIX "/v1/" TENANT "/flash-sales/"
#define MAX_UNPAID 1000000 /* orders = { max_unpaid_orders = 1000000 } in flash_sale.sh */
#define JSON "application/json"

/* ---- state */

enum {
  Q_SAVEPOINT, Q_RELEASE, Q_ROLLBACK_TO,
  Q_SALE, Q_BUYER, Q_TAKE, Q_UNPAID, Q_SKU, Q_RESERVE, Q_ORDER, Q_LINE, Q_JOB_DEL, Q_JOB_INS, Q_SWEEP,
  Q_COUNT, NQ
};

static const char *const SQL[NQ] = {
  [Q_SAVEPOINT] = "SAVEPOINT tp_request",
  [Q_RELEASE] = "RELEASE tp_request",
  [Q_ROLLBACK_TO] = "ROLLBACK TO tp_request",
  /* flash_sale: load(id) */
  [Q_SALE] = "SELECT id, sku, title, price_fen, quantity, remaining, per_user_limit, per_order_limit,"
             " starts_at, ends_at, slots, unpaid_timeout_seconds, stacks_with_coupon, status, created_at,"
             " updated_at, requires_reservation, audience FROM flash_sale_sales WHERE id = ?",
  /* flash_sale: add_bought */
  [Q_BUYER] = "INSERT INTO flash_sale_buyers (sale_id, user, bought) VALUES (?1, ?2, ?3)"
              " ON CONFLICT (sale_id, user) DO UPDATE SET bought = bought + ?3 WHERE bought + ?3 <= ?4",
  /* flash_sale: take_units */
  [Q_TAKE] = "UPDATE flash_sale_sales SET remaining = remaining - ?1 WHERE id = ?2 AND remaining >= ?1",
  /* orders: the unpaid cap, and the unpaid sweep's row (lib/unpaid.lua) */
  [Q_UNPAID] = "SELECT (SELECT count(*) FROM orders_orders WHERE user = ? AND status = 'pending_payment')"
               " AS n, due, swept_deadline FROM orders_sweep WHERE id = 1",
  /* catalog: reserve */
  [Q_SKU] = "SELECT s.product_id, s.title, s.price_fen, s.stock, p.status FROM catalog_skus s"
            " JOIN catalog_products p ON p.id = s.product_id WHERE s.code = ?",
  [Q_RESERVE] = "UPDATE catalog_skus SET stock = stock - ?1 WHERE code = ?2 AND stock >= ?1",
  /* orders: insert_order, insert_lines */
  [Q_ORDER] = "INSERT INTO orders_orders (user, status, items_fen, discount_fen, total_fen, coupon_id,"
              " campaign_plugin, campaign_id, campaign_stacks, held, referrer, referrer2, store, guide,"
              " created_at, pay_deadline, points, points_fen, source)"
              " VALUES (?1, 'pending_payment', ?2, 0, ?2, NULL, 'flash_sale', ?3, ?4, 0, NULL, NULL,"
              " NULL, NULL, ?5, ?6, 0, 0, NULL)",
  [Q_LINE] = "INSERT INTO orders_lines (order_id, line_no, sku, product_id, title, qty, list_price_fen,"
             " unit_price_fen, amount_fen, discount_fen, paid_fen) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
  /* orders/lib/unpaid.lua watch: core/store/sched.c's tp.jobs.schedule("sweep_unpaid", {},
  ** {at = deadline, key = "sweep_unpaid"}), then the due recorded */
  [Q_JOB_DEL] = "DELETE FROM _tp_jobs WHERE plugin = ?1 AND key = ?2 AND dead_ms IS NULL",
  [Q_JOB_INS] = "INSERT INTO _tp_jobs(kind, plugin, name, source, payload, key, due_ms, every_ms,"
                " max_attempts, created_ms) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)",
  [Q_SWEEP] = "UPDATE orders_sweep SET due = ? WHERE id = 1",
  [Q_COUNT] = "SELECT count(*) FROM orders_orders",
};

static struct {
  bool ceiling;
  const char *secret;
  sqlite3 *db;
  sqlite3_stmt *q[NQ];
} S;

/* ---- the token (core/base/token.c's rules) */

static size_t base64url(const unsigned char *in, size_t n, char *out) {
  static const char tab[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
  size_t o = 0, i = 0;
  for (; i + 3 <= n; i += 3) {
    uint32_t v = (uint32_t)in[i] << 16 | (uint32_t)in[i + 1] << 8 | in[i + 2];
    out[o++] = tab[v >> 18];
    out[o++] = tab[(v >> 12) & 63];
    out[o++] = tab[(v >> 6) & 63];
    out[o++] = tab[v & 63];
  }
  if (n - i == 1) {
    uint32_t v = (uint32_t)in[i] << 16;
    out[o++] = tab[v >> 18];
    out[o++] = tab[(v >> 12) & 63];
  } else if (n - i == 2) {
    uint32_t v = (uint32_t)in[i] << 16 | (uint32_t)in[i + 1] << 8;
    out[o++] = tab[v >> 18];
    out[o++] = tab[(v >> 12) & 63];
    out[o++] = tab[(v >> 6) & 63];
  }
  out[o] = '\0';
  return o;
}

static bool id_char(char ch, bool user) {
  return (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9') || ch == '_' ||
         ch == '-' || (user && (ch == ':' || ch == '@'));
}

/* Verifies "v1.<tenant>.<user>.<exp>.<sig>"; on success copies the user. */
static const char *verify_token(const char *t, size_t n, char user[65]) {
  if (n > 512) return "invalid_token";
  const char *part[5];
  size_t plen[5];
  size_t k = 0, start = 0;
  for (size_t i = 0; i <= n && k < 5; i++) {
    if (i == n || t[i] == '.') {
      part[k] = t + start;
      plen[k++] = i - start;
      start = i + 1;
      if (i == n) break;
    }
  }
  if (k != 5 || part[4] + plen[4] != t + n) return "invalid_token";
  if (plen[0] != 2 || memcmp(part[0], "v1", 2) != 0 || plen[4] != 43) return "invalid_token";
  if (plen[1] < 1 || plen[1] > 64 || plen[2] < 1 || plen[2] > 64 || plen[3] < 1 || plen[3] > 18)
    return "invalid_token";
  for (size_t i = 0; i < plen[1]; i++)
    if (!id_char(part[1][i], false)) return "invalid_token";
  for (size_t i = 0; i < plen[2]; i++)
    if (!id_char(part[2][i], true)) return "invalid_token";
  int64_t exp = 0;
  for (size_t i = 0; i < plen[3]; i++) {
    if (part[3][i] < '0' || part[3][i] > '9') return "invalid_token";
    exp = exp * 10 + (part[3][i] - '0');
  }
  if (plen[1] != strlen(TENANT) || memcmp(part[1], TENANT, plen[1]) != 0) return "wrong_tenant";
  /* a context keyed once and duplicated per token, as core/base/token.c does */
  static EVP_MAC_CTX *keyed;
  if (!keyed) {
    EVP_MAC *m = EVP_MAC_fetch(NULL, "HMAC", NULL);
    keyed = EVP_MAC_CTX_new(m);
    EVP_MAC_free(m);
    OSSL_PARAM params[] = {OSSL_PARAM_construct_utf8_string("digest", (char *)"SHA256", 0),
                           OSSL_PARAM_construct_end()};
    EVP_MAC_init(keyed, (const unsigned char *)S.secret, strlen(S.secret), params);
  }
  unsigned char mac[EVP_MAX_MD_SIZE];
  size_t maclen = 0;
  EVP_MAC_CTX *ctx = EVP_MAC_CTX_dup(keyed);
  EVP_MAC_update(ctx, (const unsigned char *)t, (size_t)(part[4] - t) - 1);
  EVP_MAC_final(ctx, mac, &maclen, sizeof mac);
  EVP_MAC_CTX_free(ctx);
  char sig[64];
  base64url(mac, maclen, sig);
  if (CRYPTO_memcmp(sig, part[4], 43) != 0) return "invalid_token";
  if (exp <= (int64_t)time(NULL)) return "token_expired";
  memcpy(user, part[2], plen[2]);
  user[plen[2]] = '\0';
  return NULL;
}

/* ---- the body: {} or {"qty": n} (other integer members ignored) */

static int parse_qty(const char *p, size_t n, int64_t *qty) {
  const char *e = p + n;
  *qty = 1;
#define WS() while (p < e && (*p == ' ' || *p == '\t' || *p == '\r' || *p == '\n')) p++
  WS();
  if (p == e) return 0; /* no body */
  if (*p++ != '{') return -1;
  WS();
  if (p < e && *p == '}') { p++; WS(); return p == e ? 0 : -1; }
  for (;;) {
    WS();
    if (p >= e || *p++ != '"') return -1;
    const char *k = p;
    while (p < e && *p != '"') p++;
    if (p >= e) return -1;
    bool is_qty = p - k == 3 && memcmp(k, "qty", 3) == 0;
    p++;
    WS();
    if (p >= e || *p++ != ':') return -1;
    WS();
    int64_t v = 0;
    const char *d = p;
    while (p < e && *p >= '0' && *p <= '9' && v < 100000000) v = v * 10 + (*p++ - '0');
    if (p == d) return -1;
    if (is_qty) *qty = v;
    WS();
    if (p < e && *p == ',') { p++; continue; }
    if (p < e && *p == '}') { p++; break; }
    return -1;
  }
  WS();
#undef WS
  return p == e && *qty >= 1 && *qty <= 1000 ? 0 : -1;
}

/* ---- the buy */

static void reset(sqlite3_stmt *st) {
  sqlite3_reset(st);
  sqlite3_clear_bindings(st);
}

typedef struct {
  int status;
  const char *code, *msg;
} refusal;

/* plugins/orders/lib/unpaid.lua's watch: the sweep stays where it is if due by
** the new order's deadline and not overdue by a minute; else it is scheduled
** (sched.c: insert, delete on a key's clash) and its due recorded. */
static int watch_sweep(int64_t now, int64_t deadline, int64_t sweep_due, refusal *r) {
  if (sweep_due >= 0 && sweep_due <= deadline && sweep_due >= now - 60) return 0;
  int64_t at = sweep_due >= 0 && sweep_due < now - 60 ? now : deadline;
  sqlite3_stmt *st;
  int rc = SQLITE_DONE;
  for (int attempt = 0; attempt < 2; attempt++) {
    st = S.q[Q_JOB_INS];
    sqlite3_bind_text(st, 1, "job", -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 2, "orders", -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 3, "sweep_unpaid", -1, SQLITE_STATIC);
    sqlite3_bind_null(st, 4);
    sqlite3_bind_text(st, 5, "{}", -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 6, "sweep_unpaid", -1, SQLITE_STATIC);
    sqlite3_bind_int64(st, 7, at * 1000);
    sqlite3_bind_int64(st, 8, 0);
    sqlite3_bind_int64(st, 9, 5);
    sqlite3_bind_int64(st, 10, now * 1000);
    rc = sqlite3_step(st);
    reset(st);
    if (rc != SQLITE_CONSTRAINT || attempt == 1) break;
    st = S.q[Q_JOB_DEL];
    sqlite3_bind_text(st, 1, "orders", -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 2, "sweep_unpaid", -1, SQLITE_STATIC);
    rc = sqlite3_step(st);
    reset(st);
    if (rc != SQLITE_DONE) { *r = (refusal){500, "store_error", "job replace failed"}; return -1; }
  }
  if (rc != SQLITE_DONE) { *r = (refusal){500, "store_error", "job insert failed"}; return -1; }
  st = S.q[Q_SWEEP];
  sqlite3_bind_int64(st, 1, at);
  rc = sqlite3_step(st);
  reset(st);
  if (rc != SQLITE_DONE) { *r = (refusal){500, "store_error", "sweep update failed"}; return -1; }
  return 0;
}

/* The statements of one buy; a refusal leaves *r set and the caller rolls back. */
static int64_t buy_txn(int64_t sale_id, const char *user, int64_t qty, buf *body, refusal *r) {
  sqlite3_stmt *st = S.q[Q_SALE];
  sqlite3_bind_int64(st, 1, sale_id);
  if (sqlite3_step(st) != SQLITE_ROW) {
    reset(st);
    *r = (refusal){404, "sale_not_found", "no such flash sale"};
    return -1;
  }
  char sku[65], status[16];
  snprintf(sku, sizeof sku, "%s", (const char *)sqlite3_column_text(st, 1));
  int64_t price = sqlite3_column_int64(st, 3), remaining = sqlite3_column_int64(st, 5);
  int64_t per_user = sqlite3_column_int64(st, 6), per_order = sqlite3_column_int64(st, 7);
  int64_t starts = sqlite3_column_int64(st, 8), ends = sqlite3_column_int64(st, 9);
  bool no_slots = strcmp((const char *)sqlite3_column_text(st, 10), "[]") == 0;
  int64_t timeout = sqlite3_column_int64(st, 11), stacks = sqlite3_column_int64(st, 12);
  snprintf(status, sizeof status, "%s", (const char *)sqlite3_column_text(st, 13));
  bool plain = sqlite3_column_int64(st, 16) == 0 && sqlite3_column_type(st, 17) == SQLITE_NULL;
  reset(st);
  int64_t now = (int64_t)time(NULL);
  if (strcmp(status, "active") != 0) { *r = (refusal){404, "sale_not_found", "no such flash sale"}; return -1; }
  if (remaining == 0) { *r = (refusal){409, "sold_out", "this flash sale is sold out"}; return -1; }
  if (!no_slots || !plain) {
    *r = (refusal){500, "unsupported", "slots, reservations and audiences are not implemented here"};
    return -1;
  }
  if (now < starts) { *r = (refusal){409, "not_started", "this flash sale has not started"}; return -1; }
  if (now >= ends) { *r = (refusal){409, "ended", "this flash sale has ended"}; return -1; }
  if (qty > per_order) { *r = (refusal){409, "order_limit_exceeded", "too many per order"}; return -1; }

  st = S.q[Q_BUYER];
  sqlite3_bind_int64(st, 1, sale_id);
  sqlite3_bind_text(st, 2, user, -1, SQLITE_STATIC);
  sqlite3_bind_int64(st, 3, qty);
  sqlite3_bind_int64(st, 4, per_user);
  int rc = qty <= per_user ? sqlite3_step(st) : SQLITE_DONE;
  bool counted = qty <= per_user && rc == SQLITE_DONE && sqlite3_changes(S.db) == 1;
  reset(st);
  if (!counted) { *r = (refusal){409, "limit_reached", "per-user limit reached"}; return -1; }

  st = S.q[Q_TAKE];
  sqlite3_bind_int64(st, 1, qty);
  sqlite3_bind_int64(st, 2, sale_id);
  rc = sqlite3_step(st);
  reset(st);
  if (rc != SQLITE_DONE || sqlite3_changes(S.db) == 0) {
    *r = (refusal){409, "sold_out", "fewer units left than asked for"};
    return -1;
  }

  st = S.q[Q_UNPAID];
  sqlite3_bind_text(st, 1, user, -1, SQLITE_STATIC);
  /* the watermark (swept_deadline) only matters to a clock that stepped back; not read */
  int64_t unpaid = INT64_MAX, sweep_due = -1;  /* -1: not scheduled */
  if (sqlite3_step(st) == SQLITE_ROW) {
    unpaid = sqlite3_column_int64(st, 0);
    if (sqlite3_column_type(st, 1) != SQLITE_NULL) sweep_due = sqlite3_column_int64(st, 1);
  }
  reset(st);
  if (unpaid >= MAX_UNPAID) { *r = (refusal){409, "too_many_unpaid_orders", "pay an unpaid order first"}; return -1; }

  st = S.q[Q_SKU];
  sqlite3_bind_text(st, 1, sku, -1, SQLITE_STATIC);
  rc = sqlite3_step(st);
  if (rc != SQLITE_ROW) {
    reset(st);
    *r = (refusal){404, "sku_not_found", "no such sku"};
    return -1;
  }
  int64_t product_id = sqlite3_column_int64(st, 0), list_price = sqlite3_column_int64(st, 2);
  int64_t stock = sqlite3_column_int64(st, 3);
  bool on_sale = strcmp((const char *)sqlite3_column_text(st, 4), "on_sale") == 0;
  char title[128];
  snprintf(title, sizeof title, "%s", (const char *)sqlite3_column_text(st, 1));
  reset(st);
  if (!on_sale) { *r = (refusal){409, "not_on_sale", "sku is not on sale"}; return -1; }
  st = S.q[Q_RESERVE];
  sqlite3_bind_int64(st, 1, qty);
  sqlite3_bind_text(st, 2, sku, -1, SQLITE_STATIC);
  rc = stock >= qty ? sqlite3_step(st) : SQLITE_DONE;
  bool taken = stock >= qty && rc == SQLITE_DONE && sqlite3_changes(S.db) == 1;
  reset(st);
  if (!taken) { *r = (refusal){409, "sold_out", "the product is out of stock"}; return -1; }

  int64_t amount = qty * price, deadline = now + timeout;
  char sale_str[24];
  snprintf(sale_str, sizeof sale_str, "%lld", (long long)sale_id);
  st = S.q[Q_ORDER];
  sqlite3_bind_text(st, 1, user, -1, SQLITE_STATIC);
  sqlite3_bind_int64(st, 2, amount);
  sqlite3_bind_text(st, 3, sale_str, -1, SQLITE_STATIC);
  sqlite3_bind_int64(st, 4, stacks);
  sqlite3_bind_int64(st, 5, now);
  sqlite3_bind_int64(st, 6, deadline);
  rc = sqlite3_step(st);
  reset(st);
  if (rc != SQLITE_DONE) { *r = (refusal){500, "store_error", "insert order failed"}; return -1; }
  int64_t id = sqlite3_last_insert_rowid(S.db);

  st = S.q[Q_LINE];
  sqlite3_bind_int64(st, 1, id);
  sqlite3_bind_int64(st, 2, 1);
  sqlite3_bind_text(st, 3, sku, -1, SQLITE_STATIC);
  sqlite3_bind_int64(st, 4, product_id);
  sqlite3_bind_text(st, 5, title, -1, SQLITE_STATIC);
  sqlite3_bind_int64(st, 6, qty);
  sqlite3_bind_int64(st, 7, list_price);
  sqlite3_bind_int64(st, 8, price);
  sqlite3_bind_int64(st, 9, amount);
  sqlite3_bind_int64(st, 10, 0);
  sqlite3_bind_int64(st, 11, amount);
  rc = sqlite3_step(st);
  reset(st);
  if (rc != SQLITE_DONE) { *r = (refusal){500, "store_error", "insert line failed"}; return -1; }

  if (watch_sweep(now, deadline, sweep_due, r) != 0) return -1;

  /* the order as tidepool's store.shape shows it */
  body->len = 0;
  buf_printf(body,
             "{\"id\":%lld,\"user\":\"%s\",\"status\":\"pending_payment\",\"items_fen\":%lld,"
             "\"discount_fen\":0,\"total_fen\":%lld,\"paid_fen\":0,\"refund_requested_fen\":0,"
             "\"refunded_fen\":0,\"attribution\":{},\"stock_held\":true,\"late_payment\":false,"
             "\"held\":false,\"created_at\":%lld,\"pay_deadline\":%lld,\"campaign\":{\"plugin\":"
             "\"flash_sale\",\"id\":\"%s\",\"stacks_with_coupon\":%s},\"lines\":[{\"sku\":\"%s\","
             "\"product_id\":%lld,\"title\":",
             (long long)id, user, (long long)amount, (long long)amount, (long long)now,
             (long long)deadline, sale_str, stacks ? "true" : "false", sku, (long long)product_id);
  buf_add_json_str(body, (const unsigned char *)title, strlen(title));
  buf_printf(body,
             ",\"qty\":%lld,\"list_price_fen\":%lld,\"unit_price_fen\":%lld,\"amount_fen\":%lld,"
             "\"discount_fen\":0,\"paid_fen\":%lld}]}",
             (long long)qty, (long long)list_price, (long long)price, (long long)amount, (long long)amount);
  return id;
}


static void buy(bl_conn *c, const bl_request *req, int64_t sale_id, buf *body) {
  char user[65];
  const char *a = req->header;
  if (req->header_len < 8 || memcmp(a, "Bearer ", 7) != 0) {
    bl_respond_error(c, 401, "unauthorized", "a bearer token is required", body);
    return;
  }
  const char *why = verify_token(a + 7, req->header_len - 7, user);
  if (why) {
    bl_respond_error(c, 401, why, "the bearer token does not verify", body);
    return;
  }
  int64_t qty;
  if (parse_qty(req->body, req->body_len, &qty) != 0) {
    bl_respond_error(c, 400, "invalid_body", "want {} or {\\\"qty\\\": 1-1000}", body);
    return;
  }
  if (bl_begin() != 0 || bl_step_done(S.q[Q_SAVEPOINT]) != 0) {
    bl_respond_error(c, 500, "store_error", "cannot begin", body);
    return;
  }
  bl_batch_add();
  refusal r = {0};
  if (buy_txn(sale_id, user, qty, body, &r) < 0) {
    bl_step_done(S.q[Q_ROLLBACK_TO]);
    bl_step_done(S.q[Q_RELEASE]);
    bl_respond_error(c, r.status, r.code, r.msg, body);
    return;
  }
  if (bl_step_done(S.q[Q_RELEASE]) != 0) {
    bl_respond_error(c, 500, "store_error", "release failed", body);
    return;
  }
  bl_respond(c, 201, JSON, body);
}

static void count_orders(bl_conn *c, buf *body) {
  sqlite3_stmt *st = S.q[Q_COUNT];
  int64_t n = sqlite3_step(st) == SQLITE_ROW ? sqlite3_column_int64(st, 0) : -1;
  reset(st);
  body->len = 0;
  buf_printf(body, "{\"orders\":%lld}", (long long)n);
  bl_respond(c, 200, JSON, body);
}

static void dispatch(bl_conn *c, const bl_request *req) {
  static buf body; /* reused scratch */
  if (S.ceiling) {  /* the ceiling: parse the request, answer, nothing else */
    body.len = 0;
    buf_adds(&body, "{\"ok\":true}");
    bl_respond(c, 200, JSON, &body);
    return;
  }
  const char *u = req->path;
  size_t n = req->path_len;
  size_t plen = sizeof BUY_PREFIX - 1;
  if (n > plen + 4 && memcmp(u, BUY_PREFIX, plen) == 0 && memcmp(u + n - 4, "/buy", 4) == 0) {
    int64_t id = 0;
    size_t i = plen;
    for (; i < n - 4 && u[i] >= '0' && u[i] <= '9' && id < INT64_MAX / 10 - 9; i++) id = id * 10 + (u[i] - '0');
    if (i != n - 4 || i == plen) bl_respond_error(c, 404, "route_not_found", "no such route", &body);
    else if (req->method != HTTP_POST) bl_respond_error(c, 405, "method_not_allowed", "POST only", &body);
    else buy(c, req, id, &body);
  } else if (n == 8 && memcmp(u, "/healthz", 8) == 0) {
    body.len = 0;
    buf_adds(&body, "{\"status\":\"ok\"}");
    bl_respond(c, 200, JSON, &body);
  } else if (n == 13 && memcmp(u, "/orders/count", 13) == 0) {
    if (bl_begin() != 0) bl_respond_error(c, 500, "store_error", "cannot begin", &body);
    else count_orders(c, &body);
  } else if (n == 8 && memcmp(u, "/metrics", 8) == 0) {
    bl_metrics(&body);
    bl_respond(c, 200, JSON, &body);
  } else {
    bl_respond_error(c, 404, "route_not_found", "no such route", &body);
  }
}

/* ---- setup */

/* The data flash_sale.sh creates through the admin API: one product with one
** SKU (stock 100,000,000) and sale 1 of it at 990 fen, 10,000,000 units, up to
** 1000 per user, one per order, open from a minute ago for a day. */
static void open_db(const char *path) {
  S.db = bl_open_db(path);
  bl_exec("PRAGMA cache_size=-65536");
  sqlite3_stmt *st = NULL;
  sqlite3_prepare_v2(S.db, "SELECT count(*) FROM sqlite_schema WHERE type = 'table' AND name IN"
                     " ('catalog_skus', 'orders_orders', 'orders_sweep', 'flash_sale_sales', '_tp_jobs')", -1, &st, NULL);
  bool ready = st && sqlite3_step(st) == SQLITE_ROW && sqlite3_column_int(st, 0) == 5;
  sqlite3_finalize(st);
  if (!ready) {
    fprintf(stderr, "flashloop: %s has not the plugins' tables: make it with tidepool (sidebyside.sh does)\n", path);
    exit(1);
  }
  char seed[1024];
  long long now = (long long)time(NULL);
  snprintf(seed, sizeof seed,
           "INSERT INTO catalog_products (id, name, status, created_at) SELECT 1, 'Bench tea', 'on_sale', %lld"
           " WHERE NOT EXISTS (SELECT 1 FROM catalog_products);"
           "INSERT INTO catalog_skus (code, product_id, title, price_fen, stock, updated_at)"
           " SELECT 'tea-1', 1, '1 kg', 19900, 100000000, %lld WHERE NOT EXISTS (SELECT 1 FROM catalog_skus);"
           "INSERT INTO flash_sale_sales (sku, title, price_fen, quantity, remaining, per_user_limit,"
           " per_order_limit, starts_at, ends_at, slots, unpaid_timeout_seconds, stacks_with_coupon, status,"
           " created_at, updated_at) SELECT 'tea-1', '1 kg', 990, 10000000, 10000000, 1000, 1, %lld, %lld,"
           " '[]', 300, 0, 'active', %lld, %lld WHERE NOT EXISTS (SELECT 1 FROM flash_sale_sales);",
           now, now, now - 60, now + 86400, now, now);
  bl_exec(seed);
  for (int i = 0; i < NQ; i++) S.q[i] = bl_prepare(SQL[i]);
}

int main(int argc, char **argv) {
  const char *port;
  if (argc == 3 && strcmp(argv[1], "--ceiling") == 0) {
    S.ceiling = true;
    port = argv[2];
  } else if (argc == 4) {
    port = argv[1];
    S.secret = argv[3];
  } else {
    fprintf(stderr, "usage: flashloop PORT DBFILE TOKEN_SECRET | flashloop --ceiling PORT\n");
    return 2;
  }
  static const bl_server server = {.name = "flashloop", .header = "authorization", .dispatch = dispatch};
  bl_init(&server);
  if (!S.ceiling) open_db(argv[2]);
  return bl_run(port, S.ceiling ? "ceiling" : "flash-sale buy");
}
