/*
** cluster.c - the nginx configuration of a cluster (cluster.h).
*/
#include "cli/cluster.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>

#include "base/buf.h"
#include "base/clock.h"
#include "cli/adminclient.h"
#include "config/config.h"
#include "store/owners.h"

const char tpcmd_usage_cluster[] =
    "usage: tidepool cluster nginx --config FILE [--listen HOST:PORT] [--full PREFIX]\n"
    "       tidepool cluster move TENANT --to NODE --config FILE [--nginx PREFIX]\n"
    "                             [--listen HOST:PORT]\n"
    "\n"
    "Prints nginx's configuration for the cluster in FILE (cluster = {nodes, owners}):\n"
    "an upstream per node, a map from each brand to its owner's upstream, and a server\n"
    "on --listen (default 127.0.0.1:8080) routing /v1/{tenant}/ and /admin/{tenant}/\n"
    "by it. Without --full it is for nginx's http block (/etc/nginx/conf.d/); with\n"
    "--full PREFIX it is a whole nginx.conf for `nginx -p PREFIX -c FILE`, in the\n"
    "foreground, its pid, logs and temporary files under PREFIX. Render it again and\n"
    "reload nginx (nginx -s reload) after the owners change.\n"
    "\n"
    "\n"
    "move: moves TENANT to NODE while both serve: TENANT's node pauses it (503,\n"
    "Retry-After: 1), commits and closes it; NODE opens it and takes its timers. When\n"
    "the two nodes have separate data folders (separate machines), NODE first pulls\n"
    "TENANT's files from the old node in pieces and checks them (size, SHA-256,\n"
    "integrity); if that fails the move is aborted and the old node serves TENANT\n"
    "again. With --nginx PREFIX the whole nginx.conf under PREFIX is rendered again and\n"
    "nginx reloaded (nginx -p PREFIX -s reload); then the pause ends, the old node sets\n"
    "its copy aside (renamed *.moved-<time>, never served again), and every node\n"
    "records the new owner. Every node needs the config's first admin key. The move\n"
    "is recorded in each node's data folder and in FILE's (tidepool.owners.db): starts\n"
    "and `cluster nginx` follow it. Prints the pause.\n"
    "\n"
    "Exit status: 0 printed (moved), 1 FILE is invalid or has no cluster (the move\n"
    "failed: said on stderr, the brand served where it was), 2 usage.\n";

static void apply_owner(void *ud, const char *tenant, const char *node) {
  tpc_set_owner(ud, tenant, node);  /* a brand or node since gone from the config: ignored */
}

int tpcmd_cluster_owners(tpc_config *cfg, char *err, size_t errcap) {
  if (cfg->nnodes == 0) return 0;
  return tpow_each(cfg->data_dir, apply_owner, cfg, err, errcap);
}

static void print_http(FILE *f, const tpc_config *cfg, const char *listen) {
  fprintf(f, "# rendered by `tidepool cluster nginx --config %s`: render again when the owners change\n",
         cfg->path);
  for (int i = 0; i < cfg->nnodes; i++)
    fprintf(f, "upstream tidepool_%s {\n  server %s;\n  keepalive 64;\n}\n", cfg->nodes[i].name,
           cfg->nodes[i].listen);
  fprintf(f, "map $tidepool_tenant $tidepool_node {\n  default \"\";\n");
  for (int i = 0; i < cfg->ntenants + cfg->nforeign; i++)  /* ids are [A-Za-z0-9_-]: no quoting needed */
    fprintf(f, "  %s tidepool_%s;\n", cfg->tenants[i].id, cfg->nodes[cfg->tenants[i].node].name);
  fprintf(f, "}\n"
         "server {\n"
         "  listen %s;\n"
         "  keepalive_requests 100000;\n"
         "  default_type application/json;\n"
         "  location ~ ^/(?:v1|admin)/(?<tidepool_tenant>[^/]+) {\n"
         "    if ($tidepool_node = \"\") {\n"
         "      return 404 '{\"error\":{\"code\":\"tenant_not_found\",\"message\":\"no brand of the "
         "cluster has this id\"}}\\n';\n"
         "    }\n"
         "    proxy_pass http://$tidepool_node;\n"
         "    proxy_http_version 1.1;\n"
         "    proxy_set_header Connection \"\";\n"
         "    proxy_set_header Host $host;\n"
         "    proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;\n"
         "    proxy_next_upstream off;  # a write is never sent twice\n"
         "  }\n"
         "  location / {\n"
         "    return 404 '{\"error\":{\"code\":\"not_found\",\"message\":\"paths start with /v1/{tenant}/ "
         "or /admin/{tenant}/\"}}\\n';\n"
         "  }\n"
         "}\n",
         listen);
}

