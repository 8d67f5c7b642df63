// RECAP step 2: relabel a corpus with the fine-tuned captioner. Each input (a tar shard or an
// image folder) gets a sidecar out_dir/<name>.recap.jsonl, one line per readable sample in
// source order:
//   {"key", "caption", "org_caption": the sample's own caption, "kind": "long"|"short",
//    "model": <sha256 of the weight file>, "decode": DecodeOptions::to_json()}
// which stages::load_recaptions (arm_captions.h) and corpus::corpus_stats read. Optionally
// (write_txt) every image also gets its caption as a text file, what kohya sd-scripts and
// OneTrainer read (txt_path says where), and a manifest of all inputs keeps each original
// caption beside its recaption (write_manifest). A sidecar appears
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
#include "data/loader.h"
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
  // Also a caption file per image (txt_path), written before its source's sidecar is final,
  // so a finished sidecar means finished files; for sidecars finished earlier they are
  // written from the sidecar. An existing file with other text is never overwritten: it is a
  // recap::Error naming it (a user's own caption, or one of another model).
  bool write_txt = false;
  std::string txt_ext = ".txt";  // kohya's --caption_extension; ".caption" leaves .txt alone
  bool txt_beside = false;       // image folders: beside each image instead of under out_dir
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

// "web-00000.tar" -> out_dir/"web-00000.recap.jsonl"; an image folder "photos/" ->
// out_dir/"photos.recap.jsonl".
fs::path sidecar_path(const fs::path& out_dir, const fs::path& shard);
// Where write_txt puts the caption of sample `key` of `source`: for an image folder with
// txt_beside, beside the image (source/a.txt for a.jpg); otherwise out_dir/<name>/KEY with
// the image extension (png, jpg, jpeg, webp) replaced by txt_ext, so a shard's captions sit
// in one folder per shard (out_dir/web-00000/web-000000042.txt). recap::Error for a key that
// is absolute or climbs out with "..".
fs::path txt_path(const fs::path& out_dir, const fs::path& source, const std::string& key,
                  const RecaptionOptions& options);
// "web-00000.recap.jsonl" -> "web-00000.recap.jsonl.partial": a broken shard's captions.
fs::path partial_sidecar_path(const fs::path& sidecar);

// This process's share of `shards`: positions i, i+n, i+2n, ... of the sorted list (i =
// shard_index, n = num_shards), as (position, shard). recap::Error for i outside [0, n).
std::vector<std::pair<size_t, fs::path>> shard_share(std::vector<fs::path> shards,
                                                     const RecaptionOptions& options);

// Captions every shard of this process's share (see RecaptionOptions) into its sidecar. A
// finished sidecar with the same provenance (model hash, kind, decode options) is skipped;
// one with other provenance is a recap::Error naming it, as are a missing or foreign model,
// a missing tokenizer, an input that is no .tar file, folder or manifest, and a shard share
// out of range; with write_txt, so is a caption file that exists with other text.
// Nucleus sampling draws batch b of the shard at sorted position s with seed
// derive_seed(derive_seed(decode.seed, s), b): a resumed run writes the same bytes as an
// uninterrupted one with the same batch size. A broken shard (see RecaptionOptions::strict)
// is listed in the result and the rest go on; the caller ends with throw_if_broken.
RecaptionResult recaption_shards(const fs::path& model, const fs::path& tokenizer_model,
                                 const std::vector<fs::path>& shards, const fs::path& out_dir,
                                 const RecaptionOptions& options);

// The manifest of `sources`' sidecars in out_dir, in source order then sidecar order, to
// `manifest`: .jsonl lines {"shard", "key", "file", "org_caption", "re_caption", "kind"} or
// a .csv table of those columns (RFC 4180: header row, fields with a comma, quote or line
// break quoted, quotes doubled); "file" is the image's path for image-folder sources, empty
// for shards. Written atomically. False, writing nothing, while a source has no finished
// sidecar yet (processes with other shard indices still at work): the last to finish writes
// it. recap::Error for another extension.
bool write_manifest(const fs::path& out_dir, const std::vector<fs::path>& sources,
                    const fs::path& manifest);

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
// seed derive_seed(seed, b). Calls on_caption(sample, caption) per sample in stream order and
// stops after `limit` samples when limit > 0. Unreadable samples go to `rejects`.
StreamCounts caption_stream(
    models::Captioner& model, const text::Tokenizer& tokenizer,
    const std::vector<fs::path>& sources, const RecaptionOptions& options, uint64_t seed,
    int64_t limit, data::RejectLog& rejects,
    const std::function<void(const data::DecodedSample&, const std::string&)>& on_caption);

}  // namespace recap::stages
