/*
** cluster.h - `tidepool cluster nginx`: the front's configuration, rendered
** from the config's cluster section (config.h: nodes and owners).
**
** Every node of a cluster is `tidepool serve --config FILE --node NAME`; the
** front is Debian's nginx, which routes /v1/{tenant}/ and /admin/{tenant}/ to
** the brand's owner by a map from this command. A request that reaches the
** wrong node (a stale map) is answered 421 by that node, never served.
*/
#ifndef TP_CLI_CLUSTER_H
#define TP_CLI_CLUSTER_H

extern const char tpcmd_usage_cluster[];
/* Exit status: 0 printed, 1 the config failed, 2 usage. */
int tpcmd_cluster(int argc, char **argv);

#endif
