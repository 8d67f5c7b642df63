// Rasterises world scenes with Cairo (anti-aliased vector shapes).
#pragma once
#include <cstdint>
#include <vector>

#include "data/image.h"
#include "world/scene.h"
#include "world/vocab.h"

namespace recap::world {

// An RGB image (3 channels). Each object is a filled path at its centre, size and rotation, in its
// group's colour from `config`, over the background colour. Deterministic for a given Cairo/pixman
// build. Throws recap::Error for names `config` does not define.
data::Image render(const Scene& scene, const WorldConfig& config);

}  // namespace recap::world
