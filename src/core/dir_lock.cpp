#include "core/dir_lock.h"

#include <fcntl.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <sstream>
#include <utility>

#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include "core/atomic_file.h"
#include "core/error.h"
#include "core/log.h"

namespace recap {

namespace {

std::string read_lock_fd(int fd) {
  std::string out;
  char buf[256];
  off_t at = 0;
  ssize_t n;
  while (out.size() < 4096 && (n = ::pread(fd, buf, sizeof buf, at)) > 0) {
    out.append(buf, static_cast<size_t>(n));
    at += n;
  }
  return out;
}

// Whether `fd` is still the file at `path`: a holder removes its lock file when it lets go, so
// a process that opened the file just before may have locked a name that no longer exists.
bool lock_still_at(int fd, const fs::path& path) {
  struct stat a{}, b{};
  return ::fstat(fd, &a) == 0 && ::stat(path.c_str(), &b) == 0 && a.st_dev == b.st_dev &&
         a.st_ino == b.st_ino;
}

}  // namespace

LockHolder LockHolder::parse(const std::string& line) {
  LockHolder h;
  std::istringstream in(line);
  std::string word;
  while (in >> word) {
    const size_t eq = word.find('=');
    if (eq == std::string::npos) {
      // Lock files of older versions held the bare pid.
      if (h.pid.empty() && word.find_first_not_of("0123456789") == std::string::npos) h.pid = word;
      continue;
    }
    const std::string key = word.substr(0, eq), value = word.substr(eq + 1);
    if (key == "pid") h.pid = value;
    else if (key == "host") h.host = value;
    else if (key == "started") h.started = value;
  }
  return h;
}

std::string LockHolder::line() const {
  return fmt::format("pid={} host={} started={}", pid, host, started);
}

std::string LockHolder::describe() const {
  auto or_unknown = [](const std::string& s) { return s.empty() ? std::string("?") : s; };
  return fmt::format("pid {} on host {} since {}", or_unknown(pid), or_unknown(host),
                     or_unknown(started));
}

LockHolder DirLock::self() {
  char host[256] = {0};
  if (::gethostname(host, sizeof host - 1) != 0) std::strcpy(host, "unknown");
  return {std::to_string(::getpid()), host, utc_timestamp()};
}

DirLock DirLock::folder(const fs::path& dir) {
  const bool existed = fs::exists(dir);
  fs::create_directories(dir);
  DirLock lock(dir / ".lock", dir);
  if (!existed) lock.created_dir_ = dir;
  // The folder is ours now: what earlier holders left when they were killed goes.
  else if (const size_t n = remove_dead_temporaries(dir))
    spdlog::info("{}: removed {} temporaries left by killed processes", dir.string(), n);
  return lock;
}

DirLock DirLock::file(const fs::path& file) {
  fs::path parent = file.parent_path();
  if (!parent.empty()) fs::create_directories(parent);
  return DirLock(parent / ("." + file.filename().string() + ".lock"), file);
}

DirLock::DirLock(fs::path lock_file, fs::path subject)
    : path_(std::move(lock_file)), subject_(std::move(subject)) {
  for (int attempt = 0;; ++attempt) {
    const int fd = ::open(path_.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0644);
    if (fd < 0)
      throw Error(fmt::format("{}: cannot open lock file: {}", path_.string(),
                              std::strerror(errno)));
    if (::flock(fd, LOCK_EX | LOCK_NB) != 0) {
      const int err = errno;
      const std::string holder = read_lock_fd(fd);
      ::close(fd);
      if (err == EWOULDBLOCK)
        throw Error(fmt::format(
            "{}: in use by another recap process ({}); wait for it or stop it",
            subject_.string(), LockHolder::parse(holder).describe()));
      throw Error(fmt::format("{}: cannot lock (is locking supported on this filesystem?): {}",
                              path_.string(), std::strerror(err)));
    }
    if (lock_still_at(fd, path_)) {
      fd_ = fd;
      break;
    }
    ::close(fd);  // its holder removed it meanwhile: lock the fresh one
    if (attempt == 100)
      throw Error(fmt::format("{}: lock file keeps changing under us", path_.string()));
  }
  const std::string line = self().line() + "\n";
  // Should this fail, the lock holds regardless; only a refusal's description of us is poorer.
  const bool recorded = ::ftruncate(fd_, 0) == 0 && ::pwrite(fd_, line.data(), line.size(), 0) ==
                                                        static_cast<ssize_t>(line.size());
  (void)recorded;
}

DirLock::DirLock(DirLock&& other) noexcept
    : path_(std::move(other.path_)),
      subject_(std::move(other.subject_)),
      fd_(std::exchange(other.fd_, -1)),
      created_dir_(std::move(other.created_dir_)) {}

DirLock& DirLock::operator=(DirLock&& other) noexcept {
  if (this != &other) {
    release();
    path_ = std::move(other.path_);
    subject_ = std::move(other.subject_);
    fd_ = std::exchange(other.fd_, -1);
    created_dir_ = std::move(other.created_dir_);
  }
  return *this;
}

void DirLock::release() {
  if (fd_ < 0) return;
  // Unlink while still holding it: whoever opened the old file meanwhile sees it is gone.
  ::unlink(path_.c_str());
  ::close(fd_);
  fd_ = -1;
  if (!created_dir_.empty()) {
    std::error_code ignored;
    fs::remove(created_dir_, ignored);  // only when the command left it empty
    created_dir_.clear();
  }
}

}  // namespace recap
