/*
** cluster.c - a brand moving between two nodes of a cluster, online.
**
** `tidepool cluster move T --to B` (cli/cluster.c) drives it, with the host
** admin key, on nodes that share their data folder (one machine):
**
**   1. POST A /admin/cluster/release {tenant, to}: A pauses T (every request
**      to it is answered 503 with Retry-After: 1 from now on), commits what
**      its batch holds, and closes T once nothing of it is in flight (no call
**      out, no worker on its files; else 409 busy, still paused, and the CLI
**      asks again). T's file is then as its last commit left it, and A's
**      claim on it is gone; A no longer runs its timers.
**   2. POST B /admin/cluster/adopt {tenant}: B records itself as T's node
**      (store/owners.h), opens T (its claim, its plugins, its due jobs and
**      calls out: B's timers take them over) and serves it.
**   3. The CLI renders nginx's map again and reloads it.
**   4. POST A /admin/cluster/moved {tenant}: A's pause ends; from then on A
**      answers T's stragglers 421, naming B. A pause never outlives
**      PAUSE_MAX_MS, so a CLI that dies mid-move cannot keep a brand down.
**
** No acknowledged write is lost (A committed it before closing; B opens the
** same file), no timer fires twice (A stopped T's before B opened it; a job
** is a row in T's file, run by whoever holds T) or never (B's start reads
** them), and no request is answered by a node that does not hold T: A
** answers 503 from the release, B serves only after the adopt.
**
** Nodes on separate machines (separate data folders). Each data folder has
** an id (store/owners.h); release answers A's, and the adopt is given it
** with A's name ({tenant, from, folder}). When B's folder has another id,
** T's files travel before B opens them: B pulls them from A's GET
** /admin/cluster/transfer/{t} in pieces, on a worker, and checks size,
** SHA-256 and integrity (host/transfer.c); A serves them only while it has
** released T and not yet been told it moved, when they are closed and
** quiescent. A pull that fails answers the adopt with an error and changes
** nothing on B; the CLI then sends POST A /admin/cluster/resume {tenant}
** and A serves T again (it never stopped holding its files). Once B has
** adopted, `moved` {tenant, node: B, folder: B's} tells A to set its copy
** aside (renamed <file>.moved-<time>, and a tombstone <tenant>.moved that
** makes any node refuse to open it: store/transfer.h), and every node
** records T's new node in its own tidepool.owners.db, so that restarts of
** any of them agree. A sets nothing aside when B's folder is its own, nor
** when it cannot take T's claim (someone serves that file).
**
** A release repeated to the same node, and an adopt repeated on the node
** that holds the brand, answer as the first did, so a CLI that died
** mid-move can run it again; the CLI resumes the old node only on a definite
** refusal of the adopt, never when no answer came.
**
** Every route takes the host admin key and answers the errors its entry in
** acts[] documents (GET /admin/cluster/openapi.json lists them).
*/
#include <ctype.h>
#include <stdio.h>
#include <string.h>

#include "base/clock.h"
#include "base/log.h"
#include "host/host_int.h"
#include "store/owners.h"
#include "store/backup.h"
#include "store/transfer.h"

#define PAUSE_MAX_MS 60000

/* The answer for a request to t when this node does not serve it now (503
** while it moves, else 421 naming its node): true when filled. */
static bool refuse(tp_host *h, tp_tenant *t, tph_response *res) {
  if (t->paused_ms && tp_clock_wall_ms() - t->paused_ms < PAUSE_MAX_MS) {
    res->retry_after = 1;
    tph_error(res, 503, "brand_moving", "tenant '%s' is moving to another node; send the request again",
              t->conf->id);
    return true;
  }
  if (t->owned) return false;
  /* RFC 9110 15.5.21: the front's map sent it to the wrong node */
  const tpc_node *owner = &h->cfg->nodes[t->owner];
  tph_error(res, 421, "misdirected", "node %s does not serve '%s': node %s (%s) does", h->cfg->self->name,
            t->conf->id, owner->name, owner->listen);
  return true;
}

