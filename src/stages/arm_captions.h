// Which caption each web image is trained with, per experiment arm: its alt-text (the
// baseline), a recaption (long, or short and long mixed), or the exact human captions only a
// synthetic world has; and the web corpus read batch by batch with them (ArmBatches). Shared
// by every trainer that reads (image, caption) pairs of the web corpus: the text-to-image
// model and the CLIP whose text encoder it may start from.
#pragma once
#include <cstdint>
#include <filesystem>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json.hpp>

#include "core/rng.h"
#include "data/loader.h"

namespace recap::stages {

namespace fs = std::filesystem;

enum class CaptionSource { Alt, Human, HumanShort, HumanMix, Recap, RecapMix };
// "alt", "human", "human-short", "human-mix", "recap", "recap-mix"; recap::Error otherwise.
CaptionSource parse_caption_source(std::string_view name);
std::string_view caption_source_name(CaptionSource source);
// recap and recap-mix read recaption files.
bool needs_recaptions(CaptionSource source);

// Recaptions by sample key, from `NAME.recap.jsonl` lines {"key", "caption", "kind":
// "long"|"short"} (other fields ignored).
struct Recaptions {
  std::map<std::string, std::string> long_captions, short_captions;
};
// Throws recap::Error naming the file and line for bad JSON, a missing field, an unknown kind
// or a (key, kind) given twice.
Recaptions load_recaptions(const std::vector<fs::path>& files);

// Every sample a trainer was handed is counted once: trained on with the chosen caption
// (used), with its alt-text because the recaption was missing (fell_back), or dropped
// (skipped, recap_fallback = skip).
struct CaptionCounts {
  int64_t used = 0, fell_back = 0, skipped = 0;
};

struct ArmCaptionOptions {
  CaptionSource source = CaptionSource::Recap;
  bool recap_skip = false;  // a missing recaption: skip the sample (true) or use its alt-text
  double mix_long = 0.5;    // *-mix: share of long captions where a key has both kinds
};

class ArmCaptions {
 public:
  // `who` names the trainer in errors ("t2i", "clip"). `recaptions` are read for the recap
  // sources only.
  ArmCaptions(std::string who, ArmCaptionOptions options, Recaptions recaptions);

  // The caption `sample` is trained on, counted; nullopt when it is skipped. `mix` draws the
  // long/short choice of the mixed sources, once per sample whatever is available, so one
  // key's missing kind does not shift the draws of the others. Throws recap::Error naming the
  // sample when a human source meets a sample without the world's captions.
  std::optional<std::string> choose(const data::DecodedSample& sample, Rng& mix);

  const CaptionCounts& counts() const { return counts_; }
  // The counts as fields "used", "fell_back", "skipped" of a trainer's data cursor, and back
  // from one (a resumed run counts on from where it stopped).
  void save_counts(nlohmann::json& cursor) const;
  void restore_counts(const nlohmann::json& cursor);

 private:
  std::string who_;
  ArmCaptionOptions options_;
  Recaptions recaptions_;
  CaptionCounts counts_;
};

// The web corpus batch by batch, each sample with its arm's caption: what the text-to-image
// model and a CLIP train on. Resumable from its cursor.
class ArmBatches {
 public:
  struct Batch {
    std::vector<data::DecodedSample> samples;  // those with a caption under this arm
    std::vector<std::string> captions;         // one per sample
  };

  // `mix_stream`: the seed stream of the mixed sources' long/short draws.
  ArmBatches(data::LoaderOptions loader, ArmCaptions captions, uint64_t mix_stream);

  // The next loader batch's samples that have a caption. Batch n (counting from 0, = draws()
  // before the call) draws its long/short choices from an Rng seeded derive_seed(mix_stream,
  // n), afresh for every loader batch; a batch skipped whole (recap_fallback = skip) is
  // replaced by the next one.
  Batch next();
  uint64_t draws() const { return draws_; }  // next() calls so far
  // The loader's position ("loader"), draws() ("batches") and the caption counts as fields of
  // a trainer's data cursor, and back.
  void save(nlohmann::json& cursor) const;
  void restore(const nlohmann::json& cursor);
  const CaptionCounts& counts() const { return captions_.counts(); }

 private:
  data::LoaderOptions loader_options_;
  ArmCaptions captions_;
  uint64_t mix_stream_;
  std::unique_ptr<data::Loader> loader_;
  uint64_t draws_ = 0;
};

}  // namespace recap::stages
