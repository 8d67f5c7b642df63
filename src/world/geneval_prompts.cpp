// GenEval metadata: JSON both ways, the world facts it asks for, and the world's own prompts.
#include "world/geneval_prompts.h"

#include <algorithm>
#include <set>

#include <fmt/format.h>

#include "core/error.h"
#include "core/rng.h"
#include "world/phrases.h"

namespace recap::world {
namespace {

constexpr Relation kGenevalRelations[] = {Relation::LeftOf, Relation::RightOf, Relation::Above,
                                          Relation::Below};

nlohmann::ordered_json geneval_clause_json(const GenevalClause& c) {
  nlohmann::ordered_json j;
  j["class"] = c.cls;
  j["count"] = c.count;
  if (c.color) j["color"] = *c.color;
  if (c.position)
    j["position"] = {geneval_relation_name(c.position->relation), c.position->target};
  return j;
}

// `where`: "include[1]" etc.; `earlier`: how many include clauses precede this one.
GenevalClause geneval_clause_from_json(const nlohmann::json& j, const std::string& where,
                                       std::optional<size_t> earlier) {
  if (!j.is_object()) throw Error(where + ": not an object");
  GenevalClause c;
  const auto cls = j.find("class"), count = j.find("count");
  if (cls == j.end() || !cls->is_string() || cls->get<std::string>().empty())
    throw Error(where + ": \"class\" is missing or not a non-empty string");
  c.cls = cls->get<std::string>();
  if (count == j.end() || !count->is_number_integer() || count->get<int64_t>() < 1 ||
      count->get<int64_t>() > 1000)
    throw Error(where + ": \"count\" is missing or not an integer in 1..1000");
  c.count = count->get<int>();
  if (const auto color = j.find("color"); color != j.end()) {
    if (!color->is_string()) throw Error(where + ": \"color\" is not a string");
    c.color = color->get<std::string>();
  }
  if (const auto pos = j.find("position"); pos != j.end()) {
    if (!earlier) throw Error(where + ": an exclude clause has no \"position\"");
    if (!pos->is_array() || pos->size() != 2 || !(*pos)[0].is_string() ||
        !(*pos)[1].is_number_integer())
      throw Error(where + ": \"position\" must be [RELATION, INDEX]");
    const std::string name = (*pos)[0].get<std::string>();
    const auto* r = std::find_if(std::begin(kGenevalRelations), std::end(kGenevalRelations),
                                 [&](Relation x) { return geneval_relation_name(x) == name; });
    if (r == std::end(kGenevalRelations))
      throw Error(fmt::format("{}: unknown relation \"{}\" (left of, right of, above, below)",
                              where, name));
    const int64_t target = (*pos)[1].get<int64_t>();
    if (target < 0 || static_cast<size_t>(target) >= *earlier)
      throw Error(fmt::format("{}: position index {} names no earlier include clause", where,
                              target));
    c.position = GenevalClause::Position{*r, static_cast<int>(target)};
  }
  return c;
}

std::vector<GenevalClause> geneval_clauses(const nlohmann::json& j, const char* key,
                                           bool include) {
  const auto it = j.find(key);
  if (it == j.end()) {
    if (include) throw Error("\"include\" is missing");
    return {};
  }
  if (!it->is_array()) throw Error(fmt::format("\"{}\" is not an array", key));
  std::vector<GenevalClause> out;
  for (size_t i = 0; i < it->size(); ++i)
    out.push_back(geneval_clause_from_json((*it)[i], fmt::format("{}[{}]", key, i),
                                           include ? std::optional<size_t>(i) : std::nullopt));
  return out;
}

// "a circle", "three red stars": the world's phrase for a clause's object(s).
std::string geneval_phrase(const std::string& shape, const std::optional<std::string>& colour,
                           int count) {
  std::string noun = shape_noun(shape, count > 1, nullptr);
  if (colour) noun = *colour + " " + noun;
  return count == 1 ? with_article(noun) : number_word(count) + " " + noun;
}

// Two distinct items of `items`.
template <class T>
std::pair<T, T> geneval_two(const std::vector<T>& items, Rng& rng) {
  const size_t a = rng.below(items.size());
  size_t b = rng.below(items.size() - 1);
  if (b >= a) ++b;
  return {items[a], items[b]};
}

GenevalPrompt geneval_task_prompt(const std::string& tag, const WorldConfig& cfg, Rng& rng) {
  GenevalPrompt p;
  p.tag = tag;
  std::vector<std::string> colours;
  for (const auto& c : cfg.colours) colours.push_back(c.name);
  if (tag == "two_object") {
    const auto [a, b] = geneval_two(cfg.shapes, rng);
    p.include = {{a, 1, {}, {}}, {b, 1, {}, {}}};
    p.prompt = geneval_phrase(a, {}, 1) + " and " + geneval_phrase(b, {}, 1);
  } else if (tag == "counting") {
    const std::string shape = rng.pick(cfg.shapes);
    const int count = rng.range(2, std::min(4, cfg.max_count));
    p.include = {{shape, count, {}, {}}};
    p.exclude = {{shape, count + 1, {}, {}}};
    p.prompt = geneval_phrase(shape, {}, count);
  } else if (tag == "colors") {
    const std::string shape = rng.pick(cfg.shapes), colour = rng.pick(colours);
    p.include = {{shape, 1, colour, {}}};
    p.prompt = geneval_phrase(shape, colour, 1);
  } else if (tag == "position") {
    // GenEval's order: the reference object first, the placed one second ("A left of B" is
    // include = [B, A with position ["left of", 0]]).
    const auto [a, b] = geneval_two(cfg.shapes, rng);
    const Relation r = kGenevalRelations[rng.below(4)];
    p.include = {{b, 1, {}, {}}, {a, 1, {}, GenevalClause::Position{r, 0}}};
    p.prompt =
        geneval_phrase(a, {}, 1) + " " + relation_phrase(r, rng) + " " + geneval_phrase(b, {}, 1);
  } else {  // color_attr
    const auto [a, b] = geneval_two(cfg.shapes, rng);
    const auto [ca, cb] = geneval_two(colours, rng);
    p.include = {{a, 1, ca, {}}, {b, 1, cb, {}}};
    p.prompt = geneval_phrase(a, ca, 1) + " and " + geneval_phrase(b, cb, 1);
  }
  return p;
}

}  // namespace

const std::vector<std::string>& geneval_tags() {
  static const std::vector<std::string> tags = {"single_object", "two_object", "counting",
                                                "colors",        "position",   "color_attr"};
  return tags;
}

std::string_view geneval_relation_name(Relation r) {
  switch (r) {
    case Relation::LeftOf: return "left of";
    case Relation::RightOf: return "right of";
    case Relation::Above: return "above";
    case Relation::Below: return "below";
  }
  return "?";
}

nlohmann::ordered_json to_json(const GenevalPrompt& prompt) {
  nlohmann::ordered_json j;
  j["tag"] = prompt.tag;
  j["include"] = nlohmann::ordered_json::array();
  for (const auto& c : prompt.include) j["include"].push_back(geneval_clause_json(c));
  if (!prompt.exclude.empty()) {
    j["exclude"] = nlohmann::ordered_json::array();
    for (const auto& c : prompt.exclude) j["exclude"].push_back(geneval_clause_json(c));
  }
  j["prompt"] = prompt.prompt;
  return j;
}

bool looks_like_geneval(const nlohmann::json& json) {
  return json.is_object() && json.contains("tag") && json.contains("include");
}

GenevalPrompt geneval_from_json(const nlohmann::json& j) {
  if (!j.is_object()) throw Error("GenEval metadata: not an object");
  try {
    GenevalPrompt p;
    const auto tag = j.find("tag"), prompt = j.find("prompt");
    if (tag == j.end() || !tag->is_string()) throw Error("\"tag\" is missing or not a string");
    if (prompt == j.end() || !prompt->is_string())
      throw Error("\"prompt\" is missing or not a string");
    p.tag = tag->get<std::string>();
    p.prompt = prompt->get<std::string>();
    p.include = geneval_clauses(j, "include", true);
    p.exclude = geneval_clauses(j, "exclude", false);
    return p;
  } catch (const Error& e) {
    throw Error(std::string("GenEval metadata: ") + e.what());
  }
}

Facts geneval_target(const GenevalPrompt& prompt) {
  Facts facts;
  for (const auto& c : prompt.include) facts.groups.push_back({c.cls, c.color, c.count, {}});
  for (size_t i = 0; i < prompt.include.size(); ++i)
    if (const auto& pos = prompt.include[i].position)
      add_relation(facts, {static_cast<int>(i), pos->target, pos->relation});
  return facts;
}

void check_geneval_in_world(const GenevalPrompt& prompt, const WorldConfig& config) {
  for (const auto* clauses : {&prompt.include, &prompt.exclude})
    for (const auto& c : *clauses) {
      if (!config.has_shape(c.cls))
        throw Error(fmt::format("GenEval class \"{}\" is not a shape of this world, whose "
                                "detector judges only its own shapes",
                                c.cls));
      if (c.color && !config.has_colour(*c.color))
        throw Error(fmt::format("GenEval color \"{}\" is not a colour of this world", *c.color));
    }
}

std::string geneval_request_key(const GenevalPrompt& prompt) {
  auto j = to_json(prompt);
  j.erase("prompt");
  return j.dump();
}

std::vector<GenevalPrompt> make_geneval_prompts(const WorldConfig& config, int n, uint64_t seed) {
  config.validate();
  if (n < 0) throw Error("GenEval prompts: n is negative");
  if (config.shapes.size() < 2 || config.colours.size() < 2 || config.max_count < 2)
    throw Error("GenEval prompts: need at least two shapes, two colours and max_count >= 2");
  std::vector<GenevalPrompt> all;
  Rng order(derive_seed(seed, 0));
  std::vector<std::string> shapes = config.shapes;
  order.shuffle(shapes);
  for (const auto& shape : shapes)
    all.push_back({"single_object", {{shape, 1, {}, {}}}, {}, geneval_phrase(shape, {}, 1)});
  for (size_t t = 1; t < geneval_tags().size(); ++t)
    for (int i = 0; i < n; ++i) {
      Rng rng(derive_seed(seed, (static_cast<uint64_t>(t) << 32) | static_cast<uint64_t>(i)));
      all.push_back(geneval_task_prompt(geneval_tags()[t], config, rng));
    }
  std::vector<GenevalPrompt> out;
  std::set<std::string> seen;
  for (auto& p : all)
    if (seen.insert(geneval_request_key(p)).second) out.push_back(std::move(p));
  return out;
}

}  // namespace recap::world
