#include "core/atomic_file.h"

#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <fstream>
#include <sstream>

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

AtomicFile::AtomicFile(fs::path path) : path_(std::move(path)), temp_(temp_name(path_)) {
  if (path_.has_parent_path()) fs::create_directories(path_.parent_path());
  file_ = std::fopen(temp_.c_str(), "wb");
  if (!file_) throw Error(temp_.string() + ": cannot create: " + errno_text());
}

AtomicFile::~AtomicFile() {
  if (file_) {
    std::fclose(file_);
    std::error_code ignored;
    fs::remove(temp_, ignored);
  }
}

void AtomicFile::write(std::string_view bytes) {
  if (!file_) throw Error(path_.string() + ": write after commit");
  if (bytes.empty()) return;  // fwrite(nullptr, 1, 0, f) is undefined behaviour
  if (std::fwrite(bytes.data(), 1, bytes.size(), file_) != bytes.size())
    throw Error(temp_.string() + ": write failed: " + errno_text());
}

void AtomicFile::commit() {
  if (!file_) throw Error(path_.string() + ": committed twice");
  bool ok = std::fflush(file_) == 0 && ::fsync(::fileno(file_)) == 0;
  ok = (std::fclose(file_) == 0) && ok;
  file_ = nullptr;
  if (!ok) {
    std::error_code ignored;
    fs::remove(temp_, ignored);
    throw Error(temp_.string() + ": flush failed: " + errno_text());
  }
  std::error_code ec;
  fs::rename(temp_, path_, ec);
  if (ec) {
    fs::remove(temp_, ec);
    throw Error(path_.string() + ": cannot rename into place: " + ec.message());
  }
}

AtomicDir::AtomicDir(fs::path path) : path_(std::move(path)), temp_(temp_name(path_)) {
  fs::remove_all(temp_);
  fs::create_directories(temp_);
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
  bool had_old = fs::exists(path_);
  if (had_old) fs::rename(path_, old);
  fs::rename(temp_, path_);
  committed_ = true;
  if (had_old) fs::remove_all(old);
}

}  // namespace recap