bool tp__tenant_serving(tp_host *h, tp_tenant *t, tph_response *res) {
  if (refuse(h, t, res)) return false;
  if (tp__brand_use(h, t, "request") == 0) return true;  /* a lazy brand opens here */
  res->retry_after = 5;
  tph_error(res, 503, "tenant_unavailable", "tenant '%s' could not be opened; the host's log says why",
            t->conf->id);
  return false;
}

/* The body's "tenant" (a brand of the cluster). */
static tp_tenant *tenant_of(tp_host *h, const tph_request *req, tph_response *res) {
  const char *id;
  if (!tp__body_object(h, req, res) || !tp__body_string(h, "tenant", &id, res)) return NULL;
  tp_tenant *t = id ? tp__tenant(h, id, strlen(id)) : NULL;
  if (!t)
    tph_error(res, id ? 404 : 400, id ? "tenant_not_found" : "invalid_field",
              id ? "no brand '%.64s' in this cluster" : "'tenant' must name a brand%s", id ? id : "");
  return t;
}

/* The body's key naming another node of the cluster into *out (-1 when
** absent and optional); false with 400. */
static bool node_field(tp_host *h, const char *key, bool required, int *out, tph_response *res) {
  const char *node;
  if (!tp__body_string(h, key, &node, res)) return false;
  *out = -1;
  for (int i = 0; node && i < h->cfg->nnodes; i++)
    if (strcmp(h->cfg->nodes[i].name, node) == 0) *out = i;
  if ((node || required) && (*out < 0 || &h->cfg->nodes[*out] == h->cfg->self)) {
    tph_error(res, 400, "invalid_field", "'%s' must name another node of the cluster", key);
    return false;
  }
  return true;
}

/* The body's "folder" (a data folder's id: 32 hex digits) into out, "" when
** absent; false with 400. */
static bool folder_field(tp_host *h, char out[33], tph_response *res) {
  const char *f;
  if (!tp__body_string(h, "folder", &f, res)) return false;
  out[0] = '\0';
  if (!f) return true;
  if (strlen(f) != 32 || strspn(f, "0123456789ABCDEF") != 32) {
    tph_error(res, 400, "invalid_field", "'folder' must be a data folder's id (32 hex digits)");
    return false;
  }
  memcpy(out, f, 33);
  return true;
}

static void log_move(const char *msg, const tp_tenant *t, const char *node, int64_t ms) {
  tp_buf *line = tp_log_begin(TP_LOG_INFO, msg);
  tp_log_str(line, "tenant", t->conf->id);
  tp_log_str(line, "node", node);
  if (ms >= 0) tp_log_int(line, "paused_ms", ms);
  tp_log_end(line);
}

/* Records in this node's data folder that node serves t now (logged when it
** cannot: a restart would follow the config). */
static void record_owner(tp_host *h, tp_tenant *t, int node) {
  char err[512];
  if (tpow_set(h->cfg->data_dir, t->conf->id, h->cfg->nodes[node].name, tp_clock_wall_ms(), err, sizeof err) != 0)
    tp_log_msg(TP_LOG_ERROR, "the move is not recorded: a restart would serve the config's owner", err);
}

static void answer_released(tp_host *h, tp_tenant *t, tph_response *res, int64_t now) {
  tp_buf_printf(&res->body, "{\"tenant\":\"%s\",\"to\":\"%s\",\"folder\":\"%s\",\"paused_ms\":%lld}", t->conf->id,
                h->cfg->nodes[t->owner].name, h->folder, (long long)(now - t->paused_ms));
  res->status = 200;
}

