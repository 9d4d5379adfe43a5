/*
** fuzz_sandbox.c - any text as the body of a plugin's route handler, run in a
** real invocation: a host with one tenant whose plugin `fz` (written to a
** temporary folder below) has a table fz_rows of 200 rows and a route,
** POST /v1/f/fz/run, that loads the request body as a Lua chunk and returns
** what it returns (GET /v1/f/fz/clean serves the check below). The request
** goes through tp_host_handle and tp_host_commit like any other: savepoint,
** invoke, rollback or release, the reset of a killed plugin, the commit.
** The snippet sees the sandbox's own globals (string, table, utf8,
** coroutine, load, pcall, tp.db, tp.json, tp.crypto ...) under small limits:
** FZ_INSTRUCTIONS instructions, FZ_MEMORY bytes, a deadline of
** FZ_DEADLINE_MS.
**
** Every outcome is fine: 200, tp.fail, a Lua error, budget_exceeded,
** memory_exceeded, deadline_exceeded. A finding is a crash, a sanitizer
** report, a leak, or an input that the limits did not end quickly: one
** request taking longer than FZ_MAX_MS aborts after it returns, and one still
** running after FZ_STALL_MS is aborted where it is (the stack trace shows
** where the host is stuck), in replay mode under ctest as under libFuzzer.
** After each input the host must be sane: no transaction, savepoint or
** deadline left open, the plugin serving and idle.
**
** Inputs arrive as a JSON string (the host only takes JSON bodies): bytes
** that are not UTF-8 travel as U+F780..U+F7FF and the plugin turns them back
** into bytes, so any input reaches load() as it is (except those code points
** themselves). After each input a second request asks the plugin whether its
** globals and libraries are as loaded; if the snippet changed them, the
** plugin is reloaded, so every input starts from the same state. fz_rows is
** read-only (triggers); fz_scratch is the snippets' to write, and emptied.
**
** FUZZ_SANDBOX_VERBOSE=1 prints each input's status, error code, time and
** answer; FUZZ_SANDBOX_STALL_MS moves the stall abort, to time a stall.
*/
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "config/config.h"
#include "host/host_int.h"
#include "base/log.h"
#include "base/utf8.h"
#include "lua/watchdog.h"

#ifndef TP_SOURCE_DIR
#define TP_SOURCE_DIR "."
#endif

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define FZ_INSTRUCTIONS 200000
#define FZ_MEMORY (8 << 20)
#define FZ_DEADLINE_MS 200
#define FZ_MAX_MS 2000      /* a request that took longer is a finding */
#define FZ_STALL_MS 10000   /* one still running is aborted (below libFuzzer's -timeout=20);
                            ** FUZZ_SANDBOX_STALL_MS overrides it, to time a stall */

