// Phrase tables. Every form here must parse back (tests/test_world_parser.cpp checks all
// writers against the parser over many seeds), so new forms go in both places.
#include "world/phrases.h"

#include <cassert>

#include "world/vocab.h"

namespace recap::world {
namespace {

template <class T>
const T& pick(Rng& rng, std::initializer_list<T> items) {
  return *(items.begin() + rng.below(items.size()));
}

}  // namespace

std::string number_word(int n) {
  static const char* words[] = {"zero", "one",   "two",   "three", "four", "five",
                                "six",  "seven", "eight", "nine",  "ten"};
  return n >= 0 && n <= 10 ? words[n] : std::to_string(n);
}

std::string shape_noun(const std::string& shape, bool plural, Rng* rng) {
  const ShapeWords& w = shape_words(shape);
  const auto& forms = plural ? w.plural : w.singular;
  // Canonical three times in four: synonyms should occur, not dominate.
  if (rng && forms.size() > 1 && rng->chance(0.25)) return forms[1 + rng->below(forms.size() - 1)];
  return forms[0];
}

std::string with_article(const std::string& phrase) {
  const bool vowel = !phrase.empty() && std::string("aeiou").find(phrase[0]) != std::string::npos;
  return (vowel ? "an " : "a ") + phrase;
}

std::string capitalized(std::string s) {
  if (!s.empty() && s[0] >= 'a' && s[0] <= 'z') s[0] = static_cast<char>(s[0] - 'a' + 'A');
  return s;
}

std::string joined(const std::vector<std::string>& items) {
  std::string out;
  for (size_t i = 0; i < items.size(); ++i) {
    if (i > 0) out += i + 1 == items.size() ? " and " : ", ";
    out += items[i];
  }
  return out;
}

std::string group_phrase(const std::string& shape, const std::string& colour, int count,
                         CountStyle style, Rng& rng) {
  assert(count >= 1);
  const std::string noun = colour + " " + shape_noun(shape, count > 1, &rng);
  if (count == 1) {
    if (style != CountStyle::Varied) return with_article(noun);
    switch (rng.below(4)) {
      case 0:
        return "one " + noun;
      case 1:
        return "a single " + noun;
      default:
        return with_article(noun);
    }
  }
  if (style == CountStyle::Implicit) return noun;
  if (style == CountStyle::Word) return number_word(count) + " " + noun;
  switch (rng.below(6)) {
    case 0:
      return std::to_string(count) + " " + noun;
    case 1:
      return count == 2 ? "a pair of " + noun : "a group of " + number_word(count) + " " + noun;
    case 2:
      return "a group of " + number_word(count) + " " + noun;
    default:
      return number_word(count) + " " + noun;
  }
}

std::string group_reference(const Group& g, Rng& rng) {
  const bool plural = g.count() > 1;
  const std::string noun = g.colour + " " + shape_noun(g.shape, plural, &rng);
  if (plural && rng.chance(0.3)) return "the group of " + noun;
  return "the " + noun;
}

std::string verb_be(const std::string& noun_phrase, int count) {
  const auto starts = [&](const char* prefix) { return noun_phrase.rfind(prefix, 0) == 0; };
  const bool singular = count == 1 || starts("a ") || starts("an ") || starts("the group of ");
  return singular ? "is" : "are";
}

std::string position_phrase(const AbsPosition& truth, Rng& rng) {
  assert(truth.h && truth.v);
  const std::string h = *truth.h == HPos::Left ? "left" : "right";
  const bool top = *truth.v == VPos::Top;
  const std::string v = top ? pick(rng, {"top", "upper"}) : pick(rng, {"bottom", "lower"});
  const bool hc = *truth.h == HPos::Center, vc = *truth.v == VPos::Middle;
  if (hc && vc)
    return pick(rng, {"in the centre", "in the middle", "at the center", "in the very middle"});
  if (hc) {
    const std::string edge = top ? "top" : "bottom";
    switch (rng.below(4)) {
      case 0:
        return "at the " + edge;
      case 1:
        return "near the " + edge + " edge";
      case 2:
        return "at the " + v + " centre";
      default:
        return "along the " + edge;
    }
  }
  if (vc) {
    switch (rng.below(4)) {
      case 0:
        return "on the " + h;
      case 1:
        return "on the " + h + " side";
      case 2:
        return "in the middle " + h;
      default:
        return "toward the " + h;
    }
  }
  switch (rng.below(4)) {
    case 0:
      return "in the " + v + " " + h;
    case 1:
      return "in the " + v + "-" + h + " corner";
    case 2:
      return "at the " + v + " " + h;
    default:
      return "near the " + v + " " + h + " corner";
  }
}

std::string relation_phrase(Relation r, Rng& rng) {
  switch (r) {
    case Relation::LeftOf:
      return pick(rng, {"to the left of", "left of", "on the left side of"});
    case Relation::RightOf:
      return pick(rng, {"to the right of", "right of", "on the right side of"});
    case Relation::Above:
      return pick(rng, {"above", "higher than"});
    case Relation::Below:
      return pick(rng, {"below", "beneath", "under", "lower than"});
  }
  return "";
}

}  // namespace recap::world
