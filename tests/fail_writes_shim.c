// A disk that fills up, for tests (LD_PRELOAD=libfail_writes_shim.so): writes to files under a
// path prefix succeed until a byte budget is spent, then fail with ENOSPC (or EIO), as a full
// disk or a dying one makes them fail. The machine's own filesystem is never filled.
//
//   RECAP_FAIL_WRITES_UNDER   absolute path prefix; only files under it count and fail
//   RECAP_FAIL_WRITES_AFTER   bytes that may be written under it (by this process) before
//                             the failures start; the write that crosses it is cut short
//   RECAP_FAIL_WRITES_ERRNO   ENOSPC (default) or EIO
//   RECAP_FAIL_WRITES_OPS     what fails once the budget is spent, comma-separated:
//                             write, fsync, close (default: all three). Without "write" the
//                             writes go on succeeding and only fsync/fdatasync/close fail,
//                             as on a disk that reports a lost write at flush time.
//   RECAP_FAIL_WRITES_TRACE   a file (outside the prefix) that gets one line per write under
//                             the prefix, "TOTAL_BYTES PATH", to choose budgets
//
// Interposed: write, pwrite, pwrite64, writev, pwritev, fsync, fdatasync, close. stdio streams
// opened for writing under the prefix (fopen, fopen64) become fopencookie streams over the
// same descriptor whose writes go through the shimmed write(), so buffered fwrite/fprintf/
// fputs fail where the real ones would: at the write, the fflush or the fclose that reaches
// the disk. fileno() of such a stream answers its real descriptor.
//
// Without RECAP_FAIL_WRITES_UNDER the shim does nothing.
#define _GNU_SOURCE
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/types.h>
#include <sys/uio.h>
#include <unistd.h>

enum { kOpWrite = 1, kOpFsync = 2, kOpClose = 4 };

static char g_prefix[PATH_MAX];
static size_t g_prefix_len;
static long long g_budget = -1;
static long long g_written;  // atomically updated
static int g_errno = ENOSPC;
static int g_ops = kOpWrite | kOpFsync | kOpClose;
static const char* g_trace;
static pthread_mutex_t g_trace_lock = PTHREAD_MUTEX_INITIALIZER;

static ssize_t (*real_write)(int, const void*, size_t);
static ssize_t (*real_pwrite)(int, const void*, size_t, off_t);
static ssize_t (*real_pwrite64)(int, const void*, size_t, off_t);
static ssize_t (*real_writev)(int, const struct iovec*, int);
static ssize_t (*real_pwritev)(int, const struct iovec*, int, off_t);
static int (*real_fsync)(int);
static int (*real_fdatasync)(int);
static int (*real_close)(int);
static FILE* (*real_fopen)(const char*, const char*);
static FILE* (*real_fopen64)(const char*, const char*);
static int (*real_fileno)(FILE*);
static int (*real_fileno_unlocked)(FILE*);

static void load_real(void) {
  real_write = dlsym(RTLD_NEXT, "write");
  real_pwrite = dlsym(RTLD_NEXT, "pwrite");
  real_pwrite64 = dlsym(RTLD_NEXT, "pwrite64");
  real_writev = dlsym(RTLD_NEXT, "writev");
  real_pwritev = dlsym(RTLD_NEXT, "pwritev");
  real_fsync = dlsym(RTLD_NEXT, "fsync");
  real_fdatasync = dlsym(RTLD_NEXT, "fdatasync");
  real_close = dlsym(RTLD_NEXT, "close");
  real_fopen = dlsym(RTLD_NEXT, "fopen");
  real_fopen64 = dlsym(RTLD_NEXT, "fopen64");
  real_fileno = dlsym(RTLD_NEXT, "fileno");
  real_fileno_unlocked = dlsym(RTLD_NEXT, "fileno_unlocked");
}

__attribute__((constructor)) static void shim_init(void) {
  load_real();
  const char* under = getenv("RECAP_FAIL_WRITES_UNDER");
  if (!under || !*under) return;
  char resolved[PATH_MAX];
  const char* prefix = realpath(under, resolved) ? resolved : under;
  snprintf(g_prefix, sizeof g_prefix, "%s", prefix);
  g_prefix_len = strlen(g_prefix);
  while (g_prefix_len > 1 && g_prefix[g_prefix_len - 1] == '/') g_prefix[--g_prefix_len] = 0;
  const char* after = getenv("RECAP_FAIL_WRITES_AFTER");
  g_budget = after && *after ? atoll(after) : 0;
  const char* err = getenv("RECAP_FAIL_WRITES_ERRNO");
  if (err && strcmp(err, "EIO") == 0) g_errno = EIO;
  const char* ops = getenv("RECAP_FAIL_WRITES_OPS");
  if (ops && *ops) {
    g_ops = 0;
    if (strstr(ops, "write")) g_ops |= kOpWrite;
    if (strstr(ops, "fsync")) g_ops |= kOpFsync;
    if (strstr(ops, "close")) g_ops |= kOpClose;
  }
  g_trace = getenv("RECAP_FAIL_WRITES_TRACE");
}

