#include "core/jsonl.h"

#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <sstream>

#include "core/atomic_file.h"
#include "core/error.h"

namespace recap {

JsonlWriter::JsonlWriter(std::filesystem::path path) : path_(std::move(path)) {
  create_parent_directories(path_);
  open_append();
}

JsonlWriter::~JsonlWriter() {
  // Every line was flushed when written; a failure here has nothing of ours left to lose.
  if (file_) std::fclose(file_);
}

void JsonlWriter::open_append() {
  file_ = std::fopen(path_.c_str(), "ab");
  if (!file_)
    throw Error(path_.string() + ": cannot open for appending: " + std::strerror(errno));
}

void JsonlWriter::write(const nlohmann::json& record) {
  if (!file_) throw Error(path_.string() + ": write after a failed write");
  std::string line = record.dump() + "\n";
  // Where the file ends before this line: every earlier line was flushed, so this is its size.
  struct stat st{};
  const bool sized = ::fstat(::fileno(file_), &st) == 0;
  if (std::fwrite(line.data(), 1, line.size(), file_) == line.size() && std::fflush(file_) == 0)
    return;
  const int err = errno;
  // A full disk may have taken part of the line: cut it off, so the log ends with whole lines
  // (a reader skips nothing, a resumed trainer appends after the last whole one).
  std::fclose(file_);
  file_ = nullptr;
  if (sized) (void)::truncate(path_.c_str(), st.st_size);
  throw Error(path_.string() + ": write failed: " + std::strerror(err));
}

void JsonlWriter::truncate_after(const std::string& field, double value) {
  if (file_) std::fclose(file_);
  file_ = nullptr;
  std::string kept;
  std::istringstream in(std::filesystem::exists(path_) ? read_file(path_) : "");
  std::string line;
  while (std::getline(in, line)) {
    if (in.eof()) break;  // no trailing newline: the write was cut off by a kill
    auto rec = nlohmann::json::parse(line, nullptr, false);
    if (rec.is_discarded()) continue;
    if (rec.contains(field) && rec[field].is_number() && rec[field].get<double>() > value) continue;
    kept += line + "\n";
  }
  write_file_atomic(path_, kept);
  open_append();
}

std::vector<nlohmann::json> read_jsonl(const std::filesystem::path& path) {
  std::istringstream in(read_file(path));
  std::vector<nlohmann::json> out;
  std::string line;
  for (int n = 1; std::getline(in, line); ++n) {
    if (line.empty()) continue;
    auto rec = nlohmann::json::parse(line, nullptr, false);
    if (rec.is_discarded())
      throw Error(path.string() + ":" + std::to_string(n) + ": invalid JSON line");
    out.push_back(std::move(rec));
  }
  return out;
}

}  // namespace recap
