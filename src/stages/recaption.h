// RECAP step 2: relabel the web corpus with the fine-tuned captioner. Each input shard gets a
// sidecar out_dir/<shard stem>.recap.jsonl, one line per readable sample in shard order:
//   {"key", "caption", "kind": "long"|"short", "model": <sha256 of the weight file>,
//    "decode": DecodeOptions::to_json()}
// which stages::load_recaptions (t2i_train.h) and corpus::corpus_stats read. A sidecar appears
// only once its whole shard is decoded (temp + rename), so a killed run resumes by skipping the
// finished ones, and processes given different shard indices can share one out_dir. A shard
// that breaks mid-way (truncated tar) leaves its captions before the break in
// <sidecar>.partial, a name no reader takes for a sidecar: a rerun captions that shard again.
#pragma once
#include <cstdint>
#include <filesystem>
#include <functional>
#include <map>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include <nlohmann/json.hpp>

#include "core/config.h"
#include "core/torch_pch.h"
#include "data/rejects.h"
#include "models/captioner.h"
#include "models/decoding.h"
#include "text/tokenizer.h"

namespace recap::stages {

namespace fs = std::filesystem;

struct RecaptionOptions {
  models::CaptionStyle style = models::CaptionStyle::kLong;
  models::DecodeOptions decode;  // greedy by default
  int64_t batch_size = 64;
  // This process takes shards i, i+n, i+2n, ... of the sorted list (i = shard_index).
  int shard_index = 0, num_shards = 1;
  int workers = 1;                     // image decode threads
  torch::Device device = torch::kCPU;  // where the captioner runs
  // Stop at the first broken shard with its error (data.strict, --strict); otherwise the other
  // shards are captioned and the broken ones reported at the end (throw_if_broken).
  bool strict = false;
};

// [recaption] keys: batch_size, method, beam_width, top_p, temperature, max_length
// (eval_samples is read by the caller of evaluate_captioners); decode.seed is run.seed,
// strict is data.strict.
RecaptionOptions recaption_settings(const Config& config);

struct RecaptionResult {
  int64_t shards_written = 0, shards_skipped = 0;  // skipped: sidecar already finished
  int64_t images = 0, tokens = 0;                  // decoded by this call (not skipped ones)
  int64_t rejected = 0;                            // unreadable samples, counted with reasons
  double seconds = 0;
  std::vector<fs::path> sidecars;  // this process's share, written or skipped
  // Shards that broke mid-way (not strict), with where: the reader's error, naming the shard
  // and byte offset. Their sidecars are not written; their captions before the break are in
  // partial_sidecar_path.
  std::map<std::string, std::string> broken;
};

// "web-00000.tar" -> out_dir/"web-00000.recap.jsonl".
fs::path sidecar_path(const fs::path& out_dir, const fs::path& shard);
// "web-00000.recap.jsonl" -> "web-00000.recap.jsonl.partial": a broken shard's captions.
fs::path partial_sidecar_path(const fs::path& sidecar);

// This process's share of `shards`: positions i, i+n, i+2n, ... of the sorted list (i =
// shard_index, n = num_shards), as (position, shard). recap::Error for i outside [0, n).
std::vector<std::pair<size_t, fs::path>> shard_share(std::vector<fs::path> shards,
                                                     const RecaptionOptions& options);

// Captions every shard of this process's share (see RecaptionOptions) into its sidecar. A
// finished sidecar with the same provenance (model hash, kind, decode options) is skipped;
// one with other provenance is a recap::Error naming it, as are a missing or foreign model,
// a missing tokenizer, an input that is not a .tar file, and a shard share out of range.
// Nucleus sampling draws batch b of the shard at sorted position s with seed
// derive_seed(derive_seed(decode.seed, s), b): a resumed run writes the same bytes as an
// uninterrupted one with the same batch size. A broken shard (see RecaptionOptions::strict)
// is listed in the result and the rest go on; the caller ends with throw_if_broken.
RecaptionResult recaption_shards(const fs::path& model, const fs::path& tokenizer_model,
                                 const std::vector<fs::path>& shards, const fs::path& out_dir,
                                 const RecaptionOptions& options);

// recap::Error naming every broken shard of `result` and where it broke; nothing without one.
// Called after the summary is out, so the job fails only once every other shard is done.
void throw_if_broken(const RecaptionResult& result);

// The pieces recaption_shards and the captioner evaluation share.

// "long" / "short": a sidecar's "kind"; parse_caption_kind throws recap::Error otherwise.
const char* caption_kind(models::CaptionStyle style);
models::CaptionStyle parse_caption_kind(std::string_view kind);

// One sidecar line (the format above).
nlohmann::json sidecar_line(const std::string& key, const std::string& caption,
                            models::CaptionStyle style, const std::string& model_sha256,
                            const models::DecodeOptions& decode);

struct StreamCounts {
  int64_t images = 0, tokens = 0;  // tokens generated, EOS included
};

// Streams `sources` in the given order (no shuffling) at the model's image size and captions
// them batch by batch with options.style/decode on options.device; batch b is sampled with
// seed derive_seed(seed, b). Calls on_caption(key, caption) per sample in stream order and
// stops after `limit` samples when limit > 0. Unreadable samples go to `rejects`.
StreamCounts caption_stream(
    models::Captioner& model, const text::Tokenizer& tokenizer,
    const std::vector<fs::path>& sources, const RecaptionOptions& options, uint64_t seed,
    int64_t limit, data::RejectLog& rejects,
    const std::function<void(const std::string&, const std::string&)>& on_caption);

}  // namespace recap::stages
