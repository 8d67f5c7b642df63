// Cairo renderer. Every shape's outline lies within the circle of radius size/2 around its
// centre (the sampler's non-overlap guarantee is about those circles) and covers the centre
// itself, so the pixel under an object's centre carries its colour.
#include "world/render.h"

#include <cairo.h>

#include <cmath>
#include <memory>
#include <numbers>

#include "core/error.h"

namespace recap::world {
namespace {

using Path = std::vector<Point>;  // closed polygon in units of the enclosing radius

Path regular_polygon(int sides, double phase) {
  Path p;
  for (int i = 0; i < sides; ++i) {
    const double a = phase + 2 * std::numbers::pi * i / sides;
    p.push_back({std::cos(a), std::sin(a)});
  }
  return p;
}

Path star() {
  Path p;
  for (int i = 0; i < 10; ++i) {
    // Inner radius 0.5 (fatter than a classic star) keeps the star's centre solid at 8 px.
    const double radius = i % 2 == 0 ? 1.0 : 0.5;
    const double a = -std::numbers::pi / 2 + std::numbers::pi * i / 5;
    p.push_back({radius * std::cos(a), radius * std::sin(a)});
  }
  return p;
}

Path cross() {
  const double w = 0.32, l = 0.94;  // arm half-width and reach; corners stay inside the circle
  return {{-w, -l}, {w, -l}, {w, -w}, {l, -w}, {l, w},   {w, w},
          {w, l},   {-w, l}, {-w, w}, {-l, w}, {-l, -w}, {-w, -w}};
}

// The classic parametric heart, centred on its bounding box and scaled into the unit circle.
Path heart() {
  Path p;
  for (int i = 0; i < 64; ++i) {
    const double t = 2 * std::numbers::pi * i / 64;
    const double s = std::sin(t);
    p.push_back({16 * s * s * s, -(13 * std::cos(t) - 5 * std::cos(2 * t) - 2 * std::cos(3 * t) -
                                   std::cos(4 * t))});
  }
  double x0 = 1e9, x1 = -1e9, y0 = 1e9, y1 = -1e9;
  for (auto q : p) {
    x0 = std::min(x0, q.x), x1 = std::max(x1, q.x), y0 = std::min(y0, q.y), y1 = std::max(y1, q.y);
  }
  const double cx = (x0 + x1) / 2, cy = (y0 + y1) / 2;
  double reach = 0;
  for (auto q : p) reach = std::max(reach, std::hypot(q.x - cx, q.y - cy));
  for (auto& q : p) q = {(q.x - cx) / reach, (q.y - cy) / reach};
  return p;
}

const Path& outline(const std::string& shape) {
  static const Path square = regular_polygon(4, std::numbers::pi / 4);
  static const Path triangle = regular_polygon(3, -std::numbers::pi / 2);  // pointing up
  static const Path star_path = star();
  static const Path cross_path = cross();
  static const Path heart_path = heart();
  // Taller than wide, so a diamond never looks like a square rotated by 45 degrees.
  static const Path diamond = {{0, -1}, {0.62, 0}, {0, 1}, {-0.62, 0}};
  // Wider than tall: a regular hexagon is indistinguishable from a circle at 7 px.
  static const Path hexagon = {{1, 0},  {0.5, 0.62},   {-0.5, 0.62},
                               {-1, 0}, {-0.5, -0.62}, {0.5, -0.62}};
  if (shape == "square") return square;
  if (shape == "triangle") return triangle;
  if (shape == "star") return star_path;
  if (shape == "cross") return cross_path;
  if (shape == "heart") return heart_path;
  if (shape == "diamond") return diamond;
  if (shape == "hexagon") return hexagon;
  throw Error("render: shape '" + shape + "' has no outline");
}

void set_colour(cairo_t* cr, Rgb c) {
  cairo_set_source_rgb(cr, c.r / 255.0, c.g / 255.0, c.b / 255.0);
}

void draw(cairo_t* cr, const Group& g, const Object& o) {
  const double r = o.size / 2;
  cairo_save(cr);
  cairo_translate(cr, o.x, o.y);
  cairo_rotate(cr, o.rotation * std::numbers::pi / 180);
  if (g.shape == "circle") {
    cairo_arc(cr, 0, 0, 0.92 * r, 0, 2 * std::numbers::pi);  // a touch smaller: equal visual weight
  } else {
    const Path& p = outline(g.shape);
    cairo_move_to(cr, p[0].x * r, p[0].y * r);
    for (size_t i = 1; i < p.size(); ++i) cairo_line_to(cr, p[i].x * r, p[i].y * r);
    cairo_close_path(cr);
  }
  cairo_fill(cr);
  cairo_restore(cr);
}

}  // namespace

data::Image render(const Scene& scene, const WorldConfig& config) {
  using Surface = std::unique_ptr<cairo_surface_t, decltype(&cairo_surface_destroy)>;
  using Context = std::unique_ptr<cairo_t, decltype(&cairo_destroy)>;
  Surface surface(cairo_image_surface_create(CAIRO_FORMAT_RGB24, scene.width, scene.height),
                  cairo_surface_destroy);
  if (cairo_surface_status(surface.get()) != CAIRO_STATUS_SUCCESS)
    throw Error("render: cannot create a " + std::to_string(scene.width) + "x" +
                std::to_string(scene.height) + " surface");
  Context cr(cairo_create(surface.get()), cairo_destroy);
  cairo_set_antialias(cr.get(), CAIRO_ANTIALIAS_DEFAULT);
  set_colour(cr.get(), config.background(scene.background).rgb);
  cairo_paint(cr.get());
  for (const auto& g : scene.groups) {
    set_colour(cr.get(), config.colour(g.colour).rgb);
    for (const auto& o : g.objects) draw(cr.get(), g, o);
  }
  cairo_surface_flush(surface.get());

  data::Image img{scene.width, scene.height, 3,
                  std::vector<uint8_t>(size_t(scene.width) * scene.height * 3)};
  const unsigned char* data = cairo_image_surface_get_data(surface.get());
  const int stride = cairo_image_surface_get_stride(surface.get());
  for (int y = 0; y < scene.height; ++y) {
    const auto* row = reinterpret_cast<const uint32_t*>(data + size_t(y) * stride);
    for (int x = 0; x < scene.width; ++x) {
      uint8_t* out = &img.pixels[(size_t(y) * scene.width + x) * 3];
      out[0] = (row[x] >> 16) & 0xFF;  // RGB24 is native-endian 0x00RRGGBB
      out[1] = (row[x] >> 8) & 0xFF;
      out[2] = row[x] & 0xFF;
    }
  }
  return img;
}

}  // namespace recap::world