static void release(tp_host *h, const tph_request *req, tph_response *res) {
  int to;
  tp_tenant *t = tenant_of(h, req, res);
  if (!t || !node_field(h, "to", true, &to, res)) return;
  int64_t now = tp_clock_wall_ms();
  if (!t->owned && t->paused_ms && t->owner == to) {  /* released already (a CLI that died): again */
    answer_released(h, t, res, now);
    return;
  }
  if (!t->owned) {
    tph_error(res, 409, "not_owner", "node %s does not serve '%s'", h->cfg->self->name, t->conf->id);
    return;
  }
  if (!t->paused_ms) t->paused_ms = now;  /* from here on its requests are answered 503 */
  tp__flush_batch(h);                     /* what this iteration wrote for it, committed */
  if (t->open && (t->calls_out > 0 || t->track_ckpt || t->deferred > 0 || t->backup_job || t->reset_pending)) {
    res->retry_after = 1;
    tph_error(res, 409, "busy", "'%s' has work in flight (calls out, a commit's sync or an answer "
              "waiting for it, a checkpoint, a password check or a backup); it stays paused: ask again",
              t->conf->id);
    return;
  }
  if (t->open) tp__brand_close(h, t);  /* its file as its last commit left it; its claim let go */
  t->owned = false;
  t->owner = to;
  t->next_due_ms = t->outbox_due_ms = INT64_MAX;  /* its timers are the new node's */
  record_owner(h, t, to);  /* a restart now never serves it twice (resume takes it back) */
  log_move("brand released", t, h->cfg->nodes[to].name, now - t->paused_ms);
  answer_released(h, t, res, now);
}

static void answer_adopted(tp_host *h, tp_tenant *t, tph_response *res, double open_ms, const tp_pull_result *pulled) {
  tp_buf_printf(&res->body, "{\"tenant\":\"%s\",\"node\":\"%s\",\"folder\":\"%s\",\"open_ms\":%.1f", t->conf->id,
                h->cfg->self->name, h->folder, open_ms);
  if (pulled) tp_buf_printf(&res->body, ",\"transferred_bytes\":%lld,\"transfer_ms\":%.1f", (long long)pulled->bytes,
                            pulled->ms);
  tp_buf_adds(&res->body, "}");
  res->status = 200;
}

/* B holds t from now on: opened, recorded, its timers armed. The answer into res. */
static void take_over(tp_host *h, tp_tenant *t, tph_response *res, const tp_pull_result *pulled) {
  uint64_t start = tp_clock_mono_ns();
  char err[1024];
  int self = (int)(h->cfg->self - h->cfg->nodes), was = t->owner;
  t->owned = true;
  t->owner = self;
  t->paused_ms = 0;
  if (tp__brand_open(h, t, "adopted", err, sizeof err) != 0) {  /* the old node still holds it? */
    t->owned = false;
    t->owner = was;
    tph_error(res, 409, "not_released", "'%s' cannot be opened here: %s", t->conf->id, err);
    return;
  }
  record_owner(h, t, self);
  tp__arm_timer(h);  /* its due jobs are ours now (its calls out: the sender looks after this iteration) */
  log_move("brand adopted", t, h->cfg->self->name, -1);
  answer_adopted(h, t, res, (double)(tp_clock_mono_ns() - start) / 1e6, pulled);
}

/* The pull's end (transfer.c), on the loop. */
static void pulled(tp_host *h, tp_tenant *t, tph_response *res, const tp_pull_result *r) {
  if (r->code[0]) {
    tp_buf *line = tp_log_begin(TP_LOG_ERROR, "brand not adopted: its files did not arrive");
    tp_log_str(line, "tenant", t->conf->id);
    tp_log_str(line, "error", r->message);
    tp_log_end(line);
    tph_error(res, r->status, r->code, "%s", r->message);
  } else if (t->owned) {
    tph_error(res, 409, "already_owner", "node %s serves '%s' already", h->cfg->self->name, t->conf->id);
  } else {
    take_over(h, t, res, r);
    char aside[200], err[512];
    if (res->status != 200 &&  /* what arrived cannot be served: never by mistake either */
        tpxf_set_aside(h->cfg->data_dir, t->conf->id, h->cfg->nodes[t->owner].name, tp_clock_wall_ms(), aside,
                       sizeof aside, err, sizeof err) != 0)
      tp_log_msg(TP_LOG_ERROR, "the pulled copy of a brand not adopted is not set aside", err);
  }
}

