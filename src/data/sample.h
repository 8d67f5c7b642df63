// The sample schema every source produces (tar shards, image folders), before decoding.
#pragma once
#include <cstdint>
#include <string>

#include <nlohmann/json.hpp>

namespace recap::data {

struct Sample {
  std::string key;              // WebDataset key (tar) or relative file path (folder)
  std::string shard;            // the shard file or folder it came from
  uint64_t index_in_shard = 0;  // ordinal of the sample among all in the shard, rejects included
  std::string image_bytes;      // encoded image, not yet decoded
  std::string image_ext;        // lower-case: png, jpg, jpeg or webp
  std::string caption;          // exact bytes, validated UTF-8
  nlohmann::json meta;          // KEY.json (tar) or the captions.jsonl line (folder); null if none
};

// One skipped input, with a reason from rejects.h and a human-readable detail.
struct Reject {
  std::string shard;
  std::string key;
  std::string reason;
  std::string detail;
};

}  // namespace recap::data
