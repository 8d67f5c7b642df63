#include "core/jsonl.h"

#include <sstream>

#include "core/atomic_file.h"
#include "core/error.h"

namespace recap {

JsonlWriter::JsonlWriter(std::filesystem::path path) : path_(std::move(path)) {
  if (path_.has_parent_path()) std::filesystem::create_directories(path_.parent_path());
  open_append();
}

JsonlWriter::~JsonlWriter() {
  if (file_) std::fclose(file_);
}

void JsonlWriter::open_append() {
  file_ = std::fopen(path_.c_str(), "ab");
  if (!file_) throw Error(path_.string() + ": cannot open for appending");
}

void JsonlWriter::write(const nlohmann::json& record) {
  std::string line = record.dump() + "\n";
  if (std::fwrite(line.data(), 1, line.size(), file_) != line.size() || std::fflush(file_) != 0)
    throw Error(path_.string() + ": write failed");
}

void JsonlWriter::truncate_after(const std::string& field, double value) {
  std::fclose(file_);
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
