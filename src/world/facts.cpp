// Facts helpers and JSON format (see facts.h).
#include "world/facts.h"

#include <algorithm>
#include <tuple>

#include "core/error.h"

namespace recap::world {
namespace {

using nlohmann::json;

[[noreturn]] void bad_facts(const std::string& where, const std::string& problem) {
  throw Error("facts json: " + where + " " + problem);
}

const json* optional_field(const json& obj, const char* key) {
  const auto it = obj.find(key);
  return it == obj.end() || it->is_null() ? nullptr : &*it;
}

std::string string_at(const json& v, const std::string& where) {
  if (!v.is_string()) bad_facts(where, "is not a string");
  return v.get<std::string>();
}

int int_at(const json& v, const std::string& where) {
  if (!v.is_number_integer()) bad_facts(where, "is not an integer");
  const auto i = v.get<int64_t>();
  if (i < 0 || i > 1'000'000) bad_facts(where, "is out of range");
  return static_cast<int>(i);
}

}  // namespace

std::string_view hpos_name(HPos h) {
  return h == HPos::Left ? "left" : h == HPos::Right ? "right" : "center";
}
std::string_view vpos_name(VPos v) {
  return v == VPos::Top ? "top" : v == VPos::Bottom ? "bottom" : "middle";
}

void add_relation(Facts& facts, GroupRelation r) {
  if (r.a == r.b) return;
  if (r.a > r.b) r = {r.b, r.a, inverse(r.relation)};
  const auto key = [](const GroupRelation& x) { return std::tuple(x.a, x.b, x.relation); };
  const auto it = std::lower_bound(facts.relations.begin(), facts.relations.end(), r,
                                   [&](const auto& x, const auto& y) { return key(x) < key(y); });
  if (it == facts.relations.end() || !(*it == r)) facts.relations.insert(it, r);
}

json to_json(const Facts& facts) {
  json groups = json::array();
  for (const auto& g : facts.groups) {
    json j = {{"shape", g.shape}};
    if (g.colour) j["colour"] = *g.colour;
    if (g.count) j["count"] = *g.count;
    if (g.position && g.position->h) j["h"] = hpos_name(*g.position->h);
    if (g.position && g.position->v) j["v"] = vpos_name(*g.position->v);
    groups.push_back(std::move(j));
  }
  json relations = json::array();
  for (const auto& r : facts.relations)
    relations.push_back({{"a", r.a}, {"b", r.b}, {"relation", relation_name(r.relation)}});
  json out = {{"groups", groups}, {"relations", relations}};
  if (facts.background) out["background"] = *facts.background;
  return out;
}

Facts facts_from_json(const json& j) {
  if (!j.is_object()) bad_facts("facts", "is not an object");
  Facts facts;
  const json* groups = optional_field(j, "groups");
  if (!groups || !groups->is_array()) bad_facts("facts.groups", "is missing or not an array");
  for (size_t i = 0; i < groups->size(); ++i) {
    const std::string where = "groups[" + std::to_string(i) + "]";
    const json& g = (*groups)[i];
    if (!g.is_object()) bad_facts(where, "is not an object");
    FactGroup fg;
    const json* shape = optional_field(g, "shape");
    if (!shape) bad_facts(where, "has no 'shape'");
    fg.shape = string_at(*shape, where + ".shape");
    if (const json* c = optional_field(g, "colour")) fg.colour = string_at(*c, where + ".colour");
    if (const json* c = optional_field(g, "count")) fg.count = int_at(*c, where + ".count");
    AbsPosition pos;
    if (const json* h = optional_field(g, "h")) {
      const std::string name = string_at(*h, where + ".h");
      for (HPos p : {HPos::Left, HPos::Center, HPos::Right})
        if (hpos_name(p) == name) pos.h = p;
      if (!pos.h) bad_facts(where + ".h", "'" + name + "' is not left/center/right");
    }
    if (const json* v = optional_field(g, "v")) {
      const std::string name = string_at(*v, where + ".v");
      for (VPos p : {VPos::Top, VPos::Middle, VPos::Bottom})
        if (vpos_name(p) == name) pos.v = p;
      if (!pos.v) bad_facts(where + ".v", "'" + name + "' is not top/middle/bottom");
    }
    if (pos.h || pos.v) fg.position = pos;
    facts.groups.push_back(std::move(fg));
  }
  const json* relations = optional_field(j, "relations");
  if (relations && !relations->is_array()) bad_facts("facts.relations", "is not an array");
  for (size_t i = 0; relations && i < relations->size(); ++i) {
    const std::string where = "relations[" + std::to_string(i) + "]";
    const json& r = (*relations)[i];
    if (!r.is_object()) bad_facts(where, "is not an object");
    const json* a = optional_field(r, "a");
    const json* b = optional_field(r, "b");
    const json* rel = optional_field(r, "relation");
    if (!a || !b || !rel) bad_facts(where, "needs 'a', 'b' and 'relation'");
    const int ai = int_at(*a, where + ".a"), bi = int_at(*b, where + ".b");
    if (ai >= int(facts.groups.size()) || bi >= int(facts.groups.size()) || ai == bi)
      bad_facts(where, "refers to groups that do not exist");
    const std::string name = string_at(*rel, where + ".relation");
    const auto relation = relation_from_name(name);
    if (!relation) bad_facts(where + ".relation", "'" + name + "' is not left_of/right_of/above/below");
    add_relation(facts, {ai, bi, *relation});
  }
  if (const json* bg = optional_field(j, "background"))
    facts.background = string_at(*bg, "facts.background");
  return facts;
}

}  // namespace recap::world
