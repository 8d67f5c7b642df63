// Streams an image folder: FOLDER/captions.jsonl lists samples, one JSON object a line,
// {"file": "a.png", "caption": "..."} plus any other fields (kept as the sample's meta).
// The key is the file path relative to the folder. Each non-blank line is one sample or one
// reject: bad JSON, missing or duplicate files, paths (or symlinks) escaping the folder,
// oversized files and bad captions are counted, never fatal.
#pragma once
#include <filesystem>
#include <fstream>
#include <set>
#include <string>

#include "data/source.h"

namespace recap::data {

class ImageFolderSource : public SampleSource {
 public:
  // Throws recap::Error when FOLDER/captions.jsonl cannot be opened.
  explicit ImageFolderSource(std::filesystem::path folder, ReadLimits limits = {});

  std::optional<SourceItem> next() override;

 private:
  SourceItem parse(const std::string& line);

  std::filesystem::path folder_;  // canonical, for the escape check
  std::string shard_;             // the folder as given, copied into samples
  ReadLimits limits_;
  std::ifstream lines_;
  uint64_t line_number_ = 0;                 // 1-based, for reject keys
  uint64_t sample_index_ = 0;                // non-blank lines so far
  std::set<std::string, std::less<>> seen_;  // files listed so far
};

}  // namespace recap::data
