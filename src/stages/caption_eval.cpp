#include "core/torch_pch.h"
#include "stages/caption_eval.h"

#include <set>
#include <string>

#include <fmt/format.h>

#include "core/atomic_file.h"
#include "core/error.h"
#include "core/sha256.h"
#include "data/rejects.h"
#include "stages/captioner_train.h"
#include "stages/corpus.h"

namespace recap::stages {

namespace {

// Names become file names and table columns: keep them plain and distinct from the built-in
// sources.
void check_names(const std::vector<CaptionModel>& models) {
  std::set<std::string> names = {"alt", "human-long", "human-short"};
  for (const auto& m : models) {
    const bool plain = !m.name.empty() && m.name.find_first_not_of(
                                              "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWX"
                                              "YZ0123456789_-.") == std::string::npos;
    if (!plain || m.name.front() == '.')
      throw Error(
          fmt::format("captioner eval: model name '{}' must be letters, digits, '_', "
                      "'-' or '.' (not first)",
                      m.name));
    if (!names.insert(m.name).second)
      throw Error(
          fmt::format("captioner eval: model name '{}' is taken (alt, human-long, "
                      "human-short and each model need distinct names)",
                      m.name));
  }
}

}  // namespace

corpus::CorpusStats evaluate_captioners(const fs::path& corpus_dir, const fs::path& tokenizer_model,
                                        const std::vector<CaptionModel>& models,
                                        const fs::path& out_dir, int64_t samples,
                                        const RecaptionOptions& options) {
  if (samples < 1) throw Error(fmt::format("captioner eval: samples {} < 1", samples));
  if (models.empty()) throw Error("captioner eval: no models given");
  check_names(models);
  corpus::corpus_config(corpus_dir);  // a finished corpus, before any decoding
  const auto shards = corpus::list_shards(corpus_dir, corpus::Split::Web);
  const auto tokenizer = text::Tokenizer::load(tokenizer_model);
  fs::create_directories(out_dir);

  std::set<std::string> keys;  // of the first model; every other must caption the same ones
  std::vector<fs::path> files;
  nlohmann::json model_info = nlohmann::json::array();
  for (const auto& m : models) {
    if (!fs::is_regular_file(m.weights))
      throw Error(fmt::format("{}: no such model", m.weights.string()));
    auto captioner = load_captioner(m.weights, tokenizer);
    captioner->to(options.device);
    const std::string sha = sha256_file(m.weights);
    RecaptionOptions o = options;
    o.style = m.style;
    std::string lines;
    std::set<std::string> captioned;
    data::RejectLog rejects;
    caption_stream(captioner, tokenizer, shards, o, options.decode.seed, samples, rejects,
                   [&](const data::DecodedSample& sample, const std::string& caption) {
                     lines +=
                         sidecar_line(sample.key, caption, m.style, sha, o.decode).dump() + "\n";
                     captioned.insert(sample.key);
                   });
    if (files.empty()) keys = captioned;
    if (captioned != keys)
      throw Error(fmt::format("{}: captioned other samples than {} (image size {})",
                              m.weights.string(), models.front().weights.string(),
                              captioner->options().image_size));
    files.push_back(out_dir / (m.name + ".jsonl"));
    write_file_atomic(files.back(), lines);
    model_info.push_back({{"name", m.name},
                          {"weights", m.weights.string()},
                          {"sha256", sha},
                          {"kind", caption_kind(m.style)}});
  }

  auto stats = corpus::corpus_stats(corpus_dir, files, &keys);
  auto json = corpus::to_json(stats);
  json["samples"] = keys.size();
  json["models"] = model_info;
  json["decode"] = options.decode.to_json();
  write_file_atomic(out_dir / "caption_quality.json", json.dump(2) + "\n");
  write_file_atomic(out_dir / "caption_quality.txt", corpus::format_stats_table(stats));
  return stats;
}

}  // namespace recap::stages
