#include "stages/arm_captions.h"

#include <algorithm>
#include <cctype>
#include <cmath>
#include <iterator>
#include <set>
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

namespace {

// The key and caption of one sidecar ("caption") or manifest ("re_caption") record.
std::pair<std::string, std::string> key_and_caption(const nlohmann::json& line,
                                                    const std::string& where) {
  const char* field = line.is_object() && line.contains("re_caption") ? "re_caption" : "caption";
  if (!line.is_object() || !line.contains("key") || !line["key"].is_string() ||
      !line.contains(field) || !line[field].is_string())
    throw Error(fmt::format("{}: needs string fields key and caption (or re_caption)", where));
  return {line["key"].get<std::string>(), line[field].get<std::string>()};
}

// Calls on_record(record, where) for every record of `file`. read_jsonl skips blank lines, so
// `where` names the record rather than a line number.
template <class OnRecord>
void for_each_record(const fs::path& file, OnRecord on_record) {
  const auto lines = read_jsonl(file);
  for (size_t n = 0; n < lines.size(); ++n)
    on_record(lines[n], fmt::format("{}: record {}", file.string(), n + 1));
}

}  // namespace

Recaptions load_recaptions(const std::vector<fs::path>& files) {
  Recaptions out;
  for (const auto& file : files)
    for_each_record(file, [&](const nlohmann::json& line, const std::string& where) {
      auto [key, caption] = key_and_caption(line, where);
      if (!line.contains("kind") || !line["kind"].is_string())
        throw Error(where + ": needs a string field kind");
      const auto kind = line["kind"].get<std::string>();
      if (kind != "long" && kind != "short")
        throw Error(fmt::format("{}: kind '{}' is neither long nor short", where, kind));
      auto& map = kind == "long" ? out.long_captions : out.short_captions;
      if (!map.emplace(key, std::move(caption)).second)
        throw Error(fmt::format("{}: a {} recaption of {} was already given", where, kind, key));
    });
  return out;
}

std::optional<NamedCaptions> builtin_captions(std::string_view name) {
  using Kind = NamedCaptions::Kind;
  const std::pair<const char*, Kind> builtins[] = {{"original", Kind::kOriginal},
                                                   {"alt", Kind::kOriginal},
                                                   {"human_long", Kind::kHumanLong},
                                                   {"human_short", Kind::kHumanShort}};
  for (const auto& [builtin, kind] : builtins)
    if (name == builtin) return NamedCaptions{std::string(name), kind, nullptr};
  return std::nullopt;
}

std::map<std::string, std::string> load_caption_table(const fs::path& path) {
  std::vector<fs::path> files;
  if (fs::is_directory(path)) {
    for (const auto& entry : fs::directory_iterator(path))
      if (entry.is_regular_file() && entry.path().string().ends_with(".recap.jsonl"))
        files.push_back(entry.path());
    std::sort(files.begin(), files.end());
    if (files.empty())
      throw Error(fmt::format("{}: no recaption sidecars (*.recap.jsonl) in it", path.string()));
  } else if (path.extension() == ".csv") {
    throw Error(fmt::format("{}: CSV is not read as a caption source; give the JSONL manifest "
                            "recaption wrote beside it, its sidecars or their folder",
                            path.string()));
  } else {
    if (!fs::is_regular_file(path))
      throw Error(fmt::format("{}: no such caption file or folder", path.string()));
    files.push_back(path);
  }
  std::map<std::string, std::string> table;
  for (const auto& file : files)
    for_each_record(file, [&](const nlohmann::json& line, const std::string& where) {
      auto [key, caption] = key_and_caption(line, where);
      if (!table.emplace(key, std::move(caption)).second)
        throw Error(fmt::format("{}: a caption of {} was already given", where, key));
    });
  return table;
}

std::string CaptionMix::describe() const {
  std::vector<std::string> parts;
  for (const auto& e : entries) parts.push_back(fmt::format("{}={:.6g}", e.source.name, e.p));
  return fmt::format("{}", fmt::join(parts, ","));
}

