// The world's vocabulary and its configuration: which shapes, colours and backgrounds exist,
// how many groups and objects a scene holds, how large objects are, and how often each kind
// of bad web alt-text occurs. WorldConfig is plain data; validate() is the single place that
// decides whether a configuration can produce renderable, unambiguous scenes and captions.
#pragma once
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace recap::world {

struct Rgb {
  uint8_t r = 0, g = 0, b = 0;
  bool operator==(const Rgb&) const = default;
};

struct NamedColour {
  std::string name;  // one lower-case word, as it appears in captions
  Rgb rgb;
};

// Probability of each alt-text failure mode per image; the remainder (1 - sum) is "partial":
// decent but incomplete text without counts or positions. Defaults are documented
// assumptions about LAION-like alt-text (see vocab.cpp), measured by `corpus stats`.
struct AltTextRates {
  double context_only = 0.22;      // site, photographer, product or licence text; nothing visual
  double salient_only = 0.18;      // the largest group only, usually without its count
  double keywords = 0.10;          // comma-separated tags, colours not bound to shapes
  double wrong_attributes = 0.08;  // descriptive but with a wrong colour or count
  double filename = 0.06;          // "IMG_2041.jpg", "dsc0032"
  double empty = 0.04;             // no alt attribute at all
  double sum() const {
    return context_only + salient_only + keywords + wrong_attributes + filename + empty;
  }
};

struct WorldConfig {
  // Shapes must be ones the renderer can draw (see known_shapes()).
  std::vector<std::string> shapes = {"circle", "square", "triangle", "star",
                                     "heart",  "cross",  "diamond",  "hexagon"};
  std::vector<NamedColour> colours = {{"red", {220, 30, 30}},     {"green", {30, 170, 50}},
                                      {"blue", {30, 70, 220}},    {"yellow", {240, 220, 30}},
                                      {"purple", {140, 50, 180}}, {"orange", {250, 140, 20}},
                                      {"white", {255, 255, 255}}, {"black", {0, 0, 0}}};
  // Muted mid-luminance backgrounds, so that every object colour, white and black included,
  // stays at least kMinContrast away (RGB distance) from every background.
  std::vector<NamedColour> backgrounds = {{"gray", {128, 128, 128}}, {"tan", {180, 150, 110}},
                                          {"slate", {90, 110, 140}}, {"olive", {120, 130, 70}},
                                          {"pink", {230, 160, 180}}, {"maroon", {110, 50, 60}},
                                          {"teal", {40, 130, 130}},  {"lavender", {180, 170, 220}}};
  int min_groups = 1, max_groups = 3;
  int min_count = 1, max_count = 4;  // objects per group
  int canvas = 32;                   // square canvas side, pixels (32 quick, 64 full)
  // Object size = diameter of the circle that encloses the shape, as a fraction of the
  // canvas. 7/32 (7 px at 32) is about the smallest at which a star and a heart still differ,
  // and small enough that three groups of four fit on a 32 px canvas.
  double min_object_size = 0.21875, max_object_size = 0.34375;
  double max_rotation_deg = 15;  // more would turn squares into diamonds
  // A relation (left of, above, ...) holds when centroids differ by more than this fraction
  // of the canvas along its axis. The sampler guarantees at least min_object_size.
  double relation_margin = 0.1;
  AltTextRates alt_rates;

  // Throws recap::Error naming the first bad field and why it is bad.
  void validate() const;

  int groups_capacity() const { return static_cast<int>(shapes.size() * colours.size()); }
  const NamedColour& colour(std::string_view name) const;      // throws if unknown
  const NamedColour& background(std::string_view name) const;  // throws if unknown
  bool has_shape(std::string_view name) const;
  bool has_colour(std::string_view name) const;
  bool has_background(std::string_view name) const;
};

// Smallest RGB distance between an object colour and a background that validate() accepts.
inline constexpr double kMinContrast = 80;

// A drawable shape and the words captions may use for it. The first singular/plural form is
// the canonical one; parsers map every form back to `name`.
struct ShapeWords {
  std::string name;
  std::vector<std::string> singular;
  std::vector<std::string> plural;
};
const std::vector<ShapeWords>& known_shapes();
const ShapeWords& shape_words(std::string_view name);  // throws recap::Error if not drawable

}  // namespace recap::world
