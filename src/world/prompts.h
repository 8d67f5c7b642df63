// Compositional prompt suites with exact targets, the evaluation analogue of the paper's
// counting, positional and object-accuracy benchmarks.
#pragma once
#include <cstdint>
#include <nlohmann/json.hpp>
#include <optional>
#include <set>
#include <string>
#include <string_view>
#include <vector>

#include "world/facts.h"
#include "world/vocab.h"

namespace recap::world {

enum class Suite {
  Counting,       // "three green squares": one group, count 2..max_count
  Position,       // "a red circle to the left of a blue star": two single objects + relation
  ColourBinding,  // "a red star and a blue heart": distinct shapes and distinct colours
  MultiObject,    // "two red stars, a blue circle and four green squares": 2..max_groups groups
};
std::string_view suite_name(Suite s);  // "counting", "position", "colour_binding", "multi_object"
std::optional<Suite> suite_from_name(std::string_view name);
const std::vector<Suite>& all_suites();

// A suite is named by the world (suite_name) or by a user's prompt file ("my_suite"): 1 to 64
// ASCII letters, digits, '_', '-' or '.'. Throws recap::Error naming the problem otherwise.
void check_suite_name(std::string_view name);
// Suite names as reports list them: the world's in their order, then the others sorted.
std::vector<std::string> in_suite_order(std::set<std::string> names);

struct Prompt {
  std::string suite;  // a world suite's name, or a user's own
  std::string text;
  Facts target;  // exactly what CaptionParser reads from `text`
};

// `n` prompts of one suite, deterministic in (config, suite, n, seed). Throws recap::Error if
// `config` is invalid or too small for the suite (e.g. binding needs two shapes and colours).
std::vector<Prompt> make_suite(Suite suite, const WorldConfig& config, int n, uint64_t seed);

// {"suite","text","target":<facts json>}; prompt_from_json throws recap::Error on bad input
// (any suite name that check_suite_name accepts is fine).
nlohmann::json to_json(const Prompt& prompt);
Prompt prompt_from_json(const nlohmann::json& json);

}  // namespace recap::world
