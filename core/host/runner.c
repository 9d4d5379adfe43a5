/*
** runner.c - the runner: fires due jobs and delivers events, on one uv timer
** for every tenant, and moves a manual clock (tp_host_advance).
**
** One uv timer serves every tenant. After each commit that touched a queue,
** the tenant's next due time is read back from its database and the timer
** is re-armed for the earliest one; nothing polls. The runner takes due tasks
** one by one, each in its own savepoint of a batch transaction, like
** requests: a bounded slice per tick, then the batch commits and the loop
** goes back to serving clients.
*/
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lua/api.h"
#include "lua/invoke.h"
#include "base/clock.h"
#include "host/host_int.h"
#include "base/log.h"

#define TICK_MAX_TASKS 256
#define TICK_MAX_NS (5 * 1000000ull)
#define ADVANCE_MAX_TASKS 1000000

/* ---- the runner */

static void log_task(tp_tenant *t, const tpq_task *task, const char *msg, tp_log_level level,
                     const char *error, double lateness_s, bool dead) {
  tp_buf *line = tp_log_begin(level, msg);
  if (!line) return;
  tp_log_str(line, "tenant", t->conf->id);
  tp_log_str(line, "plugin", task->plugin);
  tp_log_str(line, "kind", task->event ? "event" : "job");
  tp_log_str(line, "name", task->name);
  tp_log_int(line, "id", task->id);
  tp_log_int(line, "attempt", task->attempts + 1);
  tp_log_num(line, "late_ms", lateness_s * 1000);
  if (error) tp_log_str(line, "error", error);
  if (dead) tp_log_str(line, "outcome", "dead-lettered");
  tp_log_end(line);
}

/* Runs one task in its own savepoint of the tenant's batch. */
static void run_task(tp_host *h, tp_tenant *t, tpq_task *task, int64_t now_ms, bool *failed) {
  char id[48], err[2048] = "";
  snprintf(id, sizeof id, "%s-%lld", task->event ? "event" : "job", (long long)task->id);
  tp_invocation inv = {.request_id = id, .now_ms = now_ms};
  tpa_seed(&inv, tp__seed(h, now_ms, id));
  double lateness = (double)(tp_clock_wall_ms() - task->due_ms) / 1000.0;
  if (lateness < 0) lateness = 0;
  if (t->conf->manual_clock) lateness = -1;  /* a test clock jumps; lateness means nothing */
  tp_slot *s = tp__slot(t, task->plugin);
  tp_plugin *p = s ? s->current : NULL;
  int rc = -1;
  bool invoked = false;
  uint64_t start = tp_clock_mono_ns();
  if (tps_savepoint(&t->db) != 0) {
    snprintf(err, sizeof err, "cannot open a savepoint: %s", sqlite3_errmsg(t->db.db));
  } else {
    if (!p) {
      snprintf(err, sizeof err, "plugin '%s' is not serving in this tenant", task->plugin);
    } else {
      rc = tpi_call_task(p, task->event ? "subscribe" : "jobs", task->name, task->arg.data,
                         task->arg.len, &inv, task->event ? TP_CTX_EVENT : TP_CTX_JOB, err,
                         sizeof err);
      invoked = true;
    }
    if (rc == 0 && tpq_done(&t->queue, task, now_ms) != 0) {
      snprintf(err, sizeof err, "cannot finish the task: %s", sqlite3_errmsg(t->db.db));
      rc = -1;
    }
    if (rc == 0) tps_release(&t->db);
    else tps_rollback_to(&t->db);
  }
  if (invoked) {  /* recorded after the rollback, like a route's run */
    const char *kind = task->event ? "event" : "job";
    const char *reason = tp__run_reason(h, t, p, &inv, kind, task->name, rc != 0);
    if (reason) {
      tprun_info info = {.kind = kind, .name = task->name, .request_id = id, .reason = reason,
                         .inv = &inv, .ok = rc == 0, .error = rc != 0 ? err : NULL,
                         .ms = (double)(tp_clock_mono_ns() - start) / 1e6};
      bool personal = !task->event && tpp_job_personal(p, task->name);
      /* a payload with personal data (a phone in WeChat's reply) is not kept */
      tp__record_run(h, t, p, &info, personal ? TPRUN_REDACTED : task->arg.data,
                     personal ? strlen(TPRUN_REDACTED) : task->arg.len);
    }
  }
  bool dead = false;
  if (rc != 0 && tps_batch_alive(&t->db)) {
    tpq_retry_policy policy = {h->cfg->limits.job_retry_base_ms, h->cfg->limits.job_retry_max_ms};
    tpq_failed(&t->queue, task, err, now_ms, policy, &dead);
  }
  *failed = rc != 0;
  tpm_task(h->metrics, task->event, rc == 0, dead, lateness);
  log_task(t, task, rc == 0 ? "task done" : "task failed", rc == 0 ? TP_LOG_DEBUG : TP_LOG_WARN,
           rc == 0 ? NULL : err, lateness, dead);
  t->queue_touched = true;
}

