/*
** watch.h - watches plugin directories for `tidepool serve --watch`.
**
** libuv cannot watch a tree recursively on Linux, so each directory below a
** watched one gets its own uv_fs_event_t. Only events on *.lua files count:
** editors litter directories with swap and backup files, and reloading for
** those would reload on every keystroke. Events are debounced because one save
** is several events (create, write, rename) and often touches several files.
*/
#ifndef TP_WATCH_H
#define TP_WATCH_H

#include <stddef.h>
#include <uv.h>

#define TPW_MAX_DEPTH 4  /* levels of subdirectories below a watched directory */

typedef struct tpw_watch tpw_watch;

/* Called once per changed directory after the debounce: index is the position of
** the directory in the dirs array given to tpw_start. */
typedef void (*tpw_changed_fn)(void *ud, int index);

/* Watches each directory (and its subdirectories, recursively up to depth 4, skipping
** names that start with '.') with uv_fs_event_t. Events on files whose names end in
** ".lua" mark the owning top-level directory as changed; when no event has arrived for
** debounce_ms, fn is called once for each changed directory, in index order.
** A directory that does not exist is an error (err filled, NULL returned).
** Subdirectories created later are not watched. */
tpw_watch *tpw_start(uv_loop_t *loop, const char *const *dirs, int ndirs, int debounce_ms,
                     tpw_changed_fn fn, void *ud, char *err, size_t errcap);

/* Stops watching; memory is freed once libuv has closed the handles (run the loop).
** Safe to call from fn. */
void tpw_stop(tpw_watch *w);

#endif
