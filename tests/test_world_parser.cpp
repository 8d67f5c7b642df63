// Embedded world: caption parser on hand-written text, scorer semantics, robustness.
#include <gtest/gtest.h>

#include "core/error.h"
#include "world/parser.h"
#include "core/rng.h"
#include "world/score.h"

namespace recap::world {
namespace {

const WorldConfig kConfig;

TEST(WorldParser, ReadsCountsColoursShapesAndSynonyms) {
  const Facts f = parse_caption(
      "There are two red stars, a pair of blue discs, 3 green tiles and a single black rhombus.",
      kConfig);
  const std::vector<FactGroup> want = {{"star", "red", 2, std::nullopt},
                                       {"circle", "blue", 2, std::nullopt},
                                       {"square", "green", 3, std::nullopt},
                                       {"diamond", "black", 1, std::nullopt}};
  EXPECT_EQ(f.groups, want);
  EXPECT_TRUE(f.relations.empty());
  EXPECT_FALSE(f.background);
}

TEST(WorldParser, ReadsRelationsInBothDirectionsAndPositions) {
  const Facts f = parse_caption(
      "In the top left there are two red stars. A blue heart is placed at the bottom. "
      "The blue heart sits to the right of the red stars. The red stars are higher than the "
      "blue heart. The backdrop is a plain teal.",
      kConfig);
  ASSERT_EQ(f.groups.size(), 2u);
  EXPECT_EQ(f.groups[0].position, (AbsPosition{HPos::Left, VPos::Top}));
  EXPECT_EQ(f.groups[1].position, (AbsPosition{std::nullopt, VPos::Bottom}));
  const std::vector<GroupRelation> want = {{0, 1, Relation::LeftOf}, {0, 1, Relation::Above}};
  EXPECT_EQ(f.relations, want);
  EXPECT_EQ(f.background, "teal");
}

TEST(WorldParser, TagListsBindNothing) {
  const Facts f = parse_caption("red, star, blue, shapes, art, heart", kConfig);
  ASSERT_EQ(f.groups.size(), 2u);
  EXPECT_FALSE(f.groups[0].colour);
  EXPECT_FALSE(f.groups[0].count);
  EXPECT_FALSE(f.groups[1].colour);
}

TEST(WorldParser, CentreWordsFillTheOtherAxis) {
  EXPECT_EQ(parse_caption("a red star in the centre", kConfig).groups[0].position,
            (AbsPosition{HPos::Center, VPos::Middle}));
  EXPECT_EQ(parse_caption("a red star in the middle left", kConfig).groups[0].position,
            (AbsPosition{HPos::Left, VPos::Middle}));
  EXPECT_EQ(parse_caption("a red star at the top centre", kConfig).groups[0].position,
            (AbsPosition{HPos::Center, VPos::Top}));
}

TEST(WorldParser, SurvivesArbitraryInput) {
  const CaptionParser parser(kConfig);
  EXPECT_EQ(parser.parse(""), Facts{});
  EXPECT_EQ(parser.parse("   ...,,,;;;"), Facts{});
  Rng rng(1);
  for (int i = 0; i < 200; ++i) {
    std::string bytes(rng.range(0, 400), '\0');
    for (auto& c : bytes) c = static_cast<char>(rng.below(256));
    parser.parse(bytes);
  }
  parser.parse("\xff\xfe\xc3\x28 caf\xc3\xa9 \xe2\x82\xac red \xf0\x9f\x8c\x9f star");
  // 100k characters of dense caption words: must finish quickly and stay bounded.
  std::string big;
  const char* words[] = {"red ", "star ", "left ",       "of ",    "the ",
                         "two ", "blue ", "heart ",      "above ", ", ",
                         ". ",   "top ",  "background ", "teal ",  "and "};
  while (big.size() < 100000) big += words[rng.below(15)];
  const Facts f = parser.parse(big);
  EXPECT_LE(f.groups.size(), 4u);  // star, red star, heart, blue heart at most
  EXPECT_EQ(parser.parse(std::string(100000, 'x')), Facts{});
  EXPECT_EQ(parser.parse(std::string(100000, '9')), Facts{});
}

TEST(WorldParser, HugeNumbersAreNotCounts) {
  const Facts f = parse_caption("99999999999999999999 red stars", kConfig);
  ASSERT_EQ(f.groups.size(), 1u);
  EXPECT_FALSE(f.groups[0].count);
}

Scene two_groups() {
  // Red stars (2) on the left, a blue heart on the right.
  return Scene{
      32,
      32,
      "teal",
      {{"star", "red", {{6, 8, 8, 0}, {6, 20, 8, 0}}}, {"heart", "blue", {{24, 14, 8, 0}}}},
      {{0, 1, Relation::LeftOf}}};
}

TEST(WorldScore, CorrectCaptionScoresPerfectly) {
  const Facts f = parse_caption(
      "Two red stars are to the left of a blue heart. The background is teal.", kConfig);
  const CaptionScore sc = score_caption(f, two_groups(), 3.2);
  EXPECT_FALSE(sc.wrong_fact);
  EXPECT_EQ(sc.groups_correct, 2);
  EXPECT_EQ(sc.counts_correct, 2);
  EXPECT_EQ(sc.relations_correct, 1);
  EXPECT_TRUE(sc.background_correct);
  EXPECT_DOUBLE_EQ(sc.precision(), 1);
  EXPECT_DOUBLE_EQ(sc.recall(), 1);
}

TEST(WorldScore, EachKindOfWrongFactIsCaught) {
  const Scene s = two_groups();
  for (const char* text : {"three red stars", "a red heart", "a green circle",
                           "red stars below a blue heart", "red stars to the right of a blue heart",
                           "a blue heart in the top left", "red stars on a pink background"}) {
    const CaptionScore sc = score_caption(parse_caption(text, kConfig), s, 3.2);
    EXPECT_TRUE(sc.wrong_fact) << text;
  }
  const CaptionScore binding = score_caption(parse_caption("a red heart", kConfig), s, 3.2);
  EXPECT_TRUE(binding.mentions_correct_shape());
  EXPECT_FALSE(binding.correct_binding());
  EXPECT_DOUBLE_EQ(binding.precision(), 0);
  const CaptionScore empty = score_caption(Facts{}, s, 3.2);
  EXPECT_FALSE(empty.wrong_fact);
  EXPECT_DOUBLE_EQ(empty.recall(), 0);
  const CaptionScore partial = score_caption(parse_caption("stars", kConfig), s, 3.2);
  EXPECT_FALSE(partial.wrong_fact);
  EXPECT_DOUBLE_EQ(partial.recall(), 0.5);
}

TEST(WorldFacts, JsonRoundTripAndErrors) {
  const Facts f = parse_caption(
      "Two red stars in the top left are above a blue heart on the right; teal background.",
      kConfig);
  EXPECT_EQ(facts_from_json(nlohmann::json::parse(to_json(f).dump())), f);
  EXPECT_THROW(facts_from_json(nlohmann::json::parse(R"({"groups": 3})")), Error);
  EXPECT_THROW(
      facts_from_json(nlohmann::json::parse(
          R"({"groups": [{"shape": "star"}], "relations": [{"a":0,"b":1,"relation":"above"}]})")),
      Error);
  EXPECT_THROW(
      facts_from_json(nlohmann::json::parse(R"({"groups": [{"shape": "star", "h": "up"}]})")),
      Error);
}

}  // namespace
}  // namespace recap::world
