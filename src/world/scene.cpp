// Scene geometry helpers, relation semantics and the scene JSON format:
// {"width","height","background","groups":[{"shape","colour","objects":[{"x","y","size",
// "rotation"}]}],"relations":[{"a","b","relation"}]}.
#include "world/scene.h"

#include <array>
#include <numbers>

#include "core/error.h"

namespace recap::world {
namespace {

using nlohmann::json;

constexpr std::array<Relation, 4> kRelations = {Relation::LeftOf, Relation::RightOf,
                                                Relation::Above, Relation::Below};

[[noreturn]] void bad_scene(const std::string& where, const std::string& problem) {
  throw Error("scene json: " + where + " " + problem);
}

const json& field(const json& obj, const char* key, const std::string& where) {
  if (!obj.is_object()) bad_scene(where, "is not an object");
  const auto it = obj.find(key);
  if (it == obj.end()) bad_scene(where, std::string("has no '") + key + "'");
  return *it;
}

double number(const json& obj, const char* key, const std::string& where) {
  const json& v = field(obj, key, where);
  if (!v.is_number()) bad_scene(where + "." + key, "is not a number");
  return v.get<double>();
}

int integer(const json& obj, const char* key, const std::string& where) {
  const json& v = field(obj, key, where);
  if (!v.is_number_integer()) bad_scene(where + "." + key, "is not an integer");
  const auto i = v.get<int64_t>();
  if (i < INT32_MIN || i > INT32_MAX) bad_scene(where + "." + key, "is out of range");
  return static_cast<int>(i);
}

std::string text(const json& obj, const char* key, const std::string& where) {
  const json& v = field(obj, key, where);
  if (!v.is_string()) bad_scene(where + "." + key, "is not a string");
  return v.get<std::string>();
}

const json& array(const json& obj, const char* key, const std::string& where) {
  const json& v = field(obj, key, where);
  if (!v.is_array()) bad_scene(where + "." + key, "is not an array");
  return v;
}

}  // namespace

Point Group::centroid() const {
  Point c;
  for (const auto& o : objects) {
    c.x += o.x;
    c.y += o.y;
  }
  if (!objects.empty()) {
    c.x /= objects.size();
    c.y /= objects.size();
  }
  return c;
}

double Group::area() const {
  double a = 0;
  for (const auto& o : objects) a += std::numbers::pi * o.size * o.size / 4;
  return a;
}

std::string_view relation_name(Relation r) {
  switch (r) {
    case Relation::LeftOf:
      return "left_of";
    case Relation::RightOf:
      return "right_of";
    case Relation::Above:
      return "above";
    case Relation::Below:
      return "below";
  }
  return "?";
}

std::optional<Relation> relation_from_name(std::string_view name) {
  for (Relation r : kRelations)
    if (relation_name(r) == name) return r;
  return std::nullopt;
}

Relation inverse(Relation r) {
  switch (r) {
    case Relation::LeftOf:
      return Relation::RightOf;
    case Relation::RightOf:
      return Relation::LeftOf;
    case Relation::Above:
      return Relation::Below;
    case Relation::Below:
      return Relation::Above;
  }
  return r;
}

bool relation_holds(Point a, Point b, Relation r, double margin) {
  switch (r) {
    case Relation::LeftOf:
      return b.x - a.x > margin;
    case Relation::RightOf:
      return a.x - b.x > margin;
    case Relation::Above:
      return b.y - a.y > margin;  // y grows downwards
    case Relation::Below:
      return a.y - b.y > margin;
  }
  return false;
}

std::vector<Relation> relation_between(Point a, Point b, double margin) {
  std::vector<Relation> out;
  for (Relation r : kRelations)
    if (relation_holds(a, b, r, margin)) out.push_back(r);
  return out;
}

AbsPosition absolute_position(Point p, int width, int height) {
  AbsPosition pos;
  pos.h = 3 * p.x < width ? HPos::Left : 3 * p.x > 2.0 * width ? HPos::Right : HPos::Center;
  pos.v = 3 * p.y < height ? VPos::Top : 3 * p.y > 2.0 * height ? VPos::Bottom : VPos::Middle;
  return pos;
}

bool position_agrees(const AbsPosition& stated, const AbsPosition& truth) {
  return (!stated.h || stated.h == truth.h) && (!stated.v || stated.v == truth.v);
}

json to_json(const Scene& scene) {
  json groups = json::array();
  for (const auto& g : scene.groups) {
    json objects = json::array();
    for (const auto& o : g.objects)
      objects.push_back({{"x", o.x}, {"y", o.y}, {"size", o.size}, {"rotation", o.rotation}});
    groups.push_back({{"shape", g.shape}, {"colour", g.colour}, {"objects", objects}});
  }
  json relations = json::array();
  for (const auto& r : scene.relations)
    relations.push_back({{"a", r.a}, {"b", r.b}, {"relation", relation_name(r.relation)}});
  return {{"width", scene.width},
          {"height", scene.height},
          {"background", scene.background},
          {"groups", groups},
          {"relations", relations}};
}

Scene scene_from_json(const json& j, const WorldConfig& config) {
  Scene s;
  s.width = integer(j, "width", "scene");
  s.height = integer(j, "height", "scene");
  if (s.width < 1 || s.height < 1 || s.width > 8192 || s.height > 8192)
    bad_scene("scene", "has a canvas size outside 1..8192 px");
  s.background = text(j, "background", "scene");
  if (!config.has_background(s.background))
    bad_scene("scene.background", "'" + s.background + "' is not a configured background");
  const json& groups = array(j, "groups", "scene");
  for (size_t i = 0; i < groups.size(); ++i) {
    const std::string where = "groups[" + std::to_string(i) + "]";
    Group g;
    g.shape = text(groups[i], "shape", where);
    if (!config.has_shape(g.shape))
      bad_scene(where + ".shape", "'" + g.shape + "' is not a configured shape");
    g.colour = text(groups[i], "colour", where);
    if (!config.has_colour(g.colour))
      bad_scene(where + ".colour", "'" + g.colour + "' is not a configured colour");
    const json& objects = array(groups[i], "objects", where);
    if (objects.empty()) bad_scene(where + ".objects", "is empty (a group has at least one object)");
    for (size_t k = 0; k < objects.size(); ++k) {
      const std::string at = where + ".objects[" + std::to_string(k) + "]";
      Object o{number(objects[k], "x", at), number(objects[k], "y", at),
               number(objects[k], "size", at), number(objects[k], "rotation", at)};
      const double r = o.size / 2;
      if (!(o.size > 0)) bad_scene(at + ".size", "is not positive");
      if (!(o.x - r >= 0 && o.y - r >= 0 && o.x + r <= s.width && o.y + r <= s.height))
        bad_scene(at, "does not lie inside the canvas");
      g.objects.push_back(o);
    }
    for (const auto& other : s.groups)
      if (other.shape == g.shape && other.colour == g.colour)
        bad_scene(where,
            "repeats " + g.colour + " " + g.shape + " (groups must differ in shape or colour)");
    s.groups.push_back(std::move(g));
  }
  const json& relations = array(j, "relations", "scene");
  for (size_t i = 0; i < relations.size(); ++i) {
    const std::string where = "relations[" + std::to_string(i) + "]";
    GroupRelation r{integer(relations[i], "a", where), integer(relations[i], "b", where)};
    const int n = static_cast<int>(s.groups.size());
    if (r.a < 0 || r.a >= n || r.b < 0 || r.b >= n || r.a == r.b)
      bad_scene(where, "refers to groups that do not exist");
    const std::string name = text(relations[i], "relation", where);
    const auto relation = relation_from_name(name);
    if (!relation) bad_scene(where + ".relation", "'" + name + "' is not left_of/right_of/above/below");
    r.relation = *relation;
    s.relations.push_back(r);
  }
  return s;
}

}  // namespace recap::world
