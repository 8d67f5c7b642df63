// Draws random scenes of the embedded world from a seed.
#pragma once
#include <cstdint>

#include "world/facts.h"
#include "world/scene.h"
#include "world/vocab.h"

namespace recap::world {

// A scene with min..max groups of distinct (shape, colour), min..max objects per group, all
// objects fully inside the canvas and with at least 1/2 px between enclosing circles. Groups
// occupy disjoint regions of a recursive split of the canvas, so every pair of groups is
// separated along one axis and that relation is recorded (and holds by relation_holds with
// the configured margin). Coordinates are multiples of 1/4 px and rotations whole degrees, so
// the scene and its JSON are identical on every machine. Throws recap::Error when the config
// is invalid or its objects cannot fit on the canvas.
Scene sample_scene(const WorldConfig& config, uint64_t seed);

// A scene that is exactly `target`, laid out as sample_scene lays out its scenes: one group per
// target group with its shape, its colour and count when stated (drawn otherwise, so that no two
// groups share shape and colour), nothing else on the canvas, every stated relation guaranteed
// by the layout's split and every stated absolute position holding. What the evaluation renders
// as the perfect image of a prompt whose target is not one of the corpus's scenes (GenEval's
// ceiling, stages/evaluate.h). Deterministic in (config, target, seed). Throws recap::Error for
// an invalid config, an empty target, a shape, colour or background the world lacks, a count
// below 1, two groups stating the same shape and colour, or a target no layout satisfies.
Scene scene_for_target(const WorldConfig& config, const Facts& target, uint64_t seed);

}  // namespace recap::world
