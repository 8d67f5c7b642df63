// `recap corpus show`: renders requested samples and their captions into one PNG with Cairo.
#include "stages/corpus_show.h"

#include <algorithm>
#include <cmath>
#include <map>
#include <set>
#include <variant>

#include <fmt/format.h>
#include <fmt/ranges.h>

#include "core/atomic_file.h"
#include "core/error.h"
#include "data/image.h"
#include "data/shard_reader.h"
#include "stages/corpus.h"
#include "stages/corpus_stats.h"
#include "stages/settings.h"
#include "stages/sheet_draw.h"

namespace recap::corpus {

namespace {

constexpr double kMargin = 8;       // around the sheet and between rows
constexpr double kGap = 12;         // between image and text
constexpr double kTextWidth = 520;  // caption column

std::vector<std::string> captions_of(const data::Sample& sample) {
  std::vector<std::string> out;
  if (const std::string* alt = meta_caption(sample.meta, "alt")) {
    const std::string* mode = meta_caption(sample.meta, "alt_mode");
    out.push_back(fmt::format("alt-text ({}): {}", mode ? *mode : "?",
                              alt->empty() ? "(empty)" : *alt));
  }
  if (const std::string* c = meta_caption(sample.meta, "human_long"))
    out.push_back("human long: " + *c);
  if (const std::string* c = meta_caption(sample.meta, "human_short"))
    out.push_back("human short: " + *c);
  // Metadata from elsewhere may hold no captions; KEY.txt is then all there is.
  if (out.empty()) out.push_back("caption: " + sample.caption);
  return out;
}

// The requested samples, from whichever split holds them; stops reading once all are found.
std::map<std::string, data::Sample> find_samples(const fs::path& dir,
                                                 const std::vector<std::string>& keys,
                                                 const data::ReadLimits& limits) {
  std::set<std::string> wanted(keys.begin(), keys.end());
  std::map<std::string, data::Sample> found;
  std::map<std::string, std::string> rejected;  // key -> reason, for the error message
  for (Split split : kSplits) {
    for (const auto& shard : list_shards(dir, split)) {
      if (found.size() == wanted.size()) break;
      data::ShardReader reader(shard, limits);
      while (auto item = reader.next()) {
        if (const auto* reject = std::get_if<data::Reject>(&*item)) {
          if (wanted.count(reject->key)) rejected[reject->key] = reject->reason;
        } else if (auto& sample = std::get<data::Sample>(*item); wanted.count(sample.key)) {
          found.emplace(sample.key, std::move(sample));
        }
      }
    }
  }
  std::vector<std::string> missing;
  for (const auto& key : wanted) {
    if (found.count(key)) continue;
    auto it = rejected.find(key);
    missing.push_back(it == rejected.end() ? key
                                           : fmt::format("{} (rejected: {})", key, it->second));
  }
  if (!missing.empty())
    throw Error(fmt::format("{}: no such sample: {}", dir.string(), fmt::join(missing, ", ")));
  return found;
}

struct Row {
  std::string key;
  data::Image image;
  std::vector<std::string> lines;  // wrapped captions, under the key
  double height = 0;
};

}  // namespace

void write_contact_sheet(const fs::path& dir, const std::vector<std::string>& keys,
                         const fs::path& out, int image_px) {
  if (keys.empty()) throw Error("corpus show: no keys given");
  if (image_px < 1)
    throw Error(fmt::format("corpus show: image size {} px is too small", image_px));
  const Config config = corpus_config(dir);
  std::map<std::string, data::Sample> samples = find_samples(dir, keys, read_limits(config));

  // Layout first (text needs a context to be measured), then one surface of the final size.
  draw::Surface scratch = draw::image_surface(1, 1);
  draw::Context measure = draw::context(scratch.get());
  draw::set_font(measure.get(), false);
  std::vector<Row> rows;
  double height = kMargin;
  for (const auto& key : keys) {
    const data::Sample& sample = samples.at(key);
    data::DecodeResult decoded = data::decode_image(sample.image_bytes, decode_limits(config));
    if (!decoded.image)
      throw Error(fmt::format("{}: {}: image cannot be shown ({}: {})", sample.shard, key,
                              decoded.reason, decoded.detail));
    Row row{key, std::move(*decoded.image), {}, 0};
    for (const auto& caption : captions_of(sample))
      for (auto& line : draw::wrap(measure.get(), caption, kTextWidth))
        row.lines.push_back(std::move(line));
    row.height =
        std::max<double>(image_px, draw::kLineHeight * static_cast<double>(1 + row.lines.size()));
    height += row.height + kMargin;
    rows.push_back(std::move(row));
  }
  const double width = kMargin + image_px + kGap + kTextWidth + kMargin;

  draw::Surface sheet = draw::image_surface(static_cast<int>(std::ceil(width)),
                                            static_cast<int>(std::ceil(height)));
  draw::Context cr = draw::context(sheet.get());
  cairo_set_source_rgb(cr.get(), 1, 1, 1);
  cairo_paint(cr.get());
  double y = kMargin;
  const double text_x = kMargin + image_px + kGap;
  for (const auto& row : rows) {
    draw::draw_image(cr.get(), row.image, kMargin, y, image_px);
    cairo_set_source_rgb(cr.get(), 0, 0, 0);
    draw::set_font(cr.get(), true);
    cairo_move_to(cr.get(), text_x, y + draw::kBaseline);
    cairo_show_text(cr.get(), row.key.c_str());
    draw::set_font(cr.get(), false);
    for (size_t i = 0; i < row.lines.size(); ++i) {
      cairo_move_to(cr.get(), text_x,
                    y + draw::kBaseline + draw::kLineHeight * static_cast<double>(i + 1));
      cairo_show_text(cr.get(), row.lines[i].c_str());
    }
    y += row.height + kMargin;
  }

  write_file_atomic(out, draw::encode_png(sheet.get(), out));
}

}  // namespace recap::corpus
