// The interface every sample source shares (tar shards, image folders with captions.jsonl or
// with sidecar captions, JSONL and CSV manifests) and the factory that picks one for a path. A source yields, in its own deterministic order, either a sample or
// a reject: returning rejects as items (rather than logging them inside the source) lets the
// loader keep the reject log in input order whatever its thread timing.
#pragma once
#include <cstdint>
#include <filesystem>
#include <memory>
#include <optional>
#include <string>
#include <variant>
#include <vector>

#include "data/sample.h"
#include "data/text_checks.h"

namespace recap::data {

// How samples are read: the limits that protect the machine, and which caption a sample has.
struct ReadLimits {
  uint64_t max_entry_bytes = 64ull << 20;  // largest tar entry or image file read, in bytes
  // Most tar data one shard may hold, in bytes after decompression: what stops a
  // decompression bomb (a small .tar.gz of terabytes) before it costs hours to skip.
  uint64_t max_shard_bytes = 16ull << 30;
  CaptionLimits caption;
  // The caption field (data.caption_field): a manifest's column or JSONL field, an image
  // folder's captions.jsonl field; for tar shards "caption" is KEY.txt and any other name a
  // string field of KEY.json. Sidecar folders have one caption file and ignore it.
  std::string caption_field = "caption";
};

using SourceItem = std::variant<Sample, Reject>;

class SampleSource {
 public:
  virtual ~SampleSource() = default;
  // The next sample or reject; nullopt at the end. Throws recap::Error when the source
  // itself is broken (e.g. a corrupt tar header), naming the source and where it broke.
  virtual std::optional<SourceItem> next() = 0;
};

// What a source does when it breaks itself (a truncated or corrupt tar, an unreadable caption
// list), as opposed to one bad sample in it.
enum class OnBroken {
  kThrow,  // next() (or opening) throws the recap::Error naming the source and where it broke
  // next() yields the items before the break, then one broken_shard reject (empty key, the
  // error as detail), then ends: one bad file among thousands does not end the job. The
  // sample being read at the break is part of that reject.
  kReject,
};

// A directory is an image folder: with captions.jsonl, listed by it (image_folder.h); without,
// images with sidecar captions (sidecar_folder.h). A .jsonl or .csv file is a manifest
// (manifest.h). Anything else is read as a tar shard (plain or compressed with any filter
// libarchive detects, e.g. .tar.gz). A path that does not exist is an error either way: a
// wrong list of sources, not a damaged file.
std::unique_ptr<SampleSource> open_source(const std::filesystem::path& path,
                                          const ReadLimits& limits = {},
                                          OnBroken on_broken = OnBroken::kThrow);

// The sources the user named (`--images A B ...`): each path as open_source reads it, except a
// folder without captions.jsonl that holds tar shards (*.tar, *.tar.gz, *.tgz, *.tar.zst,
// *.tar.xz, *.tar.bz2) at its top level, which stands for those shards in sorted order (as
// img2dataset writes them). Throws recap::Error naming a path that does not exist, or when
// no path is given.
std::vector<std::filesystem::path> expand_sources(const std::vector<std::filesystem::path>& paths);

}  // namespace recap::data
