#include "stages/arm_captions.h"

#include <iterator>
#include <stdexcept>

#include <fmt/format.h>

#include "core/error.h"
#include "core/jsonl.h"

namespace recap::stages {

namespace {

constexpr const char* kSourceNames[] = {"alt",   "human",     "human-short", "human-mix",
                                        "recap", "recap-mix"};

}  // namespace

CaptionSource parse_caption_source(std::string_view name) {
  for (size_t i = 0; i < std::size(kSourceNames); ++i)
    if (name == kSourceNames[i]) return static_cast<CaptionSource>(i);
  throw Error(fmt::format("unknown caption source '{}' (alt, human, human-short, human-mix, "
                          "recap, recap-mix)", name));
}

std::string_view caption_source_name(CaptionSource source) {
  return kSourceNames[static_cast<size_t>(source)];
}

bool needs_recaptions(CaptionSource source) {
  return source == CaptionSource::Recap || source == CaptionSource::RecapMix;
}

Recaptions load_recaptions(const std::vector<fs::path>& files) {
  Recaptions out;
  for (const auto& file : files) {
    const auto lines = read_jsonl(file);
    for (size_t n = 0; n < lines.size(); ++n) {
      const auto& line = lines[n];
      // read_jsonl skips blank lines, so name the record rather than a line number.
      const auto where = fmt::format("{}: record {}", file.string(), n + 1);
      if (!line.is_object() || !line.contains("key") || !line["key"].is_string() ||
          !line.contains("caption") || !line["caption"].is_string() ||
          !line.contains("kind") || !line["kind"].is_string())
        throw Error(where + ": needs string fields key, caption and kind");
      const auto kind = line["kind"].get<std::string>();
      if (kind != "long" && kind != "short")
        throw Error(fmt::format("{}: kind '{}' is neither long nor short", where, kind));
      auto& map = kind == "long" ? out.long_captions : out.short_captions;
      const auto key = line["key"].get<std::string>();
      if (!map.emplace(key, line["caption"].get<std::string>()).second)
        throw Error(fmt::format("{}: a {} recaption of {} was already given", where, kind, key));
    }
  }
  return out;
}

ArmCaptions::ArmCaptions(std::string who, ArmCaptionOptions options, Recaptions recaptions)
    : who_(std::move(who)), options_(options), recaptions_(std::move(recaptions)) {}

void ArmCaptions::save_counts(nlohmann::json& cursor) const {
  cursor["used"] = counts_.used;
  cursor["fell_back"] = counts_.fell_back;
  cursor["skipped"] = counts_.skipped;
}

void ArmCaptions::restore_counts(const nlohmann::json& cursor) {
  counts_ = {cursor.at("used").get<int64_t>(), cursor.at("fell_back").get<int64_t>(),
             cursor.at("skipped").get<int64_t>()};
}

std::optional<std::string> ArmCaptions::choose(const data::DecodedSample& sample, Rng& mix) {
  auto human = [&](const char* field) {
    const auto& captions = sample.meta.contains("captions") ? sample.meta["captions"]
                                                             : nlohmann::json::object();
    if (!captions.contains(field) || !captions[field].is_string())
      throw Error(fmt::format("{}: {} in {} has no captions.{} in its metadata; the human "
                              "arms need a corpus made by `recap corpus make`",
                              who_, sample.key, sample.shard, field));
    return captions[field].get<std::string>();
  };
  const std::string* recap = nullptr;
  const auto& longs = recaptions_.long_captions;
  const auto& shorts = recaptions_.short_captions;
  switch (options_.source) {
    case CaptionSource::Alt: ++counts_.used; return sample.caption;
    case CaptionSource::Human: ++counts_.used; return human("human_long");
    case CaptionSource::HumanShort: ++counts_.used; return human("human_short");
    case CaptionSource::HumanMix:
      ++counts_.used;
      return human(mix.chance(options_.mix_long) ? "human_long" : "human_short");
    case CaptionSource::Recap:
      if (auto it = longs.find(sample.key); it != longs.end()) recap = &it->second;
      break;
    case CaptionSource::RecapMix: {
      auto l = longs.find(sample.key);
      auto s = shorts.find(sample.key);
      const bool want_long = mix.chance(options_.mix_long);
      if (l != longs.end() && (want_long || s == shorts.end())) recap = &l->second;
      else if (s != shorts.end()) recap = &s->second;
      break;
    }
  }
  if (recap) {
    ++counts_.used;
    return *recap;
  }
  if (options_.recap_skip) {
    ++counts_.skipped;
    return std::nullopt;
  }
  ++counts_.fell_back;
  return sample.caption;
}

ArmBatches::ArmBatches(data::LoaderOptions loader, ArmCaptions captions, uint64_t mix_stream)
    : loader_options_(std::move(loader)), captions_(std::move(captions)),
      mix_stream_(mix_stream), loader_(std::make_unique<data::Loader>(loader_options_)) {}

ArmBatches::Batch ArmBatches::next() {
  const uint64_t mix_seed = derive_seed(mix_stream_, draws_++);
  std::vector<data::DecodedSample> batch;
  Batch out;
  while (out.samples.empty()) {
    if (!loader_->next_batch(batch)) throw std::logic_error("the endless web loader ended");
    Rng mix(mix_seed);
    for (auto& sample : batch)
      if (auto caption = captions_.choose(sample, mix)) {
        out.captions.push_back(std::move(*caption));
        out.samples.push_back(std::move(sample));
      }
  }
  return out;
}

void ArmBatches::save(nlohmann::json& cursor) const {
  cursor["loader"] = loader_->cursor().to_json();
  cursor["batches"] = draws_;
  captions_.save_counts(cursor);
}

void ArmBatches::restore(const nlohmann::json& cursor) {
  loader_.reset();  // its threads stop before the new one starts reading
  loader_ = std::make_unique<data::Loader>(loader_options_, nullptr,
                                           data::Cursor::from_json(cursor.at("loader")));
  draws_ = cursor.at("batches").get<uint64_t>();
  captions_.restore_counts(cursor);
}

}  // namespace recap::stages
