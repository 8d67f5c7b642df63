// The small human-captioned set of RECAP step 1 on a user's own data (`recap captioner train
// --captions human.jsonl`): one JSON object a line, {"key": K} or {"file": F} naming a sample
// of the image sources (its key: a shard's WebDataset key, a folder's relative file path, a
// manifest's key or file), "caption", and optionally "style": "long" (the default: RECAP's
// detailed human captions) or "short". A key may have one caption of each style. The set is
// checked whole before training, and refused (recap::Error naming the file) with a count per
// problem and the first lines of each, rather than trained on in part.
#pragma once
#include <cstdint>
#include <filesystem>
#include <map>
#include <string>
#include <vector>

#include "data/source.h"

namespace recap::stages {

struct HumanCaptions {
  std::string long_caption, short_caption;  // empty: none of that style
};

struct HumanSet {
  std::filesystem::path file;
  std::map<std::string, HumanCaptions> by_key;
  uint64_t lines = 0;  // captions read (non-blank lines)
  // Every caption, for a tokenizer: each key's long, then its short one.
  std::vector<std::string> texts() const;
};

// Reads `path`. Refused: a line that is not a JSON object, one without a string "key" or
// "file", a caption missing, empty or blank, invalid UTF-8 or over `limits`, a "style" other
// than "short" or "long", a key and style given twice; a file without any caption.
HumanSet read_human_set(const std::filesystem::path& path, const data::CaptionLimits& limits);

// Finds the set's samples in `sources` (read in order with `read`'s limits; a broken source is
// counted like a missing one) and writes them to one WebDataset shard at `shard`, in the order
// met: keys human-000000000, ..., KEY.txt the long caption (empty when none), KEY.json
// {"key": <the sample's key>, "captions": {"human_long": ..., "human_short": ...}} with the
// styles it has (the embedded corpus's human split has the same fields). Refused, before
// anything is written: keys no source holds and keys whose sample the source rejected, with
// counts and the first keys. Returns the samples written.
uint64_t write_human_shard(const HumanSet& set, const std::vector<std::filesystem::path>& sources,
                           const data::ReadLimits& read, const std::filesystem::path& shard);

}  // namespace recap::stages