/* The fixture plugin. Everything it uses after loading is a local, so a
** snippet that replaces string.find or tp.json cannot break the next run
** before the clean check has noticed. */
static const char plugin_lua[] =
    "-- fz: the fixture of tests/fuzz/fuzz_sandbox.c\n"
    "local load, next, ipairs, type, getmetatable, setmetatable, rawequal, rawget =\n"
    "  load, next, ipairs, type, getmetatable, setmetatable, rawequal, rawget\n"
    "local find, gsub, byte, char = string.find, string.gsub, string.byte, string.char\n"
    "local G = _ENV\n"
    "\n"
    "-- bytes that were not UTF-8 come as U+F780..U+F7FF (EF 9E 80 .. EF 9F BF)\n"
    "local function unescape(src)\n"
    "  if not find(src, '\\239[\\158\\159]') then return src end\n"
    "  return (gsub(src, '\\239([\\158\\159])([\\128-\\191])', function(b2, b3)\n"
    "    return char(byte(b3) + (byte(b2) - 158) * 64)\n"
    "  end))\n"
    "end\n"
    "\n"
    "local function run(req)\n"
    "  local src = req.body\n"
    "  if type(src) ~= 'string' then return 400, { error = 'send a JSON string' } end\n"
    "  local f, err = load(unescape(src), '=snippet', 't', setmetatable({}, { __index = G }))\n"
    "  if not f then return 400, { error = err } end\n"
    "  return f()\n"
    "end\n"
    "\n"
    "-- every table a snippet can reach without a reference of its own: the\n"
    "-- globals, each table among them (libraries, tp, the denied io/os ...), tp's\n"
    "-- modules and the string metatable; with a copy of each as loaded\n"
    "local watched = {}\n"
    "local function watch(t)\n"
    "  if type(t) ~= 'table' then return end  -- a protected metatable: nothing to watch\n"
    "  for _, w in ipairs(watched) do if rawequal(w.t, t) then return end end\n"
    "  local copy = {}\n"
    "  for k, v in next, t do copy[k] = v end\n"
    "  watched[#watched + 1] = { t = t, copy = copy, mt = getmetatable(t) }\n"
    "end\n"
    "watch(G)\n"
    "watch(getmetatable(''))\n"
    "for _, v in next, G do if type(v) == 'table' then watch(v) end end\n"
    "for _, v in next, G.tp do if type(v) == 'table' then watch(v) end end\n"
    "watch(getmetatable(G.tp.json.array({})))\n"
    "watch(getmetatable(G.tp.json.object({})))\n"
    "-- the metatable of tp.fail's errors, which only a transaction can make\n"
    "local function setup()\n"
    "  local _, e = pcall(G.tp.fail, 400, 'fz', 'fz')\n"
    "  watch(getmetatable(e))\n"
    "end\n"
    "\n"
    "local function clean()\n"
    "  if not rawequal(getmetatable(''), watched[2].t) then return { clean = false } end\n"
    "  for _, w in ipairs(watched) do\n"
    "    if not rawequal(getmetatable(w.t), w.mt) then return { clean = false } end\n"
    "    for k, v in next, w.t do\n"
    "      if not rawequal(rawget(w.copy, k), v) then return { clean = false } end\n"
    "    end\n"
    "    for k, v in next, w.copy do\n"
    "      if not rawequal(rawget(w.t, k), v) then return { clean = false } end\n"
    "    end\n"
    "  end\n"
    "  return { clean = true }\n"
    "end\n"
    "\n"
    "return {\n"
    "  name = 'fz', version = '1.0.0', setup = setup,\n"
    "  migrations = {\n"
    "    [[CREATE TABLE fz_rows (id INTEGER PRIMARY KEY, n INTEGER NOT NULL, s TEXT NOT NULL);\n"
    "      WITH RECURSIVE fz_c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM fz_c WHERE x < 200)\n"
    "      INSERT INTO fz_rows (id, n, s) SELECT x, x * 7 % 13, printf('row-%03d', x) FROM fz_c;\n"
    "      CREATE TRIGGER fz_rows_no_insert BEFORE INSERT ON fz_rows\n"
    "        BEGIN SELECT RAISE(ABORT, 'fz_rows is read-only'); END;\n"
    "      CREATE TRIGGER fz_rows_no_update BEFORE UPDATE ON fz_rows\n"
    "        BEGIN SELECT RAISE(ABORT, 'fz_rows is read-only'); END;\n"
    "      CREATE TRIGGER fz_rows_no_delete BEFORE DELETE ON fz_rows\n"
    "        BEGIN SELECT RAISE(ABORT, 'fz_rows is read-only'); END;\n"
    "      CREATE TABLE fz_scratch (id INTEGER PRIMARY KEY, k TEXT, v);]],\n"
    "  },\n"
    "  routes = {\n"
    "    { method = 'POST', path = '/fz/run', auth = 'none', handler = run,\n"
    "      summary = 'Runs the body as a Lua chunk' },\n"
    "    { method = 'GET', path = '/fz/clean', auth = 'none', handler = clean,\n"
    "      summary = 'Whether the globals are as loaded' },\n"
    "  },\n"
    "}\n";

static const char config_text[] =
    "return {\n"
    "  data_dir = '%s/data', synchronous = 'off', sdk_dir = '" TP_SOURCE_DIR "/sdk',\n"
    "  plugin_dirs = { '%s/plugins' },\n"
    "  limits = { invocation_ms = %d },\n"
    "  tenants = { {\n"
    "    id = 'f', token_secret = 'fuzz-token-secret-0123456789abcdef', clock = 'manual',\n"
    "    plugins = { fz = {} },\n"
    "    plugin_limits = { fz = { instructions = %d, memory_bytes = %d } },\n"
    "  } },\n"
    "}\n";

static char dir[] = "/tmp/tidepool-fuzz-sandbox-XXXXXX";
static tpc_config cfg;
static tp_host host;
static tp_tenant *tenant;
static bool verbose;

/* the stall guard: a thread that aborts the main one when an input runs on */
static pthread_t main_thread;
static pthread_mutex_t guard_lock = PTHREAD_MUTEX_INITIALIZER;
static int64_t guard_since_ms;  /* 0: no input running */
static int64_t stall_ms = FZ_STALL_MS;

static int64_t now_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void die(const char *what, const char *err) {
  fprintf(stderr, "fuzz_sandbox: %s: %s\n", what, err);
  abort();
}

/* Under AddressSanitizer, an abort prints the stack it happened on: the one
** the stall guard interrupts is the one of interest. */
const char *__asan_default_options(void);
const char *__asan_default_options(void) { return "handle_abort=1"; }

