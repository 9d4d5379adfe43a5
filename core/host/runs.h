/*
** runs.h - recorded runs: one JSON document per top-level invocation of a
** plugin (a route handler, a job, an event delivery) that failed or that an
** operator asked to record, kept in the tenant's database for replay.
**
** A run holds what the plugin saw (its input, the host's time and random
** seed), what came out (status and body, or the error with its traceback,
** or the limit that was hit) and what it cost (instructions against the
** budget, memory peak, duration). `tidepool test --replay` and the kit's
** kit.replay() run it again against the plugin as it is now.
**
** Storage: the host-owned table _tp_runs of the tenant's SQLite file. The
** row is written after the invocation's savepoint has been released or
** rolled back, so a failed invocation's record survives its rollback; it
** commits with the loop iteration's batch (a batch whose COMMIT fails loses
** its runs with everything else). Plugins cannot read the table: the
** authorizer confines them to tables named after themselves. At most
** TPRUN_KEEP runs per tenant are kept (the oldest go first), and one
** document is at most about TPRUN_MAX_DOC bytes: a body over TPRUN_MAX_BODY
** is replaced by {"truncated": true, "bytes": n, "head": "..."}, an error
** message over TPRUN_MAX_ERROR is cut with a marker.
**
** Recording on demand (tprun_arm) is kept in memory: it does not survive a
** restart. tprun_stats keeps, per plugin and route/job/event, the last and
** peak instructions of the generation serving now, for /metrics and for the
** budget table of `tidepool test`; it allocates only when it first sees a
** name.
*/
#ifndef TP_RUNS_H
#define TP_RUNS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "base/buf.h"
#include "lua/plugin.h"
#include "store/store.h"

#define TPRUN_KEEP 200            /* runs kept per tenant */
#define TPRUN_MAX_BODY 16384      /* bytes of one body (request, response, payload) */
#define TPRUN_MAX_ERROR 8192      /* bytes of the error message and traceback */
#define TPRUN_MAX_HEADERS 8192    /* bytes of recorded header values */
#define TPRUN_MAX_DOC 65536       /* about the most one document can hold */
#define TPRUN_MAX_ARMS 32         /* armed plugin/route pairs per tenant */
#define TPRUN_MAX_COUNT 200       /* runs one arming call may ask for */
#define TPRUN_NAME_MAX 280        /* "METHOD /pattern", a job or an event name */
/* What a run keeps of a personal route's bodies (tp_route.personal). */
#define TPRUN_REDACTED "{\"redacted\":\"personal data\"}"

/* ---- statistics: instructions per plugin and route/job/event */

typedef struct tprun_stat {
  char plugin[33];
  char kind[8];                   /* "route", "job" or "event" */
  char name[TPRUN_NAME_MAX];
  uint64_t hash;
  uint64_t generation;            /* peak and calls restart with a new generation */
  uint64_t calls;
  int64_t last, peak, budget;
} tprun_stat;

typedef struct tprun_stats {
  tprun_stat *items;
  int n, cap;
} tprun_stats;

/* Notes one invocation's instructions (used of budget). */
void tprun_stats_note(tprun_stats *s, const char *plugin, uint64_t generation, const char *kind,
                      const char *name, int64_t used, int64_t budget);
/* Folds src into dst: calls add up, peaks take the larger, whatever the generation. */
void tprun_stats_merge(tprun_stats *dst, const tprun_stats *src);
void tprun_stats_free(tprun_stats *s);
/* Appends the Prometheus samples of s (no # HELP lines; the caller writes those):
** tidepool_instructions_peak, _last and tidepool_instruction_budget. */
void tprun_stats_metrics(const tprun_stats *s, const char *tenant, tp_buf *out);
/* The budget table `tidepool test` prints, one line per entry, sorted. */
void tprun_stats_table(const tprun_stats *s, tp_buf *out);

/* ---- one tenant's runs */

typedef struct tprun_arm {
  char plugin[33];
  char route[TPRUN_NAME_MAX];     /* "" = every invocation of the plugin */
  int left;
} tprun_arm;

