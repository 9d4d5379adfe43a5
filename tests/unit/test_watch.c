/*
** Watch: *.lua changes fire once per top directory after the debounce; renames
** count; other files, hidden and too-deep directories do not; missing dirs fail.
*/
#include "cli/watch.h"

#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

#include "tp_test.h"

static char root[64], other[64], path[256], err[256];

typedef struct probe {
  uv_loop_t loop;
  uv_timer_t guard;
  tpw_watch *w;
  int calls, index;
  int stop_in_fn;
} probe;

static const char *at(const char *dir, const char *rel) {
  snprintf(path, sizeof path, "%s/%s", dir, rel);
  return path;
}

static void put(const char *dir, const char *rel) {
  FILE *f = fopen(at(dir, rel), "w");
  if (f) {
    fputs("return 1\n", f);
    fclose(f);
  }
}

static void rm_tree(const char *dir) {
  DIR *d = opendir(dir);
  if (!d) return;
  struct dirent *e;
  char sub[1024];
  while ((e = readdir(d)) != NULL) {
    if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0) continue;
    snprintf(sub, sizeof sub, "%s/%s", dir, e->d_name);
    if (e->d_type == DT_DIR) rm_tree(sub);
    else unlink(sub);
  }
  closedir(d);
  rmdir(dir);
}

/* root/sub and a second, untouched top directory. */
static void make_tree(void) {
  strcpy(root, "/tmp/tpw-XXXXXX");
  strcpy(other, "/tmp/tpw-XXXXXX");
  if (!mkdtemp(root) || !mkdtemp(other)) abort();
  mkdir(at(root, "sub"), 0700);
}

static void remove_tree(void) {
  rm_tree(root);
  rm_tree(other);
}

static void on_guard(uv_timer_t *t) { uv_stop(t->loop); }

static void on_changed(void *ud, int index) {
  probe *p = ud;
  p->calls++;
  p->index = index;
  if (p->stop_in_fn) {
    tpw_stop(p->w);
    p->w = NULL;
  }
  /* Keep running a little to catch a second, wrong call. */
  uv_timer_start(&p->guard, on_guard, 300, 0);
}

static int start(probe *p) {
  memset(p, 0, sizeof *p);
  p->index = -1;
  uv_loop_init(&p->loop);
  uv_timer_init(&p->loop, &p->guard);
  const char *dirs[] = {other, root};
  p->w = tpw_start(&p->loop, dirs, 2, 50, on_changed, p, err, sizeof err);
  return p->w ? 0 : -1;
}

/* Runs until the callback has fired (plus 300 ms) or for at most ms, then closes all. */
static int run_and_close(probe *p, int ms) {
  uv_timer_start(&p->guard, on_guard, (uint64_t)ms, 0);
  uv_run(&p->loop, UV_RUN_DEFAULT);
  tpw_stop(p->w);
  uv_close((uv_handle_t *)&p->guard, NULL);
  uv_run(&p->loop, UV_RUN_DEFAULT);
  return uv_loop_close(&p->loop);
}

static probe P;

TEST(lua_writes_fire_once_for_their_top_dir) {
  make_tree();
  ASSERT_EQ(start(&P), 0);
  put(root, "sub/a.lua");
  put(root, "b.lua");
  ASSERT_EQ(run_and_close(&P, 1500), 0);
  ASSERT_EQ(P.calls, 1);
  ASSERT_EQ(P.index, 1);
  remove_tree();
}

TEST(rename_onto_lua_fires_and_fn_may_stop) {
  make_tree();
  put(root, "sub/.b.lua.swp");
  char from[256];
  snprintf(from, sizeof from, "%s", at(root, "sub/.b.lua.swp"));
  ASSERT_EQ(start(&P), 0);
  P.stop_in_fn = 1;
  ASSERT_EQ(rename(from, at(root, "sub/b.lua")), 0);
  ASSERT_EQ(run_and_close(&P, 1500), 0);
  ASSERT_EQ(P.calls, 1);
  ASSERT_EQ(P.index, 1);
  remove_tree();
}

TEST(other_files_hidden_and_deep_dirs_do_not_fire) {
  make_tree();
  mkdir(at(root, ".git"), 0700);
  const char *deep[] = {"d1", "d1/d2", "d1/d2/d3", "d1/d2/d3/d4", "d1/d2/d3/d4/d5"};
  for (int i = 0; i < 5; i++) mkdir(at(root, deep[i]), 0700);
  ASSERT_EQ(start(&P), 0);
  put(root, "x.txt");
  put(root, "sub/b.lua~");
  put(root, ".git/hook.lua");
  put(root, "d1/d2/d3/d4/d5/too_deep.lua");
  ASSERT_EQ(run_and_close(&P, 400), 0);
  ASSERT_EQ(P.calls, 0);
  remove_tree();
}

TEST(depth_four_is_watched) {
  make_tree();
  const char *deep[] = {"d1", "d1/d2", "d1/d2/d3", "d1/d2/d3/d4"};
  for (int i = 0; i < 4; i++) mkdir(at(root, deep[i]), 0700);
  ASSERT_EQ(start(&P), 0);
  put(root, "d1/d2/d3/d4/deep.lua");
  ASSERT_EQ(run_and_close(&P, 1500), 0);
  ASSERT_EQ(P.calls, 1);
  remove_tree();
}

TEST(missing_dir_is_an_error) {
  make_tree();
  uv_loop_t loop;
  uv_loop_init(&loop);
  const char *dirs[] = {root, at(root, "nope")};
  err[0] = '\0';
  ASSERT_TRUE(tpw_start(&loop, dirs, 2, 50, on_changed, NULL, err, sizeof err) == NULL);
  ASSERT_CONTAINS(err, "nope");
  ASSERT_CONTAINS(err, "No such file");
  ASSERT_EQ(uv_loop_close(&loop), 0);
  remove_tree();
}

int main(void) {
  RUN(lua_writes_fire_once_for_their_top_dir);
  RUN(rename_onto_lua_fires_and_fn_may_stop);
  RUN(other_files_hidden_and_deep_dirs_do_not_fire);
  RUN(depth_four_is_watched);
  RUN(missing_dir_is_an_error);
  return TEST_SUMMARY();
}
