/*
** owners.h - which node of a cluster serves each brand now, where brands have
** moved since the config was written.
**
** The config's cluster.owners is where every brand starts. A move (`tidepool
** cluster move`, host/cluster.c) records the brand's new node here, in
** <data_dir>/tidepool.owners.db, which the nodes of one machine share with
** their data folder: every start applies these rows over the config, and
** `tidepool cluster nginx` renders the map from both. The node that adopts
** a brand writes its row; with separate data folders (nodes on different
** machines) the old node, the other nodes and the CLI write it too when the
** move is done, so that every folder, and every restart, agrees.
**
** A data folder also has an id (tidepool.folder, 32 random hex digits,
** written once): two nodes with the same id share their folder, so a move
** between them needs no copy of the brand's files (host/cluster.c).
*/
#ifndef TP_STORE_OWNERS_H
#define TP_STORE_OWNERS_H

#include <stddef.h>
#include <stdbool.h>
#include <stdint.h>

/* Calls fn(ud, tenant, node) for every recorded move. 0, or -1 with err; no
** file yet is no moves. */
int tpow_each(const char *data_dir, void (*fn)(void *ud, const char *tenant, const char *node), void *ud,
              char *err, size_t errcap);
/* Records that node serves tenant from now on. 0, or -1 with err. */
int tpow_set(const char *data_dir, const char *tenant, const char *node, int64_t now_ms, char *err,
             size_t errcap);

/* The id of data_dir into out (33 bytes), created on first use. 0, or -1
** with err. */
int tpow_folder_id(const char *data_dir, char out[33], char *err, size_t errcap);

#endif
