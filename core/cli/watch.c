/*
** watch.c - recursive *.lua watcher with a debounce timer.
*/
#include "cli/watch.h"

#include <dirent.h>
#include <errno.h>
#include <limits.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "base/log.h"

/* One watched directory. ev comes first so the event callback can get the node
** back from the handle pointer. */
typedef struct wnode {
  uv_fs_event_t ev;
  int index;  /* the top-level directory this one belongs to */
  struct wnode *next;
} wnode;

struct tpw_watch {
  tpw_changed_fn fn;
  void *ud;
  int ndirs;
  int debounce_ms;
  bool *changed;    /* ndirs flags, set by events, cleared by the debounce */
  uv_timer_t timer;
  wnode *nodes;
  int open;         /* handles not yet closed; the last close frees everything */
  bool stopping;
};

static void on_close(uv_handle_t *h) {
  tpw_watch *w = h->data;
  if (--w->open > 0) return;
  for (wnode *n = w->nodes, *next; n; n = next) {
    next = n->next;
    free(n);
  }
  free(w->changed);
  free(w);
}

void tpw_stop(tpw_watch *w) {
  if (!w || w->stopping) return;
  w->stopping = true;
  uv_close((uv_handle_t *)&w->timer, on_close);
  for (wnode *n = w->nodes; n; n = n->next) uv_close((uv_handle_t *)&n->ev, on_close);
}

static void on_debounce(uv_timer_t *t) {
  tpw_watch *w = t->data;
  /* fn may stop the watch; w stays valid until the close callbacks run. */
  for (int i = 0; i < w->ndirs && !w->stopping; i++) {
    if (!w->changed[i]) continue;
    w->changed[i] = false;
    w->fn(w->ud, i);
  }
}

static bool is_lua(const char *name) {
  size_t n = strlen(name);
  return n > 4 && strcmp(name + n - 4, ".lua") == 0;
}

static void on_event(uv_fs_event_t *h, const char *filename, int events, int status) {
  (void)events;
  wnode *n = (wnode *)h;
  tpw_watch *w = h->data;
  if (status < 0) {
    tp_log_msg(TP_LOG_WARN, "watch: event error", uv_strerror(status));
    return;
  }
  /* No name means libuv could not tell which file: assume it was Lua. */
  if (filename && !is_lua(filename)) return;
  w->changed[n->index] = true;
  uv_timer_start(&w->timer, on_debounce, (uint64_t)w->debounce_ms, 0);
}

/* Watches path and, below max depth, its non-hidden subdirectories. */
static int watch_tree(uv_loop_t *loop, tpw_watch *w, const char *path, int index, int depth,
                      char *err, size_t errcap) {
  wnode *n = calloc(1, sizeof *n);
  if (!n) {
    snprintf(err, errcap, "watch %s: out of memory", path);
    return -1;
  }
  /* Linked before starting: an initialised handle must be closed even if start fails.
  ** uv_fs_event_init and uv_timer_init only fill in the handle and always return 0. */
  uv_fs_event_init(loop, &n->ev);
  n->ev.data = w;
  n->index = index;
  n->next = w->nodes;
  w->nodes = n;
  w->open++;
  int r = uv_fs_event_start(&n->ev, on_event, path, 0);
  if (r < 0) {
    snprintf(err, errcap, "watch %s: %s", path, uv_strerror(r));
    return -1;
  }
  if (depth >= TPW_MAX_DEPTH) return 0;

  DIR *d = opendir(path);
  if (!d) {
    snprintf(err, errcap, "watch %s: %s", path, strerror(errno));
    return -1;
  }
  int rc = 0;
  struct dirent *e;
  char sub[PATH_MAX];
  struct stat st;
  while (rc == 0 && (e = readdir(d)) != NULL) {
    if (e->d_name[0] == '.') continue;  /* also skips . and .. */
    int len = snprintf(sub, sizeof sub, "%s/%s", path, e->d_name);
    if (len < 0 || (size_t)len >= sizeof sub) continue;  /* too deep a path to matter */
    /* lstat: a symlinked directory could loop back up the tree. */
    if (lstat(sub, &st) != 0 || !S_ISDIR(st.st_mode)) continue;
    rc = watch_tree(loop, w, sub, index, depth + 1, err, errcap);
  }
  closedir(d);
  return rc;
}

tpw_watch *tpw_start(uv_loop_t *loop, const char *const *dirs, int ndirs, int debounce_ms,
                     tpw_changed_fn fn, void *ud, char *err, size_t errcap) {
  /* Checked before any handle exists, so this common error frees synchronously. */
  struct stat st;
  for (int i = 0; i < ndirs; i++) {
    if (stat(dirs[i], &st) != 0) {
      snprintf(err, errcap, "watch %s: %s", dirs[i], strerror(errno));
      return NULL;
    }
    if (!S_ISDIR(st.st_mode)) {
      snprintf(err, errcap, "watch %s: not a directory", dirs[i]);
      return NULL;
    }
  }
  tpw_watch *w = calloc(1, sizeof *w);
  bool *changed = calloc(ndirs > 0 ? (size_t)ndirs : 1, sizeof *changed);
  if (!w || !changed) {
    free(w);
    free(changed);
    snprintf(err, errcap, "watch: out of memory");
    return NULL;
  }
  w->fn = fn;
  w->ud = ud;
  w->ndirs = ndirs;
  w->debounce_ms = debounce_ms < 0 ? 0 : debounce_ms;
  w->changed = changed;
  uv_timer_init(loop, &w->timer);
  w->timer.data = w;
  w->open = 1;
  for (int i = 0; i < ndirs; i++) {
    if (watch_tree(loop, w, dirs[i], i, 0, err, errcap) != 0) {
      tpw_stop(w);  /* handles exist now: freed when the loop runs */
      return NULL;
    }
  }
  return w;
}
