// Embedded world: compositional prompt suites.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <set>

#include "core/error.h"
#include "world/parser.h"
#include "world/prompts.h"

namespace recap::world {
namespace {

using ::testing::HasSubstr;
using ::testing::ThrowsMessage;

TEST(WorldPrompts, EveryPromptParsesBackToItsTarget) {
  const WorldConfig cfg;
  const CaptionParser parser(cfg);
  for (Suite suite : all_suites()) {
    const auto prompts = make_suite(suite, cfg, 500, 17);
    ASSERT_EQ(prompts.size(), 500u);
    std::set<std::string> texts;
    for (const auto& p : prompts) {
      EXPECT_EQ(p.suite, suite_name(suite));
      EXPECT_EQ(parser.parse(p.text), p.target) << p.text;
      texts.insert(p.text);
    }
    EXPECT_GT(texts.size(), 100u) << suite_name(suite);
  }
}

TEST(WorldPrompts, SuitesHaveTheirShape) {
  const WorldConfig cfg;
  for (const auto& p : make_suite(Suite::Counting, cfg, 200, 1)) {
    ASSERT_EQ(p.target.groups.size(), 1u);
    EXPECT_GE(*p.target.groups[0].count, 2);
  }
  for (const auto& p : make_suite(Suite::Position, cfg, 200, 1)) {
    ASSERT_EQ(p.target.groups.size(), 2u);
    EXPECT_EQ(p.target.relations.size(), 1u);
  }
  for (const auto& p : make_suite(Suite::ColourBinding, cfg, 200, 1)) {
    ASSERT_EQ(p.target.groups.size(), 2u);
    EXPECT_NE(p.target.groups[0].shape, p.target.groups[1].shape);
    EXPECT_NE(p.target.groups[0].colour, p.target.groups[1].colour);
  }
  for (const auto& p : make_suite(Suite::MultiObject, cfg, 200, 1)) {
    EXPECT_GE(p.target.groups.size(), 2u);
    EXPECT_LE(p.target.groups.size(), size_t(cfg.max_groups));
  }
}

TEST(WorldPrompts, DeterministicAndSeedDependent) {
  const WorldConfig cfg;
  const auto dump = [&](uint64_t seed) {
    std::string out;
    for (const auto& p : make_suite(Suite::MultiObject, cfg, 50, seed)) out += to_json(p).dump();
    return out;
  };
  EXPECT_EQ(dump(3), dump(3));
  EXPECT_NE(dump(3), dump(4));
  // The first k prompts do not depend on n, so suites can be grown without reshuffling.
  EXPECT_EQ(to_json(make_suite(Suite::Position, cfg, 10, 9)[3]),
            to_json(make_suite(Suite::Position, cfg, 100, 9)[3]));
}

TEST(WorldPrompts, JsonRoundTripAndErrors) {
  const WorldConfig cfg;
  for (const auto& p : make_suite(Suite::Position, cfg, 20, 2)) {
    const Prompt back = prompt_from_json(nlohmann::json::parse(to_json(p).dump()));
    EXPECT_EQ(back.suite, p.suite);
    EXPECT_EQ(back.text, p.text);
    EXPECT_EQ(back.target, p.target);
  }
  // A user's own suite name is fine; a name that could not label a table row is refused.
  auto own = to_json(make_suite(Suite::Counting, cfg, 1, 2)[0]);
  own["suite"] = "my_suite-2.b";
  EXPECT_EQ(prompt_from_json(own).suite, "my_suite-2.b");
  for (const auto& bad : {nlohmann::json(""), nlohmann::json("a b"), nlohmann::json("über"),
                          nlohmann::json(7)}) {
    own["suite"] = bad;
    EXPECT_THAT([&] { prompt_from_json(own); }, ThrowsMessage<Error>(HasSubstr("suite"))) << bad;
  }
  EXPECT_THROW(check_suite_name(std::string(65, 'a')), Error);
  EXPECT_EQ(in_suite_order({"zeta", "position", "alpha", "counting"}),
            (std::vector<std::string>{"counting", "position", "alpha", "zeta"}));
  WorldConfig one_shape = cfg;
  one_shape.shapes = {"star"};
  EXPECT_THROW(make_suite(Suite::ColourBinding, one_shape, 5, 1), Error);
}

}  // namespace
}  // namespace recap::world
