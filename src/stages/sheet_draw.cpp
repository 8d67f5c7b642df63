#include "stages/sheet_draw.h"

#include <algorithm>
#include <cstring>

#include <fmt/format.h>

#include "core/error.h"

namespace recap::draw {

Surface image_surface(int width, int height) {
  Surface s(cairo_image_surface_create(CAIRO_FORMAT_RGB24, width, height), cairo_surface_destroy);
  if (cairo_surface_status(s.get()) != CAIRO_STATUS_SUCCESS)
    throw Error(fmt::format("cannot create a {}x{} image ({})", width, height,
                            cairo_status_to_string(cairo_surface_status(s.get()))));
  return s;
}

Context context(cairo_surface_t* surface) { return Context(cairo_create(surface), cairo_destroy); }

// Fixed font options rather than the machine's fontconfig defaults, so that a sheet's bytes
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

void draw_image(cairo_t* cr, const data::Image& image, double x, double y, int image_px) {
  Surface src = image_surface(image.width, image.height);
  cairo_surface_flush(src.get());
  unsigned char* bytes = cairo_image_surface_get_data(src.get());
  const int stride = cairo_image_surface_get_stride(src.get());
  // RGB24 is one native-endian 32-bit word per pixel, 0x00RRGGBB; grey images repeat channel 0.
  const int g = image.channels >= 3 ? 1 : 0, b = image.channels >= 3 ? 2 : 0;
  for (int r = 0; r < image.height; ++r)
    for (int c = 0; c < image.width; ++c) {
      const uint32_t pixel = uint32_t{image.at(r, c, 0)} << 16 | uint32_t{image.at(r, c, g)} << 8 |
                             uint32_t{image.at(r, c, b)};
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

namespace {

cairo_status_t append_bytes(void* closure, const unsigned char* data, unsigned int length) {
  static_cast<std::string*>(closure)->append(reinterpret_cast<const char*>(data), length);
  return CAIRO_STATUS_SUCCESS;
}

}  // namespace

std::string encode_png(cairo_surface_t* surface, const std::filesystem::path& what) {
  std::string png;
  cairo_surface_flush(surface);
  if (cairo_surface_write_to_png_stream(surface, append_bytes, &png) != CAIRO_STATUS_SUCCESS)
    throw Error(what.string() + ": cannot encode the picture as PNG");
  return png;
}

}  // namespace recap::draw
