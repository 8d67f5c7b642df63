// Accounting for skipped input: every sample a stage reads is either used or rejected with
// a reason. RejectLog counts both, optionally writes one JSONL line per reject, and
// summarises. The log file is streamed to a temporary and appears under its final name only
// on finish(), like every other output. Not thread-safe: feed it from one thread, in a
// deterministic order, so the log is byte-identical between runs.
#pragma once
#include <cstdint>
#include <filesystem>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <string_view>

#include <nlohmann/json.hpp>

#include "data/sample.h"

namespace recap {
class AtomicFile;
}

namespace recap::data {

// Reject reasons, stable strings: they appear in logs and summaries and tests match them.
namespace reason {
inline constexpr std::string_view kUnsafePath = "unsafe_path";           // '..', absolute, empty
inline constexpr std::string_view kNotRegularFile = "not_regular_file";  // link, dir, device
inline constexpr std::string_view kEntryTooLarge = "entry_too_large";
inline constexpr std::string_view kDuplicateKey = "duplicate_key";
inline constexpr std::string_view kMissingImage = "missing_image";
inline constexpr std::string_view kMissingCaption = "missing_caption";
inline constexpr std::string_view kCaptionInvalidUtf8 = "caption_invalid_utf8";
inline constexpr std::string_view kCaptionTooLong = "caption_too_long";
inline constexpr std::string_view kMetaInvalidJson = "meta_invalid_json";
inline constexpr std::string_view kBadJsonLine = "bad_json_line";  // captions.jsonl
inline constexpr std::string_view kBadCsvRow = "bad_csv_row";  // quoting, field count
inline constexpr std::string_view kImageEmpty = "image_empty";
inline constexpr std::string_view kImageUnknownFormat = "image_unknown_format";
inline constexpr std::string_view kImageTooLarge = "image_too_large";  // declared pixels
inline constexpr std::string_view kImageCorrupt = "image_corrupt";     // incl. truncated
// The source itself broke (a truncated or corrupt tar, an unreadable caption list): one reject
// with an empty key stands for everything from the break on, its detail the reader's error.
inline constexpr std::string_view kBrokenShard = "broken_shard";
}  // namespace reason

class RejectLog {
 public:
  RejectLog();  // counts only
  // Also writes each reject as a JSONL line {"shard","key","reason","detail"} to `path`.
  explicit RejectLog(const std::filesystem::path& path);
  ~RejectLog();
  RejectLog(const RejectLog&) = delete;
  RejectLog& operator=(const RejectLog&) = delete;

  void add(const Reject& reject);
  void add_used(uint64_t count = 1);

  uint64_t used() const { return used_; }
  uint64_t rejected() const { return rejected_; }
  uint64_t count(std::string_view reason) const;
  const std::map<std::string, uint64_t, std::less<>>& counts() const { return counts_; }
  // The sources that broke (broken_shard rejects), by path, with the first break's detail. A
  // source met again (the next epoch) is counted again but named once.
  const std::map<std::string, std::string, std::less<>>& broken_shards() const {
    return broken_shards_;
  }

  // e.g. "used 98, rejected 2 (caption_too_long 1, image_corrupt 1)"; reasons sorted; then
  // "; broken shards: a.tar, b.tar" naming the first few when some broke.
  std::string summary() const;
  // {"used": n, "rejected": n, "reasons": {reason: n}, "broken_shards": [path, ...]}.
  nlohmann::json to_json() const;

  // Publishes the JSONL log (no-op without one). Without finish() the log is discarded.
  void finish();

 private:
  uint64_t used_ = 0;
  uint64_t rejected_ = 0;
  std::map<std::string, uint64_t, std::less<>> counts_;
  std::map<std::string, std::string, std::less<>> broken_shards_;
  std::unique_ptr<AtomicFile> file_;
};

}  // namespace recap::data
