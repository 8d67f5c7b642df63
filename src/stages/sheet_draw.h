// Cairo helpers for the PNG sheets recap draws (`corpus show`'s contact sheet, the report's
// image grids): fixed font settings so the bytes depend on the font files only, word wrap,
// nearest-neighbour image placement and PNG encoding.
#pragma once
#include <cairo.h>

#include <filesystem>
#include <memory>
#include <string>
#include <vector>

#include "data/image.h"

namespace recap::draw {

inline constexpr double kFontSize = 12;
inline constexpr double kLineHeight = 15;
inline constexpr double kBaseline = kLineHeight - 3;  // from the top of a text line

using Surface = std::unique_ptr<cairo_surface_t, decltype(&cairo_surface_destroy)>;
using Context = std::unique_ptr<cairo_t, decltype(&cairo_destroy)>;

// An RGB24 surface; throws recap::Error when Cairo cannot allocate it.
Surface image_surface(int width, int height);
Context context(cairo_surface_t* surface);
// DejaVu Sans at kFontSize, grey antialiasing, no hinting.
void set_font(cairo_t* cr, bool bold);
// Greedy word wrap at spaces; a word wider than the column gets a line of its own.
std::vector<std::string> wrap(cairo_t* cr, const std::string& text, double width);
// Draws `image` at (x, y), scaled by nearest neighbour so its longer side is `image_px`.
void draw_image(cairo_t* cr, const data::Image& image, double x, double y, int image_px);
// The surface as PNG bytes; `what` names the picture in the error when encoding fails.
std::string encode_png(cairo_surface_t* surface, const std::filesystem::path& what);

}  // namespace recap::draw
