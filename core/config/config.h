/*
** config.h - the host's configuration file.
**
** The file is Lua returning a table (see scripts/demo/tidepool.conf.lua). It runs
** in a small environment (string, table, math and env(name [, default])) and is
** validated strictly: an unknown key, a wrong type or a bad value is an error
** that names the key's path, so a typo never silently falls back to a default.
** Relative paths are relative to the file's own directory.
*/
#ifndef TP_CONFIG_H
#define TP_CONFIG_H

#include <lua.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "base/ratelimit.h"
#include "base/token.h"

#define TPC_MAX_TENANTS 100000     /* brands in one config (open_tenants.lazy for more than a few hundred) */
#define TPC_MAX_PLUGINS 64           /* plugins and campaigns of one tenant */
#define TPC_MAX_CAMPAIGN_NAME 23     /* "campaign_" + 23 = a plugin name's 32 */
#define TPC_MAX_KEYS 16

typedef struct tpc_limits {
  int64_t max_connections;     /* open client connections */
  int64_t max_header_bytes;    /* request line + headers */
  int64_t max_headers;         /* header fields per request */
  int64_t max_body_bytes;      /* decoded body (after chunked framing) */
  int64_t header_timeout_ms;   /* from a request's first byte to its last header */
  int64_t body_timeout_ms;     /* from the last header to the last body byte */
  int64_t idle_timeout_ms;     /* keep-alive connection without a request, from its last answer */
  int64_t shutdown_timeout_ms; /* how long a graceful stop waits for clients */
  int64_t lua_instructions;    /* per invocation of a plugin (default for plugin_limits) */
  int64_t lua_memory_bytes;    /* per plugin state (default for plugin_limits) */
  int64_t load_instructions;   /* loading plugin.lua and its modules */
  int64_t invocation_ms;       /* wall-clock deadline of one invocation (watchdog.h) */
  int64_t load_ms;             /* wall-clock deadline of loading a plugin (its Lua) */
  int64_t migration_ms;        /* of applying its pending migrations (the whole host waits) */
  int64_t job_max_attempts;    /* runs of a job or event delivery before it is dead-lettered */
  int64_t job_retry_base_ms;   /* first retry delay; doubles per attempt */
  int64_t job_retry_max_ms;    /* ceiling of the retry delay */
  int64_t admin_key_failures;  /* wrong admin keys from one address in a minute before it is locked out */
  int64_t page_cache_bytes;    /* all brands' SQLite memory together (sqlite3_soft_heap_limit64); 0: none */
} tpc_limits;

#define TPC_MAX_PROXIES 16

typedef struct tpc_plugin {
  char name[33];               /* a campaign's is "campaign_" and its file's base name */
  char *script;                /* a campaign script's path; NULL for a plugin folder */
  int config_ref;              /* the plugin's config table in tpc_config.L */
  int64_t instructions;        /* budget per invocation */
  int64_t memory_bytes;        /* cap of its Lua state */
  int64_t deadline_ms;         /* of each invocation it starts; 0: limits.invocation_ms */
} tpc_plugin;

#define TPC_MAX_DESTINATIONS 32
#define TPC_MAX_SECRETS 16

/* A secret a destination's calls may name ({{secret:NAME}} in a header, a
** sign scheme's key, tp.crypto.rsa_sign and aes_gcm_decrypt); its value never
** reaches plugin code, logs or recorded runs. One with line breaks (a PEM
** key) cannot go in a header. */
typedef struct tpc_secret {
  char name[33];
  char *value;
} tpc_secret;

/* How the host signs a destination's calls (sender.c build_headers). */
typedef enum {
  TPC_SIGN_NONE,
  TPC_SIGN_HMAC,        /* sign = "NAME": X-Tidepool-Timestamp, X-Tidepool-Signature */
  TPC_SIGN_WECHATPAY2,  /* sign = {scheme = "wechatpay2", key, mchid, serial}: Authorization */
} tpc_sign_scheme;