/* Runs the tenant's tasks due at now, at most max of them (or until the
** slice of time is used). Returns how many ran; *failures counts failures. */
static int run_due(tp_host *h, tp_tenant *t, int64_t now_ms, int max, uint64_t deadline_ns,
                   int *failures) {
  int ran = 0;
  if (tp__join_batch(h, t) != 0) return 0;
  while (ran < max && tps_batch_alive(&t->db)) {
    tpq_task task;
    int found = tpq_next(&t->queue, now_ms, &task);
    if (found <= 0) break;
    bool failed;
    run_task(h, t, &task, now_ms, &failed);
    tpq_task_free(&task);
    ran++;
    *failures += failed;
    if (deadline_ns && tp_clock_mono_ns() > deadline_ns) break;
    if (h->reset_pending) break;  /* a killed plugin's next task waits for its fresh state */
  }
  return ran;
}

/* A brand that could not be opened for its due task is tried again this much later. */
#define BRAND_RETRY_MS 60000

static void on_timer(uv_timer_t *timer) {
  tp_host *h = timer->data;
  h->timer_due_ms = INT64_MAX;
  h->running_tasks = true;
  uint64_t deadline = tp_clock_mono_ns() + TICK_MAX_NS;
  for (int i = 0; i < h->ntenants; i++) {
    tp_tenant *t = &h->tenants[i];
    int64_t now = tp__now(t);
    if (t->next_due_ms > now) continue;
    if (tp__brand_use(h, t, "task") != 0) {  /* a closed brand's task is due: open it */
      t->next_due_ms = t->owned ? now + BRAND_RETRY_MS : INT64_MAX;
      continue;
    }
    int failures = 0;
    if (run_due(h, t, now, TICK_MAX_TASKS, deadline, &failures) == 0)
      t->queue_touched = true;  /* nothing was runnable: read the next due time again */
  }
  tp__flush_batch(h);
  tp_host_iteration_end(h);  /* no answer waits on the runner's commits */
  h->running_tasks = false;
  tp__reset_killed(h);
  tp__arm_timer(h);
  tp_log_flush();
}

/* Arms the one timer for the earliest due task of any tenant. */
void tp__arm_timer(tp_host *h) {
  if (!h->loop || h->running_tasks) return;
  int64_t wall = tp_clock_wall_ms(), earliest = INT64_MAX;
  for (int i = 0; i < h->ntenants; i++) {
    tp_tenant *t = &h->tenants[i];
    if (t->next_due_ms == INT64_MAX) continue;
    /* a manual clock only moves when advanced: its tasks due by now run now */
    int64_t at = t->conf->manual_clock ? (t->next_due_ms <= t->clock_ms ? wall : INT64_MAX)
                                       : t->next_due_ms;
    if (at < earliest) earliest = at;
  }
  if (earliest == h->timer_due_ms) return;
  h->timer_due_ms = earliest;
  if (earliest == INT64_MAX) {
    uv_timer_stop(&h->timer);
    return;
  }
  /* uv timers count in the loop's cached milliseconds; round up so a job
  ** never fires before its time. Never 0: libuv before 1.45 runs a timer
  ** restarted at 0 from its own callback again at once, without polling, so a
  ** job that schedules its successor (a drop's next slice) would run the whole
  ** chain while no client is answered; 1 ms lets the loop poll in between. */
  int64_t delay = earliest - wall;
  uv_timer_start(&h->timer, on_timer, delay > 0 ? (uint64_t)delay + 1 : 1, 0);
}

void tp__runner_attach(tp_host *h, uv_loop_t *loop) {
  h->loop = loop;
  uv_timer_init(loop, &h->timer);
  h->timer.data = h;
  h->timer_due_ms = -1;  /* force the first arming */
  tp__arm_timer(h);
}

void tp__runner_detach(tp_host *h) {
  if (!h->loop) return;
  uv_timer_stop(&h->timer);
  uv_close((uv_handle_t *)&h->timer, NULL);
  h->loop = NULL;
}

/* Moves a manual clock to to_ms, running every task that falls due on the
** way in due order, each with the clock at its due time. */
int tp_host_advance(tp_host *h, tp_tenant *t, int64_t to_ms, int *ran, int *failed) {
  *ran = *failed = 0;
  tp__flush_batch(h);
  h->running_tasks = true;
  int since_commit = 0;
  for (;;) {
    int64_t due = tpq_next_due(&t->queue);  /* sees this batch's own changes */
    if (due > to_ms || *ran >= ADVANCE_MAX_TASKS) break;
    if (due > t->clock_ms) t->clock_ms = due;
    int n = run_due(h, t, t->clock_ms, TICK_MAX_TASKS, 0, failed);
    *ran += n;
    since_commit += n;
    if (h->reset_pending) {  /* commit, then load the killed plugin afresh */
      tp__flush_batch(h);
      since_commit = 0;
      h->running_tasks = false;
      tp__reset_killed(h);
      h->running_tasks = true;
    }
    if (since_commit >= TICK_MAX_TASKS || !tps_batch_alive(&t->db)) {
      tp__flush_batch(h);
      since_commit = 0;
    }
    if (n == 0) break;  /* nothing ran (the batch failed): stop rather than spin */
  }
  if (to_ms > t->clock_ms) t->clock_ms = to_ms;
  int rc = tp__join_batch(h, t) == 0 ? tpq_clock_set(&t->queue, t->clock_ms) : -1;
  t->queue_touched = true;
  tp__flush_batch(h);
  h->running_tasks = false;
  tp__reset_killed(h);
  tp__arm_timer(h);
  return rc;
}