static int active(void) { return g_prefix_len > 0; }

static int path_under(const char* path) {
  return strncmp(path, g_prefix, g_prefix_len) == 0 &&
         (path[g_prefix_len] == '/' || path[g_prefix_len] == 0);
}

// Whether `fd` is a file under the prefix (its path as /proc/self/fd tells it); `path` gets it.
static int fd_under(int fd, char* path, size_t size) {
  if (!active() || fd < 0) return 0;
  char link[64];
  snprintf(link, sizeof link, "/proc/self/fd/%d", fd);
  ssize_t n = readlink(link, path, size - 1);
  if (n <= 0) return 0;
  path[n] = 0;
  return path_under(path);
}

static int spent(void) { return __atomic_load_n(&g_written, __ATOMIC_SEQ_CST) >= g_budget; }

static void trace(long long total, const char* path) {
  if (!g_trace) return;
  pthread_mutex_lock(&g_trace_lock);
  int saved = errno;
  int fd = open(g_trace, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
  if (fd >= 0) {
    char line[PATH_MAX + 64];
    int len = snprintf(line, sizeof line, "%lld %s\n", total, path);
    if (len > 0) real_write(fd, line, (size_t)len < sizeof line ? (size_t)len : sizeof line - 1);
    real_close(fd);
  }
  errno = saved;
  pthread_mutex_unlock(&g_trace_lock);
}

// How many of `n` bytes a write to `fd` may write: n outside the prefix or before the budget
// is spent, what is left of the budget on the write that crosses it, then -1 (errno set).
static ssize_t allowance(int fd, size_t n) {
  char path[PATH_MAX];
  if (!fd_under(fd, path, sizeof path)) return (ssize_t)n;
  long long before = __atomic_fetch_add(&g_written, (long long)n, __ATOMIC_SEQ_CST);
  trace(before + (long long)n, path);
  if (!(g_ops & kOpWrite) || before + (long long)n <= g_budget) return (ssize_t)n;
  long long left = g_budget - before;
  if (left > 0) {
    // Only `left` of them reach the disk: count the rest back out.
    __atomic_fetch_sub(&g_written, (long long)n - left, __ATOMIC_SEQ_CST);
    return (ssize_t)left;
  }
  __atomic_fetch_sub(&g_written, (long long)n, __ATOMIC_SEQ_CST);
  errno = g_errno;
  return -1;
}

ssize_t write(int fd, const void* buf, size_t n) {
  if (!real_write) load_real();
  ssize_t allowed = allowance(fd, n);
  if (allowed < 0) return -1;
  return real_write(fd, buf, (size_t)allowed);
}

ssize_t pwrite(int fd, const void* buf, size_t n, off_t at) {
  if (!real_pwrite) load_real();
  ssize_t allowed = allowance(fd, n);
  if (allowed < 0) return -1;
  return real_pwrite(fd, buf, (size_t)allowed, at);
}

ssize_t pwrite64(int fd, const void* buf, size_t n, off_t at) {
  if (!real_pwrite64) load_real();
  ssize_t allowed = allowance(fd, n);
  if (allowed < 0) return -1;
  return real_pwrite64(fd, buf, (size_t)allowed, at);
}

// The vector cut to `allowed` bytes, into `out` (at most `count` entries).
static int cut_iov(const struct iovec* iov, int count, size_t allowed, struct iovec* out) {
  int k = 0;
  for (; k < count && allowed > 0; ++k) {
    out[k] = iov[k];
    if (out[k].iov_len > allowed) out[k].iov_len = allowed;
    allowed -= out[k].iov_len;
  }
  return k;
}

static size_t iov_total(const struct iovec* iov, int count) {
  size_t n = 0;
  for (int i = 0; i < count; ++i) n += iov[i].iov_len;
  return n;
}

ssize_t writev(int fd, const struct iovec* iov, int count) {
  if (!real_writev) load_real();
  if (count < 0 || count > IOV_MAX) return real_writev(fd, iov, count);
  size_t n = iov_total(iov, count);
  ssize_t allowed = allowance(fd, n);
  if (allowed < 0) return -1;
  if ((size_t)allowed == n) return real_writev(fd, iov, count);
  struct iovec cut[IOV_MAX];
  return real_writev(fd, cut, cut_iov(iov, count, (size_t)allowed, cut));
}

ssize_t pwritev(int fd, const struct iovec* iov, int count, off_t at) {
  if (!real_pwritev) load_real();
  if (count < 0 || count > IOV_MAX) return real_pwritev(fd, iov, count, at);
  size_t n = iov_total(iov, count);
  ssize_t allowed = allowance(fd, n);
  if (allowed < 0) return -1;
  if ((size_t)allowed == n) return real_pwritev(fd, iov, count, at);
  struct iovec cut[IOV_MAX];
  return real_pwritev(fd, cut, cut_iov(iov, count, (size_t)allowed, cut), at);
}

static int sync_fails(int fd) {
  char path[PATH_MAX];
  return (g_ops & kOpFsync) && fd_under(fd, path, sizeof path) && spent();
}

int fsync(int fd) {
  if (!real_fsync) load_real();
  if (sync_fails(fd)) {
    errno = g_errno;
    return -1;
  }
  return real_fsync(fd);
}

int fdatasync(int fd) {
  if (!real_fdatasync) load_real();
  if (sync_fails(fd)) {
    errno = g_errno;
    return -1;
  }
  return real_fdatasync(fd);
}

// close() of a file opened for writing under the prefix, once the budget is spent, closes it
// and reports the error (as NFS and quotas do: the last chance to hear of a lost write).
int close(int fd) {
  if (!real_close) load_real();
  char path[PATH_MAX];
  int fails = 0;
  if ((g_ops & kOpClose) && fd_under(fd, path, sizeof path) && spent()) {
    int flags = fcntl(fd, F_GETFL);
    fails = flags >= 0 && (flags & O_ACCMODE) != O_RDONLY;
  }
  int rc = real_close(fd);
  if (rc == 0 && fails) {
    errno = g_errno;
    return -1;
  }
  return rc;
}

// --- stdio: streams under the prefix opened for writing become cookie streams ---------------

struct cookie {
  int fd;
  FILE* stream;
  struct cookie* next;
};
static struct cookie* g_cookies;  // to answer fileno()
static pthread_mutex_t g_cookie_lock = PTHREAD_MUTEX_INITIALIZER;

static ssize_t cookie_read(void* c, char* buf, size_t n) {
  return read(((struct cookie*)c)->fd, buf, n);
}

static ssize_t cookie_write(void* c, const char* buf, size_t n) {
  size_t done = 0;
  while (done < n) {
    ssize_t w = write(((struct cookie*)c)->fd, buf + done, n - done);
    if (w < 0) {
      if (errno == EINTR) continue;
      return done > 0 ? (ssize_t)done : -1;
    }
    done += (size_t)w;
  }
  return (ssize_t)done;
}

static int cookie_seek(void* c, off64_t* at, int whence) {
  off64_t to = lseek64(((struct cookie*)c)->fd, *at, whence);
  if (to < 0) return -1;
  *at = to;
  return 0;
}

static int cookie_close(void* c) {
  struct cookie* self = c;
  pthread_mutex_lock(&g_cookie_lock);
  for (struct cookie** p = &g_cookies; *p; p = &(*p)->next)
    if (*p == self) {
      *p = self->next;
      break;
    }
  pthread_mutex_unlock(&g_cookie_lock);
  int rc = close(self->fd);
  free(self);
  return rc;
}

static FILE* wrap(FILE* f, const char* mode) {
  if (!f || !active() || !(strchr(mode, 'w') || strchr(mode, 'a') || strchr(mode, '+')))
    return f;
  int fd = real_fileno(f);
  char path[PATH_MAX];
  if (!fd_under(fd, path, sizeof path)) return f;
  // The stream's own descriptor, dup'ed (same file, offset and O_APPEND), under a cookie
  // stream; the original stream is closed before anything was written to it.
  int cloexec = (fcntl(fd, F_GETFD) & FD_CLOEXEC) != 0;
  int copy = fcntl(fd, cloexec ? F_DUPFD_CLOEXEC : F_DUPFD, 0);
  if (copy < 0) return f;
  struct cookie* c = calloc(1, sizeof *c);
  if (!c) {
    real_close(copy);
    return f;
  }
  c->fd = copy;
  cookie_io_functions_t io = {cookie_read, cookie_write, cookie_seek, cookie_close};
  FILE* stream = fopencookie(c, mode, io);
  if (!stream) {
    real_close(copy);
    free(c);
    return f;
  }
  fclose(f);
  c->stream = stream;
  pthread_mutex_lock(&g_cookie_lock);
  c->next = g_cookies;
  g_cookies = c;
  pthread_mutex_unlock(&g_cookie_lock);
  return stream;
}

FILE* fopen(const char* path, const char* mode) {
  if (!real_fopen) load_real();
  return wrap(real_fopen(path, mode), mode);
}

FILE* fopen64(const char* path, const char* mode) {
  if (!real_fopen64) load_real();
  return wrap(real_fopen64(path, mode), mode);
}

static int cookie_fd(FILE* f) {
  int fd = -1;
  pthread_mutex_lock(&g_cookie_lock);
  for (struct cookie* c = g_cookies; c; c = c->next)
    if (c->stream == f) {
      fd = c->fd;
      break;
    }
  pthread_mutex_unlock(&g_cookie_lock);
  return fd;
}

int fileno(FILE* f) {
  if (!real_fileno) load_real();
  int fd = g_cookies ? cookie_fd(f) : -1;
  return fd >= 0 ? fd : real_fileno(f);
}

int fileno_unlocked(FILE* f) {
  if (!real_fileno_unlocked) load_real();
  int fd = g_cookies ? cookie_fd(f) : -1;
  return fd >= 0 ? fd : real_fileno_unlocked(f);
}
