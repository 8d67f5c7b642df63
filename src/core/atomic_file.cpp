#include "core/atomic_file.h"

#include <signal.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <fstream>
#include <sstream>
#include <vector>

#include "core/error.h"

namespace recap {

namespace {

fs::path temp_name(const fs::path& path) {
  return fs::path(path.string() + ".tmp." + std::to_string(::getpid()));
}

std::string errno_text() { return std::strerror(errno); }

}  // namespace

std::string read_file(const fs::path& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw Error(path.string() + ": cannot open: " + errno_text());
  std::ostringstream buffer;
  buffer << in.rdbuf();
  if (in.bad()) throw Error(path.string() + ": read failed");
  return std::move(buffer).str();
}

void write_file_atomic(const fs::path& path, std::string_view bytes) {
  AtomicFile file(path);
  file.write(bytes);
  file.commit();
}

void create_parent_directories(const fs::path& path) {
  if (!path.has_parent_path()) return;
  std::error_code ec;
  fs::create_directories(path.parent_path(), ec);
  if (ec)
    throw Error(path.parent_path().string() + ": cannot create the folder: " + ec.message());
}

AtomicFile::AtomicFile(fs::path path) : path_(std::move(path)), temp_(temp_name(path_)) {
  create_parent_directories(path_);
  file_ = std::fopen(temp_.c_str(), "wb");
  if (!file_) throw Error(path_.string() + ": cannot create " + temp_.string() + ": " + errno_text());
}

AtomicFile::~AtomicFile() {
  if (file_) {
    std::fclose(file_);
    std::error_code ignored;
    fs::remove(temp_, ignored);
  }
}

void AtomicFile::fail(const std::string& what, int err) {
  // Nothing under the final name, and no temporary left behind.
  if (file_) std::fclose(file_);
  file_ = nullptr;
  std::error_code ignored;
  fs::remove(temp_, ignored);
  throw Error(path_.string() + ": " + what + " failed: " + std::strerror(err));
}

void AtomicFile::write(std::string_view bytes) {
  if (!file_) throw Error(path_.string() + ": write after commit or failure");
  if (bytes.empty()) return;  // fwrite(nullptr, 1, 0, f) is undefined behaviour
  if (std::fwrite(bytes.data(), 1, bytes.size(), file_) != bytes.size()) fail("write", errno);
}

void AtomicFile::commit() {
  if (!file_) throw Error(path_.string() + ": committed twice or after a failure");
  // Every step's result counts, and the first failure's errno is the one reported: a full
  // disk often shows only here, when stdio's buffer or the page cache reaches it.
  if (std::fflush(file_) != 0) fail("write", errno);
  if (::fsync(::fileno(file_)) != 0) fail("fsync", errno);
  const int closed = std::fclose(file_);
  const int err = errno;
  file_ = nullptr;
  if (closed != 0) {
    std::error_code ignored;
    fs::remove(temp_, ignored);
    throw Error(path_.string() + ": close failed: " + std::strerror(err));
  }
  std::error_code ec;
  fs::rename(temp_, path_, ec);
  if (ec) {
    std::error_code ignored;
    fs::remove(temp_, ignored);
    throw Error(path_.string() + ": cannot rename " + temp_.filename().string() +
                " into place: " + ec.message());
  }
}

AtomicDir::AtomicDir(fs::path path) : path_(std::move(path)), temp_(temp_name(path_)) {
  std::error_code ec;
  fs::remove_all(temp_, ec);
  if (!ec) fs::create_directories(temp_, ec);
  if (ec) throw Error(temp_.string() + ": cannot create the folder: " + ec.message());
}

AtomicDir::~AtomicDir() {
  if (!committed_) {
    std::error_code ignored;
    fs::remove_all(temp_, ignored);
  }
}

void AtomicDir::commit() {
  // rename() cannot replace a non-empty directory: move the old one aside first, so the
  // final name always points at a complete directory (old or new).
  fs::path old = fs::path(path_.string() + ".old." + std::to_string(::getpid()));
  std::error_code ec;
  const bool had_old = fs::exists(path_, ec);
  if (had_old) {
    fs::rename(path_, old, ec);
    if (ec)
      throw Error(path_.string() + ": cannot move the old folder aside to " +
                  old.filename().string() + ": " + ec.message());
  }
  fs::rename(temp_, path_, ec);
  if (ec) {
    std::error_code ignored;
    if (had_old) fs::rename(old, path_, ignored);  // put the old one back
    throw Error(path_.string() + ": cannot rename " + temp_.filename().string() +
                " into place: " + ec.message());
  }
  committed_ = true;
  if (had_old) fs::remove_all(old, ec);  // a leftover here is only disk space
}

// A killed process leaves its temporaries under their names: a later process, with another
// PID, never looks at them again, so a folder killed N times kept N stray copies. Only names
// whose PID is no live process are touched (a PID reused since merely keeps its leftover for
// a later call).
size_t remove_dead_temporaries(const fs::path& dir) {
  const auto dead_pid = [](const std::string& name, const std::string& marker) {
    const auto at = name.rfind(marker);
    if (at == std::string::npos) return false;
    const std::string digits = name.substr(at + marker.size());
    if (digits.empty() || digits.size() > 9 ||
        !std::all_of(digits.begin(), digits.end(), [](char c) { return c >= '0' && c <= '9'; }))
      return false;
    const auto pid = static_cast<pid_t>(std::stol(digits));
    return pid > 0 && ::kill(pid, 0) != 0 && errno == ESRCH;
  };
  std::vector<fs::path> temporaries, set_aside;
  for (auto it = fs::recursive_directory_iterator(dir); it != fs::recursive_directory_iterator();
       ++it) {
    const std::string name = it->path().filename().string();
    if (dead_pid(name, ".tmp.")) temporaries.push_back(it->path());
    else if (it->is_directory() && dead_pid(name, ".old.")) set_aside.push_back(it->path());
    else continue;
    if (it->is_directory()) it.disable_recursion_pending();
  }
  for (const auto& path : temporaries) fs::remove_all(path);
  for (const auto& path : set_aside) {
    const std::string name = path.string();
    const fs::path original = name.substr(0, name.rfind(".old."));
    if (fs::exists(original)) fs::remove_all(path);
    else fs::rename(path, original);
  }
  return temporaries.size() + set_aside.size();
}


}  // namespace recap
