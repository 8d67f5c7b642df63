// What a caption (or a prompt) claims about a scene: groups with shape and optionally colour,
// count and absolute position, relations between those groups, and the background. Produced
// by the caption parser, used as the exact target of prompt suites.
#pragma once
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <vector>

#include "world/scene.h"

namespace recap::world {

struct FactGroup {
  std::string shape;
  std::optional<std::string> colour;
  std::optional<int> count;
  std::optional<AbsPosition> position;
  bool operator==(const FactGroup&) const = default;
};

struct Facts {
  std::vector<FactGroup> groups;
  // Indices into `groups`, canonical: a < b (a relation stated the other way is inverted),
  // sorted by (a, b, relation), no duplicates.
  std::vector<GroupRelation> relations;
  std::optional<std::string> background;
  bool operator==(const Facts&) const = default;
};

// Inserts `r` in canonical form (see Facts::relations); ignores a == b and duplicates.
void add_relation(Facts& facts, GroupRelation r);

// JSON: {"groups":[{"shape","colour"?,"count"?,"h"?,"v"?}],"relations":[{"a","b","relation"}],
// "background"?}. facts_from_json throws recap::Error naming the bad field.
nlohmann::json to_json(const Facts& facts);
Facts facts_from_json(const nlohmann::json& json);

std::string_view hpos_name(HPos h);  // "left", "center", "right"
std::string_view vpos_name(VPos v);  // "top", "middle", "bottom"

}  // namespace recap::world