CaptionMix arm_mix(const ArmCaptionOptions& options, Recaptions recaptions) {
  auto table = [](const char* name, std::map<std::string, std::string>& captions) {
    return NamedCaptions{name, NamedCaptions::Kind::kTable,
                         std::make_shared<const std::map<std::string, std::string>>(
                             std::move(captions))};
  };
  const double p = options.mix_long;
  CaptionMix mix;
  mix.skip_missing = options.recap_skip;
  switch (options.source) {
    case CaptionSource::Alt: mix.entries = {{*builtin_captions("alt"), 1}}; break;
    case CaptionSource::Human: mix.entries = {{*builtin_captions("human_long"), 1}}; break;
    case CaptionSource::HumanShort: mix.entries = {{*builtin_captions("human_short"), 1}}; break;
    case CaptionSource::HumanMix:
      mix.entries = {{*builtin_captions("human_long"), p},
                     {*builtin_captions("human_short"), 1 - p}};
      break;
    case CaptionSource::Recap:
      mix.entries = {{table("recap_long", recaptions.long_captions), 1}};
      break;
    case CaptionSource::RecapMix:
      mix.entries = {{table("recap_long", recaptions.long_captions), p},
                     {table("recap_short", recaptions.short_captions), 1 - p}};
      break;
  }
  return mix;
}

CaptionMix parse_caption_mix(const std::vector<std::string>& sources, const std::string& mix,
                             bool skip_missing) {
  // NAME=VALUE with a name of letters, digits, _ - .
  auto split = [](const std::string& spec, const char* flag) {
    const size_t eq = spec.find('=');
    const std::string name = spec.substr(0, eq);
    const bool good_name =
        !name.empty() && std::all_of(name.begin(), name.end(), [](unsigned char c) {
          return std::isalnum(c) || c == '_' || c == '-' || c == '.';
        });
    if (eq == std::string::npos || !good_name || eq + 1 == spec.size())
      throw Error(fmt::format("{} '{}': expected NAME=VALUE (NAME of letters, digits, _ - .)",
                              flag, spec));
    return std::pair{name, spec.substr(eq + 1)};
  };
  std::map<std::string, NamedCaptions> declared;
  std::vector<std::string> order;
  for (const auto& spec : sources) {
    auto [name, value] = split(spec, "--caption-source");
    auto source = builtin_captions(value);
    if (source) {
      source->name = name;
    } else {
      source = NamedCaptions{name, NamedCaptions::Kind::kTable,
                             std::make_shared<const std::map<std::string, std::string>>(
                                 load_caption_table(value))};
    }
    if (!declared.emplace(name, *source).second)
      throw Error(fmt::format("--caption-source: {} is declared twice", name));
    order.push_back(name);
  }
  CaptionMix out;
  out.skip_missing = skip_missing;
  if (mix.empty()) {
    if (order.empty()) order.push_back("original");
    for (const auto& name : order)
      out.entries.push_back({declared.count(name) ? declared.at(name) : *builtin_captions(name),
                             1.0 / static_cast<double>(order.size())});
    return out;
  }
  double total = 0;
  std::set<std::string> seen;
  std::vector<std::string> parts;
  for (size_t from = 0, comma; from <= mix.size(); from = comma + 1) {
    comma = std::min(mix.find(',', from), mix.size());
    parts.push_back(mix.substr(from, comma - from));
  }
  for (const auto& part : parts) {
    auto [name, value] = split(part, "--mix");
    auto it = declared.find(name);
    auto source = it != declared.end() ? std::optional(it->second) : builtin_captions(name);
    if (!source)
      throw Error(fmt::format("--mix: {} is neither a --caption-source nor built in (original, "
                              "alt, human_long, human_short)", name));
    if (!seen.insert(name).second) throw Error(fmt::format("--mix: {} is given twice", name));
    double p = -1;
    size_t used = 0;
    try {
      p = std::stod(value, &used);
    } catch (const std::exception&) {
      used = 0;
    }
    if (used != value.size() || !(p >= 0 && p <= 1))
      throw Error(fmt::format("--mix {}: the probability '{}' is not a number in [0, 1]", name,
                              value));
    total += p;
    out.entries.push_back({*source, p});
  }
  if (std::abs(total - 1) > 1e-6)
    throw Error(fmt::format("--mix '{}': the probabilities sum to {}, not 1", mix, total));
  for (const auto& name : order)
    if (!seen.count(name))
      throw Error(fmt::format("--caption-source {} is not in --mix '{}'", name, mix));
  return out;
}

