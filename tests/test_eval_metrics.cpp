// Prompt-following metrics: a hand-computed set, ceiling and floor on real prompt suites,
// empty input, bootstrap interval properties and determinism, JSON and table output.
#include <gtest/gtest.h>

#include "core/error.h"
#include "eval/metrics.h"
#include "world/prompts.h"
#include "world/score.h"

namespace recap::eval {
namespace {

using world::FactGroup;
using world::Relation;

constexpr double kMargin = 2;  // px

FactGroup group(const std::string& colour, const std::string& shape, int count) {
  return {shape, colour, count, std::nullopt};
}

Detection det(const std::string& colour, const std::string& shape, double x = 16, double y = 16,
              double score = 1) {
  return {shape, colour, x, y, 8, score};
}

MetricOptions options(int samples = 0, uint64_t seed = 1) {
  MetricOptions o;
  o.relation_margin_px = kMargin;
  o.bootstrap_samples = samples;
  o.seed = seed;
  return o;
}

// Four images whose every statistic is worked out by hand in HandMadeSet below.
std::vector<ImageDetections> hand_set() {
  std::vector<ImageDetections> set(4);
  // 1: "three red squares"; two red and a blue square found.
  set[0].suite = world::Suite::Counting;
  set[0].target.groups = {group("red", "square", 3)};
  set[0].detections = {det("red", "square"), det("red", "square"), det("blue", "square")};
  // 2: "a red circle left of a blue star"; both found, relation holds (30 - 10 > 2).
  set[1].suite = world::Suite::Position;
  set[1].target.groups = {group("red", "circle", 1), group("blue", "star", 1)};
  world::add_relation(set[1].target, {0, 1, Relation::LeftOf});
  set[1].detections = {det("red", "circle", 10, 20), det("blue", "star", 30, 20)};
  // 3: "a green heart above a yellow cross"; both found, but the heart is below.
  set[2].suite = world::Suite::Position;
  set[2].target.groups = {group("green", "heart", 1), group("yellow", "cross", 1)};
  world::add_relation(set[2].target, {0, 1, Relation::Above});
  set[2].detections = {det("green", "heart", 20, 30), det("yellow", "cross", 20, 10)};
  // 4: "a red star right of a blue heart"; only a blue star found (wrong colour, no heart).
  set[3].suite = world::Suite::Position;
  set[3].target.groups = {group("red", "star", 1), group("blue", "heart", 1)};
  world::add_relation(set[3].target, {0, 1, Relation::RightOf});
  set[3].detections = {det("blue", "star")};
  return set;
}

TEST(EvalMetrics, HandMadeSet) {
  const PromptMetrics m = score_prompts(hand_set(), options());
  EXPECT_EQ(m.images, 4);
  // Per class: square 1/1, circle 1/1, star 2/2 (colour ignored), heart 1/2, cross 1/1.
  EXPECT_EQ(m.soa_c.n, 5);
  EXPECT_DOUBLE_EQ(*m.soa_c.value, 4.5 / 5);
  // Per image: 1, 1, 1, 1/2.
  EXPECT_EQ(m.soa_i.n, 4);
  EXPECT_DOUBLE_EQ(*m.soa_i.value, 3.5 / 4);
  // Seven counted groups; errors 1 | 0 0 | 0 0 | 1 1.
  EXPECT_EQ(m.count_error.n, 7);
  EXPECT_DOUBLE_EQ(*m.count_error.value, 3.0 / 7);
  EXPECT_DOUBLE_EQ(*m.count_exact.value, 4.0 / 7);
  // Relations: holds | found, fails | not found.
  EXPECT_EQ(m.position.n, 3);
  EXPECT_DOUBLE_EQ(*m.position.value, 1.0 / 3);
  EXPECT_EQ(m.position_given_found.n, 2);
  EXPECT_DOUBLE_EQ(*m.position_given_found.value, 0.5);
  // Coloured groups: 1/1, 2/2, 2/2, 0/2.
  EXPECT_EQ(m.colour_binding.n, 7);
  EXPECT_DOUBLE_EQ(*m.colour_binding.value, 5.0 / 7);
  EXPECT_FALSE(m.soa_c.ci) << "no resamples requested";
}

TEST(EvalMetrics, RelationUsesCentroidsAndMargin) {
  ImageDetections img;
  img.target.groups = {group("red", "circle", 2), group("blue", "star", 1)};
  world::add_relation(img.target, {0, 1, Relation::LeftOf});
  // Red centroid x = (4 + 20) / 2 = 12; the star at 14 is within the margin, at 14.5 beyond.
  img.detections = {det("red", "circle", 4, 5), det("red", "circle", 20, 5),
                    det("blue", "star", 14, 5)};
  EXPECT_EQ(*score_prompts({img}, options()).position.value, 0);
  img.detections[2].x = 14.5;
  EXPECT_EQ(*score_prompts({img}, options()).position.value, 1);
}

TEST(EvalMetrics, MinScoreDropsDetections) {
  ImageDetections img;
  img.target.groups = {group("red", "circle", 2)};
  img.detections = {det("red", "circle", 8, 8, 0.9), det("red", "circle", 20, 8, 0.2)};
  MetricOptions o = options();
  EXPECT_DOUBLE_EQ(*score_prompts({img}, o).count_exact.value, 1);
  o.min_score = 0.5;
  const PromptMetrics m = score_prompts({img}, o);
  EXPECT_DOUBLE_EQ(*m.count_error.value, 1);
  EXPECT_DOUBLE_EQ(*m.soa_i.value, 1);
}

// Detections exactly as prompted: `count` objects per group, groups placed so that every
// relation of the prompt holds (suites state at most one relation per prompt).
std::vector<ImageDetections> perfect(const std::vector<world::Prompt>& prompts, double canvas) {
  std::vector<ImageDetections> out;
  for (const auto& p : prompts) {
    ImageDetections img{p.suite, p.target, {}};
    std::vector<world::Point> at(p.target.groups.size(), {canvas / 2, canvas / 2});
    for (const auto& r : p.target.relations) {
      const double d = canvas / 4;
      auto& a = at[r.a];
      auto& b = at[r.b];
      if (r.relation == Relation::LeftOf) a.x -= d, b.x += d;
      if (r.relation == Relation::RightOf) a.x += d, b.x -= d;
      if (r.relation == Relation::Above) a.y -= d, b.y += d;
      if (r.relation == Relation::Below) a.y += d, b.y -= d;
    }
    for (size_t g = 0; g < p.target.groups.size(); ++g)
      for (int k = 0; k < *p.target.groups[g].count; ++k)
        img.detections.push_back(
            det(*p.target.groups[g].colour, p.target.groups[g].shape, at[g].x + k, at[g].y));
    out.push_back(img);
  }
  return out;
}

std::vector<world::Prompt> all_prompts(const world::WorldConfig& cfg) {
  std::vector<world::Prompt> prompts;
  for (world::Suite s : world::all_suites())
    for (auto& p : world::make_suite(s, cfg, 25, 7)) prompts.push_back(p);
  return prompts;
}

TEST(EvalMetrics, PerfectDetectionsAreTheCeiling) {
  const world::WorldConfig cfg;
  MetricOptions o = options(200);
  o.relation_margin_px = world::relation_margin_px(cfg);
  const PromptMetrics m = score_prompts(perfect(all_prompts(cfg), cfg.canvas), o);
  EXPECT_EQ(m.images, 100);
  EXPECT_EQ(m.position.n, 25);
  for (const Stat* s : {&m.soa_c, &m.soa_i, &m.count_exact, &m.position,
                        &m.position_given_found, &m.colour_binding}) {
    ASSERT_TRUE(s->value && s->ci);
    EXPECT_EQ(*s->value, 1);
    EXPECT_EQ(s->ci->lo, 1) << "constant data gives a degenerate interval";
    EXPECT_EQ(s->ci->hi, 1);
  }
  EXPECT_EQ(*m.count_error.value, 0);
  EXPECT_EQ(m.count_error.ci->lo, 0);
  EXPECT_EQ(m.count_error.ci->hi, 0);
}

TEST(EvalMetrics, EmptyDetectionsAreTheFloor) {
  const world::WorldConfig cfg;
  auto images = perfect(all_prompts(cfg), cfg.canvas);
  double prompted = 0;
  int groups = 0;
  for (auto& img : images) {
    img.detections.clear();
    for (const auto& g : img.target.groups) prompted += *g.count, ++groups;
  }
  const PromptMetrics m = score_prompts(images, options(100));
  for (const Stat* s : {&m.soa_c, &m.soa_i, &m.count_exact, &m.position, &m.colour_binding}) {
    ASSERT_TRUE(s->value);
    EXPECT_EQ(*s->value, 0);
  }
  EXPECT_DOUBLE_EQ(*m.count_error.value, prompted / groups) << "every count missed entirely";
  EXPECT_EQ(m.position_given_found.n, 0);
  EXPECT_FALSE(m.position_given_found.value);
  EXPECT_FALSE(m.position_given_found.ci);
}

TEST(EvalMetrics, EmptyInputIsWellDefined) {
  const PromptMetrics m = score_prompts({}, options(100));
  EXPECT_EQ(m.images, 0);
  const nlohmann::json j = to_json(m);
  EXPECT_EQ(j["images"], 0);
  for (const char* key : {"soa_c", "soa_i", "count_error", "count_exact", "position",
                          "position_given_found", "colour_binding"}) {
    SCOPED_TRACE(key);
    EXPECT_TRUE(j[key]["value"].is_null());
    EXPECT_TRUE(j[key]["ci"].is_null());
    EXPECT_EQ(j[key]["n"], 0);
  }
  EXPECT_EQ(j.dump().find("nan"), std::string::npos);
  EXPECT_NE(format_table({{"empty", m}}).find("-"), std::string::npos);
  // An image without any prompted group defines no statistic either.
  EXPECT_FALSE(score_prompts({ImageDetections{}}, options(10)).soa_i.value);
}

TEST(EvalMetrics, BootstrapIntervalContainsEstimate) {
  const PromptMetrics m = score_prompts(hand_set(), options(2000));
  for (const Stat* s : {&m.soa_c, &m.soa_i, &m.count_error, &m.count_exact, &m.position,
                        &m.position_given_found, &m.colour_binding}) {
    ASSERT_TRUE(s->value && s->ci);
    EXPECT_LE(s->ci->lo, *s->value);
    EXPECT_GE(s->ci->hi, *s->value);
    EXPECT_LT(s->ci->lo, s->ci->hi) << "the hand set is not constant";
  }
}

TEST(EvalMetrics, BootstrapIsDeterministicBySeed) {
  auto images = hand_set();
  for (int copies = 0; copies < 4; ++copies)
    for (size_t i = 0; i < 4; ++i) images.push_back(images[i]);
  const auto a = to_json(score_prompts(images, options(300, 11)));
  const auto b = to_json(score_prompts(images, options(300, 11)));
  const auto c = to_json(score_prompts(images, options(300, 12)));
  EXPECT_EQ(a.dump(), b.dump());
  EXPECT_NE(a.dump(), c.dump());
  EXPECT_EQ(a["soa_i"]["value"], c["soa_i"]["value"]) << "the seed moves only the intervals";
}

TEST(EvalMetrics, BySuiteScoresEachSuiteOnItsOwn) {
  const auto per_suite = score_by_suite(hand_set(), options());
  ASSERT_EQ(per_suite.size(), 2u);
  const PromptMetrics& counting = per_suite.at(world::Suite::Counting);
  EXPECT_EQ(counting.images, 1);
  EXPECT_DOUBLE_EQ(*counting.count_error.value, 1);
  EXPECT_FALSE(counting.position.value);
  const PromptMetrics& position = per_suite.at(world::Suite::Position);
  EXPECT_EQ(position.images, 3);
  EXPECT_DOUBLE_EQ(*position.position.value, 1.0 / 3);
}

TEST(EvalMetrics, JsonAndTable) {
  const PromptMetrics m = score_prompts(hand_set(), options(100));
  const nlohmann::json j = to_json(m);
  EXPECT_DOUBLE_EQ(j["soa_c"]["value"].get<double>(), 0.9);
  EXPECT_EQ(j["soa_c"]["n"], 5);
  ASSERT_TRUE(j["soa_c"]["ci"].is_array());
  EXPECT_EQ(j["soa_c"]["ci"].size(), 2u);
  const std::string table = format_table({{"alt", m}, {"recap", m}});
  EXPECT_NE(table.find("SOA-C %"), std::string::npos);
  EXPECT_NE(table.find("alt"), std::string::npos);
  EXPECT_NE(table.find("90.0 ["), std::string::npos);
  EXPECT_NE(table.find("0.43 ["), std::string::npos) << table;  // count error 3/7
  EXPECT_EQ(std::count(table.begin(), table.end(), '\n'), 3);
}

TEST(EvalMetrics, BadInputThrows) {
  auto images = hand_set();
  images[1].target.relations[0].b = 5;
  EXPECT_THROW(score_prompts(images, options()), Error);
  images = hand_set();
  images[0].detections[0].x = std::nan("");
  EXPECT_THROW(score_prompts(images, options()), Error);
  MetricOptions o = options();
  o.level = 1;
  EXPECT_THROW(score_prompts(hand_set(), o), Error);
  o = options(-1);
  EXPECT_THROW(score_prompts(hand_set(), o), Error);
}

}  // namespace
}  // namespace recap::eval
