// Scores what a caption claims (Facts) against a scene's ground truth: the caption-quality
// numbers of DESIGN.md (group precision/recall, count, binding, relation accuracy) and whether
// the caption states anything false.
#pragma once
#include "world/facts.h"
#include "world/scene.h"
#include "world/vocab.h"

namespace recap::world {

struct CaptionScore {
  int groups_stated = 0;   // groups the caption mentions
  int groups_correct = 0;  // ... whose shape, and colour if stated, match a scene group
  int shapes_correct = 0;  // ... whose shape occurs in the scene at all
  int scene_groups = 0;
  int groups_recalled = 0;  // scene groups some correct caption group refers to
  int bindings_stated = 0, bindings_correct = 0;  // groups with a colour; colour on that shape
  int counts_stated = 0, counts_correct = 0;
  int relations_stated = 0, relations_correct = 0;  // correct: both groups match, relation holds
  int positions_stated = 0, positions_correct = 0;
  bool background_stated = false, background_correct = false;
  // Anything false: a group not in the scene (which includes a wrong colour binding), a wrong
  // count, relation, position or background.
  bool wrong_fact = false;

  bool mentions_correct_shape() const { return shapes_correct > 0; }
  bool correct_binding() const { return bindings_correct > 0; }
  bool correct_count() const { return counts_correct > 0; }
  bool correct_relation() const { return relations_correct > 0; }
  // Precision is 1 for a caption that claims nothing (it claims nothing false); recall is 0.
  double precision() const { return groups_stated ? double(groups_correct) / groups_stated : 1; }
  double recall() const { return scene_groups ? double(groups_recalled) / scene_groups : 1; }
};

// `margin_px`: the relation margin, in pixels, relation_holds() judges stated relations with;
// use relation_margin_px(config) for the world's own.
CaptionScore score_caption(const Facts& facts, const Scene& scene, double margin_px);
inline double relation_margin_px(const WorldConfig& config) {
  return config.relation_margin * config.canvas;
}

}  // namespace recap::world