static void print_full(FILE *f, const tpc_config *cfg, const char *listen, const char *prefix) {
  fprintf(f, "daemon off;\nworker_processes 1;\npid %s/nginx.pid;\nerror_log %s/error.log warn;\n"
         "events {\n  worker_connections 4096;\n}\nhttp {\n  access_log off;\n", prefix, prefix);
  const char *temps[] = {"client_body", "proxy", "fastcgi", "uwsgi", "scgi"};
  for (int i = 0; i < 5; i++) fprintf(f, "  %s_temp_path %s/%s;\n", temps[i], prefix, temps[i]);
  print_http(f, cfg, listen);
  fprintf(f, "}\n");
}

#define POST_TIMEOUT_MS 30000
#define ADOPT_TIMEOUT_MS (3600 * 1000)  /* a pull of a large brand's files between machines */

/* POSTs {"tenant": T[, key: value]...} (pairs: NULL-ended key, value list)
** to node's path; 0 with *status and the answer in out, or -1 (said). */
static int node_post(const tpc_node *node, const char *key, const char *path, const char *tenant,
                     const char *const *pairs, int timeout_ms, int *status, tp_buf *out) {
  char host[64], body[512], err[512];
  int port;
  tpc_parse_listen(node->listen, host, sizeof host, &port);
  int n = snprintf(body, sizeof body, "{\"tenant\":\"%s\"", tenant);  /* ids and names: [A-Za-z0-9_-] */
  for (int i = 0; pairs && pairs[i]; i += 2)
    n += snprintf(body + n, sizeof body - (size_t)n, ",\"%s\":\"%s\"", pairs[i], pairs[i + 1]);
  snprintf(body + n, sizeof body - (size_t)n, "}");
  tp_buf_reset(out);
  if (tp_admin_post(host, port, path, key, body, timeout_ms, status, out, err, sizeof err) != 0) {
    fprintf(stderr, "tidepool: node %s (%s): %s\n", node->name, node->listen, err);
    return -1;
  }
  return 0;
}

#define GRACE_MS 1000

static int render_nginx(const tpc_config *cfg, const char *listen, const char *prefix) {
  char path[4200], tmp[4210];
  snprintf(path, sizeof path, "%s/nginx.conf", prefix);
  snprintf(tmp, sizeof tmp, "%s.tmp", path);
  FILE *f = fopen(tmp, "w");
  if (!f) {
    fprintf(stderr, "tidepool: cannot write %s\n", tmp);
    return -1;
  }
  print_full(f, cfg, listen, prefix);
  if (fclose(f) != 0 || rename(tmp, path) != 0) return -1;
  char cmd[8600];
  snprintf(cmd, sizeof cmd, "nginx -p '%s' -c '%s' -s reload", prefix, path);
  int rc = system(cmd);
  if (rc != 0) {
    fprintf(stderr, "tidepool: `%s` failed (%d)\n", cmd, rc);
    return -1;
  }
  /* a reload is graceful: nginx's old workers finish the requests and keep-alive
  ** connections they hold, with the old map, for a moment; the pause (503) covers
  ** them, so it ends only after this grace */
  struct timespec grace = {GRACE_MS / 1000, (GRACE_MS % 1000) * 1000000L};
  nanosleep(&grace, NULL);
  return 0;
}

/* The answer's "folder" (a data folder's id) into out (33 bytes), "" if none. */
static void folder_of(tp_buf *answer, char out[33]) {
  const char *f = strstr(tp_buf_cstr(answer), "\"folder\":\"");
  out[0] = '\0';
  if (f && strlen(f + 10) > 32 && f[42] == '"') {
    memcpy(out, f + 10, 32);
    out[32] = '\0';
  }
}

