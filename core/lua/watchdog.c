/*
** watchdog.c - one thread that interrupts an invocation past its deadline.
*/
#include "lua/watchdog.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <time.h>

#include "base/clock.h"
#include "base/json.h"

/* Written by the loop thread under `lock`; read by the watchdog under it. */
static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_once_t once = PTHREAD_ONCE_INIT;
static bool started;
static int depth;               /* nested arms */
static uint64_t deadline_ns;    /* 0: none armed */
static int64_t deadline_ms;
static bool fired;
static lua_State *running;
static sqlite3 *conn;
static lua_Hook hook_fn;
static atomic_bool expired;     /* read without the lock on every charge */

/* What the watchdog does at the deadline; the lock is held. */
static void fire(void) {
  atomic_store_explicit(&expired, true, memory_order_relaxed);
  if (conn) sqlite3_interrupt(conn);
  if (running && hook_fn) lua_sethook(running, hook_fn, LUA_MASKCOUNT, 1);
  fired = true;
}

static void *watch(void *arg) {
  (void)arg;
  struct timespec tick = {0, TPWD_TICK_MS * 1000000L};
  for (;;) {
    nanosleep(&tick, NULL);
    pthread_mutex_lock(&lock);
    if (deadline_ns && !fired && tp_clock_mono_ns() >= deadline_ns) fire();
    pthread_mutex_unlock(&lock);
  }
  return NULL;
}

static void start(void) {
  tpj_set_interrupt(tpwd_expired);  /* an encoding inside an invocation ends at its deadline */
  pthread_t t;
  pthread_attr_t attr;
  pthread_attr_init(&attr);
  pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
  pthread_attr_setstacksize(&attr, 64 * 1024);
  started = pthread_create(&t, &attr, watch, NULL) == 0;
  pthread_attr_destroy(&attr);
  if (!started) fprintf(stderr, "tidepool: the watchdog thread could not start\n");
}

void tpwd_arm(int64_t ms, sqlite3 *db, lua_Hook hook) {
  pthread_once(&once, start);
  pthread_mutex_lock(&lock);
  if (depth++ == 0) {
    deadline_ms = ms > 0 ? ms : 0;
    deadline_ns = ms > 0 ? tp_clock_mono_ns() + (uint64_t)ms * 1000000u : 0;
    fired = false;
    conn = db;
    hook_fn = hook;
    atomic_store_explicit(&expired, false, memory_order_relaxed);
  }
  pthread_mutex_unlock(&lock);
}

void tpwd_disarm(void) {
  pthread_mutex_lock(&lock);
  if (depth > 0 && --depth == 0) {
    deadline_ns = 0;
    deadline_ms = 0;
    conn = NULL;
    running = NULL;
    fired = false;
    atomic_store_explicit(&expired, false, memory_order_relaxed);
  }
  pthread_mutex_unlock(&lock);
}

lua_State *tpwd_running(lua_State *L) {
  pthread_mutex_lock(&lock);
  lua_State *prev = running;
  running = L;
  /* a thread that takes over after the deadline must stop at once too */
  if (fired && L && hook_fn) lua_sethook(L, hook_fn, LUA_MASKCOUNT, 1);
  pthread_mutex_unlock(&lock);
  return prev;
}

bool tpwd_expired(void) { return atomic_load_explicit(&expired, memory_order_relaxed); }

int64_t tpwd_deadline_ms(void) { return deadline_ms; }
