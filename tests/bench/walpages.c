/*
** walpages.c - which pages a server's commits write to a database's WAL: an
** LD_PRELOAD shim for tests/bench (WALPAGES=1 in mechanic.sh).
**
** With synchronous=FULL a group commit costs what it writes: every page it
** dirtied goes to the WAL as a frame (a 24-byte header, then the page), and the
** fsync waits for all of them. SQLite writes each frame's header with a pwrite
** of its own, whose first four bytes are the page number and the next four,
** non-zero, mark a commit's last frame. The shim counts both for the WAL of
** the database named WALPAGES_DB (default bench.db) and, when the process
** exits, writes "# frames F commits C" and one "page count" line per page to
** WALPAGES_OUT. walpages.py names each page's b-tree (SQLite's dbstat).
**
** Only for measuring: it takes a mutex per frame header.
*/
#define _GNU_SOURCE
#include <dlfcn.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define MAX_PAGES (1u << 22) /* 16 GiB of 4 KiB pages */
#define MAX_FD 4096

static ssize_t (*real_pwrite64)(int, const void *, size_t, off_t);
static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
static unsigned *counts;
static unsigned long frames, commits;
static char fd_kind[MAX_FD]; /* 0: not looked at, 1: the WAL, 2: another file */

/* Whether fd is the WAL of WALPAGES_DB (looked up once per descriptor; SQLite
** keeps its WAL open for the connection's life). */
static int is_wal(int fd) {
  if (fd < 0 || fd >= MAX_FD) return 0;
  if (!fd_kind[fd]) {
    char link[64], target[512], want[300];
    snprintf(link, sizeof link, "/proc/self/fd/%d", fd);
    ssize_t n = readlink(link, target, sizeof target - 1);
    target[n > 0 ? n : 0] = 0;
    const char *db = getenv("WALPAGES_DB");
    snprintf(want, sizeof want, "/%s-wal", db ? db : "bench.db");
    size_t lt = strlen(target), lw = strlen(want);
    fd_kind[fd] = lt >= lw && strcmp(target + lt - lw, want) == 0 ? 1 : 2;
  }
  return fd_kind[fd] == 1;
}

static uint32_t be32(const unsigned char *b) {
  return (uint32_t)b[0] << 24 | (uint32_t)b[1] << 16 | (uint32_t)b[2] << 8 | b[3];
}

ssize_t pwrite64(int fd, const void *buf, size_t n, off_t off) {
  if (!real_pwrite64) real_pwrite64 = (ssize_t(*)(int, const void *, size_t, off_t))dlsym(RTLD_NEXT, "pwrite64");
  if (n == 24 && is_wal(fd)) {
    uint32_t page = be32(buf), size_after = be32((const unsigned char *)buf + 4);
    pthread_mutex_lock(&mu);
    if (!counts) counts = calloc(MAX_PAGES, sizeof *counts);
    if (counts && page < MAX_PAGES) counts[page]++;
    frames++;
    if (size_after) commits++;
    pthread_mutex_unlock(&mu);
  }
  return real_pwrite64(fd, buf, n, off);
}

ssize_t pwrite(int fd, const void *buf, size_t n, off_t off) { return pwrite64(fd, buf, n, off); }

static void __attribute__((destructor)) dump(void) {
  const char *out = getenv("WALPAGES_OUT");
  FILE *f = out && counts ? fopen(out, "w") : NULL;
  if (!f) return;
  fprintf(f, "# frames %lu commits %lu\n", frames, commits);
  for (uint32_t i = 0; i < MAX_PAGES; i++)
    if (counts[i]) fprintf(f, "%u %u\n", i, counts[i]);
  fclose(f);
}
