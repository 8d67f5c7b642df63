// Streams a manifest: a JSONL file (one JSON object a line) or a CSV file (a header row, then
// one row a sample; RFC 4180 quoting) listing images relative to the manifest's folder, each
// with one or more caption fields, as Recap-DataComp-1B keeps `org_caption` beside
// `re_caption`. Per record: the image is the `file` field, or else `KEY.png|jpg|jpeg|webp`
// for its `key` field; the sample's key is `key` when given, else `file`; its caption is the
// field ReadLimits::caption_field names (default `caption`); its meta is the whole record (so
// the other caption fields stay readable). Each non-blank record is one sample or one counted
// reject: bad JSON or CSV quoting, missing fields, duplicate keys, missing, escaping, oversized
// or unreadable images, bad captions; never fatal. A CSV header without an id column (`file`
// or `key`) or without the caption column, or with a column twice, breaks the whole source.
#pragma once
#include <filesystem>
#include <fstream>
#include <set>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "data/source.h"

namespace recap::data {

class ManifestSource : public SampleSource {
 public:
  // A `.csv` file (any case) is read as CSV, anything else as JSONL. `shard` is the name its
  // samples and rejects carry (empty: the manifest's path). Throws recap::Error when the file
  // cannot be opened or, for CSV, its header is unusable.
  explicit ManifestSource(std::filesystem::path manifest, ReadLimits limits = {},
                          std::string shard = {});

  std::optional<SourceItem> next() override;

 private:
  // The next non-blank record's fields as a JSON object, or the reject it is; nullopt at the end.
  std::optional<std::variant<nlohmann::json, Reject>> next_record();
  SourceItem to_sample(nlohmann::json record);
  Reject reject(std::string key, std::string_view why, std::string detail) const;
  std::string where() const;  // "NAME:LINE" of the record being read

  std::filesystem::path folder_;  // the manifest's folder, canonical: images are relative to it
  std::string name_;              // the manifest's file name, for reject keys
  std::string shard_;
  ReadLimits limits_;
  bool csv_ = false;
  std::vector<std::string> columns_;  // CSV header
  std::ifstream in_;
  uint64_t line_ = 0;         // 1-based line the current record starts on
  uint64_t next_line_ = 1;    // line the next record starts on
  uint64_t sample_index_ = 0;  // records so far
  std::set<std::string, std::less<>> seen_;  // keys so far
};

}  // namespace recap::data
