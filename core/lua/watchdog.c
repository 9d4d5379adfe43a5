/*
** watchdog.c - one thread that interrupts an invocation past its deadline,
** and turns the instruction count on for one that runs long.
*/
#include "lua/watchdog.h"

#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>
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
static int count_step;          /* the count hook's step, for threads that run without it */
static uint64_t count_at_ns;    /* when the count goes on (0: nothing armed) */
static bool counting;           /* it is on: every thread that runs gets the hook */
static pthread_t loop_thread;   /* the thread that arms: the one the signal goes to */
static atomic_bool expired;     /* read without the lock on every charge */

/* What the signal handler reads. It runs on the loop thread, between any two
** of its instructions: lock-free atomics only. */
static _Atomic(lua_State *) sig_running;   /* = running */
static atomic_int sig_step;                 /* the step to set; 0: nothing to do */
static _Thread_local bool on_loop;          /* this thread arms: the handler may act */

/* The hook goes on by a signal to the loop thread, not by lua_sethook from
** this thread: Lua makes lua_sethook safe to call from a signal handler (its
** own interpreter does so on SIGINT), which interrupts the thread it runs
** on, not from a second thread that runs beside it (lua_sethook walks the
** call frames the interpreter is pushing and popping). SIGURG, as Go's
** runtime does for preemption: ignored by default and meaningless to a
** server that sends no out-of-band data. A thread that already counts keeps
** its hook, unless the step is 1 (the deadline, or a spent budget). */
static void on_signal(int sig) {
  (void)sig;
  if (!on_loop) return;  /* a SIGURG sent to the process, caught by another thread */
  int saved = errno;
  lua_State *L = atomic_load_explicit(&sig_running, memory_order_relaxed);
  int step = atomic_load_explicit(&sig_step, memory_order_relaxed);
  if (L && step > 0 && hook_fn && (step == 1 || lua_gethookmask(L) == 0))
    lua_sethook(L, hook_fn, LUA_MASKCOUNT, step);
  errno = saved;
}

/* Asks the loop thread to set the hook at step on the thread it runs; the
** lock is held. */
static void hook_running(int step) {
  atomic_store_explicit(&sig_step, step, memory_order_relaxed);
  if (running) pthread_kill(loop_thread, SIGURG);
}

/* What the watchdog does at the deadline; the lock is held. */
static void fire(void) {
  atomic_store_explicit(&expired, true, memory_order_relaxed);
  if (conn) sqlite3_interrupt(conn);
  hook_running(1);
  fired = true;
}

static void *watch(void *arg) {
  (void)arg;
  struct timespec tick = {0, TPWD_TICK_MS * 1000000L};
  for (;;) {
    nanosleep(&tick, NULL);
    pthread_mutex_lock(&lock);
    uint64_t now = tp_clock_mono_ns();
    if (deadline_ns && !fired && now >= deadline_ns) {
      fire();
    } else if (count_at_ns && count_step > 0 && !counting && !fired && now >= count_at_ns) {
      counting = true;  /* it ran long: from now on its instructions count */
      hook_running(count_step);
    }
    pthread_mutex_unlock(&lock);
  }
  return NULL;
}

static void start(void) {
  tpj_set_interrupt(tpwd_expired);  /* an encoding inside an invocation ends at its deadline */
  struct sigaction sa;
  memset(&sa, 0, sizeof sa);
  sa.sa_handler = on_signal;
  sa.sa_flags = SA_RESTART;
  sigemptyset(&sa.sa_mask);
  if (sigaction(SIGURG, &sa, NULL) != 0) {
    fprintf(stderr, "tidepool: the watchdog's signal could not be set up\n");
    return;
  }
  pthread_t t;
  pthread_attr_t attr;
  pthread_attr_init(&attr);
  pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
  pthread_attr_setstacksize(&attr, 64 * 1024);
  started = pthread_create(&t, &attr, watch, NULL) == 0;
  pthread_attr_destroy(&attr);
  if (!started) fprintf(stderr, "tidepool: the watchdog thread could not start\n");
}

bool tpwd_ready(void) {
  pthread_once(&once, start);
  return started;
}

void tpwd_arm(int64_t ms, sqlite3 *db, lua_Hook hook, int step) {
  pthread_once(&once, start);
  pthread_mutex_lock(&lock);
  if (depth++ == 0) {
    uint64_t now = tp_clock_mono_ns();
    deadline_ms = ms > 0 ? ms : 0;
    deadline_ns = ms > 0 ? now + (uint64_t)ms * 1000000u : 0;
    fired = false;
    conn = db;
    hook_fn = hook;
    count_step = step;
    count_at_ns = now + TPWD_COUNT_AFTER_MS * 1000000u;
    counting = false;
    loop_thread = pthread_self();
    on_loop = true;
    atomic_store_explicit(&sig_step, 0, memory_order_relaxed);
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
    count_at_ns = 0;
    counting = false;
    atomic_store_explicit(&sig_step, 0, memory_order_relaxed);
    atomic_store_explicit(&sig_running, NULL, memory_order_relaxed);
    atomic_store_explicit(&expired, false, memory_order_relaxed);
  }
  pthread_mutex_unlock(&lock);
}

lua_State *tpwd_running(lua_State *L) {
  pthread_mutex_lock(&lock);
  lua_State *prev = running;
  running = L;
  atomic_store_explicit(&sig_running, L, memory_order_relaxed);
  /* a thread that takes over after the deadline must stop at once too, and
  ** one that takes over once the count is on must count (this is the loop
  ** thread: lua_sethook is safe here) */
  if (fired && L && hook_fn) lua_sethook(L, hook_fn, LUA_MASKCOUNT, 1);
  else if (counting && L && hook_fn && lua_gethookmask(L) == 0)
    lua_sethook(L, hook_fn, LUA_MASKCOUNT, count_step);
  pthread_mutex_unlock(&lock);
  return prev;
}

bool tpwd_expired(void) { return atomic_load_explicit(&expired, memory_order_relaxed); }

int64_t tpwd_deadline_ms(void) { return deadline_ms; }
