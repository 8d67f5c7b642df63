// Simulated web alt-text: the failure modes the RECAP paper names for LAION-style captions,
// each drawn with the probability configured in WorldConfig::alt_rates.
#pragma once
#include <string>
#include <string_view>

#include "core/rng.h"
#include "world/scene.h"
#include "world/vocab.h"

namespace recap::world {

enum class AltMode {
  ContextOnly,      // "Stock vector illustration | Shutterstock": nothing visual
  SalientOnly,      // the largest group only, usually without count: "red stars pattern"
  Keywords,         // "art, red, star, vector, blue": colours not bound to shapes
  WrongAttributes,  // descriptive, but one group has a wrong colour or count
  Filename,         // "IMG_2041.jpg"
  Empty,            // ""
  Partial,          // the remainder: some groups with colours, no counts or positions
};
inline constexpr int kAltModes = 7;
std::string_view alt_mode_name(AltMode mode);  // "context_only", ...

struct AltText {
  std::string text;
  AltMode mode;
};

AltText alt_text(const Scene& scene, const WorldConfig& config, Rng& rng);

}  // namespace recap::world
