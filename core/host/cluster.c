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
*/
#include <stdio.h>
#include <string.h>

#include "base/clock.h"
#include "base/log.h"
#include "host/host_int.h"
#include "store/owners.h"

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

/* The body's "tenant" (a brand of the cluster) and "to" (a node, when asked). */
static tp_tenant *tenant_of(tp_host *h, const tph_request *req, int *to, tph_response *res) {
  const char *id, *node;
  if (!tp__body_object(h, req, res) || !tp__body_string(h, "tenant", &id, res)) return NULL;
  tp_tenant *t = id ? tp__tenant(h, id, strlen(id)) : NULL;
  if (!t) {
    tph_error(res, id ? 404 : 400, id ? "tenant_not_found" : "invalid_field",
              id ? "no brand '%.64s' in this cluster" : "'tenant' must name a brand%s", id ? id : "");
    return NULL;
  }
  if (to) {
    if (!tp__body_string(h, "to", &node, res)) return NULL;
    *to = -1;
    for (int i = 0; node && i < h->cfg->nnodes; i++)
      if (strcmp(h->cfg->nodes[i].name, node) == 0) *to = i;
    if (*to < 0 || &h->cfg->nodes[*to] == h->cfg->self) {
      tph_error(res, 400, "invalid_field", "'to' must name another node of the cluster");
      return NULL;
    }
  }
  return t;
}

static void log_move(const char *msg, const tp_tenant *t, const char *node, int64_t ms) {
  tp_buf *line = tp_log_begin(TP_LOG_INFO, msg);
  tp_log_str(line, "tenant", t->conf->id);
  tp_log_str(line, "node", node);
  if (ms >= 0) tp_log_int(line, "paused_ms", ms);
  tp_log_end(line);
}

static void release(tp_host *h, const tph_request *req, tph_response *res) {
  int to;
  tp_tenant *t = tenant_of(h, req, &to, res);
  if (!t) return;
  if (!t->owned) {
    tph_error(res, 409, "not_owner", "node %s does not serve '%s'", h->cfg->self->name, t->conf->id);
    return;
  }
  int64_t now = tp_clock_wall_ms();
  if (!t->paused_ms) t->paused_ms = now;  /* from here on its requests are answered 503 */
  tp__flush_batch(h);                     /* what this iteration wrote for it, committed */
  if (t->open && (t->calls_out > 0 || t->deferred > 0 || t->backup_job || t->reset_pending)) {
    res->retry_after = 1;
    tph_error(res, 409, "busy", "'%s' has work in flight (calls out, events being written, a password check or a backup); it stays "
              "paused: ask again", t->conf->id);
    return;
  }
  if (t->open) tp__brand_close(h, t);  /* its file as its last commit left it; its claim let go */
  t->owned = false;
  t->owner = to;
  t->next_due_ms = t->outbox_due_ms = INT64_MAX;  /* its timers are the new node's */
  log_move("brand released", t, h->cfg->nodes[to].name, now - t->paused_ms);
  tp_buf_printf(&res->body, "{\"tenant\":\"%s\",\"to\":\"%s\",\"paused_ms\":%lld}", t->conf->id,
                h->cfg->nodes[to].name, (long long)(now - t->paused_ms));
  res->status = 200;
}

static void adopt(tp_host *h, const tph_request *req, tph_response *res) {
  tp_tenant *t = tenant_of(h, req, NULL, res);
  if (!t) return;
  if (t->owned) {
    tph_error(res, 409, "already_owner", "node %s serves '%s' already", h->cfg->self->name, t->conf->id);
    return;
  }
  uint64_t start = tp_clock_mono_ns();
  char err[1024];
  t->owned = true;
  t->owner = (int)(h->cfg->self - h->cfg->nodes);
  t->paused_ms = 0;
  if (tp__brand_open(h, t, "adopted", err, sizeof err) != 0) {  /* the old node still holds it? */
    t->owned = false;
    tph_error(res, 409, "not_released", "'%s' cannot be opened here: %s", t->conf->id, err);
    return;
  }
  if (tpow_set(h->cfg->data_dir, t->conf->id, h->cfg->self->name, tp_clock_wall_ms(), err, sizeof err) != 0)
    tp_log_msg(TP_LOG_ERROR, "the move is not recorded: a restart would serve the config's owner", err);
  tp__arm_timer(h);  /* its due jobs are ours now (its calls out: the sender looks after this iteration) */
  double ms = (double)(tp_clock_mono_ns() - start) / 1e6;
  log_move("brand adopted", t, h->cfg->self->name, -1);
  tp_buf_printf(&res->body, "{\"tenant\":\"%s\",\"node\":\"%s\",\"open_ms\":%.1f}", t->conf->id,
                h->cfg->self->name, ms);
  res->status = 200;
}

static void moved(tp_host *h, const tph_request *req, tph_response *res) {
  tp_tenant *t = tenant_of(h, req, NULL, res);
  if (!t) return;
  int64_t paused = t->paused_ms ? tp_clock_wall_ms() - t->paused_ms : 0;
  if (!t->owned) t->paused_ms = 0;  /* stragglers get 421 from now on */
  tp_buf_printf(&res->body, "{\"tenant\":\"%s\",\"paused_ms\":%lld}", t->conf->id, (long long)paused);
  res->status = 200;
}

void tp__cluster_endpoint(tp_host *h, const tph_request *req, const char *rest, size_t rlen,
                          tph_response *res) {
  static const struct {
    const char *path;
    void (*fn)(tp_host *, const tph_request *, tph_response *);
  } acts[] = {{"/release", release}, {"/adopt", adopt}, {"/moved", moved}};
  for (size_t i = 0; i < sizeof acts / sizeof *acts; i++) {
    if (strlen(acts[i].path) != rlen || memcmp(rest, acts[i].path, rlen) != 0) continue;
    snprintf(res->route, sizeof res->route, "admin POST /admin/cluster%s", acts[i].path);
    if (strcmp(req->method, "POST") != 0) {
      snprintf(res->allow, sizeof res->allow, "POST");
      tph_error(res, 405, "method_not_allowed", "%s is not allowed here (allowed: POST)", req->method);
    } else if (!h->cfg->self) {
      tph_error(res, 404, "not_clustered", "this host serves no cluster (--node)");
    } else if (tp__check_host_key(h, req, res->route, res)) {
      acts[i].fn(h, req, res);
    }
    return;
  }
  tph_error(res, 404, "not_found", "cluster endpoints: POST /admin/cluster/release, /adopt, /moved");
}
