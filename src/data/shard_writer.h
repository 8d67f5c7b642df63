// Writes WebDataset shards: a POSIX tar whose entries are KEY.EXT, grouped by key
// (KEY.png + KEY.txt + KEY.json). Output is deterministic (mtime 0, uid/gid 0, mode 0644,
// entries in insertion order) so the same samples give byte-identical shards, and atomic:
// the shard appears under its name only on commit().
#pragma once
#include <filesystem>
#include <memory>
#include <set>
#include <string>
#include <string_view>

#include <nlohmann/json.hpp>

struct archive;

namespace recap {
class AtomicFile;
}

namespace recap::data {

// Throws recap::Error unless `key` is 1..kMaxKeyLength characters of [A-Za-z0-9_-].
// No '.', so the key is unambiguous (WebDataset splits at the first '.'), and no '/', so
// it cannot name a path outside the reader's folder.
inline constexpr std::size_t kMaxKeyLength = 80;
void validate_key(std::string_view key);

class ShardWriter {
 public:
  explicit ShardWriter(std::filesystem::path path);
  ~ShardWriter();  // without commit() the partial shard is removed
  ShardWriter(const ShardWriter&) = delete;
  ShardWriter& operator=(const ShardWriter&) = delete;

  // One entry KEY.EXT. Entries of one key must be consecutive and each EXT appear once per
  // key ([a-z0-9.], e.g. "png", "recap.json"); violations throw recap::Error.
  void add(std::string_view key, std::string_view ext, std::string_view bytes);
  // KEY.IMAGE_EXT, KEY.txt and, unless meta is null, KEY.json.
  void add_sample(std::string_view key, std::string_view image_ext, std::string_view image_bytes,
                  std::string_view caption, const nlohmann::json& meta = nullptr);

  void commit();
  const std::filesystem::path& path() const { return path_; }
  std::size_t keys() const { return keys_.size(); }

 private:
  std::filesystem::path path_;
  std::unique_ptr<AtomicFile> file_;
  archive* archive_ = nullptr;
  std::set<std::string, std::less<>> keys_;  // every key so far, to refuse a key's return
  std::string current_key_;
  std::set<std::string, std::less<>> current_exts_;
  std::string write_error_;  // set by the libarchive write callback

  struct Callbacks;
  friend struct Callbacks;
  void check(int status, std::string_view what);
};

}  // namespace recap::data
