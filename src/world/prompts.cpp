// Prompt suites. Prompts use canonical shape names and number words so that the text states
// exactly the target and nothing else.
#include "world/prompts.h"

#include <algorithm>
#include <cctype>

#include <fmt/format.h>

#include "core/error.h"
#include "world/phrases.h"
#include "core/rng.h"

namespace recap::world {
namespace {

struct Pick {
  std::string shape, colour;
};

// `k` groups with distinct (shape, colour); with `distinct_both`, no shape or colour repeats.
std::vector<Pick> pick_groups(const WorldConfig& cfg, int k, bool distinct_both, Rng& rng) {
  std::vector<Pick> out;
  while (static_cast<int>(out.size()) < k) {
    Pick p{rng.pick(cfg.shapes), rng.pick(cfg.colours).name};
    bool clash = false;
    for (const auto& o : out)
      clash = clash || (distinct_both ? o.shape == p.shape || o.colour == p.colour
                                      : o.shape == p.shape && o.colour == p.colour);
    if (!clash) out.push_back(p);
  }
  return out;
}

std::string phrase(const Pick& p, int count) {
  const std::string noun = p.colour + " " + shape_noun(p.shape, count > 1, nullptr);
  return count == 1 ? with_article(noun) : number_word(count) + " " + noun;
}

Prompt make_one(Suite suite, const WorldConfig& cfg, Rng& rng) {
  Prompt pr{std::string(suite_name(suite)), "", {}};
  switch (suite) {
    case Suite::Counting: {
      const Pick p = pick_groups(cfg, 1, false, rng)[0];
      const int count = rng.range(std::max(2, cfg.min_count), cfg.max_count);
      pr.text = phrase(p, count);
      pr.target.groups = {{p.shape, p.colour, count, std::nullopt}};
      break;
    }
    case Suite::Position: {
      const auto ps = pick_groups(cfg, 2, false, rng);
      const Relation r = static_cast<Relation>(rng.below(4));
      pr.text = phrase(ps[0], 1) + " " + relation_phrase(r, rng) + " " + phrase(ps[1], 1);
      pr.target.groups = {{ps[0].shape, ps[0].colour, 1, std::nullopt},
                          {ps[1].shape, ps[1].colour, 1, std::nullopt}};
      add_relation(pr.target, {0, 1, r});
      break;
    }
    case Suite::ColourBinding: {
      const auto ps = pick_groups(cfg, 2, true, rng);
      pr.text = phrase(ps[0], 1) + " and " + phrase(ps[1], 1);
      for (const auto& p : ps) pr.target.groups.push_back({p.shape, p.colour, 1, std::nullopt});
      break;
    }
    case Suite::MultiObject: {
      const int k = rng.range(std::max(2, cfg.min_groups), std::max(2, cfg.max_groups));
      std::vector<std::string> items;
      for (const auto& p : pick_groups(cfg, k, false, rng)) {
        const int count = rng.range(cfg.min_count, cfg.max_count);
        items.push_back(phrase(p, count));
        pr.target.groups.push_back({p.shape, p.colour, count, std::nullopt});
      }
      pr.text = joined(items);
      break;
    }
  }
  return pr;
}

}  // namespace

std::string_view suite_name(Suite s) {
  switch (s) {
    case Suite::Counting:
      return "counting";
    case Suite::Position:
      return "position";
    case Suite::ColourBinding:
      return "colour_binding";
    case Suite::MultiObject:
      return "multi_object";
  }
  return "?";
}

const std::vector<Suite>& all_suites() {
  static const std::vector<Suite> suites = {Suite::Counting, Suite::Position, Suite::ColourBinding,
                                            Suite::MultiObject};
  return suites;
}

void check_suite_name(std::string_view name) {
  const bool ok = !name.empty() && name.size() <= 64 &&
                  std::all_of(name.begin(), name.end(), [](char c) {
                    return std::isalnum(static_cast<unsigned char>(c)) || c == '_' || c == '-' ||
                           c == '.';
                  });
  if (!ok)
    throw Error(fmt::format("suite name '{}' must be 1 to 64 ASCII letters, digits, '_', '-' or "
                            "'.'",
                            name.substr(0, 80)));
}

std::vector<std::string> in_suite_order(std::set<std::string> names) {
  std::vector<std::string> out;
  for (Suite s : all_suites())
    if (names.erase(std::string(suite_name(s)))) out.emplace_back(suite_name(s));
  out.insert(out.end(), names.begin(), names.end());
  return out;
}

std::optional<Suite> suite_from_name(std::string_view name) {
  for (Suite s : all_suites())
    if (suite_name(s) == name) return s;
  return std::nullopt;
}

std::vector<Prompt> make_suite(Suite suite, const WorldConfig& config, int n, uint64_t seed) {
  config.validate();
  if (n < 0) throw Error("prompt suite " + std::string(suite_name(suite)) + ": n is negative");
  if (suite == Suite::Counting && config.max_count < 2)
    throw Error("prompt suite counting: needs max_count >= 2");
  if (suite == Suite::ColourBinding && (config.shapes.size() < 2 || config.colours.size() < 2))
    throw Error("prompt suite colour_binding: needs at least two shapes and two colours");
  if (suite == Suite::Position || suite == Suite::MultiObject) {
    if (config.groups_capacity() < 2)
      throw Error("prompt suite " + std::string(suite_name(suite)) +
                  ": needs at least two (shape, colour) pairs");
  }
  std::vector<Prompt> out;
  for (int i = 0; i < n; ++i) {
    Rng rng(derive_seed(seed, (static_cast<uint64_t>(suite) << 32) | static_cast<uint64_t>(i)));
    out.push_back(make_one(suite, config, rng));
  }
  return out;
}

nlohmann::json to_json(const Prompt& prompt) {
  return {{"suite", prompt.suite},
          {"text", prompt.text},
          {"target", to_json(prompt.target)}};
}

Prompt prompt_from_json(const nlohmann::json& j) {
  if (!j.is_object()) throw Error("prompt json: not an object");
  const auto suite = j.find("suite"), text = j.find("text"), target = j.find("target");
  if (suite == j.end() || !suite->is_string())
    throw Error("prompt json: 'suite' is missing or not a string");
  try {
    check_suite_name(suite->get<std::string>());
  } catch (const Error& e) {
    throw Error(std::string("prompt json: ") + e.what());
  }
  if (text == j.end() || !text->is_string())
    throw Error("prompt json: 'text' is missing or not a string");
  if (target == j.end()) throw Error("prompt json: 'target' is missing");
  return {suite->get<std::string>(), text->get<std::string>(), facts_from_json(*target)};
}

}  // namespace recap::world