/* Somewhere a tenant's plugins may call (tp.http, net/outbound.h). */
typedef struct tpc_destination {
  char name[33];
  char *url;                   /* the base: http(s)://host[:port][/prefix]; a call's path follows */
  char (*plugins)[33];         /* the plugins that may call it */
  int nplugins;
  int64_t timeout_ms;          /* of one attempt, connecting included (default 10000) */
  int64_t max_response_bytes;  /* (default 1 MiB) */
  int64_t max_attempts;        /* before the call is given up (default 5) */
  int64_t retry_base_ms;       /* first retry delay, doubling up to 5 minutes (default 1000) */
  char *ca_file;               /* NULL: the system's CA store */
  tpc_secret *secrets;
  int nsecrets;
  const tpc_secret *sign;      /* signs each attempt with this secret (sign_scheme says how) */
  tpc_sign_scheme sign_scheme;
  char *sign_mchid;            /* wechatpay2: the merchant id and its API certificate's serial */
  char *sign_serial;
  /* errcode = true (WeChat's server APIs): an answer is a success only when
  ** its body's errcode is absent or 0; -1 (system busy) is retried, any other
  ** errcode is final. token = {path, appid, secret} implies it. */
  bool errcode;
  /* drop = {"session_key", ...}: fields the host removes from an answer's JSON
  ** before a plugin's reply holds it (a secret WeChat hands back) */
  char (*drop)[65];
  int ndrop;
  /* token = {path = "/cgi-bin/stable_token", appid = "...", secret = "NAME"}:
  ** the host fetches an access_token with the app secret (POST
  ** {grant_type, appid, secret}), keeps it in memory and appends
  ** access_token=... to every call's query (host/sender.c). NULL: none. */
  char *token_path;
  char *token_appid;
  const tpc_secret *token_secret;
} tpc_destination;

/* What a console user or an admin key may do (host/roles.c holds the table
** of which admin routes each role may call). A bit each, so a route lists
** the roles it admits as a mask. */
typedef enum {
  TPC_ROLE_OWNER = 1,          /* everything; every plain api_keys string is one */
  TPC_ROLE_OPERATOR = 2,       /* campaigns, activities, members, reports */
  TPC_ROLE_STORE_MANAGER = 4,  /* its own store's figures only */
  TPC_ROLE_FINANCE = 8,        /* orders, refunds, money reports */
  TPC_ROLE_DEVELOPER = 16,     /* plugins, runs, jobs */
} tpc_role;
#define TPC_MAX_STORE 32       /* a store id's bytes */

/* The role of name ("owner", "operator", "store_manager", "finance",
** "developer"), or 0 when it is none. */
tpc_role tpc_role_parse(const char *name);
const char *tpc_role_name(tpc_role r);

typedef struct tpc_tenant {
  char id[TPT_MAX_ID + 1];
  char *token_secret;
  size_t token_secret_len;
  unsigned char api_keys[TPC_MAX_KEYS][32];  /* SHA-256 digests */
  int napi_keys;
  /* each key's role and, for a store manager, its store: a plain string in
  ** api_keys is an owner's; {key = "...", role = "store_manager", store = "hz-west"} */
  tpc_role key_roles[TPC_MAX_KEYS];
  char key_stores[TPC_MAX_KEYS][TPC_MAX_STORE + 1];
  char timezone[64];
  bool manual_clock;           /* a test clock that only POST .../clock/advance moves */
  int track_retention_days;    /* raw analytics events are kept this long (store/track.h) */
  int node;                    /* its owner in cfg->nodes (cluster.owners); -1 without a cluster */
  tpc_plugin *plugins;         /* sorted by name */
  int nplugins;
  tprl_limits rate_limits;     /* per route class and caller (ratelimit.h) */
  tpc_destination *destinations;  /* http = { name = {...} }, sorted by name */
  int ndestinations;
} tpc_tenant;

typedef enum { TPC_SYNC_OFF, TPC_SYNC_NORMAL, TPC_SYNC_FULL, TPC_SYNC_EXTRA } tpc_sync;

/* A node of a cluster: one tidepool process serving some of the brands. */
#define TPC_MAX_NODES 64
typedef struct tpc_node {
  char name[33];
  char listen[72];             /* "host:port" as written: where the front reaches it */
} tpc_node;

/* backup = {dir, every_seconds, keep}: each brand's database copied online
** (store/backup.h) every every_seconds of wall time, the keep newest kept. */
typedef struct tpc_backup {
  char *dir;                   /* NULL: no backups configured */
  int64_t every_seconds;       /* 0: only on request (POST /admin/{t}/backups, the CLI) */
  int64_t keep;
} tpc_backup;

