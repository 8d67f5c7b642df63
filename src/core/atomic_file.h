// Every file recap writes becomes visible under its final name only when complete:
// bytes go to "<name>.tmp.<pid>" in the same directory, are flushed, and renamed over
// the final path (rename is atomic on POSIX within one filesystem).
#pragma once
#include <cstdio>
#include <filesystem>
#include <string>
#include <string_view>

namespace recap {

namespace fs = std::filesystem;

// Writes `bytes` to `path` atomically, creating parent directories.
void write_file_atomic(const fs::path& path, std::string_view bytes);

// create_directories for `path`'s parent, as a recap::Error naming the folder on failure.
void create_parent_directories(const fs::path& path);

// Reads a whole file; throws recap::Error naming the file when it cannot.
std::string read_file(const fs::path& path);

// Streaming variant for large outputs (tar shards, JSONL sidecars): write(), then commit().
// Destroying an uncommitted AtomicFile removes the temporary, so an exception never leaves a
// partial file behind under either name. A failing write, fflush, fsync or fclose (a full
// disk: ENOSPC, a failing one: EIO) throws recap::Error "PATH: write failed: REASON" naming
// the final path, and removes the temporary at once; the AtomicFile is then spent.
class AtomicFile {
 public:
  explicit AtomicFile(fs::path path);
  ~AtomicFile();
  AtomicFile(const AtomicFile&) = delete;
  AtomicFile& operator=(const AtomicFile&) = delete;

  void write(std::string_view bytes);
  void commit();
  const fs::path& temp_path() const { return temp_; }
  const fs::path& path() const { return path_; }
  // The open stdio stream, for libraries that write through a FILE* (e.g. libarchive).
  std::FILE* stream() { return file_; }

 private:
  [[noreturn]] void fail(const std::string& what, int err);
  fs::path path_;
  fs::path temp_;
  std::FILE* file_ = nullptr;
};

// A directory published atomically: fill temp_path(), then commit() renames it to path()
// (replacing an older directory of that name). Used for checkpoints.
class AtomicDir {
 public:
  explicit AtomicDir(fs::path path);
  ~AtomicDir();
  AtomicDir(const AtomicDir&) = delete;
  AtomicDir& operator=(const AtomicDir&) = delete;

  const fs::path& temp_path() const { return temp_; }
  void commit();

 private:
  fs::path path_;
  fs::path temp_;
  bool committed_ = false;
};

// Removes, anywhere under `dir`, what killed processes left: "NAME.tmp.PID" temporaries
// (files, or AtomicDir folders) whose PID is no live process, and AtomicDir's "NAME.old.PID"
// (the folder a commit sets aside), which goes back under NAME when the commit died before
// putting the new one in place and is removed otherwise. The caller holds `dir` (a DirLock),
// so no live process of another machine is writing there. Returns how many were handled.
size_t remove_dead_temporaries(const fs::path& dir);

}  // namespace recap
