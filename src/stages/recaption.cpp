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

// A source's name under out_dir: a shard's stem, an image folder's own name ("photos/" ->
// "photos").
std::string source_name(const fs::path& source) {
  fs::path path = source.lexically_normal();
  if (path.filename().empty()) path = path.parent_path();
  return fs::is_directory(path) ? path.filename().string() : path.stem().string();
}

// Writes `text` to `file` unless it already holds exactly that (a rerun, or a sidecar's
// captions written again): a file with other text is someone's caption and stays.
void write_caption_file(const fs::path& file, const std::string& text) {
  std::error_code ec;
  if (fs::exists(file, ec)) {
    if (read_file(file) == text) return;
    throw Error(fmt::format("{}: exists with another caption; recaption never overwrites a "
                            "caption file (remove it, or choose --txt-ext or another --out)",
                            file.string()));
  }
  write_file_atomic(file, text);
}

// One caption file's text: the caption and a line break (kohya reads the first line).
std::string caption_file_text(const std::string& caption) { return caption + "\n"; }

// A sidecar's records in order (blank lines skipped), for the manifest and for caption files
// of sidecars finished before.
template <class OnRecord>
void for_each_sidecar_line(const fs::path& sidecar, OnRecord on_record) {
  std::ifstream in(sidecar, std::ios::binary);
  if (!in) throw Error(sidecar.string() + ": cannot open");
  std::string line;
  for (uint64_t n = 1; std::getline(in, line); ++n) {
    if (line.empty()) continue;
    const auto record = nlohmann::json::parse(line, nullptr, /*allow_exceptions=*/false);
    if (!record.is_object() || !record.contains("key") || !record["key"].is_string() ||
        !record.contains("caption") || !record["caption"].is_string())
      throw Error(fmt::format("{}:{}: not a recaption sidecar line", sidecar.string(), n));
    on_record(record);
  }
}

// One CSV field (RFC 4180): quoted when it holds a comma, quote or line break.
std::string csv_field(const std::string& text) {
  if (text.find_first_of(",\"\r\n") == std::string::npos) return text;
  std::string out = "\"";
  for (char c : text) {
    if (c == '"') out += '"';
    out += c;
  }
  return out + "\"";
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
  return out_dir / (source_name(shard) + ".recap.jsonl");
}

fs::path txt_path(const fs::path& out_dir, const fs::path& source, const std::string& key,
                  const RecaptionOptions& options) {
  const fs::path relative = fs::path(key).lexically_normal();
  if (key.empty() || relative.is_absolute() || relative.empty() ||
      *relative.begin() == "..")
    throw Error(fmt::format("{}: the key '{}' is no path inside a folder; no caption file "
                            "is written for it", source.string(), key));
  std::string name = relative.string();
  std::string ext = relative.extension().string();
  std::transform(ext.begin(), ext.end(), ext.begin(),
                 [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
  if (ext == ".png" || ext == ".jpg" || ext == ".jpeg" || ext == ".webp")
    name.erase(name.size() - ext.size());
  const fs::path base =
      options.txt_beside && fs::is_directory(source) ? source : out_dir / source_name(source);
  return base / (name + options.txt_ext);
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
    const std::function<void(const data::DecodedSample&, const std::string&)>& on_caption) {
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
      on_caption(batch[i], texts[i]);
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
    const auto ext = shard.extension();
    if (!fs::is_directory(shard) &&
        ((ext != ".tar" && ext != ".jsonl" && ext != ".csv") || !fs::is_regular_file(shard)))
      throw Error(fmt::format("{}: not a .tar shard, an image folder or a manifest",
                              shard.string()));
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
  auto write_txt = [&](const fs::path& source, const std::string& key, const std::string& caption) {
    if (options.write_txt)
      write_caption_file(txt_path(out_dir, source, key, options), caption_file_text(caption));
  };
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
    for_each_sidecar_line(sidecar, [&](const nlohmann::json& record) {
      write_txt(shard, record["key"].get<std::string>(), record["caption"].get<std::string>());
    });
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
        [&](const data::DecodedSample& sample, const std::string& caption) {
          auto line =
              sidecar_line(sample.key, caption, options.style, ours.model_sha256, options.decode);
          line["org_caption"] = sample.caption;
          file.write(line.dump() + "\n");
          write_txt(sorted[s], sample.key, caption);
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

bool write_manifest(const fs::path& out_dir, const std::vector<fs::path>& sources,
                    const fs::path& manifest) {
  const std::string ext = manifest.extension().string();
  if (ext != ".jsonl" && ext != ".csv")
    throw Error(fmt::format("{}: a manifest is .jsonl or .csv", manifest.string()));
  for (const auto& source : sources)
    if (!fs::exists(sidecar_path(out_dir, source))) return false;
  if (manifest.has_parent_path()) fs::create_directories(manifest.parent_path());
  AtomicFile file(manifest);
  if (ext == ".csv") file.write("shard,key,file,org_caption,re_caption,kind\n");
  for (const auto& source : sources) {
    const bool folder = fs::is_directory(source);
    for_each_sidecar_line(sidecar_path(out_dir, source), [&](const nlohmann::json& record) {
      const auto key = record["key"].get<std::string>();
      const nlohmann::json row = {
          {"shard", source.string()},
          {"key", key},
          {"file", folder ? (source / key).string() : std::string()},
          {"org_caption", record.value("org_caption", std::string())},
          {"re_caption", record["caption"].get<std::string>()},
          {"kind", record.value("kind", std::string())}};
      if (ext == ".jsonl") {
        file.write(row.dump() + "\n");
        return;
      }
      std::string line;
      for (const char* column : {"shard", "key", "file", "org_caption", "re_caption", "kind"})
        line += (line.empty() ? "" : ",") + csv_field(row[column].get<std::string>());
      file.write(line + "\n");
    });
  }
  file.commit();
  return true;
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