static void *stall_guard(void *arg) {
  (void)arg;
  struct timespec tick = {0, 100 * 1000000L};
  for (;;) {
    nanosleep(&tick, NULL);
    pthread_mutex_lock(&guard_lock);
    if (guard_since_ms && now_ms() - guard_since_ms > stall_ms) {
      fprintf(stderr, "fuzz_sandbox: an input has run for more than %lld ms: the host is stalled "
              "(deadline %d ms, budget %d instructions); aborting the main thread where it is\n",
              (long long)stall_ms, FZ_DEADLINE_MS, FZ_INSTRUCTIONS);
      pthread_kill(main_thread, SIGABRT);
      guard_since_ms = 0;
    }
    pthread_mutex_unlock(&guard_lock);
  }
  return NULL;
}

static void guard(bool on) {
  pthread_mutex_lock(&guard_lock);
  guard_since_ms = on ? now_ms() : 0;
  pthread_mutex_unlock(&guard_lock);
}

static void shut_down(void) {
  tp_host_commit(&host);
  tp_host_close(&host);
  tpc_free(&cfg);
  tp_remove_tree(dir);
}

static void write_file(const char *path, const char *text) {
  FILE *f = fopen(path, "w");
  if (!f || fputs(text, f) < 0 || fclose(f) != 0) die(path, strerror(errno));
}

static tp_plugin *fixture(void) {
  tp_slot *s = tp__slot(tenant, "fz");
  if (!s || !s->current) die("the fixture plugin is not serving", s ? s->last_error : "no slot");
  return s->current;
}

int LLVMFuzzerInitialize(int *argc, char ***argv) {
  (void)argc;
  (void)argv;
  char err[2048], path[256], text[2048];
  tp_log_set_level(TP_LOG_OFF);
  if (!mkdtemp(dir)) die("mkdtemp", strerror(errno));
  snprintf(path, sizeof path, "%s/plugins", dir);
  if (mkdir(path, 0700) != 0) die(path, strerror(errno));
  snprintf(path, sizeof path, "%s/plugins/fz", dir);
  if (mkdir(path, 0700) != 0) die(path, strerror(errno));
  snprintf(path, sizeof path, "%s/plugins/fz/plugin.lua", dir);
  write_file(path, plugin_lua);
  snprintf(text, sizeof text, config_text, dir, dir, FZ_DEADLINE_MS, FZ_INSTRUCTIONS, FZ_MEMORY);
  if (tpc_load_string(text, "=fuzz_sandbox", dir, &cfg, err, sizeof err) != 0) die("config", err);
  if (tp_host_open(&host, &cfg, err, sizeof err) != 0) die("host", err);
  tenant = &host.tenants[0];
  fixture();
  atexit(shut_down);
  main_thread = pthread_self();
  pthread_t t;
  if (pthread_create(&t, NULL, stall_guard, NULL) != 0) die("pthread_create", "stall guard");
  pthread_detach(t);
  verbose = getenv("FUZZ_SANDBOX_VERBOSE") != NULL;
  if (getenv("FUZZ_SANDBOX_STALL_MS")) stall_ms = atoll(getenv("FUZZ_SANDBOX_STALL_MS"));
  return 0;
}

/* Appends data as a JSON string: UTF-8 as it is, control characters, quote
** and backslash escaped, every other byte as U+F700 + byte (the plugin's
** unescape turns those back). */
static void add_snippet(tp_buf *b, const uint8_t *data, size_t size) {
  tp_buf_addc(b, '"');
  for (size_t i = 0; i < size;) {
    uint8_t c = data[i];
    size_t n = c < 0x80 ? 1 : tp_utf8_seq_len((const char *)data + i, size - i);
    if (c == '"' || c == '\\') {
      tp_buf_addc(b, '\\');
      tp_buf_addc(b, (char)c);
    } else if (c < 0x20 || c == 0x7f) {
      tp_buf_printf(b, "\\u%04x", c);
    } else if (n == 0) {
      tp_buf_printf(b, "\\u%04x", 0xf700 + c);
      n = 1;
    } else {
      tp_buf_add(b, data + i, n);
    }
    i += n;
  }
  tp_buf_addc(b, '"');
}

static void check_closed(void);

/* Serves one request the way the HTTP server hands it to the host, then
** commits as the end of the loop iteration would. The caller frees
** res->body. */
static void serve(const char *method, const char *target, const tp_buf *body, tph_response *res) {
  static const tph_header json = {"content-type", 12, "application/json", 16};
  tph_request req = {.method = method, .target = target, .target_len = strlen(target),
                     .headers = &json, .nheaders = 1, .body = body ? body->data : "",
                     .body_len = body ? body->len : 0, .request_id = "fz"};
  memset(res, 0, sizeof *res);
  tp_buf_init(&res->body);
  tp_copy_str(res->request_id, sizeof res->request_id, req.request_id);
  res->method = method;
  tp_host_handle(&host, &req, res);
  check_closed();
  tp_host_commit(&host);
  tp_host_iteration_end(&host);
}

