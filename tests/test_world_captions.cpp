// Embedded world: caption writers against the parser (exact recovery of human long captions),
// short captions, and the alt-text simulator's failure-mode rates and quality.
#include <gtest/gtest.h>

#include <algorithm>
#include <array>
#include <set>

#include "world/alt_text.h"
#include "world/captions.h"
#include "world/parser.h"
#include "world/sampler.h"
#include "world/score.h"

namespace recap::world {
namespace {

// Index of the scene group a fact group names by shape and colour, or -1.
int scene_group(const Scene& s, const FactGroup& f) {
  for (size_t i = 0; i < s.groups.size(); ++i)
    if (s.groups[i].shape == f.shape && f.colour && s.groups[i].colour == *f.colour) return int(i);
  return -1;
}

// Parses the long captions of `seeds` scenes and requires exactly the scene's groups (shape,
// colour, count), relations and background, and only true positions. Returns how many
// positions were stated.
int expect_long_captions_exact(const WorldConfig& cfg, uint64_t seeds) {
  const CaptionParser parser(cfg);
  int positions = 0;
  for (uint64_t seed = 0; seed < seeds; ++seed) {
    const Scene s = sample_scene(cfg, seed);
    Rng rng(derive_seed(seed, 1));
    const std::string text = human_long_caption(s, rng);
    const Facts f = parser.parse(text);
    SCOPED_TRACE("seed " + std::to_string(seed) + ": " + text);
    EXPECT_EQ(f.groups.size(), s.groups.size());
    std::vector<int> map;
    for (const auto& fg : f.groups) {
      const int g = scene_group(s, fg);
      EXPECT_GE(g, 0) << fg.shape;
      if (g < 0) return positions;
      EXPECT_EQ(std::count(map.begin(), map.end(), g), 0);
      map.push_back(g);
      EXPECT_EQ(fg.count, s.groups[g].count());
      if (fg.position) {
        ++positions;
        EXPECT_TRUE(position_agrees(*fg.position,
                                    absolute_position(s.groups[g].centroid(), s.width, s.height)));
      }
    }
    if (s.groups.size() == 1) {
      EXPECT_TRUE(f.groups.at(0).position.has_value());
    }
    Facts mapped;  // the parsed relations in scene group indices
    for (const auto& r : f.relations) add_relation(mapped, {map[r.a], map[r.b], r.relation});
    EXPECT_EQ(mapped.relations, s.relations);
    EXPECT_EQ(f.background, s.background);
    const CaptionScore sc = score_caption(f, s, relation_margin_px(cfg));
    EXPECT_FALSE(sc.wrong_fact);
    EXPECT_EQ(sc.precision(), 1.0);
    EXPECT_EQ(sc.recall(), 1.0);
    if (::testing::Test::HasFailure()) return positions;  // one readable failure, not 10,000
  }
  return positions;
}

TEST(WorldCaptions, LongCaptionsParseBackExactly) {
  EXPECT_GT(expect_long_captions_exact(WorldConfig{}, 10000), 5000);
}

TEST(WorldCaptions, LongCaptionsParseBackExactlyOnOtherConfigs) {
  WorldConfig big;
  big.canvas = 64;
  expect_long_captions_exact(big, 1000);
  WorldConfig crowded;  // up to 5 groups: 10 relation sentences per caption
  crowded.min_groups = 4;
  crowded.max_groups = 5;
  crowded.canvas = 48;
  crowded.min_object_size = 0.15;
  crowded.shapes = {"circle", "star", "cross"};  // many same-shape groups told apart by colour
  expect_long_captions_exact(crowded, 1000);
}

TEST(WorldCaptions, GoldenCaptionsAreStable) {
  // Caption text must not depend on the machine or standard library either.
  const WorldConfig cfg;
  std::string all;
  for (uint64_t seed = 0; seed < 50; ++seed) {
    const Scene s = sample_scene(cfg, seed);
    Rng rng(seed);
    all += human_long_caption(s, rng) + "|" + human_short_caption(s, rng) + "|" +
           alt_text(s, cfg, rng).text + "\n";
  }
  uint64_t h = 0xcbf29ce484222325ull;  // FNV-1a
  for (unsigned char c : all) h = (h ^ c) * 0x100000001b3ull;
  EXPECT_EQ(h, 8166848758617641989ull) << all.substr(0, 400);
}

TEST(WorldCaptions, LongCaptionsVary) {
  const WorldConfig cfg;
  std::set<std::string> openings, texts;
  for (uint64_t seed = 0; seed < 500; ++seed) {
    Rng rng(seed);
    const std::string text = human_long_caption(sample_scene(cfg, seed % 5), rng);
    openings.insert(text.substr(0, text.find(' ')));
    texts.insert(text);
  }
  EXPECT_GT(openings.size(), 12u);
  EXPECT_GT(texts.size(), 450u);
}

TEST(WorldCaptions, ShortCaptionsStateOnlyTrueFactsWithoutPositions) {
  const WorldConfig cfg;
  const CaptionParser parser(cfg);
  for (uint64_t seed = 0; seed < 3000; ++seed) {
    const Scene s = sample_scene(cfg, seed);
    Rng rng(derive_seed(seed, 2));
    const std::string text = human_short_caption(s, rng);
    const Facts f = parser.parse(text);
    SCOPED_TRACE("seed " + std::to_string(seed) + ": " + text);
    const CaptionScore sc = score_caption(f, s, relation_margin_px(cfg));
    ASSERT_FALSE(sc.wrong_fact);
    ASSERT_GE(sc.groups_recalled, std::min<int>(2, s.groups.size()));
    ASSERT_EQ(sc.bindings_correct, sc.groups_stated);
    ASSERT_EQ(sc.relations_stated + sc.positions_stated, 0);
  }
}

TEST(WorldAltText, FailureModeRatesMatchConfig) {
  WorldConfig cfg;
  cfg.alt_rates = {0.2, 0.15, 0.1, 0.1, 0.05, 0.05};
  std::vector<Scene> scenes;
  for (uint64_t seed = 0; seed < 500; ++seed) scenes.push_back(sample_scene(cfg, seed));
  std::array<int, kAltModes> seen{};
  const int n = 20000;
  Rng rng(11);
  for (int i = 0; i < n; ++i) ++seen[int(alt_text(scenes[i % scenes.size()], cfg, rng).mode)];
  const double want[kAltModes] = {0.2, 0.15, 0.1, 0.1, 0.05, 0.05, 0.35};
  for (int m = 0; m < kAltModes; ++m)
    EXPECT_NEAR(double(seen[m]) / n, want[m], 0.015) << alt_mode_name(AltMode(m));
}

TEST(WorldAltText, ModesSayWhatTheyShould) {
  const WorldConfig cfg;
  const CaptionParser parser(cfg);
  Rng rng(3);
  std::array<int, kAltModes> seen{};
  for (uint64_t seed = 0; seed < 4000; ++seed) {
    const Scene s = sample_scene(cfg, seed % 1000);
    const AltText alt = alt_text(s, cfg, rng);
    const Facts f = parser.parse(alt.text);
    const CaptionScore sc = score_caption(f, s, relation_margin_px(cfg));
    SCOPED_TRACE(std::string(alt_mode_name(alt.mode)) + ": " + alt.text);
    ++seen[int(alt.mode)];
    EXPECT_EQ(sc.relations_stated + sc.positions_stated, 0);
    switch (alt.mode) {
      case AltMode::ContextOnly:
      case AltMode::Filename:
        EXPECT_FALSE(alt.text.empty());
        EXPECT_EQ(f, Facts{});
        break;
      case AltMode::Empty:
        EXPECT_EQ(alt.text, "");
        break;
      case AltMode::Keywords:
        EXPECT_EQ(sc.bindings_stated + sc.counts_stated, 0);
        break;
      case AltMode::WrongAttributes:
        EXPECT_TRUE(sc.wrong_fact);
        break;
      case AltMode::SalientOnly:
        EXPECT_EQ(sc.groups_stated, 1);
        EXPECT_FALSE(sc.wrong_fact);
        break;
      case AltMode::Partial:
        EXPECT_FALSE(sc.wrong_fact);
        EXPECT_GE(sc.groups_correct, 1);
        break;
    }
    if (HasFailure()) return;
  }
  for (int m = 0; m < kAltModes; ++m) EXPECT_GT(seen[m], 0) << alt_mode_name(AltMode(m));
}

TEST(WorldAltText, ScoresFarWorseThanHumanLongCaptions) {
  const WorldConfig cfg;
  const CaptionParser parser(cfg);
  Rng rng(5);
  struct Totals {
    int groups = 0, counts = 0, relations_true = 0, relations = 0, recalled = 0;
  } human, alt;
  for (uint64_t seed = 0; seed < 2000; ++seed) {
    const Scene s = sample_scene(cfg, seed);
    for (auto* t : {&human, &alt}) {
      const std::string text =
          t == &human ? human_long_caption(s, rng) : alt_text(s, cfg, rng).text;
      const CaptionScore sc = score_caption(parser.parse(text), s, relation_margin_px(cfg));
      t->groups += sc.scene_groups;
      t->counts += sc.counts_correct;
      t->recalled += sc.groups_recalled;
      t->relations += int(s.relations.size());
      t->relations_true += sc.relations_correct;
    }
  }
  EXPECT_EQ(human.counts, human.groups);
  EXPECT_EQ(human.relations_true, human.relations);
  EXPECT_LT(alt.counts, 0.25 * alt.groups);
  EXPECT_EQ(alt.relations_true, 0);
  EXPECT_LT(alt.recalled, 0.7 * alt.groups);
  EXPECT_GT(alt.recalled, 0.2 * alt.groups);  // bad, but not useless
}

}  // namespace
}  // namespace recap::world
