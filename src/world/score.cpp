// Caption scoring: each caption group is matched to at most one scene group (same shape, same
// colour when stated, preferring an unused group and then one with the stated count), and
// every stated attribute is checked against its match.
#include "world/score.h"

#include <vector>

namespace recap::world {
namespace {

std::vector<int> match_groups(const Facts& facts, const Scene& scene) {
  std::vector<int> match(facts.groups.size(), -1);
  std::vector<bool> used(scene.groups.size(), false);
  for (size_t f = 0; f < facts.groups.size(); ++f) {
    const FactGroup& fg = facts.groups[f];
    int best = -1, best_rank = -1;
    for (size_t s = 0; s < scene.groups.size(); ++s) {
      const Group& g = scene.groups[s];
      if (g.shape != fg.shape || (fg.colour && *fg.colour != g.colour)) continue;
      const int rank = 2 * !used[s] + (fg.count == g.count());
      if (rank > best_rank) best = static_cast<int>(s), best_rank = rank;
    }
    match[f] = best;
    if (best >= 0) used[best] = true;
  }
  return match;
}

}  // namespace

CaptionScore score_caption(const Facts& facts, const Scene& scene, double margin_px) {
  CaptionScore sc;
  const std::vector<int> match = match_groups(facts, scene);
  std::vector<bool> recalled(scene.groups.size(), false);
  sc.scene_groups = static_cast<int>(scene.groups.size());
  sc.groups_stated = static_cast<int>(facts.groups.size());
  for (size_t f = 0; f < facts.groups.size(); ++f) {
    const FactGroup& fg = facts.groups[f];
    for (const auto& g : scene.groups)
      if (g.shape == fg.shape) {
        ++sc.shapes_correct;
        break;
      }
    const Group* g = match[f] >= 0 ? &scene.groups[match[f]] : nullptr;
    if (g) {
      ++sc.groups_correct;
      recalled[match[f]] = true;
    } else {
      sc.wrong_fact = true;
    }
    if (fg.colour) {
      ++sc.bindings_stated;
      sc.bindings_correct += g != nullptr;
    }
    if (fg.count) {
      ++sc.counts_stated;
      const bool ok = g && g->count() == *fg.count;
      sc.counts_correct += ok;
      sc.wrong_fact |= !ok;
    }
    if (fg.position) {
      ++sc.positions_stated;
      const bool ok =
          g && position_agrees(*fg.position,
                               absolute_position(g->centroid(), scene.width, scene.height));
      sc.positions_correct += ok;
      sc.wrong_fact |= !ok;
    }
  }
  for (bool r : recalled) sc.groups_recalled += r;
  for (const auto& r : facts.relations) {
    ++sc.relations_stated;
    const int a = match[r.a], b = match[r.b];
    const bool ok = a >= 0 && b >= 0 && a != b &&
                    relation_holds(scene.groups[a].centroid(), scene.groups[b].centroid(),
                                   r.relation, margin_px);
    sc.relations_correct += ok;
    sc.wrong_fact |= !ok;
  }
  if (facts.background) {
    sc.background_stated = true;
    sc.background_correct = *facts.background == scene.background;
    sc.wrong_fact |= !sc.background_correct;
  }
  return sc;
}

}  // namespace recap::world
