// WorldConfig validation and the table of drawable shapes with their caption words.
//
// Default alt-text rates (vocab.h) are assumptions, not measurements: audits of LAION-style
// alt-text find that a large share names no visible content at all (shop, stock and credit
// lines, filenames, empty alt attributes: here 22% + 6% + 4% = 32%), that the most common
// descriptive alt-text names only the main subject, and that attribute errors are rarer than
// omissions. The remaining 32% is partial description without counts or positions, so no
// alt-text ever states a count correctly *and* a position: exactly the gap RECAP closes.
#include "world/vocab.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <set>

#include "core/error.h"

namespace recap::world {
namespace {

[[noreturn]] void fail(const std::string& field, const std::string& problem) {
  throw Error("world config: " + field + " " + problem);
}

bool is_word(const std::string& s) {
  return !s.empty() && std::all_of(s.begin(), s.end(), [](char c) { return c >= 'a' && c <= 'z'; });
}

double distance(Rgb a, Rgb b) {
  const double dr = a.r - b.r, dg = a.g - b.g, db = a.b - b.b;
  return std::sqrt(dr * dr + dg * dg + db * db);
}

void check_palette(const std::vector<NamedColour>& palette, const std::string& field,
                   std::set<std::string>& words) {
  if (palette.empty()) fail(field, "is empty");
  for (const auto& c : palette) {
    if (!is_word(c.name)) fail(field, "name '" + c.name + "' is not one lower-case word (a-z)");
    if (!words.insert(c.name).second)
      fail(field, "name '" + c.name + "' is used twice (captions would be ambiguous)");
  }
}

std::string num(double v) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%g", v);
  return buf;
}

void check_range(double v, double lo, double hi, const std::string& field) {
  if (!(v >= lo && v <= hi))
    fail(field, "= " + num(v) + " is outside [" + num(lo) + ", " + num(hi) + "]");
}

const NamedColour* find(const std::vector<NamedColour>& palette, std::string_view name) {
  for (const auto& c : palette)
    if (c.name == name) return &c;
  return nullptr;
}

}  // namespace

const std::vector<ShapeWords>& known_shapes() {
  static const std::vector<ShapeWords> shapes = {
      {"circle", {"circle", "disc", "disk"}, {"circles", "discs", "disks"}},
      {"square", {"square", "tile"}, {"squares", "tiles"}},
      {"triangle", {"triangle"}, {"triangles"}},
      {"star", {"star"}, {"stars"}},
      {"heart", {"heart"}, {"hearts"}},
      {"cross", {"cross"}, {"crosses"}},
      {"diamond", {"diamond", "rhombus", "lozenge"}, {"diamonds", "rhombuses", "lozenges"}},
      {"hexagon", {"hexagon"}, {"hexagons"}},
  };
  return shapes;
}

const ShapeWords& shape_words(std::string_view name) {
  for (const auto& s : known_shapes())
    if (s.name == name) return s;
  throw Error("world: shape '" + std::string(name) + "' is not one the renderer can draw");
}

void WorldConfig::validate() const {
  if (shapes.empty()) fail("shapes", "is empty");
  std::set<std::string> words;
  for (const auto& s : shapes) {
    bool known = false;
    for (const auto& k : known_shapes()) known = known || k.name == s;
    if (!known) fail("shapes", "contains '" + s + "', which the renderer cannot draw");
    if (!words.insert(s).second) fail("shapes", "contains '" + s + "' twice");
  }
  for (const auto& k : known_shapes()) {  // synonyms of every drawable shape are reserved
    words.insert(k.singular.begin(), k.singular.end());
    words.insert(k.plural.begin(), k.plural.end());
  }
  check_palette(colours, "colours", words);
  check_palette(backgrounds, "backgrounds", words);
  for (const auto& bg : backgrounds)
    for (const auto& c : colours)
      if (distance(bg.rgb, c.rgb) < kMinContrast)
        fail("backgrounds", "'" + bg.name + "' is too close to colour '" + c.name +
                                "' (RGB distance " + num(distance(bg.rgb, c.rgb)) + " < " +
                                num(kMinContrast) + "): objects would vanish");
  check_range(min_groups, 1, 6, "min_groups");
  check_range(max_groups, min_groups, 6, "max_groups");
  if (max_groups > groups_capacity())
    fail("max_groups", "exceeds the number of distinct (shape, colour) pairs");
  check_range(min_count, 1, 10, "min_count");
  check_range(max_count, min_count, 10, "max_count");
  check_range(canvas, 16, 1024, "canvas");
  check_range(min_object_size, 4.0 / canvas, 0.9, "min_object_size");
  check_range(max_object_size, min_object_size, 0.9, "max_object_size");
  check_range(max_rotation_deg, 0, 30, "max_rotation_deg");
  check_range(relation_margin, 0, min_object_size, "relation_margin");
  check_range(alt_rates.context_only, 0, 1, "alt_rates.context_only");
  check_range(alt_rates.salient_only, 0, 1, "alt_rates.salient_only");
  check_range(alt_rates.keywords, 0, 1, "alt_rates.keywords");
  check_range(alt_rates.wrong_attributes, 0, 1, "alt_rates.wrong_attributes");
  check_range(alt_rates.filename, 0, 1, "alt_rates.filename");
  check_range(alt_rates.empty, 0, 1, "alt_rates.empty");
  if (alt_rates.sum() > 1 + 1e-9) fail("alt_rates", "sum to more than 1");
}

const NamedColour& WorldConfig::colour(std::string_view name) const {
  if (const auto* c = find(colours, name)) return *c;
  throw Error("world: unknown colour '" + std::string(name) + "'");
}

const NamedColour& WorldConfig::background(std::string_view name) const {
  if (const auto* c = find(backgrounds, name)) return *c;
  throw Error("world: unknown background '" + std::string(name) + "'");
}

bool WorldConfig::has_shape(std::string_view name) const {
  return std::find(shapes.begin(), shapes.end(), name) != shapes.end();
}
bool WorldConfig::has_colour(std::string_view name) const { return find(colours, name); }
bool WorldConfig::has_background(std::string_view name) const { return find(backgrounds, name); }

}  // namespace recap::world