typedef struct tprun_log {
  tps_db *db;
  sqlite3_stmt *insert, *trim, *get, *list;
  tprun_arm arms[TPRUN_MAX_ARMS];
  int narms;
  tprun_stats stats;
} tprun_log;

/* What the host knows about one finished invocation. */
typedef struct tprun_info {
  const char *tenant, *plugin, *version;
  uint64_t generation;
  const char *kind;               /* "route", "job", "event" */
  const char *name;
  const char *request_id;
  const char *reason;             /* "error" or "armed" */
  const char *tenant_plugins;     /* JSON array of the tenant's serving plugins, or NULL */
  int64_t at_ms;                  /* wall time it finished */
  const tp_invocation *inv;       /* now_ms, seed, draws */
  bool ok;                        /* committed (its savepoint was released) */
  int status;                     /* routes: the answer's status; tasks: 0 */
  const char *code;               /* error code, or NULL */
  const char *error;              /* error message with traceback, or NULL */
  const char *limit;              /* "budget_exceeded", "memory_exceeded" or NULL */
  const char *body;               /* routes: the answer's JSON body */
  size_t body_len;
  int64_t used, budget, step;     /* instructions; counted every step */
  size_t mem_peak, mem_cap;
  double ms;
} tprun_info;

/* Creates _tp_runs if needed and prepares the statements (no transaction may
** be open). Returns 0, or -1 with err. */
int tprun_open(tprun_log *l, tps_db *db, char *err, size_t errcap);
void tprun_close(tprun_log *l);

/* Arms recording of the next count invocations of plugin (route NULL: any of
** them; else only that "METHOD /pattern"). count 0 disarms. Replaces an
** earlier arming of the same pair. -1 when every slot is taken. */
int tprun_arm_set(tprun_log *l, const char *plugin, const char *route, int count);
/* True (and one taken) if an invocation of plugin's kind/name is armed. */
bool tprun_arm_take(tprun_log *l, const char *plugin, const char *kind, const char *name);
/* Appends the armed pairs as a JSON array. */
void tprun_arms_json(const tprun_log *l, tp_buf *out);

/* Writes one run (input: the JSON object the plugin saw) with the host's
** privileges in whatever transaction is open, then drops the oldest beyond
** TPRUN_KEEP. Returns 0 with *id, or -1. */
int tprun_record(tprun_log *l, const tprun_info *info, const char *input, size_t input_len,
                 int64_t *id);
/* Appends {"runs":[summaries, newest first],"next":id|null}; plugin and kind
** may be NULL; after 0 means from the newest. 0 or -1. */
int tprun_list(tprun_log *l, const char *plugin, const char *kind, int limit, int64_t after,
               tp_buf *out);
/* Appends run id's full document: 1, 0 when there is none, -1 on error. */
int tprun_get(tprun_log *l, int64_t id, tp_buf *out);

/* ---- building documents (pure; tested by tests/unit/test_runs.c) */

/* True for request headers a run never records: authorization, x-api-key,
** cookie, proxy-authorization (names in lower case, as the parser gives them). */
bool tprun_redacted(const char *name, size_t n);
/* Appends JSON text json (known to be valid) as a value, or when it is longer
** than cap the marker {"truncated":true,"bytes":n,"head":"<first bytes>"}. */
void tprun_add_json_capped(tp_buf *out, const char *json, size_t n, size_t cap);
/* Appends s as a JSON string of at most cap bytes, marked when cut. */
void tprun_add_str_capped(tp_buf *out, const char *s, size_t n, size_t cap);
/* The input of a route invocation as the handler saw it. The body is kept
** twice: "raw_body", its exact bytes (what a replay sends), and "body", the
** same as JSON for reading (null when body_is_json is false). */
void tprun_route_input(tp_buf *out, const tp_route *r, const tp_call *call, bool body_is_json);
/* The whole document (without its id) for info and input. */
void tprun_document(tp_buf *out, const tprun_info *info, const char *input, size_t input_len);
/* 12345678 -> "12,345,678" */
void tprun_fmt_count(char *out, size_t cap, int64_t v);

#endif
