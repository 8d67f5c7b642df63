// Append-only JSON Lines metrics log (one object per line, flushed per line so a killed
// process loses at most the line being written).
#pragma once
#include <cstdio>
#include <filesystem>
#include <vector>

#include <nlohmann/json.hpp>

namespace recap {

class JsonlWriter {
 public:
  // Appends to an existing file. A trainer resuming from step S first calls
  // truncate_after("step", S) so lines logged after its checkpoint are not duplicated.
  explicit JsonlWriter(std::filesystem::path path);
  ~JsonlWriter();
  JsonlWriter(const JsonlWriter&) = delete;
  JsonlWriter& operator=(const JsonlWriter&) = delete;

  void write(const nlohmann::json& record);
  // Drops lines whose numeric `field` is greater than `value` (and an unterminated last line).
  void truncate_after(const std::string& field, double value);

 private:
  void open_append();
  std::filesystem::path path_;
  std::FILE* file_ = nullptr;
};

// Reads every line; throws recap::Error naming the file and line number on bad JSON.
std::vector<nlohmann::json> read_jsonl(const std::filesystem::path& path);

}  // namespace recap