std::string CaptionCounts::summary() const {
  std::vector<std::string> parts;
  for (const auto& [name, n] : by_source) parts.push_back(fmt::format("{} {}", name, n));
  return fmt::format("used {} ({}), fell back {}, skipped {}", used, fmt::join(parts, ", "),
                     fell_back, skipped);
}

ArmCaptions::ArmCaptions(std::string who, CaptionMix mix)
    : who_(std::move(who)), mix_(std::move(mix)) {
  if (mix_.entries.empty()) throw std::logic_error("ArmCaptions: an empty caption mix");
}

ArmCaptions::ArmCaptions(std::string who, ArmCaptionOptions options, Recaptions recaptions)
    : ArmCaptions(std::move(who), arm_mix(options, std::move(recaptions))) {}

void ArmCaptions::save_counts(nlohmann::json& cursor) const {
  cursor["used"] = counts_.used;
  cursor["fell_back"] = counts_.fell_back;
  cursor["skipped"] = counts_.skipped;
  cursor["by_source"] = counts_.by_source;
  cursor["mix"] = mix_.describe();
}

void ArmCaptions::restore_counts(const nlohmann::json& cursor) {
  if (cursor.contains("mix") && cursor["mix"] != mix_.describe())
    throw Error(fmt::format("{}: the checkpoint was trained with the caption mix {}, this run "
                            "has {}; resume with the same mix or start another --out",
                            who_, cursor["mix"].dump(), mix_.describe()));
  counts_ = {cursor.at("used").get<int64_t>(), cursor.at("fell_back").get<int64_t>(),
             cursor.at("skipped").get<int64_t>(),
             cursor.value("by_source", std::map<std::string, int64_t>{})};
}

std::optional<std::string> named_caption(const NamedCaptions& source, std::string_view who,
                                         const std::string& key, const std::string& shard,
                                         const std::string& caption,
                                         const nlohmann::json& meta) {
  auto human = [&](const char* field) {
    const auto& captions = meta.contains("captions") ? meta["captions"] : nlohmann::json::object();
    if (!captions.contains(field) || !captions[field].is_string())
      throw Error(fmt::format("{}: {} in {} has no captions.{} in its metadata; the human "
                              "captions need a corpus made by `recap corpus make`",
                              who, key, shard, field));
    return captions[field].get<std::string>();
  };
  switch (source.kind) {
    case NamedCaptions::Kind::kOriginal: return caption;
    case NamedCaptions::Kind::kHumanLong: return human("human_long");
    case NamedCaptions::Kind::kHumanShort: return human("human_short");
    case NamedCaptions::Kind::kTable:
      if (auto it = source.table->find(key); it != source.table->end()) return it->second;
      return std::nullopt;
  }
  return std::nullopt;
}

std::optional<std::string> ArmCaptions::choose(const data::DecodedSample& sample, Rng& rng) {
  const double u = rng.uniform();
  // Each source's caption of this sample, where it has one.
  std::vector<std::optional<std::string>> found;
  double total = 0;
  for (const auto& entry : mix_.entries) {
    auto caption =
        named_caption(entry.source, who_, sample.key, sample.shard, sample.caption, sample.meta);
    if (caption) total += entry.p;
    found.push_back(std::move(caption));
  }
  // The first source whose cumulative share passes u * total; the last one that has a caption
  // takes what rounding leaves. With every source present total is exactly 1 for the arms'
  // p, 1 - p pairs, so a two-way mix picks the first exactly when u < p.
  std::optional<size_t> pick;
  double cumulative = 0;
  for (size_t i = 0; i < found.size(); ++i) {
    if (!found[i] || (pick && total == 0)) continue;
    pick = i;
    cumulative += mix_.entries[i].p;
    if (u * total < cumulative) break;
  }
  if (pick) {
    ++counts_.used;
    ++counts_.by_source[mix_.entries[*pick].source.name];
    return std::move(*found[*pick]);
  }
  if (mix_.skip_missing) {
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
