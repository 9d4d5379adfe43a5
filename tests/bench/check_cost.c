/*
** check_cost.c - what one row written costs SQLite under each way of writing
** a table's value rule (tests/bench/check_cost.sh runs it under callgrind).
**
**   check_cost DBFILE 'COLUMN CONSTRAINT' ROWS [OTHERS]
**
** Creates t (id INTEGER PRIMARY KEY, s TEXT NOT NULL <constraint>) in a fresh
** DBFILE and inserts ROWS rows of s = 'b' in one transaction, each through
** step_insert(), a function of its own so that callgrind's inclusive count of
** it is the insert's cost alone. Why: an IN list of three or more constants in
** a CHECK is evaluated by building a temporary b-tree of the list on every row
** written; ORs and an IN list of two are compared in place.
**
** With OTHERS, t's id is AUTOINCREMENT and OTHERS more AUTOINCREMENT tables,
** each with a row, come first: every insert into such a table looks its
** counter up in sqlite_sequence by reading that table from the start, one row
** per AUTOINCREMENT table that has ever held a row, and writes it back.
*/
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

__attribute__((noinline)) static int step_insert(sqlite3_stmt *st) { return sqlite3_step(st); }

int main(int argc, char **argv) {
  if (argc != 4 && argc != 5) {
    fprintf(stderr, "usage: check_cost DBFILE 'COLUMN CONSTRAINT' ROWS [OTHERS]\n");
    return 2;
  }
  unlink(argv[1]);
  sqlite3 *db;
  char sql[1024];
  int others = argc == 5 ? atoi(argv[4]) : -1;
  if (sqlite3_open(argv[1], &db) != SQLITE_OK) {
    fprintf(stderr, "check_cost: cannot open %s\n", argv[1]);
    return 1;
  }
  for (int i = 0; i < others; i++) {
    snprintf(sql, sizeof sql, "CREATE TABLE o%d (id INTEGER PRIMARY KEY AUTOINCREMENT);"
             " INSERT INTO o%d DEFAULT VALUES", i, i);
    if (sqlite3_exec(db, sql, NULL, NULL, NULL) != SQLITE_OK) {
      fprintf(stderr, "check_cost: %s\n", sqlite3_errmsg(db));
      return 1;
    }
  }
  snprintf(sql, sizeof sql, "CREATE TABLE t (id INTEGER PRIMARY KEY%s, s TEXT NOT NULL %s)",
           others >= 0 ? " AUTOINCREMENT" : "", argv[2]);
  sqlite3_stmt *st = NULL;
  if (sqlite3_exec(db, sql, NULL, NULL, NULL) != SQLITE_OK ||
      sqlite3_prepare_v2(db, "INSERT INTO t (s) VALUES ('b')", -1, &st, NULL) != SQLITE_OK) {
    fprintf(stderr, "check_cost: %s\n", sqlite3_errmsg(db));
    return 1;
  }
  int rows = atoi(argv[3]);
  sqlite3_exec(db, "BEGIN", NULL, NULL, NULL);
  for (int i = 0; i < rows; i++) {
    if (step_insert(st) != SQLITE_DONE) {
      fprintf(stderr, "check_cost: %s\n", sqlite3_errmsg(db));
      return 1;
    }
    sqlite3_reset(st);
  }
  sqlite3_exec(db, "COMMIT", NULL, NULL, NULL);
  sqlite3_finalize(st);
  sqlite3_close(db);
  return 0;
}
