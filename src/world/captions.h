// Human-style caption writers: what a careful annotator would write. The long caption is the
// paper's "detailed human caption" (used to fine-tune the captioner and as evaluation
// prompts); the short one is the brief description used for short/long mixing.
#pragma once
#include <string>

#include "core/rng.h"
#include "world/scene.h"

namespace recap::world {

// Every group with its count, colour and shape, every layout relation of the scene, absolute
// positions for some groups (always for a lone group) and the background, in varied wording.
// CaptionParser recovers all of these exactly.
std::string human_long_caption(const Scene& scene, Rng& rng);

// The main content (colour and shape of each group, sometimes counts), no positions; the
// smallest of three or more groups is sometimes left out.
std::string human_short_caption(const Scene& scene, Rng& rng);

}  // namespace recap::world
