// Phrase building shared by the caption writers, the alt-text simulator and prompt suites, so
// that all of them speak the language CaptionParser reads (parser.h).
#pragma once
#include <string>
#include <vector>

#include "core/rng.h"
#include "world/scene.h"

namespace recap::world {

// How a group phrase states its count.
enum class CountStyle {
  Varied,    // "two", "2", "a pair of", "a group of three", "a single", "one", "a"
  Word,      // "two", "a"/"an" for one
  Implicit,  // no number: "a"/"an" for one, a bare plural otherwise ("red stars")
};

std::string number_word(int n);  // "one" ... "ten", digits beyond
// A noun for the shape; with `rng`, sometimes a synonym ("disc" for circle).
std::string shape_noun(const std::string& shape, bool plural, Rng* rng);
std::string with_article(const std::string& phrase);  // "a red star", "an orange star"
std::string capitalized(std::string s);
// "a, b and c"; "a and b"; "a".
std::string joined(const std::vector<std::string>& items);

// "two red stars", "a pair of red discs", "an orange heart", "red stars".
std::string group_phrase(const std::string& shape, const std::string& colour, int count,
                         CountStyle style, Rng& rng);
// A definite reference to a group already introduced: "the red stars", "the group of red
// stars"; carries no count.
std::string group_reference(const Group& g, Rng& rng);
// "is" or "are" for a noun phrase about `count` objects: "a pair of stars is", "the group of
// stars is", "two stars are".
std::string verb_be(const std::string& noun_phrase, int count);
// "in the top left", "at the bottom", "on the left side", "in the centre": names only the
// axes that are not central, so it always agrees with `truth`.
std::string position_phrase(const AbsPosition& truth, Rng& rng);
// "to the left of", "beneath", "higher than", ...
std::string relation_phrase(Relation r, Rng& rng);

}  // namespace recap::world
