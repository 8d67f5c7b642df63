// A scene of the embedded world and its exact ground truth: a background and groups of
// identical objects (same shape and colour), plus the spatial relations between groups that
// the layout guarantees. Also the one definition of "left of / above / ..." used everywhere:
// by the sampler, by caption scoring and by detection-based evaluation.
#pragma once
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "world/vocab.h"

namespace recap::world {

struct Point {
  double x = 0, y = 0;  // pixels; x to the right, y downwards (image convention)
};

struct Object {
  double x = 0, y = 0;  // centre, pixels
  double size = 0;      // diameter of the enclosing circle, pixels
  double rotation = 0;  // degrees, clockwise on screen
  bool operator==(const Object&) const = default;
};

struct Group {
  std::string shape;   // a known_shapes() name
  std::string colour;  // a WorldConfig::colours name
  std::vector<Object> objects;
  int count() const { return static_cast<int>(objects.size()); }
  Point centroid() const;
  double area() const;  // sum of enclosing-circle areas, px^2: how salient the group is
  bool operator==(const Group&) const = default;
};

enum class Relation { LeftOf, RightOf, Above, Below };
std::string_view relation_name(Relation r);  // "left_of", ...
std::optional<Relation> relation_from_name(std::string_view name);
Relation inverse(Relation r);  // LeftOf <-> RightOf, Above <-> Below

// "Group a is <relation> group b"; indices into Scene::groups.
struct GroupRelation {
  int a = 0, b = 0;
  Relation relation = Relation::LeftOf;
  bool operator==(const GroupRelation&) const = default;
};

// Does `a` stand in relation `r` to `b`? Only the relation's axis counts: a is left of b when
// b.x - a.x > margin (pixels), whatever their vertical offset. This is the single definition
// for ground truth, caption scoring and detection scoring.
bool relation_holds(Point a, Point b, Relation r, double margin);
// The relations that hold from a to b: at most one horizontal and one vertical, horizontal
// first. Empty when the centroids are within the margin on both axes.
std::vector<Relation> relation_between(Point a, Point b, double margin);

// Absolute position on the canvas by thirds: where a caption would say "top left" etc.
enum class HPos { Left, Center, Right };
enum class VPos { Top, Middle, Bottom };
struct AbsPosition {
  std::optional<HPos> h;  // unset: not stated (captions may name only one axis)
  std::optional<VPos> v;
  bool operator==(const AbsPosition&) const = default;
};
AbsPosition absolute_position(Point p, int width, int height);  // both axes set
// True when every axis `stated` sets agrees with `truth`.
bool position_agrees(const AbsPosition& stated, const AbsPosition& truth);

struct Scene {
  int width = 0, height = 0;  // pixels
  std::string background;     // a WorldConfig::backgrounds name
  std::vector<Group> groups;
  // The relations the layout guarantees, one per ordered pair a < b that is separated.
  std::vector<GroupRelation> relations;
  bool operator==(const Scene&) const = default;
};

// JSON round trip. Deterministic (same scene, same bytes from dump()). scene_from_json checks
// structure, names against `config` and geometry (objects inside the canvas, relation indices)
// and throws recap::Error naming the field and the problem.
nlohmann::json to_json(const Scene& scene);
Scene scene_from_json(const nlohmann::json& json, const WorldConfig& config);

}  // namespace recap::world
