// `recap corpus show`: renders requested samples and their captions into one PNG with Cairo.
#include "stages/corpus_show.h"

#include <cairo.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <map>
#include <memory>
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

namespace recap::corpus {

namespace {

constexpr double kMargin = 8;       // around the sheet and between rows
constexpr double kGap = 12;         // between image and text
constexpr double kTextWidth = 520;  // caption column
constexpr double kFontSize = 12;
constexpr double kLineHeight = 15;

using Surface = std::unique_ptr<cairo_surface_t, decltype(&cairo_surface_destroy)>;
using Context = std::unique_ptr<cairo_t, decltype(&cairo_destroy)>;

Surface image_surface(int width, int height) {
  Surface s(cairo_image_surface_create(CAIRO_FORMAT_RGB24, width, height),
            cairo_surface_destroy);
  if (cairo_surface_status(s.get()) != CAIRO_STATUS_SUCCESS)
    throw Error(fmt::format("contact sheet: cannot create a {}x{} image ({})", width, height,
                            cairo_status_to_string(cairo_surface_status(s.get()))));
  return s;
}

// Fixed font options rather than the machine's fontconfig defaults, so that the sheet's bytes
// depend on the font files only.
void set_font(cairo_t* cr, bool bold) {
  cairo_select_font_face(cr, "DejaVu Sans", CAIRO_FONT_SLANT_NORMAL,
                         bold ? CAIRO_FONT_WEIGHT_BOLD : CAIRO_FONT_WEIGHT_NORMAL);
  cairo_set_font_size(cr, kFontSize);
  std::unique_ptr<cairo_font_options_t, decltype(&cairo_font_options_destroy)> options(
      cairo_font_options_create(), cairo_font_options_destroy);
  cairo_font_options_set_antialias(options.get(), CAIRO_ANTIALIAS_GRAY);
  cairo_font_options_set_hint_style(options.get(), CAIRO_HINT_STYLE_NONE);
  cairo_font_options_set_hint_metrics(options.get(), CAIRO_HINT_METRICS_OFF);
  cairo_set_font_options(cr, options.get());
}

// Greedy word wrap at spaces; a word wider than the column gets a line of its own.
std::vector<std::string> wrap(cairo_t* cr, const std::string& text, double width) {
  std::vector<std::string> lines;
  std::string line;
  size_t start = 0;
  while (start <= text.size()) {
    size_t end = std::min(text.find(' ', start), text.size());
    std::string word = text.substr(start, end - start);
    start = end + 1;
    if (word.empty()) continue;
    std::string candidate = line.empty() ? word : line + " " + word;
    cairo_text_extents_t extents;
    cairo_text_extents(cr, candidate.c_str(), &extents);
    if (extents.x_advance > width && !line.empty()) {
      lines.push_back(std::move(line));
      line = std::move(word);
    } else {
      line = std::move(candidate);
    }
  }
  if (!line.empty()) lines.push_back(std::move(line));
  return lines;
}

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

void draw_image(cairo_t* cr, const data::Image& image, double x, double y, int image_px) {
  Surface src = image_surface(image.width, image.height);
  cairo_surface_flush(src.get());
  unsigned char* bytes = cairo_image_surface_get_data(src.get());
  const int stride = cairo_image_surface_get_stride(src.get());
  for (int r = 0; r < image.height; ++r)
    for (int c = 0; c < image.width; ++c) {
      const uint32_t pixel = uint32_t{image.at(r, c, 0)} << 16 | uint32_t{image.at(r, c, 1)} << 8 |
                             uint32_t{image.at(r, c, 2)};
      std::memcpy(bytes + static_cast<size_t>(r) * stride + 4 * static_cast<size_t>(c), &pixel, 4);
    }
  cairo_surface_mark_dirty(src.get());

  const double scale = image_px / static_cast<double>(std::max(image.width, image.height));
  cairo_save(cr);
  cairo_translate(cr, x, y);
  cairo_scale(cr, scale, scale);
  cairo_set_source_surface(cr, src.get(), 0, 0);
  cairo_pattern_set_filter(cairo_get_source(cr), CAIRO_FILTER_NEAREST);
  cairo_paint(cr);
  cairo_restore(cr);
}

cairo_status_t append_bytes(void* closure, const unsigned char* data, unsigned int length) {
  static_cast<std::string*>(closure)->append(reinterpret_cast<const char*>(data), length);
  return CAIRO_STATUS_SUCCESS;
}

}  // namespace

void write_contact_sheet(const fs::path& dir, const std::vector<std::string>& keys,
                         const fs::path& out, int image_px) {
  if (keys.empty()) throw Error("corpus show: no keys given");
  if (image_px < 1)
    throw Error(fmt::format("corpus show: image size {} px is too small", image_px));
  const Config config = corpus_config(dir);
  std::map<std::string, data::Sample> samples = find_samples(dir, keys, read_limits(config));

  // Layout first (text needs a context to be measured), then one surface of the final size.
  Surface scratch = image_surface(1, 1);
  Context measure(cairo_create(scratch.get()), cairo_destroy);
  set_font(measure.get(), false);
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
      for (auto& line : wrap(measure.get(), caption, kTextWidth))
        row.lines.push_back(std::move(line));
    row.height =
        std::max<double>(image_px, kLineHeight * static_cast<double>(1 + row.lines.size()));
    height += row.height + kMargin;
    rows.push_back(std::move(row));
  }
  const double width = kMargin + image_px + kGap + kTextWidth + kMargin;

  Surface sheet = image_surface(static_cast<int>(std::ceil(width)),
                                static_cast<int>(std::ceil(height)));
  Context cr(cairo_create(sheet.get()), cairo_destroy);
  cairo_set_source_rgb(cr.get(), 1, 1, 1);
  cairo_paint(cr.get());
  double y = kMargin;
  const double text_x = kMargin + image_px + kGap;
  const double baseline = kLineHeight - 3;  // from the top of a line
  for (const auto& row : rows) {
    draw_image(cr.get(), row.image, kMargin, y, image_px);
    cairo_set_source_rgb(cr.get(), 0, 0, 0);
    set_font(cr.get(), true);
    cairo_move_to(cr.get(), text_x, y + baseline);
    cairo_show_text(cr.get(), row.key.c_str());
    set_font(cr.get(), false);
    for (size_t i = 0; i < row.lines.size(); ++i) {
      cairo_move_to(cr.get(), text_x, y + baseline + kLineHeight * static_cast<double>(i + 1));
      cairo_show_text(cr.get(), row.lines[i].c_str());
    }
    y += row.height + kMargin;
  }

  std::string png;
  cairo_surface_flush(sheet.get());
  if (cairo_surface_write_to_png_stream(sheet.get(), append_bytes, &png) != CAIRO_STATUS_SUCCESS)
    throw Error(out.string() + ": cannot encode the contact sheet as PNG");
  write_file_atomic(out, png);
}

}  // namespace recap::corpus