static void adopt(tp_host *h, const tph_request *req, tph_response *res) {
  tp_tenant *t = tenant_of(h, req, res);
  int from;
  char folder[33];
  if (!t || !node_field(h, "from", false, &from, res) || !folder_field(h, folder, res)) return;
  if ((from < 0) != !folder[0]) {
    tph_error(res, 400, "invalid_field", "'from' and 'folder' go together: the old node and its data folder's id");
    return;
  }
  if (t->owned) {  /* adopted already (a CLI that died, and runs the move again): the same answer */
    answer_adopted(h, t, res, 0, NULL);
    return;
  }
  if (t->adopting) {
    tph_error(res, 409, "adopting", "'%s' is being pulled here already", t->conf->id);
    return;
  }
  if (from < 0 || (h->folder[0] && strcmp(folder, h->folder) == 0)) {  /* one data folder: its file is here */
    take_over(h, t, res, NULL);
    return;
  }
  if (tp__transfer_pull(h, t, &h->cfg->nodes[from], res, pulled) != 0) {
    res->retry_after = 1;
    tph_error(res, 503, "busy", "the pull of '%s' could not be started (no worker, or no admin key to ask "
              "with); try again", t->conf->id);
  }
}

/* Sets t's files aside after it moved to node (folder: that node's data
** folder): only when this node released it, the folders differ, and no one
** holds its claim. The new name into aside, "" when nothing was set aside. */
static void set_aside(tp_host *h, tp_tenant *t, int node, const char *folder, char *aside, size_t cap) {
  char path[1100], err[512];
  aside[0] = '\0';
  if (!folder[0] || !h->folder[0] || strcmp(folder, h->folder) == 0 || t->open || t->owned) return;
  tpc_tenant_file(h->cfg->data_dir, t->conf->id, ".db", path, sizeof path);
  int claim = tpbk_claim(path, err, sizeof err);
  if (claim < 0) return;  /* someone serves this very file: it is no copy */
  if (tpxf_set_aside(h->cfg->data_dir, t->conf->id, h->cfg->nodes[node].name, tp_clock_wall_ms(), aside, cap,
                     err, sizeof err) != 0)
    tp_log_msg(TP_LOG_ERROR, "the moved brand's copy is not set aside (its tombstone refuses it)", err);
  tpbk_unclaim(claim);
}

static void moved(tp_host *h, const tph_request *req, tph_response *res) {
  tp_tenant *t = tenant_of(h, req, res);
  int node;
  char folder[33], aside[200] = "";
  if (!t || !node_field(h, "node", false, &node, res) || !folder_field(h, folder, res)) return;
  int64_t paused = t->paused_ms ? tp_clock_wall_ms() - t->paused_ms : 0;
  if (node >= 0 && t->owned) {
    tph_error(res, 409, "already_owner", "node %s serves '%s': it did not move to node %s", h->cfg->self->name,
              t->conf->id, h->cfg->nodes[node].name);
    return;
  }
  if (node >= 0) {
    if (t->paused_ms) set_aside(h, t, node, folder, aside, sizeof aside);  /* the old node */
    t->owner = node;
    record_owner(h, t, node);
  }
  if (!t->owned) t->paused_ms = 0;  /* stragglers get 421 from now on */
  tp_buf_printf(&res->body, "{\"tenant\":\"%s\",\"paused_ms\":%lld,\"set_aside\":", t->conf->id, (long long)paused);
  if (aside[0]) tp_buf_add_json_str(&res->body, aside, strlen(aside));
  else tp_buf_adds(&res->body, "null");
  tp_buf_adds(&res->body, "}");
  res->status = 200;
}

