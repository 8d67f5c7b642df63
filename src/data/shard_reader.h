// Streams a WebDataset / img2dataset tar shard as samples. Consecutive entries sharing a key
// form one sample (key = path up to the first '.' of the basename): KEY.png|jpg|jpeg|webp is
// the image, KEY.txt the caption, KEY.json optional metadata; other extensions are ignored.
// Bad entries poison their sample, which becomes one reject with the first problem's reason,
// so every sample is accounted for exactly once. Memory stays bounded: one sample is held at
// a time, with at most one entry of each kind read (captions no further than their limit), and
// 8 bytes per key seen; a shard past ReadLimits::max_shard_bytes of tar data is broken there. A broken archive (corrupt header,
// truncation) is not a sample problem: it throws recap::Error naming the shard, the entry and
// the byte offset, after every sample completed before the break (one is complete once the
// next key's header has been read); the sample being read at the break is lost with the rest.
#pragma once
#include <filesystem>
#include <set>
#include <string>
#include <unordered_set>
#include <utility>

#include "data/source.h"

struct archive;
struct archive_entry;

namespace recap::data {

class ShardReader : public SampleSource {
 public:
  explicit ShardReader(std::filesystem::path path, ReadLimits limits = {});
  ~ShardReader() override;
  ShardReader(const ShardReader&) = delete;
  ShardReader& operator=(const ShardReader&) = delete;

  std::optional<SourceItem> next() override;

 private:
  // The entries read so far for one key.
  struct Group {
    std::string key;
    std::string reason;  // first problem; empty while the sample is still good
    std::string detail;
    std::string image_bytes;
    std::string image_ext;
    std::optional<std::string> caption;
    std::optional<std::string> meta;
    std::set<std::string> exts;  // seen, to catch KEY.txt twice
  };

  void add_entry(archive_entry* entry, const std::string& name, const std::string& ext);
  SourceItem finish(Group& group);
  // Throws recap::Error when the entry would take the shard past limits_.max_shard_bytes.
  void check_shard_size(archive_entry* entry, const std::string& name);
  std::string read_data(uint64_t size_hint, uint64_t limit, const std::string& name,
                        bool* too_large);
  [[noreturn]] void fail(const std::string& what);

  std::filesystem::path path_;
  std::string shard_;  // path_ as text, copied into every sample
  ReadLimits limits_;
  archive* archive_ = nullptr;
  std::optional<Group> group_;
  // A header read but not its data (valid until the next header is read): waits while the
  // group it ends is handed out.
  std::optional<std::pair<archive_entry*, std::string>> pending_;
  std::unordered_set<uint64_t> seen_keys_;  // key_id of every key so far, to catch a key's return
  uint64_t entry_index_ = 0;                      // entries read, for error messages
  uint64_t sample_index_ = 0;                     // groups finished
  bool done_ = false;
};

}  // namespace recap::data
