/*
** tryout.c - POST /admin/{t}/campaigns/{name}/check and .../preview: a
** campaign script tried on a copy of the brand's data, from the API.
**
** `tidepool campaign check|preview` (cli/campaign.c) already does it right:
** it copies the brand's database with the backup API and loads the script
** into a host of its own on the copy, so every mechanic checks its settings
** against the brand's real catalog and activities, and prints each problem as
** FILE:LINE: message. Loading plugins takes tens of milliseconds to seconds,
** which the loop must not spend, so the host runs that command as a child
** process (libuv's uv_spawn, the host's own executable and config) and
** answers once it exits: 200 with {ok, output}, the command's words as they
** are. At most MAX_RUNNING run at once; one that runs past TIMEOUT_MS is
** killed; a stopping host kills them and answers nobody.
*/
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/json.h"
#include "host/host_int.h"

#define MAX_RUNNING 2
#define TIMEOUT_MS 60000
#define MAX_OUTPUT (64 * 1024)

typedef struct tp_tryout {
  uv_process_t proc;
  uv_pipe_t out;
  uv_timer_t timer;
  tp_host *h;
  tph_response *res;
  tp_buf text;
  int64_t exit_status;
  int term_signal;
  bool exited, eof, timed_out, orphan;
  int handles;                /* still open: freed when the last one closes */
  struct tp_tryout *next;
} tryout;

static void unlink_tryout(tryout *o) {
  for (tryout **p = &o->h->tryouts; *p; p = &(*p)->next)
    if (*p == o) {
      *p = o->next;
      return;
    }
}

static void on_closed(uv_handle_t *handle) {
  tryout *o = handle->data;
  if (--o->handles > 0) return;
  tp_buf_free(&o->text);
  free(o);
}

static void finish(tryout *o) {
  if (!o->exited || !o->eof) return;
  unlink_tryout(o);
  uv_timer_stop(&o->timer);
  tph_response *res = o->res;
  if (o->timed_out) {
    tph_error(res, 504, "tryout_timeout", "the campaign's check ran past %d s and was stopped", TIMEOUT_MS / 1000);
  } else if (o->term_signal || o->exit_status > 1) {
    tph_error(res, 500, "tryout_failed", "the check could not run (exit %lld, signal %d): %.300s",
              (long long)o->exit_status, o->term_signal, tp_buf_cstr(&o->text));
  } else {
    tp_buf_printf(&res->body, "{\"ok\":%s,\"output\":", o->exit_status == 0 ? "true" : "false");
    tp_buf_add_json_str(&res->body, o->text.data ? o->text.data : "", o->text.len);
    tp_buf_adds(&res->body, "}");
    res->status = 200;
  }
  tph_resume(res);
  uv_close((uv_handle_t *)&o->proc, on_closed);
  uv_close((uv_handle_t *)&o->out, on_closed);
  uv_close((uv_handle_t *)&o->timer, on_closed);
}

static void on_child_exit(uv_process_t *p, int64_t status, int signal) {
  tryout *o = p->data;
  o->exited = true;
  o->exit_status = status;
  o->term_signal = signal;
  finish(o);
}

static void on_alloc(uv_handle_t *handle, size_t suggested, uv_buf_t *buf) {
  (void)handle;
  buf->base = malloc(suggested);
  buf->len = buf->base ? suggested : 0;
}

static void on_read(uv_stream_t *s, ssize_t n, const uv_buf_t *buf) {
  tryout *o = s->data;
  if (n > 0 && o->text.len + (size_t)n <= MAX_OUTPUT) tp_buf_add(&o->text, buf->base, (size_t)n);
  free(buf->base);
  if (n < 0) {
    o->eof = true;
    uv_read_stop(s);
    finish(o);
  }
}

static void on_timeout(uv_timer_t *t) {
  tryout *o = t->data;
  o->timed_out = true;
  uv_process_kill(&o->proc, SIGKILL);
}

/* The script of campaign name (the part after "campaign_"), or NULL. */
static const char *script_of(const tp_tenant *t, const char *name) {
  for (int i = 0; i < t->conf->nplugins; i++) {
    const tpc_plugin *p = &t->conf->plugins[i];
    if (p->script && strncmp(p->name, "campaign_", 9) == 0 && strcmp(p->name + 9, name) == 0) return p->script;
  }
  return NULL;
}

