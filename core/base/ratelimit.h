/*
** ratelimit.h - token buckets that turn a flood away before any Lua runs.
**
** What: a brand's config (tenants[i].rate_limits) gives, per route class
** (read, write, buy, join, help, claim, admin), a rate and a burst for up to
** four identities of the caller:
**   user     the member id of the request's token (after a merge: the
**            survivor's, alias.h), so one person's requests count together;
**   address  the client's address: the peer's, or X-Forwarded-For's last
**            address when the peer is a trusted proxy (host/gate.c);
**   device   the X-Device-Id the mini-program sends (1-64 printable ASCII, no
**            spaces; without one, no device bucket). The client says it: a
**            device bucket slows a script that keeps one, never more;
**   key      the X-Api-Key of an admin route (class admin only).
** A request of a class passes only if every bucket of the class that applies
** to it (a route without a user has no user bucket) has a token; it then takes
** one from each. Otherwise nothing is taken and the answer is 429 rate_limited
** with Retry-After (whole seconds, at least 1). The host checks after
** authentication (the user and the key must be known, and a wrong key is the
** keyguard's, keyguard.h) and before the handler's savepoint opens: a refused
** request costs a hash and a few compares, and runs no Lua (host/gate.c,
** tp__rate_admit, reads the identities from the request and answers the 429).
**
** Why here and not in a plugin: a scalper's loop must not reach the VM or the
** store at all, and a limit per address or per key belongs to no plugin.
**
** How: a bucket is one number, its theoretical arrival time (the generic cell
** rate algorithm, equivalent to a token bucket of size burst refilled at rate):
** a request at now passes if tat - now <= (burst - 1) * interval, and then
** tat = max(tat, now) + interval. The table is allocated once with a fixed
** number of slots, 8-way set associative by a keyed 64-bit hash of (brand,
** class, identity kind, identity); no allocation on the hot path. When a set is
** full, the entry that refilled longest ago makes room: a flood of identities
** can only make the host forget, and forgetting lets through, never refuses
** wrongly. Buckets run on the monotonic clock, not a brand's manual test clock,
** and live only in memory: a restart forgets them.
**
** A route's class is its manifest's rate_class (lua/plugin.h), by default read for
** GET and HEAD and write for the other methods; every admin route is admin.
*/
#ifndef TP_RATELIMIT_H
#define TP_RATELIMIT_H

#include <lua.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define TPRL_SLOTS (1 << 16)  /* 16 bytes each: 1 MiB for the whole host */

typedef enum {
  TPRL_READ, TPRL_WRITE, TPRL_BUY, TPRL_JOIN, TPRL_HELP, TPRL_CLAIM, TPRL_ADMIN, TPRL_NCLASSES
} tprl_class;

typedef enum { TPRL_USER, TPRL_ADDRESS, TPRL_DEVICE, TPRL_KEY, TPRL_NKINDS } tprl_kind;

typedef struct tprl_rate {
  int64_t interval_us;         /* one token per interval; 0: no limit */
  int64_t tolerance_us;        /* (burst - 1) * interval */
} tprl_rate;

/* A brand's limits, as its config sets them. */
typedef struct tprl_limits {
  tprl_rate rate[TPRL_NCLASSES][TPRL_NKINDS];
  bool any;                    /* some rate is set: else the check is skipped */
} tprl_limits;

typedef struct tprl_table tprl_table;

/* Who is asking: ids[kind] (NULL or "": that bucket does not apply). */
typedef struct tprl_who {
  const char *id[TPRL_NKINDS];
  size_t len[TPRL_NKINDS];
} tprl_who;

/* A table of slots entries (a power of two, at least 8), its hash keyed by
** seed. NULL when out of memory. */
tprl_table *tprl_new(size_t slots, uint64_t seed);
void tprl_free(tprl_table *t);

/* Takes a token from every bucket of class cls that applies to who, or none.
** Returns 0 when the request may pass, else the microseconds until it could
** (> 0), with the kind of the bucket that refused in *refused. */
int64_t tprl_take(tprl_table *t, const tprl_limits *l, const char *brand, tprl_class cls,
                  const tprl_who *who, int64_t now_us, tprl_kind *refused);

/* "this member", "this address", ...: whose bucket refused, for a 429's message. */
const char *tprl_kind_whose(tprl_kind kind);

/* "buy" -> TPRL_BUY; -1 for an unknown name. */
int tprl_class_find(const char *name);
const char *tprl_class_name(tprl_class cls);
/* The classes a route may declare, "read, write, ..." (no admin), for errors. */
const char *tprl_route_classes(void);

/* Writes l as "buy.user 1/500ms burst 5, read.address ..." into out ("none"
** without limits), for `tidepool config`. */
void tprl_describe(const tprl_limits *l, char *out, size_t cap);

/* Reads a brand's rate_limits table at idx of L into l (nil: none). Returns 0,
** or -1 with a message in err that starts with the path below rate_limits
** (".buy.user.per_second: must be ...") or with ": " for the table itself. */
int tprl_load(lua_State *L, int idx, tprl_limits *l, char *err, size_t errcap);

#endif
