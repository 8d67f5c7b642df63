// Typed settings for each subsystem, read from the validated Config. world/ and data/ stay
// independent of the config system; this is the one place that maps keys onto their structs.
#pragma once
#include <cstdint>

#include "core/config.h"
#include "data/image.h"
#include "data/source.h"
#include "world/vocab.h"

namespace recap {

// [world] and [alt]; colours and backgrounds are chosen by name from the built-in palette.
// Throws recap::Error naming the key for an unknown name or an unusable combination.
world::WorldConfig world_settings(const Config& config);

data::ReadLimits read_limits(const Config& config);
data::DecodeLimits decode_limits(const Config& config);

struct CorpusSettings {
  int64_t web_samples, human_samples, eval_samples, prompts_per_suite, shard_size;
  uint64_t seed;
};
CorpusSettings corpus_settings(const Config& config);

}  // namespace recap
