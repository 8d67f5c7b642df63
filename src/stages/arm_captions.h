// Which caption each image is trained with: a mix of named caption sources drawn per sample
// with fixed probabilities (the paper's half long, half short recaptions; DALL-E 3's 95%
// synthetic, 5% original), of which the experiment's arms are special cases: its alt-text
// (the baseline), a recaption (long, or short and long mixed), or the exact human captions
// only a synthetic world has; and the images read batch by batch with them (ArmBatches).
// Shared by every trainer that reads (image, caption) pairs: the text-to-image model and the
// CLIP whose text encoder it may start from.
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

struct ArmCaptionOptions {
  CaptionSource source = CaptionSource::Recap;
  bool recap_skip = false;  // a missing recaption: skip the sample (true) or use its alt-text
  double mix_long = 0.5;    // *-mix: share of long captions where a key has both kinds
};

// A named caption source: where a sample's caption under that name comes from. Built in:
// the sample's own caption ("original", also called "alt": a shard's KEY.txt, an image
// folder's caption) and the world's human captions in its metadata ("human_long",
// "human_short", only in corpora `recap corpus make` wrote); otherwise a table by sample key
// (recaption sidecars, manifests).
struct NamedCaptions {
  enum class Kind { kOriginal, kHumanLong, kHumanShort, kTable };
  std::string name;
  Kind kind = Kind::kOriginal;
  std::shared_ptr<const std::map<std::string, std::string>> table;  // kTable: caption by key
};

// A built-in source of that name ("original", "alt", "human_long", "human_short"); nullopt
// for any other name.
std::optional<NamedCaptions> builtin_captions(std::string_view name);

// `source`'s caption of one sample (its key, shard, own caption and metadata); nullopt when a
// table lacks the key. Throws recap::Error naming `who`, the sample and its shard when a human
// source meets a sample without the world's captions in its metadata.
std::optional<std::string> named_caption(const NamedCaptions& source, std::string_view who,
                                         const std::string& key, const std::string& shard,
                                         const std::string& caption,
                                         const nlohmann::json& meta);

// Captions by key from a recaption sidecar (NAME.recap.jsonl: "key", "caption"), a folder of
// them (its *.recap.jsonl), or a recaption manifest in JSONL ("key", "re_caption"; other
// fields ignored). Throws recap::Error naming the file and record for bad JSON, a line without
// a string key and caption, a key given twice, or a folder without sidecars.
std::map<std::string, std::string> load_caption_table(const fs::path& path);

// Which source each sample's caption is drawn from, with what probability.
struct CaptionMix {
  struct Entry {
    NamedCaptions source;
    double p = 0;
  };
  std::vector<Entry> entries;
  // No source has the sample's caption: skip the sample (true) or train on its original one.
  bool skip_missing = false;

  // "NAME=P,NAME=P" in entry order, P with up to 6 significant digits: for logs, the model's
  // metadata and the checkpoint's data cursor (a resume under another mix is refused).
  std::string describe() const;
};

// The experiment's arms as mixes: alt = {alt: 1}, human = {human_long: 1}, human-short =
// {human_short: 1}, human-mix = {human_long: mix_long, human_short: 1 - mix_long}, recap =
// {recap_long: 1}, recap-mix = {recap_long: mix_long, recap_short: 1 - mix_long}; recap_skip
// is skip_missing.
CaptionMix arm_mix(const ArmCaptionOptions& options, Recaptions recaptions);

// A mix from the command line: `sources` are NAME=BUILTIN or NAME=PATH (load_caption_table),
// `mix` is "NAME=P,..." over declared or built-in names, each P in [0, 1], summing to 1
// (within 1e-6). An empty `mix` draws the declared sources with equal probability (none: the
// original caption only). Throws recap::Error naming the bad spec.
CaptionMix parse_caption_mix(const std::vector<std::string>& sources, const std::string& mix,
                             bool skip_missing);

// Every sample a trainer was handed is counted once: trained on with the chosen caption
// (used, and under by_source the source it came from), with its original caption because no
// source of the mix had one (fell_back), or dropped (skipped, recap_fallback = skip).
struct CaptionCounts {
  int64_t used = 0, fell_back = 0, skipped = 0;
  std::map<std::string, int64_t> by_source;
  // "used 10 (recap 9, original 1), fell back 0, skipped 0": what a trainer logs at its end.
  std::string summary() const;
};

class ArmCaptions {
 public:
  // `who` names the trainer in errors ("t2i", "clip").
  ArmCaptions(std::string who, CaptionMix mix);
  // One of the experiment's arms (arm_mix); `recaptions` are read by the recap sources only.
  ArmCaptions(std::string who, ArmCaptionOptions options, Recaptions recaptions);

  // The caption `sample` is trained on, counted; nullopt when it is skipped. Each sample takes
  // exactly one uniform draw from `rng`, whatever its sources hold, so one key's missing
  // caption does not shift the draws of the others. The sources that have the sample's
  // caption are drawn among with their probabilities renormalised (all of them 0: the first);
  // none: the fallback. Throws recap::Error naming the sample when a human source meets a
  // sample without the world's captions.
  std::optional<std::string> choose(const data::DecodedSample& sample, Rng& rng);

  const CaptionMix& mix() const { return mix_; }
  const CaptionCounts& counts() const { return counts_; }
  // The counts as fields "used", "fell_back", "skipped", "by_source" and the mix as "mix" of
  // a trainer's data cursor, and back from one (a resumed run counts on from where it
  // stopped). Restoring a cursor of another mix is a recap::Error; cursors from before these
  // fields existed restore with empty per-source counts.
  void save_counts(nlohmann::json& cursor) const;
  void restore_counts(const nlohmann::json& cursor);

 private:
  std::string who_;
  CaptionMix mix_;
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
  // before the call) draws its samples' sources from an Rng seeded derive_seed(mix_stream,
  // n), afresh for every loader batch; a batch skipped whole (recap_fallback = skip) is
  // replaced by the next one.
  Batch next();
  uint64_t draws() const { return draws_; }  // next() calls so far
  // The loader's position ("loader"), draws() ("batches"), the mix and the caption counts as
  // fields of a trainer's data cursor, and back.
  void save(nlohmann::json& cursor) const;
  void restore(const nlohmann::json& cursor);
  const CaptionCounts& counts() const { return captions_.counts(); }
  const CaptionMix& mix() const { return captions_.mix(); }

 private:
  data::LoaderOptions loader_options_;
  ArmCaptions captions_;
  uint64_t mix_stream_;
  std::unique_ptr<data::Loader> loader_;
  uint64_t draws_ = 0;
};

}  // namespace recap::stages
