#include "stages/settings.h"

#include <fmt/format.h>
#include <fmt/ranges.h>

#include "core/error.h"

namespace recap {

namespace {

// Picks named entries from a palette, keeping the configured order.
std::vector<world::NamedColour> pick(const std::vector<world::NamedColour>& palette,
                                     const std::vector<std::string>& names,
                                     const std::string& key) {
  std::vector<world::NamedColour> out;
  for (const auto& name : names) {
    auto it = std::find_if(palette.begin(), palette.end(),
                           [&](const auto& c) { return c.name == name; });
    if (it == palette.end()) {
      std::vector<std::string> known;
      for (const auto& c : palette) known.push_back(c.name);
      throw Error(fmt::format("config key '{}': unknown colour '{}' (known: {})", key, name,
                              fmt::join(known, ", ")));
    }
    out.push_back(*it);
  }
  return out;
}

}  // namespace

world::WorldConfig world_settings(const Config& c) {
  world::WorldConfig w;  // its defaults hold the palettes
  w.shapes = c.get_strings("world.shapes");
  w.colours = pick(w.colours, c.get_strings("world.colours"), "world.colours");
  w.backgrounds = pick(w.backgrounds, c.get_strings("world.backgrounds"), "world.backgrounds");
  w.canvas = static_cast<int>(c.get_int("world.canvas"));
  w.min_groups = static_cast<int>(c.get_int("world.min_groups"));
  w.max_groups = static_cast<int>(c.get_int("world.max_groups"));
  w.min_count = static_cast<int>(c.get_int("world.min_count"));
  w.max_count = static_cast<int>(c.get_int("world.max_count"));
  w.min_object_size = c.get_float("world.min_object_size");
  w.max_object_size = c.get_float("world.max_object_size");
  w.max_rotation_deg = c.get_float("world.max_rotation_deg");
  w.relation_margin = c.get_float("world.relation_margin");
  w.alt_rates.context_only = c.get_float("alt.context_only");
  w.alt_rates.salient_only = c.get_float("alt.salient_only");
  w.alt_rates.keywords = c.get_float("alt.keywords");
  w.alt_rates.wrong_attributes = c.get_float("alt.wrong_attributes");
  w.alt_rates.filename = c.get_float("alt.filename");
  w.alt_rates.empty = c.get_float("alt.empty");
  try {
    w.validate();
  } catch (const Error& e) {
    throw Error(fmt::format("{}: invalid world settings: {}", c.origin(), e.what()));
  }
  return w;
}

data::ReadLimits read_limits(const Config& c) {
  data::ReadLimits limits;
  limits.max_entry_bytes = static_cast<uint64_t>(c.get_int("data.max_entry_bytes"));
  limits.max_shard_bytes = static_cast<uint64_t>(c.get_int("data.max_shard_bytes"));
  limits.caption.max_bytes = static_cast<std::size_t>(c.get_int("data.max_caption_bytes"));
  limits.caption_field = c.get_string("data.caption_field");
  return limits;
}

data::DecodeLimits decode_limits(const Config& c) {
  data::DecodeLimits limits;
  limits.max_pixels = static_cast<uint64_t>(c.get_int("data.max_pixels"));
  return limits;
}

CorpusSettings corpus_settings(const Config& c) {
  return {c.get_int("corpus.web_samples"),       c.get_int("corpus.human_samples"),
          c.get_int("corpus.eval_samples"),      c.get_int("corpus.prompts_per_suite"),
          c.get_int("corpus.shard_size"),        static_cast<uint64_t>(c.get_int("run.seed"))};
}

}  // namespace recap