static void try_campaign(tp_host *h, tp_tenant *t, const char *mode, tph_response *res) {
  const char *name = h->match.nparams ? h->match.params[0].value : "";
  const char *script = script_of(t, name);
  if (!script) {
    tph_error(res, 404, "campaign_not_found", "tenant '%s' runs no campaign '%.64s'", t->conf->id, name);
    return;
  }
  int running = 0;
  for (tryout *o = h->tryouts; o; o = o->next) running++;
  if (running >= MAX_RUNNING || !h->loop) {
    res->retry_after = 5;
    tph_error(res, 503, "busy", "%d campaign checks are running; try again in a few seconds", running);
    return;
  }
  char exe[4096];
  size_t exelen = sizeof exe;
  if (uv_exepath(exe, &exelen) != 0) {
    tph_error(res, 500, "tryout_failed", "the host cannot find its own executable");
    return;
  }
  tryout *o = calloc(1, sizeof *o);
  if (!o) {
    tph_error(res, 503, "out_of_memory", "try again");
    return;
  }
  o->h = h;
  o->res = res;
  tp_buf_init(&o->text);
  o->proc.data = o->out.data = o->timer.data = o;
  uv_pipe_init(h->loop, &o->out, 0);
  uv_timer_init(h->loop, &o->timer);
  char *args[] = {exe, "campaign", (char *)mode, (char *)script, "--config", h->cfg->path,
                  "--tenant", (char *)t->conf->id, NULL};
  uv_stdio_container_t stdio[3] = {
      {.flags = UV_IGNORE},
      {.flags = UV_CREATE_PIPE | UV_WRITABLE_PIPE, .data.stream = (uv_stream_t *)&o->out},
      {.flags = UV_INHERIT_FD, .data.fd = 2},  /* the child's log lines join the host's */
  };
  uv_process_options_t opt = {.exit_cb = on_child_exit, .file = exe, .args = args, .stdio_count = 3, .stdio = stdio};
  int rc = uv_spawn(h->loop, &o->proc, &opt);
  o->handles = 3;
  if (rc != 0) {  /* libuv: a process handle that failed to spawn is closed like any other */
    uv_close((uv_handle_t *)&o->proc, on_closed);
    uv_close((uv_handle_t *)&o->out, on_closed);
    uv_close((uv_handle_t *)&o->timer, on_closed);
    tph_error(res, 500, "tryout_failed", "the check could not start: %s", uv_strerror(rc));
    return;
  }
  uv_read_start((uv_stream_t *)&o->out, on_alloc, on_read);
  uv_timer_start(&o->timer, on_timeout, TIMEOUT_MS, 0);
  o->next = h->tryouts;
  h->tryouts = o;
  res->deferred = true;
}

static void post_check(tp_host *h, tp_tenant *t, const tph_request *req, tph_response *res) {
  (void)req;
  try_campaign(h, t, "check", res);
}

static void post_preview(tp_host *h, tp_tenant *t, const tph_request *req, tph_response *res) {
  (void)req;
  try_campaign(h, t, "preview", res);
}

/* The host stops: every child is killed and nobody is answered. */
void tp__tryout_stop(tp_host *h) {
  while (h->tryouts) {
    tryout *o = h->tryouts;
    h->tryouts = o->next;
    uv_process_kill(&o->proc, SIGKILL);
    tph_abandon(o->res);
    uv_read_stop((uv_stream_t *)&o->out);
    uv_timer_stop(&o->timer);
    uv_close((uv_handle_t *)&o->proc, on_closed);
    uv_close((uv_handle_t *)&o->out, on_closed);
    uv_close((uv_handle_t *)&o->timer, on_closed);
  }
}

#define ANSWER \
  "{\"type\":\"object\",\"properties\":{\"ok\":{\"type\":\"boolean\"},\"output\":{\"type\":\"string\"," \
  "\"description\":\"the command's words: FILE:LINE: message for each problem\"}}}"
#define ERRORS                                                                                     \
  TP_DOC_ERROR("404", "campaign_not_found", "\"campaign_not_found\"") ","                          \
  TP_DOC_ERROR("500", "tryout_failed", "\"tryout_failed\"") ","                                    \
  TP_DOC_ERROR("503", "busy, out_of_memory", "\"busy\",\"out_of_memory\"") "," TP_DOC_ERROR("504", "tryout_timeout", "\"tryout_timeout\"")

static tp_route routes[] = {
  {.method = "POST", .path = "/campaigns/{name}/check", .label = "admin POST /admin/{tenant}/campaigns/{name}/check",
   .auth = TP_AUTH_ADMIN, .builtin = (void (*)(void))(tp_builtin_fn)post_check,
   .doc = {.summary = "Check a campaign script on a copy of the brand's data (tidepool campaign check)",
           .response = ANSWER, .errors = ERRORS}},
  {.method = "POST", .path = "/campaigns/{name}/preview", .label = "admin POST /admin/{tenant}/campaigns/{name}/preview",
   .auth = TP_AUTH_ADMIN, .builtin = (void (*)(void))(tp_builtin_fn)post_preview,
   .doc = {.summary = "What a campaign script will do when, tried on a copy of the brand's data",
           .response = ANSWER, .errors = ERRORS}},
};

const tp_route *tp__tryout_routes(int *n) {
  *n = (int)(sizeof routes / sizeof *routes);
  return routes;
}
