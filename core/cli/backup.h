/*
** backup.h - `tidepool backup` and `tidepool restore`: a brand's database
** copied now, put back from a copy, or a copy checked (store/backup.h).
**
** backup takes a copy online, beside a running host or without one: it only
** reads the brand's file. restore writes it, so it takes the brand's claim
** and refuses while a host serves the brand; it first backs up what is there,
** so a restore can itself be undone. restore --check touches nothing of the
** brand: it restores into a scratch file, opens it and checks it.
*/
#ifndef TP_CLI_BACKUP_H
#define TP_CLI_BACKUP_H

extern const char tpcmd_usage_backup[];
extern const char tpcmd_usage_restore[];
/* Exit status: 0 done, 1 failed (said on stderr), 2 usage error. */
int tpcmd_backup(int argc, char **argv);
int tpcmd_restore(int argc, char **argv);

#endif
