#include "core/torch_pch.h"
#include "stages/recaption.h"

#include <algorithm>
#include <chrono>
#include <fstream>
#include <map>
#include <optional>

#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include "core/atomic_file.h"
#include "core/error.h"
#include "core/progress.h"
#include "core/rng.h"
#include "core/sha256.h"
#include "data/loader.h"
#include "data/tensor_batch.h"
#include "stages/captioner_train.h"

namespace recap::stages {

namespace {

// What a sidecar was made with; a finished one is reused only when all of it matches.
struct Provenance {
  std::string model_sha256;
  std::string kind;
  nlohmann::json decode;
};

// The provenance of a finished sidecar, from its first line; nullopt for an empty one (a shard
// whose samples were all unreadable), which has nothing to contradict.
std::optional<Provenance> read_provenance(const fs::path& sidecar) {
  std::ifstream in(sidecar, std::ios::binary);
  if (!in) throw Error(sidecar.string() + ": cannot open");
  std::string line;
  while (std::getline(in, line) && line.empty()) {
  }
  if (line.empty()) return std::nullopt;
  const auto record = nlohmann::json::parse(line, nullptr, /*allow_exceptions=*/false);
  if (!record.is_object() || !record.contains("model") || !record["model"].is_string() ||
      !record.contains("kind") || !record["kind"].is_string() || !record.contains("decode"))
    throw Error(sidecar.string() +
                ": not a recaption sidecar (its first line lacks model, kind "
                "or decode); remove it or choose another --out");
  return Provenance{record["model"].get<std::string>(), record["kind"].get<std::string>(),
                    record["decode"]};
}

// A kill -9 leaves temporaries ("<sidecar>[.partial].tmp.<pid>") behind, a broken shard its
// "<sidecar>.partial"; the shard is redone, so they go.
void remove_leftovers(const fs::path& sidecar) {
  const fs::path partial = partial_sidecar_path(sidecar);
  fs::remove(partial);
  const std::string temps = sidecar.filename().string() + ".tmp.";
  const std::string partial_temps = partial.filename().string() + ".tmp.";
  for (const auto& entry : fs::directory_iterator(sidecar.parent_path())) {
    const std::string name = entry.path().filename().string();
    if (name.starts_with(temps) || name.starts_with(partial_temps)) fs::remove(entry.path());
  }
}

}  // namespace

RecaptionOptions recaption_settings(const Config& c) {
  RecaptionOptions o;
  o.batch_size = c.get_int("recaption.batch_size");
  o.decode.method = models::parse_decode_method(c.get_string("recaption.method"));
  o.decode.beam_width = c.get_int("recaption.beam_width");
  o.decode.top_p = c.get_float("recaption.top_p");
  o.decode.temperature = c.get_float("recaption.temperature");
  o.decode.max_length = c.get_int("recaption.max_length");
  o.decode.seed = static_cast<uint64_t>(c.get_int("run.seed"));
  o.strict = c.get_bool("data.strict");
  return o;
}

const char* caption_kind(models::CaptionStyle style) {
  return style == models::CaptionStyle::kLong ? "long" : "short";
}

models::CaptionStyle parse_caption_kind(std::string_view kind) {
  if (kind == "long") return models::CaptionStyle::kLong;
  if (kind == "short") return models::CaptionStyle::kShort;
  throw Error(fmt::format("unknown caption kind '{}' (long or short)", kind));
}

fs::path sidecar_path(const fs::path& out_dir, const fs::path& shard) {
  return out_dir / (shard.stem().string() + ".recap.jsonl");
}

fs::path partial_sidecar_path(const fs::path& sidecar) { return sidecar.string() + ".partial"; }

nlohmann::json sidecar_line(const std::string& key, const std::string& caption,
                            models::CaptionStyle style, const std::string& model_sha256,
                            const models::DecodeOptions& decode) {
  return {{"key", key},
          {"caption", caption},
          {"kind", caption_kind(style)},
          {"model", model_sha256},
          {"decode", decode.to_json()}};
}

StreamCounts caption_stream(
    models::Captioner& model, const text::Tokenizer& tokenizer,
    const std::vector<fs::path>& sources, const RecaptionOptions& options, uint64_t seed,
    int64_t limit, data::RejectLog& rejects,
    const std::function<void(const std::string&, const std::string&)>& on_caption) {
  if (options.batch_size < 1)
    throw Error(fmt::format("recaption: batch_size {} < 1", options.batch_size));
  data::LoaderOptions lo;
  lo.sources = sources;
  lo.image_size = static_cast<int>(model->options().image_size);
  lo.workers = std::max(1, options.workers);
  lo.shuffle_buffer = 0;  // stream order = shard order, so sidecar lines follow the shard
  lo.shuffle_sources = false;
  lo.batch_size = static_cast<size_t>(options.batch_size);
  lo.epochs = 1;
  lo.strict = options.strict;
  data::Loader loader(lo, &rejects);

  torch::NoGradGuard no_grad;
  StreamCounts counts;
  std::vector<data::DecodedSample> batch;
  for (uint64_t b = 0; loader.next_batch(batch); ++b) {
    if (limit > 0 && static_cast<int64_t>(batch.size()) > limit - counts.images)
      batch.erase(batch.begin() + (limit - counts.images), batch.end());
    models::DecodeOptions decode = options.decode;
    decode.seed = derive_seed(seed, b);
    // images [B, 3, S, S] -> per image the generated tokens after the prompt.
    const auto images = data::to_tensor_batch(batch).images.to(options.device);
    const auto tokens = models::decode(model, images, options.style, decode);
    const auto texts = models::decode_text(tokenizer, tokens);
    for (size_t i = 0; i < batch.size(); ++i) {
      counts.tokens += static_cast<int64_t>(tokens[i].size());
      on_caption(batch[i].key, texts[i]);
    }
    counts.images += static_cast<int64_t>(batch.size());
    if (limit > 0 && counts.images >= limit) break;
  }
  return counts;
}

std::vector<std::pair<size_t, fs::path>> shard_share(std::vector<fs::path> shards,
                                                     const RecaptionOptions& options) {
  if (options.num_shards < 1 || options.shard_index < 0 ||
      options.shard_index >= options.num_shards)
    throw Error(fmt::format("recaption: shard index {} is outside [0, {})", options.shard_index,
                            options.num_shards));
  std::sort(shards.begin(), shards.end());
  std::vector<std::pair<size_t, fs::path>> share;
  for (size_t s = static_cast<size_t>(options.shard_index); s < shards.size();
       s += static_cast<size_t>(options.num_shards))
    share.emplace_back(s, shards[s]);
  return share;
}

RecaptionResult recaption_shards(const fs::path& model, const fs::path& tokenizer_model,
                                 const std::vector<fs::path>& shards, const fs::path& out_dir,
                                 const RecaptionOptions& options) {
  const auto start = std::chrono::steady_clock::now();
  const auto share = shard_share(shards, options);
  if (shards.empty()) throw Error("recaption: no input shards");
  std::vector<fs::path> sorted = shards;
  std::sort(sorted.begin(), sorted.end());
  std::map<std::string, fs::path> by_stem;  // two shards must not share one sidecar
  for (const auto& shard : sorted) {
    if (shard.extension() != ".tar" || !fs::is_regular_file(shard))
      throw Error(fmt::format("{}: not a .tar shard", shard.string()));
    if (auto [it, fresh] = by_stem.emplace(shard.stem().string(), shard); !fresh)
      throw Error(fmt::format("{} and {} would share the sidecar {}", it->second.string(),
                              shard.string(), sidecar_path(out_dir, shard).string()));
  }
  if (!fs::is_regular_file(model)) throw Error(fmt::format("{}: no such model", model.string()));

  const auto tokenizer = text::Tokenizer::load(tokenizer_model);
  auto captioner = load_captioner(model, tokenizer);
  captioner->to(options.device);
  const Provenance ours{sha256_file(model), caption_kind(options.style), options.decode.to_json()};

  RecaptionResult result;
  fs::create_directories(out_dir);
  std::vector<size_t> pending;  // positions in `sorted`
  for (const auto& [s, shard] : share) {
    const fs::path sidecar = sidecar_path(out_dir, shard);
    result.sidecars.push_back(sidecar);
    if (!fs::exists(sidecar)) {
      pending.push_back(s);
      continue;
    }
    const auto theirs = read_provenance(sidecar);
    if (theirs && (theirs->model_sha256 != ours.model_sha256 || theirs->kind != ours.kind ||
                   theirs->decode != ours.decode))
      throw Error(fmt::format(
          "{}: made with other settings (model {}, kind {}, decode {}) than this run (model {}, "
          "kind {}, decode {}); remove it or choose another --out",
          sidecar.string(), theirs->model_sha256, theirs->kind, theirs->decode.dump(),
          ours.model_sha256, ours.kind, ours.decode.dump()));
    ++result.shards_skipped;
  }
  if (result.shards_skipped > 0)
    spdlog::info("recaption: {} finished sidecar(s) in {} kept", result.shards_skipped,
                 out_dir.string());

  data::RejectLog rejects;
  Progress progress("recaption", static_cast<int64_t>(pending.size()), "shards");
  for (const size_t s : pending) {
    const fs::path sidecar = sidecar_path(out_dir, sorted[s]);
    remove_leftovers(sidecar);
    // Written under the partial name and renamed to the sidecar only once the shard was read
    // to its end, so a broken shard's captions are never taken for a finished sidecar, not
    // even after a kill between the two renames.
    const fs::path partial = partial_sidecar_path(sidecar);
    AtomicFile file(partial);
    const auto counts = caption_stream(
        captioner, tokenizer, {sorted[s]}, options, derive_seed(options.decode.seed, s), 0, rejects,
        [&](const std::string& key, const std::string& caption) {
          file.write(
              sidecar_line(key, caption, options.style, ours.model_sha256, options.decode).dump() +
              "\n");
        });
    file.commit();
    const auto broken = rejects.broken_shards().find(sorted[s].string());
    if (broken != rejects.broken_shards().end()) {
      result.broken.emplace(broken->first, broken->second);
    } else {
      fs::rename(partial, sidecar);
      ++result.shards_written;
    }
    result.images += counts.images;
    result.tokens += counts.tokens;
    const double seconds =
        std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    progress.set_status(fmt::format("{} images, {:.1f} images/s", result.images,
                                    static_cast<double>(result.images) / seconds));
    progress.add();
  }
  progress.finish();
  result.rejected = static_cast<int64_t>(rejects.rejected());
  if (result.rejected > 0) spdlog::warn("recaption: samples {}", rejects.summary());
  result.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  return result;
}

void throw_if_broken(const RecaptionResult& result) {
  if (result.broken.empty()) return;
  std::string where;
  for (const auto& [shard, detail] : result.broken) where += "\n  " + detail;
  throw Error(fmt::format(
      "recaption: {} broken shard(s); every other shard is captioned, and the captions before "
      "each break are in its <sidecar>.partial, which no reader takes for a sidecar:{}\n"
      "replace or remove the shard(s) and rerun (finished sidecars are kept); --strict "
      "(data.strict = true) stops at the first break instead",
      result.broken.size(), where));
}

}  // namespace recap::stages