/* A move that failed: the old node serves t again, from its own files. */
static void resume(tp_host *h, const tph_request *req, tph_response *res) {
  tp_tenant *t = tenant_of(h, req, res);
  if (!t) return;
  char why[200], err[1024];
  if (t->owned || !t->paused_ms || tpxf_tombstone(h->cfg->data_dir, t->conf->id, why, sizeof why)) {
    tph_error(res, 409, "not_released", "node %s has no released '%s' to resume (it serves it, or it moved)",
              h->cfg->self->name, t->conf->id);
    return;
  }
  int64_t paused = tp_clock_wall_ms() - t->paused_ms;
  int self = (int)(h->cfg->self - h->cfg->nodes), was = t->owner;
  t->owned = true;
  t->owner = self;
  if (tp__brand_open(h, t, "resumed", err, sizeof err) != 0) {
    t->owned = false;
    t->owner = was;
    tph_error(res, 500, "not_resumed", "'%s' cannot be opened again: %s", t->conf->id, err);
    return;
  }
  t->paused_ms = 0;
  record_owner(h, t, self);
  tp__arm_timer(h);
  log_move("brand resumed", t, h->cfg->self->name, paused);
  tp_buf_printf(&res->body, "{\"tenant\":\"%s\",\"node\":\"%s\",\"paused_ms\":%lld}", t->conf->id,
                h->cfg->self->name, (long long)paused);
  res->status = 200;
}

/* ---- the routes, declared once: dispatch and documentation */

#define E_KEY TP_DOC_ERROR("401", "api_key_required", "\"api_key_required\"") "," \
              TP_DOC_ERROR("403", "invalid_api_key", "\"invalid_api_key\"") ","    \
              TP_DOC_ERROR("429", "too_many_attempts", "\"too_many_attempts\"")
#define E_CLUSTER TP_DOC_ERROR("404", "not_clustered, tenant_not_found", "\"not_clustered\",\"tenant_not_found\"")
#define E_BODY TP_DOC_ERROR("400", "invalid_json, invalid_field", "\"invalid_json\",\"invalid_field\"")

typedef void (*act_fn)(tp_host *, const tph_request *, tph_response *);

static const struct act {
  const char *method, *path;
  act_fn fn;
  const char *summary, *errors;
} acts[] = {
  {"POST", "/release", release, "Pause {tenant}, commit and close it, let it go to node {to}; answers this data "
   "folder's id", E_BODY "," E_KEY "," E_CLUSTER "," TP_DOC_ERROR("409", "not_owner, busy", "\"not_owner\",\"busy\"")},
  {"POST", "/adopt", adopt, "Serve {tenant} from now on; with {from, folder} of another data folder, its files "
   "are pulled from node {from} first (size, SHA-256, integrity_check)",
   E_BODY "," E_KEY "," E_CLUSTER "," TP_DOC_ERROR("409", "already_owner, adopting, not_released",
   "\"already_owner\",\"adopting\",\"not_released\"") "," TP_DOC_ERROR("500", "transfer_unwritable",
   "\"transfer_unwritable\"") "," TP_DOC_ERROR("502", "transfer_failed, transfer_corrupt",
   "\"transfer_failed\",\"transfer_corrupt\"") "," TP_DOC_ERROR("503", "busy, cancelled", "\"busy\",\"cancelled\"")},
  {"POST", "/moved", moved, "End {tenant}'s pause; with {node} record its new node, and with {folder} (the new "
   "node's) set this node's copy aside", E_BODY "," E_KEY "," E_CLUSTER "," TP_DOC_ERROR("409", "already_owner",
   "\"already_owner\"")},
  {"POST", "/resume", resume, "A move failed: serve the released {tenant} again", E_BODY "," E_KEY "," E_CLUSTER ","
   TP_DOC_ERROR("409", "not_released", "\"not_released\"") "," TP_DOC_ERROR("500", "not_resumed", "\"not_resumed\"")},
  {"GET", "/transfer/{tenant}", NULL, "A released brand's files: the manifest (files, bytes, sha256), or with "
   "?file=db|analytics&offset=N&length=M (1-4194304) those bytes", E_KEY "," TP_DOC_ERROR("400",
   "invalid_query, invalid_field", "\"invalid_query\",\"invalid_field\"") "," TP_DOC_ERROR("404",
   "not_clustered, tenant_not_found, file_not_found", "\"not_clustered\",\"tenant_not_found\",\"file_not_found\"")
   "," TP_DOC_ERROR("409", "not_released, not_quiescent", "\"not_released\",\"not_quiescent\"") ","
   TP_DOC_ERROR("416", "range_not_satisfiable", "\"range_not_satisfiable\"") "," TP_DOC_ERROR("500",
   "transfer_unreadable", "\"transfer_unreadable\"") "," TP_DOC_ERROR("503", "busy", "\"busy\"")},
};
#define NACTS (int)(sizeof acts / sizeof *acts)

