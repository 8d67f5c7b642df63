// Human caption writers. Variety comes from independent choices: list or per-group sentences,
// several intros, count styles, synonyms, position and relation wordings, the direction in
// which each relation is told, and where the background is mentioned.
#include "world/captions.h"

#include <algorithm>
#include <numeric>

#include "world/phrases.h"

namespace recap::world {
namespace {

std::vector<int> shuffled_indices(size_t n, Rng& rng) {
  std::vector<int> order(n);
  std::iota(order.begin(), order.end(), 0);
  rng.shuffle(order);
  return order;
}

std::string background_sentence(const std::string& bg, Rng& rng) {
  switch (rng.below(5)) {
    case 0:
      return "The background is " + bg + ".";
    case 1:
      return "The backdrop is a plain " + bg + ".";
    case 2:
      return "Everything is set against " + with_article(bg) + " background.";
    case 3:
      return "All of this sits on " + with_article(bg) + " background.";
    default:
      return "The whole scene has " + with_article(bg) + " backdrop.";
  }
}

// One sentence introducing all groups as a list; positions follow their group in its clause.
std::string list_sentence(const std::vector<std::string>& items, int first_count,
                          const std::string& bg, bool with_bg, Rng& rng) {
  const std::string list = joined(items);
  const std::string be = items.size() > 1 ? "are" : verb_be(items[0], first_count);
  if (with_bg) {
    switch (rng.below(3)) {
      case 0:
        return "On " + with_article(bg) + " background there " + be + " " + list + ".";
      case 1:
        return "This image shows " + list + " on " + with_article(bg) + " background.";
      default:
        return capitalized(list) + ", all on a plain " + bg + " backdrop.";
    }
  }
  switch (rng.below(5)) {
    case 0:
      return "There " + be + " " + list + ".";
    case 1:
      return "This image shows " + list + ".";
    case 2:
      return "The picture contains " + list + ".";
    case 3:
      return "We can see " + list + ".";
    default:
      return "A simple drawing of " + list + ".";
  }
}

std::string group_sentence(const std::string& phrase, int count, const std::string& pos, Rng& rng) {
  const std::string be = verb_be(phrase, count);
  if (pos.empty()) {
    return rng.chance(0.5) ? "There " + be + " " + phrase + "."
                           : "You can also see " + phrase + ".";
  }
  switch (rng.below(4)) {
    case 0:
      return capitalized(phrase) + " " + be + " placed " + pos + ".";
    case 1:
      return capitalized(pos) + " there " + be + " " + phrase + ".";
    case 2:
      return capitalized(phrase) + " can be seen " + pos + ".";
    default:
      return "There " + be + " " + phrase + " " + pos + ".";
  }
}

std::string relation_sentence(const Group& a, Relation r, const Group& b, Rng& rng) {
  const std::string subject = group_reference(a, rng);
  const std::string rel = relation_phrase(r, rng), object = group_reference(b, rng);
  const std::string be = verb_be(subject, a.count());
  const bool one = be == "is";
  switch (rng.below(4)) {
    case 0:
      return capitalized(subject) + " " + be + " " + rel + " " + object + ".";
    case 1:
      return capitalized(subject) + (one ? " sits " : " sit ") + rel + " " + object + ".";
    case 2:
      return capitalized(subject) + " can be found " + rel + " " + object + ".";
    default:
      return capitalized(subject) + (one ? " appears " : " appear ") + rel + " " + object + ".";
  }
}

}  // namespace

std::string human_long_caption(const Scene& scene, Rng& rng) {
  const std::vector<int> order = shuffled_indices(scene.groups.size(), rng);
  const bool lone = scene.groups.size() == 1;
  std::vector<std::string> phrases, positions;
  for (int i : order) {
    const Group& g = scene.groups[i];
    phrases.push_back(group_phrase(g.shape, g.colour, g.count(), CountStyle::Varied, rng));
    const bool say_where = lone || rng.chance(0.5);
    positions.push_back(
        say_where ? position_phrase(absolute_position(g.centroid(), scene.width, scene.height), rng)
                  : "");
  }
  std::vector<std::string> sentences;
  const bool bg_first = rng.chance(0.4);
  if (rng.chance(0.5)) {
    std::vector<std::string> items;
    for (size_t k = 0; k < phrases.size(); ++k)
      items.push_back(positions[k].empty() ? phrases[k] : phrases[k] + " " + positions[k]);
    sentences.push_back(
        list_sentence(items, scene.groups[order[0]].count(), scene.background, bg_first, rng));
  } else {
    if (bg_first) sentences.push_back(background_sentence(scene.background, rng));
    for (size_t k = 0; k < phrases.size(); ++k)
      sentences.push_back(
          group_sentence(phrases[k], scene.groups[order[k]].count(), positions[k], rng));
  }
  std::vector<GroupRelation> relations = scene.relations;
  rng.shuffle(relations);
  for (const auto& r : relations) {
    const bool flip = rng.chance(0.5);  // "A left of B" or "B right of A"
    const Group& a = scene.groups[flip ? r.b : r.a];
    const Group& b = scene.groups[flip ? r.a : r.b];
    sentences.push_back(relation_sentence(a, flip ? inverse(r.relation) : r.relation, b, rng));
  }
  if (!bg_first) sentences.push_back(background_sentence(scene.background, rng));
  std::string out;
  for (const auto& s : sentences) out += (out.empty() ? "" : " ") + s;
  return out;
}

std::string human_short_caption(const Scene& scene, Rng& rng) {
  std::vector<int> order = shuffled_indices(scene.groups.size(), rng);
  if (order.size() >= 3 && rng.chance(0.3)) {
    // Drop the least salient group, as a hurried annotator would.
    order.erase(std::min_element(order.begin(), order.end(), [&](int x, int y) {
      return scene.groups[x].area() < scene.groups[y].area();
    }));
  }
  const CountStyle style = rng.chance(0.5) ? CountStyle::Word : CountStyle::Implicit;
  std::vector<std::string> items;
  for (int i : order) {
    const Group& g = scene.groups[i];
    items.push_back(group_phrase(g.shape, g.colour, g.count(), style, rng));
  }
  const std::string list = joined(items);
  switch (rng.below(4)) {
    case 0:
      return capitalized(list) + ".";
    case 1:
      return capitalized(list) + " on " + with_article(scene.background) + " background.";
    case 2:
      return "A picture of " + list + ".";
    default:
      return capitalized(list);
  }
}

}  // namespace recap::world