/* Before the commit: the request's savepoint was released or rolled back,
** and so was any tp.call's, so naming them fails (a COMMIT would hide one
** left open). */
static void check_closed(void) {
  sqlite3 *db = tenant->db.db;
  if (sqlite3_get_autocommit(db)) return;  /* no transaction: nothing could be open */
  if (sqlite3_exec(db, "RELEASE tp_request", NULL, NULL, NULL) == SQLITE_OK)
    die("after the request", "its savepoint was left open");
  if (sqlite3_exec(db, "RELEASE tp_call", NULL, NULL, NULL) == SQLITE_OK)
    die("after the request", "a tp.call savepoint was left open");
}

/* What must hold between two requests, whatever the last one did. */
static void check_idle(const char *after) {
  char why[256] = "";
  tps_db *d = &tenant->db;
  tp_plugin *p = fixture();
  if (!sqlite3_get_autocommit(d->db) || d->in_txn || host.nbatch != 0)
    snprintf(why, sizeof why, "a transaction is open after the commit");
  else if (d->owner)
    snprintf(why, sizeof why, "the store's owner is still '%s'", d->owner);
  else if (d->progress.fn)
    snprintf(why, sizeof why, "a progress handler is still installed");
  else if (tpwd_deadline_ms() != 0 || tpwd_expired())
    snprintf(why, sizeof why, "the watchdog is still armed");
  else if (p->running || p->ctx != TP_CTX_NONE || p->inv || p->call)
    snprintf(why, sizeof why, "the plugin still looks busy (ctx %d)", p->ctx);
  else if (p->killed || tenant->reset_pending || host.reset_pending)
    snprintf(why, sizeof why, "a killed plugin was not reset");
  else if (lua_gettop(p->L) != 0)
    snprintf(why, sizeof why, "the plugin's stack holds %d values", lua_gettop(p->L));
  else if (p->mem_limit && p->mem_bytes > p->mem_limit + (1 << 20))
    snprintf(why, sizeof why, "the plugin holds %zu bytes, over its cap", p->mem_bytes);
  if (why[0]) die(after, why);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  tp_buf body;
  tp_buf_init(&body);
  add_snippet(&body, data, size);
  tph_response res;
  guard(true);  /* until the host is ready for the next input: a reload can stall too */
  int64_t start = now_ms();
  serve("POST", "/v1/f/fz/run", &body, &res);
  int64_t ms = now_ms() - start;
  if (verbose)
    fprintf(stderr, "fuzz_sandbox: %zu bytes: %d %s in %lld ms: %.*s\n", size, res.status,
            res.error_code[0] ? res.error_code : "", (long long)ms,
            (int)(res.body.len > 300 ? 300 : res.body.len), res.body.data ? res.body.data : "");
  if (ms > FZ_MAX_MS) {
    fprintf(stderr, "fuzz_sandbox: the request took %lld ms (deadline %d ms, budget %d "
            "instructions) and answered %d %s\n%.*s\n", (long long)ms, FZ_DEADLINE_MS,
            FZ_INSTRUCTIONS, res.status, res.error_code,
            (int)(res.body.len > 2000 ? 2000 : res.body.len), res.body.data ? res.body.data : "");
    die("stall", "an input ran past the limits");
  }
  if (res.status < 200 || res.status > 599) die("run", "the answer has no HTTP status");
  tp_buf_free(&res.body);
  tp_buf_free(&body);
  check_idle("after the snippet");

  /* the next input starts from the plugin as loaded */
  serve("GET", "/v1/f/fz/clean", NULL, &res);
  bool clean = res.status == 200 && res.body.len == 14 &&
               memcmp(res.body.data, "{\"clean\":true}", 14) == 0;
  tp_buf_free(&res.body);
  if (!clean && tp_host_reload(&host, "f", "fz", NULL) != 0)
    die("reloading the fixture plugin", tp__slot(tenant, "fz")->last_error);
  char *err = NULL;
  if (sqlite3_exec(tenant->db.db, "DELETE FROM fz_scratch", NULL, NULL, &err) != SQLITE_OK)
    die("emptying fz_scratch", err ? err : "?");
  check_idle("after the clean check");
  guard(false);
  ms = now_ms() - start;
  if (ms > FZ_MAX_MS) die("stall", "the host took too long to get ready for the next input");
  return 0;
}