/* 1. The old node pauses, commits and closes it (409 busy: something in
** flight, again); its data folder's id into folder. 0, or 1 (said; unpaused). */
static int release_on(tpc_config *cfg, const tpc_node *from, const char *tenant, const char *to, char folder[33],
                      tp_buf *out) {
  int status = 0;
  const char *pairs[] = {"to", to, NULL};
  for (int tries = 0; tries < 50; tries++) {
    if (node_post(from, cfg->cli_admin_key, "/admin/cluster/release", tenant, pairs, POST_TIMEOUT_MS, &status,
                  out) != 0)
      return 1;
    if (status != 409 || !strstr(tp_buf_cstr(out), "\"busy\"")) break;
    struct timespec pause = {0, 100 * 1000000};
    nanosleep(&pause, NULL);
  }
  if (status == 200) {
    folder_of(out, folder);
    return 0;
  }
  fprintf(stderr, "tidepool: node %s did not release '%s' (%d): %s\n", from->name, tenant, status, tp_buf_cstr(out));
  node_post(from, cfg->cli_admin_key, "/admin/cluster/moved", tenant, NULL, POST_TIMEOUT_MS, &status, out);
  return 1;
}

/* 2. The new node adopts it (pulling its files first when its folder is
** another); its folder's id into dest_folder. On a refusal the old node
** resumes it. 0, or 1 (said). */
static int adopt_on(tpc_config *cfg, const tpc_node *from, const tpc_node *dest, const char *tenant,
                    const char *folder, char dest_folder[33], tp_buf *out) {
  int status = 0;
  const char *pairs[] = {"from", from->name, "folder", folder, NULL};
  if (node_post(dest, cfg->cli_admin_key, "/admin/cluster/adopt", tenant, folder[0] ? pairs : NULL,
                ADOPT_TIMEOUT_MS, &status, out) != 0) {
    fprintf(stderr, "tidepool: node %s gave no answer to the adopt of '%s': it stays paused on %s; see node "
            "%s's log, then run the move again or POST %s /admin/cluster/resume\n", dest->name, tenant,
            from->name, dest->name, from->name);
    return 1;
  }
  if (status == 200) {
    folder_of(out, dest_folder);
    return 0;
  }
  fprintf(stderr, "tidepool: node %s did not adopt '%s' (%d): %s\n", dest->name, tenant, status, tp_buf_cstr(out));
  if (node_post(from, cfg->cli_admin_key, "/admin/cluster/resume", tenant, NULL, POST_TIMEOUT_MS, &status, out) != 0 ||
      status != 200) {
    fprintf(stderr, "tidepool: node %s did not resume '%s' (%d): %s; it stays paused until it does (run the "
            "move again)\n", from->name, tenant, status, tp_buf_cstr(out));
    return 1;
  }
  fprintf(stderr, "tidepool: the move is aborted: node %s serves '%s' again\n", from->name, tenant);
  return 1;
}

/* 4. The pause ends; the old node sets its copy aside, every other node
** records the new owner (a node that cannot be told is said, not fatal). */
static int tell_moved(tpc_config *cfg, const tpc_node *from, const tpc_node *dest, const char *tenant,
                      const char *dest_folder, tp_buf *out) {
  int status = 0;
  const char *pairs[] = {"node", dest->name, "folder", dest_folder, NULL};
  if (!dest_folder[0]) pairs[2] = NULL;
  if (node_post(from, cfg->cli_admin_key, "/admin/cluster/moved", tenant, pairs, POST_TIMEOUT_MS, &status, out) != 0 ||
      status != 200) {
    fprintf(stderr, "tidepool: node %s did not end the pause of '%s' (%d): %s\n", from->name, tenant, status,
            tp_buf_cstr(out));
    return 1;
  }
  pairs[2] = NULL;
  for (int i = 0; i < cfg->nnodes; i++) {
    const tpc_node *n = &cfg->nodes[i];
    if (n == from || n == dest) continue;
    if (node_post(n, cfg->cli_admin_key, "/admin/cluster/moved", tenant, pairs, POST_TIMEOUT_MS, &status, out) == 0 &&
        status != 200)
      fprintf(stderr, "tidepool: node %s did not record the move (%d): %s\n", n->name, status, tp_buf_cstr(out));
  }
  return 0;
}

