// Draws random scenes of the embedded world from a seed.
#pragma once
#include <cstdint>

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

}  // namespace recap::world
