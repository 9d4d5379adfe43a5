/*
** roles.c - which roles may call which admin route: one table, read top to
** bottom, the first rule whose method and pattern match decides.
**
** A rule names a route as it is declared (its pattern, "/referral/stores/
** {id:str}/performance"), or a family of routes by a pattern ending in '*'.
** The owner may call everything; a rule lists the other roles it admits.
** A store manager is admitted only by rules that name the path parameter
** holding a store id, and only when that parameter is its own store: the
** host checks it here, before any Lua runs, so a page cannot widen it.
**
** The orders plugin's list, detail and refund and the members plugin's list,
** lookup and profile take ?store= and keep to it; other routes admit no store
** manager.
*/
#include "host/host_int.h"

#include "base/url.h"

#include <stdio.h>
#include <string.h>

#define OWN TPC_ROLE_OWNER
#define OPS TPC_ROLE_OPERATOR
#define SM TPC_ROLE_STORE_MANAGER
#define FIN TPC_ROLE_FINANCE
#define DEV TPC_ROLE_DEVELOPER

typedef struct role_rule {
  const char *method;          /* "*": any */
  const char *path;            /* a declared pattern; a trailing '*' matches any rest */
  unsigned roles;              /* who besides the owner may call it */
  const char *store_param;     /* a store manager only when this parameter is its store */
} role_rule;

static const role_rule rules[] = {
  /* the host's own */
  {"*", "/console/users*", 0, NULL},
  {"GET", "/plugins", DEV | OPS, NULL},
  {"GET", "/plugins/{name}/source", DEV | OPS, NULL},
  {"GET", "/campaigns*", DEV | OPS | FIN, NULL},     /* a campaign's state and timeline */
  {"POST", "/campaigns/{name}/check", DEV | OPS, NULL},
  {"POST", "/campaigns/{name}/preview", DEV | OPS, NULL},
  {"POST", "/reload", DEV | OPS, NULL},
  {"*", "/jobs*", DEV, NULL},
  {"*", "/events*", DEV, NULL},
  {"*", "/runs*", DEV, NULL},
  {"GET", "/clock", DEV | OPS | FIN, NULL},
  {"POST", "/clock/advance", DEV | OPS, NULL},
  {"GET", "/openapi.json", DEV | OPS | FIN, NULL},
  /* a store and its figures: a store manager's own (a path parameter, or a
  ** query parameter that filters the report: "?store") */
  {"GET", "/referral/stores/{id:str}/performance", OPS | FIN | SM, "id"},
  {"GET", "/referral/stores/{id:str}/orders", OPS | FIN | SM, "id"},
  {"GET", "/analytics/overview", OPS | FIN | SM, "?store"},
  {"GET", "/analytics/funnel", OPS | FIN | SM, "?store"},
  {"GET", "/analytics/products", OPS | FIN | SM, "?store"},
  {"GET", "/analytics/campaigns", OPS | FIN | SM, "?store"},
  /* money; a store manager sees and refunds its own store's orders */
  {"GET", "/orders", FIN | SM, "?store"},
  {"GET", "/orders/{id:int}", FIN | SM, "?store"},
  {"POST", "/orders/{id:int}/refund", FIN | SM, "?store"},
  {"*", "/orders*", FIN, NULL},
  {"*", "/payments*", FIN, NULL},
  {"*", "/referral/withdrawals*", FIN, NULL},
  {"GET", "/points/report", FIN | OPS, NULL},
  {"GET", "/tiers/report", FIN | OPS, NULL},
  {"GET", "/referral/performance", FIN | OPS, NULL},
  /* reports */
  {"POST", "/analytics/rollup", OPS | FIN | DEV, NULL},
  {"GET", "/analytics/*", OPS | FIN, NULL},
  /* the customer pool, campaigns and activities; a store manager reads the members its
  ** store first brought */
  {"GET", "/members", OPS | SM, "?store"},
  {"GET", "/members/lookup", OPS | SM, "?store"},
  {"GET", "/members/{id}", OPS | SM, "?store"},
  {"*", "/members*", OPS, NULL},
  {"*", "/rfm*", OPS, NULL},
  {"*", "/flash-sales*", OPS, NULL},
  {"*", "/group-buys*", OPS, NULL},
  {"*", "/bargain*", OPS, NULL},
  {"*", "/coupons*", OPS, NULL},
  {"*", "/points*", OPS, NULL},
  {"*", "/tiers*", OPS, NULL},
  {"*", "/signin*", OPS, NULL},
  {"*", "/referral*", OPS, NULL},
  {"*", "/catalog*", OPS, NULL},
  {"*", "/friend_assist*", OPS, NULL},
  {"*", "/group_chain*", OPS, NULL},
  /* deliveries to others' systems */
  {"*", "/webhooks*", DEV, NULL},
  {"*", "/notify*", DEV, NULL},
  /* anything else: the owner's */
  {"*", "*", 0, NULL},
};