typedef struct tpc_config {
  char *path;                  /* the file, as given */
  char *dir;                   /* its directory */
  char listen_host[64];
  int listen_port;
  char *data_dir;
  char **plugin_dirs;
  int nplugin_dirs;
  tpc_sync synchronous;
  char log_level[8];
  tpc_limits limits;
  char *sdk_dir;               /* where require() looks after the plugin's own folder */
  unsigned char admin_keys[TPC_MAX_KEYS][32];  /* host-wide admin API (SHA-256 digests) */
  int nadmin_keys;
  char *cli_admin_key;         /* the first admin key as written, for `tidepool reload` */
  /* proxies (nginx in front) whose X-Forwarded-For names the client: its
  ** last address is taken as the client's (admin key guessing counts by it) */
  char trusted_proxies[TPC_MAX_PROXIES][48];
  int ntrusted_proxies;
  tpc_backup backup;
  /* open_tenants = {lazy = true, idle_seconds = 300}: a brand is opened on its
  ** first request, due task or call out, and closed after idle_seconds without
  ** any (host/brands.c); false: every brand is opened at start and stays open */
  bool lazy_tenants;
  int64_t idle_seconds;
  /* cluster = {nodes = {name = "host:port", ...}, owners = {tenant = name, ...}}:
  ** several processes share the brands (README "Shards behind nginx"); once
  ** tpc_select_node has run, tenants holds this node's and the others follow */
  tpc_node *nodes;
  int nnodes;
  const tpc_node *self;        /* the node this process is; NULL until selected */
  /* console = {dir, vendor_dir, session_seconds, sign_in_failures}: the web
  ** console at /console/ (host/console.c) */
  char *console_dir;           /* our HTML, CSS and JS (default: core/host/console of the source) */
  char *vendor_dir;            /* Debian's libjs-* files (default /usr/share/javascript) */
  int64_t session_seconds;     /* a console session's life (default 8 h) */
  int64_t sign_in_failures;    /* wrong passwords for one user before a 15-minute lock-out (default 5) */
  int64_t password_iterations; /* PBKDF2-HMAC-SHA256 iterations of a new password (default 600000) */
  tpc_tenant *tenants;
  int ntenants;
  int nforeign;                /* tenants[ntenants .. ntenants + nforeign): other nodes' */
  lua_State *L;                /* keeps the plugin config tables alive */
} tpc_config;

/* Loads and validates path. Returns 0, or -1 with a message in err. */
int tpc_load(const char *path, tpc_config *cfg, char *err, size_t errcap);
/* The same from a string (tests); chunkname names it in errors. */
int tpc_load_string(const char *text, const char *chunkname, const char *dir,
                    tpc_config *cfg, char *err, size_t errcap);
void tpc_free(tpc_config *cfg);

/* The destination name of t, or NULL. */
const tpc_destination *tpc_find_destination(const tpc_tenant *t, const char *name);
/* Whether plugin may call d. */
bool tpc_destination_allows(const tpc_destination *d, const char *plugin);
/* The value of d's secret name (its length in *len), or NULL. */
const char *tpc_destination_secret(const tpc_destination *d, const char *name, size_t *len);
/* Appends in[0..n) to out with every {{secret:NAME}} replaced by d's secret
** NAME (out NULL: only checks). 0, or -1 with err naming an unknown secret. */
int tpc_expand_secrets(const tpc_destination *d, const char *in, size_t n, struct tp_buf *out,
                       char *err, size_t errcap);
/* The same for a call's path and query: each secret percent-encoded (a
** code2session's appsecret=..., say). */
int tpc_expand_secrets_url(const tpc_destination *d, const char *in, size_t n, struct tp_buf *out,
                           char *err, size_t errcap);

const tpc_tenant *tpc_find_tenant(const tpc_config *cfg, const char *id, size_t n);
/* Before tpc_select_node: tenant is served by node (a move, store/owners.h).
** 0, or -1 when either is not in the cluster. */
int tpc_set_owner(tpc_config *cfg, const char *tenant, const char *node);
/* Keeps only node name's brands in tenants (the others move behind them, to
** nforeign) and sets self. 0, or -1 with err (no cluster, no such node). */
int tpc_select_node(tpc_config *cfg, const char *name, char *err, size_t errcap);

/* Pushes a deep copy of the plugin's config table onto L. Returns 0, or -1
** with a message in err if it holds something other than plain data. */
int tpc_push_plugin_config(const tpc_config *cfg, const tpc_plugin *p, lua_State *L,
                           char *err, size_t errcap);
/* Adds the campaign script at path (used as given, unlike the config's) to
** tenant t as plugin "campaign_<base name>", replacing one of that name.
** Returns 0, or -1 with a message in err. */
int tpc_add_campaign(tpc_config *cfg, tpc_tenant *t, const char *path, char *err, size_t errcap);
/* A plugin name: 1-32 of [a-z0-9_], starting with a letter, not ending with '_'. */
bool tpc_valid_plugin_name(const char *s);
/* Parses "host:port" (port 0 = any free port). */
int tpc_parse_listen(const char *s, char *host, size_t cap, int *port);
/* Where tenant id keeps its file in data folder dir: "<dir>/<id><suffix>"
** (suffix ".db", ".analytics.db", ".db.lock"; config.h's data_dir). */
void tpc_tenant_file(const char *dir, const char *id, const char *suffix, char *out, size_t cap);
/* Resolves rel against dir unless it is absolute; caller frees. */
char *tpc_resolve_path(const char *dir, const char *rel);

#endif