/* GET /admin/cluster/openapi.json: the routes above and the errors each answers. */
static void openapi(tph_response *res) {
  tp_buf *b = &res->body;
  tp_buf_adds(b, "{\"openapi\":\"3.0.3\",\"info\":{\"title\":\"tidepool cluster endpoints\",\"version\":\"1\"},"
                 "\"components\":{\"schemas\":{\"Error\":{\"type\":\"object\",\"properties\":{\"error\":"
                 "{\"type\":\"object\",\"properties\":{\"code\":{\"type\":\"string\"},\"message\":{\"type\":"
                 "\"string\"}}}}}},\"securitySchemes\":{\"hostKey\":{\"type\":\"apiKey\",\"in\":\"header\","
                 "\"name\":\"X-Api-Key\"}}},\"security\":[{\"hostKey\":[]}],\"paths\":{");
  for (int i = 0; i < NACTS; i++) {
    char method[8];
    size_t k = 0;
    for (; acts[i].method[k] && k + 1 < sizeof method; k++) method[k] = (char)tolower((unsigned char)acts[i].method[k]);
    method[k] = '\0';
    tp_buf_printf(b, "%s\"/admin/cluster%s\":{\"%s\":{\"summary\":", i ? "," : "", acts[i].path, method);
    tp_buf_add_json_str(b, acts[i].summary, strlen(acts[i].summary));
    tp_buf_printf(b, ",\"responses\":{\"200\":{\"description\":\"Success\"},%s}}}", acts[i].errors);
  }
  tp_buf_adds(b, "}}");
  res->status = 200;
}

/* The method check, the cluster and the key: false with the answer filled. */
static bool admitted(tp_host *h, const tph_request *req, const char *method, tph_response *res) {
  if (strcmp(req->method, method) != 0) {
    snprintf(res->allow, sizeof res->allow, "%s", method);
    tph_error(res, 405, "method_not_allowed", "%s is not allowed here (allowed: %s)", req->method, method);
    return false;
  }
  if (!h->cfg->self) {
    tph_error(res, 404, "not_clustered", "this host serves no cluster (--node)");
    return false;
  }
  return tp__check_host_key(h, req, res->route, res);
}

static void transfer(tp_host *h, const tph_request *req, const char *id, size_t n, tph_response *res) {
  snprintf(res->route, sizeof res->route, "admin GET /admin/cluster/transfer/{tenant}");
  if (!admitted(h, req, "GET", res)) return;
  tp_tenant *t = n && !memchr(id, '/', n) ? tp__tenant(h, id, n) : NULL;
  if (!t) {
    tph_error(res, 404, "tenant_not_found", "no brand '%.*s' in this cluster", (int)(n > 64 ? 64 : n), id);
    return;
  }
  tp__transfer_serve(h, t, req, res);
}

void tp__cluster_endpoint(tp_host *h, const tph_request *req, const char *rest, size_t rlen,
                          tph_response *res) {
  if (rlen > 10 && memcmp(rest, "/transfer/", 10) == 0) {
    transfer(h, req, rest + 10, rlen - 10, res);
    return;
  }
  if (rlen == 13 && memcmp(rest, "/openapi.json", 13) == 0) {
    snprintf(res->route, sizeof res->route, "admin GET /admin/cluster/openapi.json");
    if (admitted(h, req, "GET", res)) openapi(res);
    return;
  }
  for (int i = 0; i < NACTS; i++) {
    if (!acts[i].fn || strlen(acts[i].path) != rlen || memcmp(rest, acts[i].path, rlen) != 0) continue;
    snprintf(res->route, sizeof res->route, "admin POST /admin/cluster%s", acts[i].path);
    if (admitted(h, req, "POST", res)) acts[i].fn(h, req, res);
    return;
  }
  tph_error(res, 404, "not_found", "cluster endpoints: POST /admin/cluster/release, /adopt, /moved, /resume; "
            "GET /admin/cluster/transfer/{tenant}, /openapi.json");
}