static bool rule_matches(const role_rule *rule, const char *method, const char *path) {
  if (strcmp(rule->method, "*") != 0 && strcmp(rule->method, method) != 0) return false;
  size_t n = strlen(rule->path);
  if (n && rule->path[n - 1] == '*') return strncmp(rule->path, path, n - 1) == 0;
  return strcmp(rule->path, path) == 0;
}

/* Counts the query's store parameters, and those equal to want. */
typedef struct store_count {
  const char *key, *want;
  int seen, equal;
} store_count;

static int count_store(void *ud, const char *key, size_t klen, const char *value, size_t vlen) {
  store_count *c = ud;
  if (klen != strlen(c->key) || memcmp(key, c->key, klen) != 0) return 0;
  c->seen++;
  c->equal += vlen == strlen(c->want) && memcmp(value, c->want, vlen) == 0;
  return 0;
}

/* Whether the store parameter named by the rule (a path parameter, or
** "?name" for the query) is the store manager's store: exactly once. */
static bool own_store(const role_rule *rule, const tp_principal *who, const tpr_match *m,
                      const char *query, size_t qlen) {
  if (!rule->store_param || !who->store[0]) return false;
  if (rule->store_param[0] == '?') {
    store_count c = {rule->store_param + 1, who->store, 0, 0};
    return tp_query_each(query, qlen, count_store, &c) == 0 && c.seen == 1 && c.equal == 1;
  }
  for (int i = 0; i < m->nparams; i++)
    if (strcmp(m->params[i].name, rule->store_param) == 0)
      return strcmp(m->params[i].value, who->store) == 0;
  return false;
}

bool tp__role_admits(const tp_principal *who, const tp_route *r, const tpr_match *m,
                     const char *query, size_t qlen, tph_response *res) {
  const role_rule *rule = NULL;
  for (size_t i = 0; i < sizeof rules / sizeof *rules && !rule; i++)
    if (rule_matches(&rules[i], r->method, r->path)) rule = &rules[i];
  if (who->role == TPC_ROLE_OWNER) return true;
  if (!rule || !(rule->roles & (unsigned)who->role)) {
    tph_error(res, 403, "role_forbidden", "the %s role may not call %s %s", tpc_role_name(who->role),
              r->method, r->path);
    return false;
  }
  if (who->role != TPC_ROLE_STORE_MANAGER || own_store(rule, who, m, query, qlen)) return true;
  tph_error(res, 403, "store_forbidden", "a store manager sees only store '%s'%s", who->store,
            rule->store_param && rule->store_param[0] == '?' ? " (send store=<it> once)" : "");
  return false;
}

unsigned tp__role_mask(const char *method, const char *path) {
  for (size_t i = 0; i < sizeof rules / sizeof *rules; i++)
    if (rule_matches(&rules[i], method, path)) return rules[i].roles | OWN;
  return OWN;
}
