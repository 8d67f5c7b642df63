// The report's caption examples: web samples beside every caption the run has for them.
// Torch only through the recaption/t2i headers whose sidecar helpers it reuses.
#include "core/torch_pch.h"

#include <variant>

#include <fmt/format.h>

#include "core/atomic_file.h"
#include "core/error.h"
#include "core/jsonl.h"
#include "data/image.h"
#include "data/shard_reader.h"
#include "stages/corpus.h"
#include "stages/corpus_stats.h"
#include "stages/recaption.h"
#include "stages/report_parts.h"
#include "stages/settings.h"
#include "stages/t2i_train.h"

namespace recap::stages::report {

namespace {

// Keys of other corpora may hold '/' or worse; the copied image gets a plain file name.
std::string file_name(const std::string& key) {
  std::string out;
  for (char c : key)
    out +=
        std::isalnum(static_cast<unsigned char>(c)) || c == '-' || c == '_' || c == '.' ? c : '_';
  return out + ".png";
}

// caption_quality/stage1.jsonl: {"key", "caption"} lines for the first web samples.
std::map<std::string, std::string> read_key_captions(const fs::path& path) {
  std::map<std::string, std::string> out;
  const auto lines = read_jsonl(path);
  for (size_t n = 0; n < lines.size(); ++n) {
    const auto& line = lines[n];
    if (!line.is_object() || !line.contains("key") || !line["key"].is_string() ||
        !line.contains("caption") || !line["caption"].is_string())
      throw Error(
          fmt::format("{}: record {}: needs string fields key and caption", path.string(), n + 1));
    out.emplace(line["key"].get<std::string>(), line["caption"].get<std::string>());
  }
  return out;
}

// The caption of `key` in `captions`; "not run" when the source does not exist at all.
Cell caption_cell(bool source_exists, const std::map<std::string, std::string>& captions,
                  const std::string& key) {
  if (!source_exists) return kNotRun;
  auto it = captions.find(key);
  return it == captions.end() ? "(none)" : it->second;
}

}  // namespace

Table caption_examples(const RunLayout& layout, int count) {
  Table table{
      {"image", "key", "alt-text", "RECAP long caption", "stage-1 caption", "human caption"}, {}};
  const fs::path corpus_dir = layout.corpus();
  if (count < 1 || !fs::exists(corpus_dir / "corpus.json")) return table;
  const Config config = corpus::corpus_config(corpus_dir);

  // The first `count` readable web samples, and the shards they came from.
  std::vector<data::Sample> samples;
  std::vector<fs::path> shards;
  for (const auto& shard : corpus::list_shards(corpus_dir, corpus::Split::Web)) {
    if (static_cast<int>(samples.size()) >= count) break;
    shards.push_back(shard);
    data::ShardReader reader(shard, read_limits(config));
    while (static_cast<int>(samples.size()) < count) {
      auto item = reader.next();
      if (!item) break;
      if (auto* sample = std::get_if<data::Sample>(&*item)) samples.push_back(std::move(*sample));
    }
  }

  const fs::path long_dir = layout.recaption("long");
  std::vector<fs::path> sidecars;
  for (const auto& shard : shards)
    if (fs::path p = sidecar_path(long_dir, shard); fs::exists(p)) sidecars.push_back(p);
  const auto recaptions = load_recaptions(sidecars).long_captions;
  const fs::path stage1_path = layout.caption_quality() / "stage1.jsonl";
  const bool have_stage1 = fs::exists(stage1_path);
  const auto stage1 =
      have_stage1 ? read_key_captions(stage1_path) : std::map<std::string, std::string>{};

  for (const auto& sample : samples) {
    data::DecodeResult decoded = data::decode_image(sample.image_bytes, decode_limits(config));
    Cell image = kNotRun;
    if (decoded.image) {
      const std::string rel = "examples/" + file_name(sample.key);
      write_file_atomic(layout.report() / rel, data::encode_png(*decoded.image));
      image = Cell::picture(rel, sample.key);
    } else {
      image = fmt::format("({}: {})", decoded.reason, decoded.detail);
    }
    const std::string* human = corpus::meta_caption(sample.meta, "human_long");
    table.rows.push_back({image, sample.key, sample.caption.empty() ? "(empty)" : sample.caption,
                          caption_cell(fs::exists(long_dir), recaptions, sample.key),
                          caption_cell(have_stage1, stage1, sample.key),
                          human ? Cell(*human) : Cell("(none)")});
  }
  return table;
}

}  // namespace recap::stages::report
