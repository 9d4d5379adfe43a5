/*
** slowsync.c - an LD_PRELOAD shim for tests/e2e/test_sync.py: a slow or
** failing disk, as the host's threads see it:
**
** - fdatasync and fsync called from any thread but the process's first (the
**   loop's) sleep TP_TEST_SYNC_DELAY_MS first, and fail with EIO while the
**   file TP_TEST_SYNC_FAIL_FLAG names exists;
** - pwrite64 on the loop's thread (SQLite writing its WAL: a COMMIT) fails
**   with EIO while the file TP_TEST_WRITE_FAIL_FLAG names exists;
** - opening a "-wal" file read-only on the loop's thread (the host's first
**   sync of a brand) fails with EMFILE while TP_TEST_WALOPEN_FAIL_FLAG's
**   file exists.
** The commits' sync runs on a thread of its own (store/walsync.h), so a
** commit's answer then takes that long, while the loop, and SQLite's own
** syncs on it, keep their speed: the test can see what waits for the disk
** and what does not. Test-only: never linked into tidepool.
*/
#define _GNU_SOURCE
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/types.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

/* Off the loop's thread: sleeps, then fails (EIO) while the file named by
** TP_TEST_SYNC_FAIL_FLAG exists. 0, or -1 with errno. */
static int slow(void) {
  if (syscall(SYS_gettid) == getpid()) return 0;
  const char *ms = getenv("TP_TEST_SYNC_DELAY_MS");
  if (ms) {
    long n = atol(ms);
    struct timespec t = {n / 1000, (n % 1000) * 1000000L};
    nanosleep(&t, NULL);
  }
  const char *flag = getenv("TP_TEST_SYNC_FAIL_FLAG");
  if (flag && access(flag, F_OK) == 0) {
    errno = EIO;
    return -1;
  }
  return 0;
}

int fdatasync(int fd) {
  static int (*real)(int);
  if (!real) real = (int (*)(int))dlsym(RTLD_NEXT, "fdatasync");
  return slow() == 0 ? real(fd) : -1;
}

int fsync(int fd) {
  static int (*real)(int);
  if (!real) real = (int (*)(int))dlsym(RTLD_NEXT, "fsync");
  return slow() == 0 ? real(fd) : -1;
}

/* On the loop's thread, while TP_TEST_WRITE_FAIL_FLAG's file exists: EIO. */
ssize_t pwrite64(int fd, const void *buf, size_t n, off_t at) {
  static ssize_t (*real)(int, const void *, size_t, off_t);
  if (!real) real = (ssize_t(*)(int, const void *, size_t, off_t))dlsym(RTLD_NEXT, "pwrite64");
  const char *flag = getenv("TP_TEST_WRITE_FAIL_FLAG");
  if (flag && syscall(SYS_gettid) == getpid() && access(flag, F_OK) == 0) {
    errno = EIO;
    return -1;
  }
  return real(fd, buf, n, at);
}

/* Whether opening path with flags fails now (TP_TEST_WALOPEN_FAIL_FLAG). */
static int wal_open_fails(const char *path, int flags) {
  const char *flag = getenv("TP_TEST_WALOPEN_FAIL_FLAG");
  size_t n = strlen(path);
  return flag && (flags & O_ACCMODE) == O_RDONLY && n > 4 && strcmp(path + n - 4, "-wal") == 0 &&
         syscall(SYS_gettid) == getpid() && access(flag, F_OK) == 0;
}

int open(const char *path, int flags, ...) {
  static int (*real)(const char *, int, ...);
  if (!real) real = (int (*)(const char *, int, ...))dlsym(RTLD_NEXT, "open");
  mode_t mode = 0;
  if (flags & (O_CREAT | O_TMPFILE)) {
    va_list ap;
    va_start(ap, flags);
    mode = (mode_t)va_arg(ap, int);
    va_end(ap);
  }
  if (wal_open_fails(path, flags)) {
    errno = EMFILE;
    return -1;
  }
  return real(path, flags, mode);
}
