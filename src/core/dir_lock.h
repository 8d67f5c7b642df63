// An exclusive, process-lifetime lock on an output folder (or one output file), shared by
// `recap run` (RunDir) and every command that writes an output: a second recap process on the
// same output is refused at once with a recap::Error naming the output and the holder.
//
// The lock is flock(LOCK_EX | LOCK_NB) on a lock file: DIR/.lock for a folder, .NAME.lock
// beside a single file. The kernel drops a flock when its holder dies, however it dies, so a
// lock file left behind by a kill -9 never blocks a rerun: only a live holder does. The holder
// writes "pid=N host=H started=T" into the file so the refusal can name it, and removes the
// file when it lets go. Network filesystems: see docs/FORMATS.md ("Output locks").
#pragma once
#include <filesystem>
#include <string>

namespace recap {

namespace fs = std::filesystem;

// What a lock file says about its holder; empty fields when it did not say (yet).
struct LockHolder {
  std::string pid, host, started;
  static LockHolder parse(const std::string& line);
  std::string line() const;      // "pid=N host=H started=T"
  std::string describe() const;  // "pid N on host H since T"
};

class DirLock {
 public:
  // Locks folder `dir` (created when missing) through DIR/.lock, then removes what killed
  // processes left in it (remove_dead_temporaries).
  static DirLock folder(const fs::path& dir);
  // Locks the single output `file` through .NAME.lock in its folder (created when missing).
  static DirLock file(const fs::path& file);
  // Locks through `lock_file`; `subject` is the output the refusal names.
  DirLock(fs::path lock_file, fs::path subject);

  DirLock() = default;  // holds nothing
  ~DirLock() { release(); }
  DirLock(DirLock&& other) noexcept;
  DirLock& operator=(DirLock&& other) noexcept;
  DirLock(const DirLock&) = delete;
  DirLock& operator=(const DirLock&) = delete;

  bool held() const { return fd_ >= 0; }
  const fs::path& lock_file() const { return path_; }
  const fs::path& subject() const { return subject_; }
  // Removes the lock file and lets go (also done by the destructor, and by the kernel when the
  // process dies).
  void release();

  // This process's holder record (pid, host name, when the process started).
  static LockHolder self();

 private:
  fs::path path_, subject_;
  int fd_ = -1;
  fs::path created_dir_;  // a folder the lock created, removed on release if still empty
};

}  // namespace recap
