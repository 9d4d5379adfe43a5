/*
** record.c - recorded runs: after an invocation, whether to record it (it
** failed, or recording was armed for it) and writing the record, which a
** developer replays with `tidepool test --replay` (runs.h has the table).
*/
#include "host/host_int.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/clock.h"
#include "base/json.h"
#include "base/log.h"
#include "lua/sandbox.h"

const char *tp__run_reason(tp_host *h, tp_tenant *t, tp_plugin *p, const tp_invocation *inv,
                           const char *kind, const char *name, bool failed) {
  tprun_stats_note(&t->runs.stats, p->name, p->generation, kind, name, p->used, p->budget);
  bool armed = tprun_arm_take(&t->runs, p->name, kind, name);
  if (h->keep_last) {
    struct tp_last_invocation *l = &h->last;
    tp_copy_str(l->plugin, sizeof l->plugin, p->name);
    tp_copy_str(l->kind, sizeof l->kind, kind);
    tp_copy_str(l->name, sizeof l->name, name);
    l->ok = !failed;
    l->used = p->used;
    l->budget = p->budget;
    l->now_ms = inv->now_ms;
    l->seed = inv->seed;
    l->draws = inv->draws;
    l->mem_peak = p->mem_peak;
    l->run_id = 0;
  }
  return failed ? "error" : armed ? "armed" : NULL;
}

int64_t tp__record_run(tp_host *h, tp_tenant *t, tp_plugin *p, tprun_info *info,
                       const char *input, size_t input_len) {
  info->tenant = t->conf->id;
  info->plugin = p->name;
  info->version = p->version;
  info->generation = p->generation;
  info->at_ms = tp_clock_wall_ms();
  info->used = p->used;
  info->budget = p->budget;
  info->step = tpsb_hook_step();
  info->mem_peak = p->mem_peak;
  info->mem_cap = p->mem_limit;
  if (!info->limit && p->timed_out) info->limit = "deadline_exceeded";
  if (!info->limit && p->exceeded) info->limit = "budget_exceeded";
  if (!info->limit && p->mem_exceeded) info->limit = "memory_exceeded";
  tp_buf plugins;  /* what a replay enables besides the plugin itself */
  tp_buf_init(&plugins);
  tp_buf_addc(&plugins, '[');
  for (int i = 0; i < t->nslots; i++)
    if (t->slots[i].current) {
      if (plugins.len > 1) tp_buf_addc(&plugins, ',');
      tp_buf_add_json_str(&plugins, t->slots[i].conf->name, strlen(t->slots[i].conf->name));
    }
  tp_buf_addc(&plugins, ']');
  info->tenant_plugins = tp_buf_cstr(&plugins);
  int64_t id = 0;
  int rc = tprun_record(&t->runs, info, input, input_len, &id);
  tp_buf_free(&plugins);
  if (rc != 0) {
    tp_buf *line = tp_log_begin(TP_LOG_ERROR, "run not recorded");
    tp_log_str(line, "tenant", t->conf->id);
    tp_log_str(line, "plugin", p->name);
    tp_log_str(line, "error", sqlite3_errmsg(t->db.db));
    tp_log_end(line);
    return 0;
  }
  tp_buf *line = tp_log_begin(TP_LOG_INFO, "run recorded");
  if (line) {
    tp_log_str(line, "tenant", t->conf->id);
    tp_log_str(line, "plugin", p->name);
    tp_log_str(line, "kind", info->kind);
    tp_log_str(line, "name", info->name);
    tp_log_str(line, "reason", info->reason);
    if (info->request_id) tp_log_str(line, "request_id", info->request_id);
    tp_log_int(line, "run_id", id);
    tp_log_end(line);
  }
  if (h->keep_last) h->last.run_id = id;
  return id;
}

/* Records a route's run: its input as the handler saw it, the answer. */
void tp__record_route(tp_host *h, tp_tenant *t, const tp_route *r, const tp_call *call,
                         const tp_invocation *inv, const char *name, const char *reason,
                         const tp_result *result, const tph_response *res, double ms) {
  bool body_is_json = true;
  if (call->body_len && call->body_len <= TPRUN_MAX_BODY && h->scratch) {
    char e[64];  /* the handler may have failed on it: keep it as JSON only if it is */
    body_is_json = tpj_decode(h->scratch, call->body, call->body_len, e, sizeof e) == 0;
    lua_settop(h->scratch, 0);
  }
  tp_buf input;
  tp_buf_init(&input);
  tprun_route_input(&input, r, call, body_is_json);
  bool limit = strcmp(result->code, "budget_exceeded") == 0 ||
               strcmp(result->code, "memory_exceeded") == 0 ||
               strcmp(result->code, "deadline_exceeded") == 0;
  tprun_info info = {.kind = "route", .name = name, .request_id = call->request_id,
                     .reason = reason, .inv = inv, .ok = result->ok, .status = res->status,
                     .code = result->code[0] ? result->code : NULL,
                     .error = inv->error && inv->error[0] ? inv->error : NULL,
                     .limit = limit ? result->code : NULL,
                     .body = r->personal ? TPRUN_REDACTED : res->body.data,
                     .body_len = r->personal ? strlen(TPRUN_REDACTED) : res->body.len, .ms = ms};
  tp_buf text;  /* a CSV answer goes into the run as a JSON string */
  tp_buf_init(&text);
  if (result->csv && !r->personal) {
    tp_buf_add_json_str(&text, res->body.data, res->body.len);
    info.body = text.data;
    info.body_len = text.len;
  }
  tp__record_run(h, t, r->plugin, &info, input.data, input.len);
  tp_buf_free(&text);
  tp_buf_free(&input);
}
