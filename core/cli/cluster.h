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

#include <stddef.h>

#include "config/config.h"

extern const char tpcmd_usage_cluster[];
/* Applies the moves recorded in cfg's data folder (store/owners.h) over its
** cluster.owners; before tpc_select_node. 0, or -1 with err. */
int tpcmd_cluster_owners(tpc_config *cfg, char *err, size_t errcap);
/* Exit status: 0 printed, 1 the config failed, 2 usage. */
int tpcmd_cluster(int argc, char **argv);

#endif