static int move(tpc_config *cfg, const char *tenant, const char *to, const char *listen, const char *nginx) {
  tpc_tenant *t = NULL;
  const tpc_node *dest = NULL;
  for (int i = 0; i < cfg->ntenants; i++)
    if (strcmp(cfg->tenants[i].id, tenant) == 0) t = &cfg->tenants[i];
  for (int i = 0; i < cfg->nnodes; i++)
    if (strcmp(cfg->nodes[i].name, to) == 0) dest = &cfg->nodes[i];
  if (!t || !dest) {
    fprintf(stderr, "tidepool: the cluster has no %s '%s'\n", t ? "node" : "tenant", t ? to : tenant);
    return 1;
  }
  const tpc_node *from = &cfg->nodes[t->node];
  if (from == dest) {
    fprintf(stderr, "tidepool: node %s serves '%s' already\n", to, tenant);
    return 1;
  }
  if (!cfg->cli_admin_key) {
    fprintf(stderr, "tidepool: %s has no admin_keys: the nodes' cluster endpoints need one\n", cfg->path);
    return 1;
  }
  int64_t start = tp_clock_mono_ns() / 1000000;
  tp_buf out;
  tp_buf_init(&out);
  char folder[33] = "", dest_folder[33] = "", err[512];
  int rc = 1;
  if (release_on(cfg, from, tenant, to, folder, &out) != 0) goto done;
  if (adopt_on(cfg, from, dest, tenant, folder, dest_folder, &out) != 0) goto done;
  t->node = (int)(dest - cfg->nodes);
  /* 3. this config's folder records it (`cluster nginx` here follows), the front's map */
  if (tp_is_dir(cfg->data_dir) && tpow_set(cfg->data_dir, tenant, to, tp_clock_wall_ms(), err, sizeof err) != 0)
    fprintf(stderr, "tidepool: the move is not recorded in %s: %s\n", cfg->data_dir, err);
  if (nginx && render_nginx(cfg, listen, nginx) != 0) goto done;
  if (tell_moved(cfg, from, dest, tenant, dest_folder, &out) != 0) goto done;
  printf("%s: moved from node %s to node %s%s; paused %lld ms\n", tenant, from->name, dest->name,
         strcmp(folder, dest_folder) != 0 ? " (its files copied between data folders)" : "",
         (long long)(tp_clock_mono_ns() / 1000000 - start));
  rc = 0;
done:
  tp_buf_free(&out);
  return rc;
}

int tpcmd_cluster(int argc, char **argv) {
  const char *what = argc > 0 ? argv[0] : NULL, *config = NULL, *listen = "127.0.0.1:8080", *full = NULL;
  const char *to = NULL, *nginx = NULL, *tenant = NULL;
  if (what && (strcmp(what, "--help") == 0 || strcmp(what, "-h") == 0)) {
    fputs(tpcmd_usage_cluster, stdout);
    return 0;
  }
  bool is_move = what && strcmp(what, "move") == 0;
  if (!what || (strcmp(what, "nginx") != 0 && !is_move)) {
    fprintf(stderr, "tidepool: cluster needs a subcommand: nginx or move\n\n%s", tpcmd_usage_cluster);
    return 2;
  }
  int i = 1;
  if (is_move && argc > 1 && argv[1][0] != '-') tenant = argv[i++];
  for (; i < argc; i++) {
    const char **slot = strcmp(argv[i], "--config") == 0 ? &config
                      : strcmp(argv[i], "--listen") == 0 ? &listen
                      : strcmp(argv[i], "--full") == 0 && !is_move ? &full
                      : strcmp(argv[i], "--to") == 0 && is_move ? &to
                      : strcmp(argv[i], "--nginx") == 0 && is_move ? &nginx : NULL;
    if (strcmp(argv[i], "--help") == 0) {
      fputs(tpcmd_usage_cluster, stdout);
      return 0;
    }
    if (!slot || i + 1 >= argc) {
      fprintf(stderr, "tidepool: %s '%s'\n\n%s", slot ? "missing value for" : "unknown option", argv[i],
              tpcmd_usage_cluster);
      return 2;
    }
    *slot = argv[++i];
  }
  if (!config || (is_move && (!tenant || !to))) {
    fprintf(stderr, "tidepool: cluster %s needs %s\n\n%s", what, is_move ? "TENANT, --to and --config" : "--config",
            tpcmd_usage_cluster);
    return 2;
  }
  tpc_config cfg;
  char err[1024];
  if (tpc_load(config, &cfg, err, sizeof err) != 0) {
    fprintf(stderr, "tidepool: %s\n", err);
    return 1;
  }
  int rc = 0;
  if (cfg.nnodes == 0) {
    fprintf(stderr, "tidepool: %s has no cluster = {nodes, owners}\n", config);
    rc = 1;
  } else if (tpcmd_cluster_owners(&cfg, err, sizeof err) != 0) {
    fprintf(stderr, "tidepool: %s\n", err);
    rc = 1;
  } else if (is_move) {
    rc = move(&cfg, tenant, to, listen, nginx);
  } else if (full) {
    print_full(stdout, &cfg, listen, full);
  } else {
    print_http(stdout, &cfg, listen);
  }
  tpc_free(&cfg);
  return rc;
}
