// GenEval's prompt metadata (Ghosh et al., 2023; github.com/djghosh13/geneval,
// prompts/evaluation_metadata.jsonl) in the embedded world: one line per prompt,
// {"tag", "include": [clause...], "exclude"?: [clause...], "prompt"}, a clause being {"class",
// "count", "color"?, "position"?: ["left of" | "right of" | "above" | "below", INDEX]} where
// INDEX names an earlier include clause (the object the clause's object stands in that
// relation to). The world writes its own GenEval file with the six tasks restricted to its
// shapes (the classes) and colours, so that GenEval-layout tooling runs on our samples and a
// GenEval-layout folder of world images can be judged by our detector. Torch-free.
#pragma once
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json.hpp>

#include "world/facts.h"
#include "world/scene.h"
#include "world/vocab.h"

namespace recap::world {

struct GenevalClause {
  std::string cls;  // GenEval's "class": a shape name in this world
  int count = 1;
  std::optional<std::string> color;
  struct Position {
    Relation relation = Relation::LeftOf;
    int target = 0;  // index of an earlier include clause
    bool operator==(const Position&) const = default;
  };
  std::optional<Position> position;
  bool operator==(const GenevalClause&) const = default;
};

struct GenevalPrompt {
  std::string tag;  // one of geneval_tags(), or a tag of someone else's file
  std::vector<GenevalClause> include, exclude;
  std::string prompt;
  bool operator==(const GenevalPrompt&) const = default;
};

// GenEval's six tasks in its own order: single_object, two_object, counting, colors,
// position, color_attr.
const std::vector<std::string>& geneval_tags();

// "left of", "right of", "above", "below": GenEval's names of the world's relations.
std::string_view geneval_relation_name(Relation r);

// GenEval's key order (tag, include, exclude when present, prompt; class, count, color,
// position), so a line reads like one of GenEval's own files.
nlohmann::ordered_json to_json(const GenevalPrompt& prompt);
// Reads one metadata object. Unknown keys are ignored (GenEval's evaluator ignores them too).
// Throws recap::Error naming the field for a missing or mistyped field, a count below 1, an
// unknown relation or a position that names no earlier include clause.
GenevalPrompt geneval_from_json(const nlohmann::json& json);
// True when `json` is shaped like GenEval metadata (an object with "tag" and "include"), which
// is how a prompts file tells its GenEval lines from world suite lines.
bool looks_like_geneval(const nlohmann::json& json);

// What the prompt asks for as world facts, for the world's own metrics: one group per include
// clause (shape = class, colour = color, count = count) and a relation per position clause.
// Exclude clauses have no facts counterpart (the stated count already says "exactly").
Facts geneval_target(const GenevalPrompt& prompt);
// Throws recap::Error naming the class or colour `config` cannot draw (and so its detector
// cannot judge): a COCO-class GenEval file, or a colour such as "pink" outside the world.
void check_geneval_in_world(const GenevalPrompt& prompt, const WorldConfig& config);

// The world's GenEval prompts, following GenEval's create_prompts.py: single_object names
// every shape once (GenEval names every class once), and two_object, counting (2 to
// min(4, max_count) of one shape, with GenEval's exclude clause count + 1: exactly that many),
// colors, position and color_attr (two shapes and two colours, all distinct) `n` each;
// repeats of earlier metadata are dropped, as GenEval drops them. The text is in the world's
// own phrasing ("three circles", "a red star to the left of a blue heart"), which its models
// were trained to read; GenEval's "a photo of" would be a phrase no world caption uses.
// Deterministic in (config, n, seed). Throws recap::Error when `config` is invalid or has
// fewer than two shapes or colours, or max_count < 2.
std::vector<GenevalPrompt> make_geneval_prompts(const WorldConfig& config, int n, uint64_t seed);

// The metadata without its prompt text, as one string: two prompts ask for the same thing when
// these are equal (what de-duplication and dev/test disjointness compare).
std::string geneval_request_key(const GenevalPrompt& prompt);

}  // namespace recap::world
