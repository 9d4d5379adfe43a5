/*
** cluster.c - the nginx configuration of a cluster (cluster.h).
*/
#include "cli/cluster.h"

#include <stdio.h>
#include <string.h>

#include "config/config.h"

const char tpcmd_usage_cluster[] =
    "usage: tidepool cluster nginx --config FILE [--listen HOST:PORT] [--full PREFIX]\n"
    "\n"
    "Prints nginx's configuration for the cluster in FILE (cluster = {nodes, owners}):\n"
    "an upstream per node, a map from each brand to its owner's upstream, and a server\n"
    "on --listen (default 127.0.0.1:8080) routing /v1/{tenant}/ and /admin/{tenant}/\n"
    "by it. Without --full it is for nginx's http block (/etc/nginx/conf.d/); with\n"
    "--full PREFIX it is a whole nginx.conf for `nginx -p PREFIX -c FILE`, in the\n"
    "foreground, its pid, logs and temporary files under PREFIX. Render it again and\n"
    "reload nginx (nginx -s reload) after the owners change.\n"
    "\n"
    "Exit status: 0 printed, 1 FILE is invalid or has no cluster, 2 usage.\n";

static void print_http(const tpc_config *cfg, const char *listen) {
  printf("# rendered by `tidepool cluster nginx --config %s`: render again when the owners change\n",
         cfg->path);
  for (int i = 0; i < cfg->nnodes; i++)
    printf("upstream tidepool_%s {\n  server %s;\n  keepalive 64;\n}\n", cfg->nodes[i].name,
           cfg->nodes[i].listen);
  printf("map $tidepool_tenant $tidepool_node {\n  default \"\";\n");
  for (int i = 0; i < cfg->ntenants + cfg->nforeign; i++)  /* ids are [A-Za-z0-9_-]: no quoting needed */
    printf("  %s tidepool_%s;\n", cfg->tenants[i].id, cfg->nodes[cfg->tenants[i].node].name);
  printf("}\n"
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

static void print_full(const tpc_config *cfg, const char *listen, const char *prefix) {
  printf("daemon off;\nworker_processes 1;\npid %s/nginx.pid;\nerror_log %s/error.log warn;\n"
         "events {\n  worker_connections 4096;\n}\nhttp {\n  access_log off;\n", prefix, prefix);
  const char *temps[] = {"client_body", "proxy", "fastcgi", "uwsgi", "scgi"};
  for (int i = 0; i < 5; i++) printf("  %s_temp_path %s/%s;\n", temps[i], prefix, temps[i]);
  print_http(cfg, listen);
  printf("}\n");
}

int tpcmd_cluster(int argc, char **argv) {
  const char *what = argc > 0 ? argv[0] : NULL, *config = NULL, *listen = "127.0.0.1:8080", *full = NULL;
  if (what && (strcmp(what, "--help") == 0 || strcmp(what, "-h") == 0)) {
    fputs(tpcmd_usage_cluster, stdout);
    return 0;
  }
  if (!what || strcmp(what, "nginx") != 0) {
    fprintf(stderr, "tidepool: cluster needs a subcommand: nginx\n\n%s", tpcmd_usage_cluster);
    return 2;
  }
  for (int i = 1; i < argc; i++) {
    const char **slot = strcmp(argv[i], "--config") == 0 ? &config
                      : strcmp(argv[i], "--listen") == 0 ? &listen
                      : strcmp(argv[i], "--full") == 0   ? &full : NULL;
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
  if (!config) {
    fprintf(stderr, "tidepool: cluster nginx needs --config\n\n%s", tpcmd_usage_cluster);
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
  } else if (full) {
    print_full(&cfg, listen, full);
  } else {
    print_http(&cfg, listen);
  }
  tpc_free(&cfg);
  return rc;
}
