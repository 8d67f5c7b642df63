// Prompt-following metrics: a hand-computed set, ceiling and floor on real prompt suites,
// empty input, bootstrap interval properties and determinism, JSON and table output, per-image
// scores and their JSON, and the paired comparison of two arms on constructed data.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <cmath>
#include <stdexcept>

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
  set[0].target.groups = {group("red", "square", 3)};
  set[0].detections = {det("red", "square"), det("red", "square"), det("blue", "square")};
  // 2: "a red circle left of a blue star"; both found, relation holds (30 - 10 > 2).
  set[1].target.groups = {group("red", "circle", 1), group("blue", "star", 1)};
  world::add_relation(set[1].target, {0, 1, Relation::LeftOf});
  set[1].detections = {det("red", "circle", 10, 20), det("blue", "star", 30, 20)};
  // 3: "a green heart above a yellow cross"; both found, but the heart is below.
  set[2].target.groups = {group("green", "heart", 1), group("yellow", "cross", 1)};
  world::add_relation(set[2].target, {0, 1, Relation::Above});
  set[2].detections = {det("green", "heart", 20, 30), det("yellow", "cross", 20, 10)};
  // 4: "a red star right of a blue heart"; only a blue star found (wrong colour, no heart).
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
    ImageDetections img{p.target, {}, {}};
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
  std::vector<ImageScore> scores;
  // hand_set's first image is a counting prompt, the other three position prompts.
  std::vector<std::optional<std::string>> suites = {"counting", "position", "position",
                                                    "position"};
  for (const auto& image : hand_set()) scores.push_back(score_image(image, options()));
  EXPECT_THROW(summarize_by_suite(scores, {}, options()), std::invalid_argument);
  // An image of no suite counts in none: one position image without its suite leaves two.
  auto without_one = suites;
  without_one[2] = std::nullopt;
  EXPECT_EQ(summarize_by_suite(scores, without_one, options()).at("position").images,
            2);
  const auto per_suite = summarize_by_suite(scores, suites, options());
  ASSERT_EQ(per_suite.size(), 2u);
  const PromptMetrics& counting = per_suite.at("counting");
  EXPECT_EQ(counting.images, 1);
  EXPECT_DOUBLE_EQ(*counting.count_error.value, 1);
  EXPECT_FALSE(counting.position.value);
  const PromptMetrics& position = per_suite.at("position");
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

TEST(EvalMetrics, ImageScoresAreTheHandSetsTallies) {
  const auto images = hand_set();
  const ImageScore first = score_image(images[0], options());
  // "three red squares", two red and a blue square found.
  EXPECT_EQ(first.shapes, (std::map<std::string, bool>{{"square", true}}));
  EXPECT_EQ(first.groups, 1);
  EXPECT_EQ(first.groups_found, 1);
  EXPECT_EQ(first.counted, 1);
  EXPECT_EQ(first.count_abs_error, 1);
  EXPECT_EQ(first.count_exact, 0);
  EXPECT_EQ(first.coloured, 1);
  EXPECT_EQ(first.bound, 1);
  // "a red star right of a blue heart", only a blue star found.
  const ImageScore last = score_image(images[3], options());
  EXPECT_EQ(last.shapes, (std::map<std::string, bool>{{"heart", false}, {"star", true}}));
  EXPECT_EQ(last.relations, 1);
  EXPECT_EQ(last.relations_found, 0);
  EXPECT_EQ(last.bound, 0);
  // The JSON a reader sees: [numerator, denominator] per statistic.
  const nlohmann::json j = to_json(last);
  EXPECT_EQ(j["soa_c"], (nlohmann::json{{"heart", 0}, {"star", 1}}));
  EXPECT_EQ(j["soa_i"], nlohmann::json::array({1, 2}));
  EXPECT_EQ(j["count_error"], nlohmann::json::array({2.0, 2}));
  EXPECT_EQ(j["position"], nlohmann::json::array({0, 1}));
  EXPECT_EQ(j["position_given_found"], nlohmann::json::array({0, 0}));
  EXPECT_EQ(j["colour_binding"], nlohmann::json::array({0, 2}));
}

TEST(EvalMetrics, ScoresRoundTripThroughJsonToTheSameMetrics) {
  auto images = hand_set();
  for (size_t i = 0; i < 4; ++i) images.push_back(images[i]);
  std::vector<ImageScore> read;
  for (const auto& image : images)
    read.push_back(image_score_from_json(to_json(score_image(image, options()))));
  const auto direct = to_json(score_prompts(images, options(200)));
  const auto again = to_json(summarize(read, options(200)));
  for (const char* key : {"soa_c", "soa_i", "count_error", "count_exact", "position",
                          "position_given_found", "colour_binding"}) {
    SCOPED_TRACE(key);
    // Same tallies, same sums; JSON keeps doubles exactly, so only rounding could differ.
    EXPECT_NEAR(again[key]["value"].get<double>(), direct[key]["value"].get<double>(), 1e-12);
    EXPECT_NEAR(again[key]["ci"][0].get<double>(), direct[key]["ci"][0].get<double>(), 1e-12);
    EXPECT_NEAR(again[key]["ci"][1].get<double>(), direct[key]["ci"][1].get<double>(), 1e-12);
    EXPECT_EQ(again[key]["n"], direct[key]["n"]);
  }
}

TEST(EvalMetrics, BadImageScoreJsonIsRefusedByField) {
  const nlohmann::json good = to_json(score_image(hand_set()[1], options()));
  const auto refused = [&](const char* key, nlohmann::json value, const char* says) {
    nlohmann::json j = good;
    j[key] = std::move(value);
    EXPECT_THAT([&] { image_score_from_json(j); },
                ::testing::ThrowsMessage<Error>(::testing::HasSubstr(says)))
        << key;
  };
  refused("soa_i", nlohmann::json::array({3, 2}), "\"soa_i\": [3, 2] is not a tally");
  refused("count_exact", nlohmann::json::array({1, 1}), "\"count_exact\" counts 1 groups");
  refused("position_given_found", nlohmann::json::array({0, 1}), "disagrees with \"position\"");
  refused("colour_binding", "two", "\"colour_binding\": expected [numerator");
  refused("soa_c", nlohmann::json{{"circle", 2}}, "\"circle\" must be 0 or 1");
  refused("clip_score", 100.5, "\"clip_score\": expected a number in [0, 100]");
  refused("clip_score", "high", "\"clip_score\": expected a number in [0, 100]");
  nlohmann::json missing = good;
  missing.erase("position");
  EXPECT_THROW(image_score_from_json(missing), Error);
}

// ---- paired comparison -------------------------------------------------------------------

// An image prompting a circle and a square, of which `found` (0, 1 or 2: the circle first) are
// drawn; each group asks for one object in a stated colour.
ImageScore two_groups(int i, int found) {
  ImageScore s;
  s.id = {"a circle and a square, prompt " + std::to_string(i), uint64_t(1000 + i)};
  s.shapes = {{"circle", found >= 1}, {"square", found >= 2}};
  s.groups = s.counted = s.coloured = 2;
  s.groups_found = s.count_exact = s.bound = found;
  s.count_abs_error = 2 - found;
  return s;
}

// `n` images of which arm A draws `found` groups each; returns (A, B) with B drawing `delta`
// more (or fewer, when negative) in the images listed.
std::pair<std::vector<ImageScore>, std::vector<ImageScore>> arms(
    const std::vector<int>& found, const std::vector<std::pair<int, int>>& changes) {
  std::vector<ImageScore> a, b;
  for (int i = 0; i < int(found.size()); ++i) a.push_back(two_groups(i, found[size_t(i)]));
  b = a;
  for (const auto& [i, delta] : changes) b[size_t(i)] = two_groups(i, found[size_t(i)] + delta);
  return {a, b};
}

PairedOptions paired(int resamples = 2000, uint64_t seed = 5) {
  PairedOptions o;
  o.resamples = resamples;
  o.seed = seed;
  return o;
}

TEST(EvalMetrics, PairedDifferenceOfAKnownShift) {
  // A draws one of two groups in each of 200 images; B draws both in 40 of them (every fifth).
  std::vector<std::pair<int, int>> changes;
  for (int i = 0; i < 200; i += 5) changes.emplace_back(i, 1);
  const auto [a, b] = arms(std::vector<int>(200, 1), changes);
  const PairedMetrics m = compare_paired(a, b, paired());
  EXPECT_EQ(m.images, 200);
  // SOA-I: 0.5 -> 0.5 + 0.5 * 40 / 200 = 0.6. Per image the difference is 0.5 with
  // probability 0.2, so its mean has standard error 0.5 sqrt(0.2 * 0.8 / 200) = 0.01414 and a
  // 95% interval of about +- 1.96 * 0.01414 = 0.0277 around 0.1.
  ASSERT_TRUE(m.soa_i.value && m.soa_i.ci && m.soa_i.p);
  EXPECT_NEAR(*m.soa_i.value, 0.1, 1e-12);
  EXPECT_NEAR((m.soa_i.ci->lo + m.soa_i.ci->hi) / 2, 0.1, 0.005);
  EXPECT_NEAR((m.soa_i.ci->hi - m.soa_i.ci->lo) / 2, 0.0277, 0.004);
  // 40 pairs all one way: no sign flip reaches it; p is the smallest the test can give.
  EXPECT_NEAR(*m.soa_i.p, 1.0 / 2001, 1e-12);
  // SOA-C: the circle is always found, the square by B in 40 of 200: (1 + 0.2) / 2 - 1 / 2.
  EXPECT_NEAR(*m.soa_c.value, 0.1, 1e-12);
  EXPECT_GT(m.soa_c.ci->lo, 0);
  // Counting error falls by 1 per changed image and group pair: 40 / 400 groups.
  EXPECT_NEAR(*m.count_error.value, -0.1, 1e-12);
  EXPECT_LT(m.count_error.ci->hi, 0);
  EXPECT_NEAR(*m.colour_binding.value, 0.1, 1e-12);
  // No relations prompted: no position statistic, nor a difference of it.
  EXPECT_FALSE(m.position.value);
  EXPECT_FALSE(m.position.ci);
  EXPECT_FALSE(m.at("position_given_found").p);
  EXPECT_EQ(&m.at("soa_i"), &m.soa_i);
  EXPECT_THROW(m.at("fid"), std::logic_error);
}

// The CLIP score is the mean over the images that have one; its paired difference is the mean
// of the per-image differences; it survives the JSON round trip and, absent, stays absent.
TEST(EvalMetrics, ClipScoreIsAMeanAndPairsLikeTheRest) {
  auto [a, b] = arms(std::vector<int>(100, 1), {});
  for (size_t i = 0; i < a.size(); ++i) {
    a[i].clip_score = 20.0 + double(i % 10);  // mean 24.5
    b[i].clip_score = *a[i].clip_score + (i % 4 == 0 ? 8.0 : 0.0);  // +2 on average
  }
  EXPECT_FALSE(summarize(arms(std::vector<int>(3, 1), {}).first, options()).clip_score.value);
  const auto m = summarize(a, options(500));
  EXPECT_NEAR(*m.clip_score.value, 24.5, 1e-12);
  EXPECT_EQ(m.clip_score.n, 100);
  ASSERT_TRUE(m.clip_score.ci);
  EXPECT_LT(m.clip_score.ci->lo, 24.5);
  EXPECT_GT(m.clip_score.ci->hi, 24.5);
  const auto d = compare_paired(a, b, paired());
  EXPECT_NEAR(*d.clip_score.value, 2.0, 1e-12);
  EXPECT_GT(d.clip_score.ci->lo, 0);
  EXPECT_EQ(&d.at("clip_score"), &d.clip_score);
  const auto back = image_score_from_json(to_json(a[3]));
  EXPECT_EQ(back.clip_score, a[3].clip_score);
  a[3].clip_score.reset();
  EXPECT_FALSE(to_json(a[3]).contains("clip_score"));
  EXPECT_FALSE(image_score_from_json(to_json(a[3])).clip_score);
  EXPECT_THAT(format_table({{"a", m}}), ::testing::HasSubstr("CLIP score"));
}

// The pairwise rule on hand-made tallies: each key decides only when the ones before it tie.
TEST(EvalMetrics, MoreFaithfulComparesGroupsThenColoursCountsRelations) {
  ImageScore base;
  base.groups = 3, base.groups_found = 2, base.coloured = 3, base.bound = 1;
  base.counted = 3, base.count_exact = 1, base.count_abs_error = 2;
  base.relations = 2, base.relations_hold = 1;
  EXPECT_EQ(more_faithful(base, base), 0);
  auto check = [&](const char* what, auto change, bool better) {
    ImageScore other = base;
    change(other);
    EXPECT_EQ(more_faithful(other, base), better ? 1 : -1) << what;
    EXPECT_EQ(more_faithful(base, other), better ? -1 : 1) << what;
  };
  // A group more outweighs everything after it.
  check("groups", [](ImageScore& s) { s.groups_found = 3, s.bound = 0, s.relations_hold = 0; },
        true);
  check("colours", [](ImageScore& s) { s.bound = 2, s.count_exact = 0, s.count_abs_error = 5; },
        true);
  check("exact counts", [](ImageScore& s) { s.count_exact = 0, s.relations_hold = 2; }, false);
  check("count error", [](ImageScore& s) { s.count_abs_error = 1, s.relations_hold = 0; }, true);
  check("relations", [](ImageScore& s) { s.relations_hold = 0; }, false);
  // What the rule does not read (the CLIP score, the prompted totals) cannot decide.
  ImageScore same = base;
  same.clip_score = 99;
  same.shapes = {{"circle", true}};
  EXPECT_EQ(more_faithful(same, base), 0);
}

TEST(EvalMetrics, WinRateCountsWinsTiesAndLossesWithPairedIntervals) {
  // 100 pairs: the treatment draws one more group in 50, one fewer in 20, the same in 30.
  std::vector<std::pair<int, int>> changes;
  for (int i = 0; i < 50; ++i) changes.emplace_back(i, 1);
  for (int i = 50; i < 70; ++i) changes.emplace_back(i, -1);
  const auto [a, b] = arms(std::vector<int>(100, 1), changes);
  const WinRate w = win_rate(a, b, paired());
  EXPECT_EQ(w.images, 100);
  EXPECT_NEAR(*w.win.value, 0.5, 1e-12);
  EXPECT_NEAR(*w.tie.value, 0.3, 1e-12);
  EXPECT_NEAR(*w.loss.value, 0.2, 1e-12);
  EXPECT_NEAR(*w.win_of_decided.value, 50.0 / 70, 1e-12);
  EXPECT_EQ(w.win_of_decided.n, 70);
  // Binomial standard error of the win share: sqrt(0.25 / 100) = 0.05; the 95% interval is
  // about +- 0.1 around 0.5.
  EXPECT_NEAR((w.win.ci->hi - w.win.ci->lo) / 2, 0.098, 0.015);
  EXPECT_GT(w.win_of_decided.ci->lo, 0.5);  // the treatment is preferred
  // The other way round: the shares swap.
  const WinRate back = win_rate(b, a, paired());
  EXPECT_NEAR(*back.win.value, 0.2, 1e-12);
  EXPECT_NEAR(*back.loss.value, 0.5, 1e-12);
  // All ties: no decided pairs, no preference.
  const WinRate same = win_rate(a, a, paired());
  EXPECT_NEAR(*same.tie.value, 1.0, 1e-12);
  EXPECT_FALSE(same.win_of_decided.value);
  // Unpaired sets are refused as compare_paired refuses them.
  std::vector<ImageScore> shorter(a.begin(), a.end() - 1);
  EXPECT_THROW(win_rate(a, shorter, paired()), Error);
}

TEST(EvalMetrics, IdenticalArmsDifferByNothing) {
  std::vector<int> found;
  for (int i = 0; i < 150; ++i) found.push_back(i % 3);
  const auto [a, b] = arms(found, {});
  const PairedMetrics m = compare_paired(a, b, paired(500));
  for (const char* key : {"soa_c", "soa_i", "count_error", "count_exact", "colour_binding"}) {
    SCOPED_TRACE(key);
    const Difference& d = m.at(key);
    ASSERT_TRUE(d.value && d.ci && d.p);
    EXPECT_EQ(*d.value, 0) << "the same sums on the same images";
    EXPECT_LE(d.ci->lo, 0);
    EXPECT_GE(d.ci->hi, 0);
    EXPECT_EQ(*d.p, 1);
  }
}

TEST(EvalMetrics, PairingResolvesWhatOverlappingIntervalsHide) {
  // Half the prompts are easy (both arms draw both groups), half hard (neither draws any);
  // B draws one more group in 20 of the hard ones. Each arm's own SOA-I interval is wide
  // (its images are all or nothing), the paired difference is not: the prompts' difficulty
  // cancels.
  std::vector<int> found;
  std::vector<std::pair<int, int>> changes;
  for (int i = 0; i < 200; ++i) {
    found.push_back(i % 2 ? 0 : 2);
    if (i % 2 && changes.size() < 20) changes.emplace_back(i, 1);
  }
  const auto [a, b] = arms(found, changes);
  MetricOptions o;
  o.bootstrap_samples = 2000;
  const PromptMetrics ma = summarize(a, o), mb = summarize(b, o);
  EXPECT_NEAR(*ma.soa_i.value, 0.5, 1e-12);
  EXPECT_NEAR(*mb.soa_i.value, 0.55, 1e-12);
  EXPECT_LT(mb.soa_i.ci->lo, ma.soa_i.ci->hi) << "the separate intervals overlap";
  const PairedMetrics m = compare_paired(a, b, paired());
  EXPECT_NEAR(*m.soa_i.value, 0.05, 1e-12);
  EXPECT_GT(m.soa_i.ci->lo, 0) << "the paired one excludes 0";
  EXPECT_LT(*m.soa_i.p, 0.01);
}

TEST(EvalMetrics, ASmallShiftIsNotResolvedALargeOneIs) {
  // B draws one more group in 3 images and one fewer in 1, of 200: a net 2 groups. Only those
  // 4 pairs differ, so the permutation test is a fair coin per pair: p = P(|#up - #down| >= 2
  // of 4) = 1 - P(2 up) = 1 - 6/16 = 0.625, up to the Monte Carlo error of 2000 flips (0.011).
  const auto [a, b] = arms(std::vector<int>(200, 1), {{3, 1}, {50, 1}, {77, 1}, {120, -1}});
  const PairedMetrics small = compare_paired(a, b, paired());
  EXPECT_NEAR(*small.soa_i.value, 0.005, 1e-12);
  EXPECT_LT(small.soa_i.ci->lo, 0);
  EXPECT_GT(small.soa_i.ci->hi, 0);
  EXPECT_NEAR(*small.soa_i.p, 0.625, 0.04);
  // 30 up and 10 down: net 20 groups, 0.05; clearly resolved.
  std::vector<std::pair<int, int>> changes;
  for (int i = 0; i < 40; ++i) changes.emplace_back(5 * i, i < 30 ? 1 : -1);
  const auto [c, d] = arms(std::vector<int>(200, 1), changes);
  const PairedMetrics large = compare_paired(c, d, paired());
  EXPECT_NEAR(*large.soa_i.value, 0.05, 1e-12);
  EXPECT_GT(large.soa_i.ci->lo, 0);
  EXPECT_LT(*large.soa_i.p, 0.01);
}

TEST(EvalMetrics, PairedIsDeterministicBySeedAndWithoutResamplesHasNoInterval) {
  const auto [a, b] = arms(std::vector<int>(50, 1), {{1, 1}, {2, 1}, {7, -1}});
  const PairedMetrics x = compare_paired(a, b, paired(300, 9));
  const PairedMetrics y = compare_paired(a, b, paired(300, 9));
  EXPECT_EQ(x.soa_i.ci->lo, y.soa_i.ci->lo);
  EXPECT_EQ(x.soa_i.ci->hi, y.soa_i.ci->hi);
  EXPECT_EQ(*x.soa_i.p, *y.soa_i.p);
  const PairedMetrics none = compare_paired(a, b, paired(0));
  EXPECT_NEAR(*none.soa_i.value, 0.01, 1e-12);
  EXPECT_FALSE(none.soa_i.ci);
  EXPECT_FALSE(none.soa_i.p);
  EXPECT_EQ(compare_paired({}, {}, paired()).images, 0);
}

TEST(EvalMetrics, UnpairedSetsAreRefusedNamingTheMismatch) {
  using ::testing::HasSubstr;
  using ::testing::ThrowsMessage;
  auto [a, b] = arms(std::vector<int>(10, 1), {});
  b.pop_back();
  EXPECT_THAT([&] { compare_paired(a, b, paired()); },
              ThrowsMessage<Error>(HasSubstr("the baseline has 10 images, the treatment 9")));
  b = a;
  b[4].id.prompt = "two stars";
  EXPECT_THAT([&] { compare_paired(a, b, paired()); },
              ThrowsMessage<Error>(HasSubstr("image 4 is \"a circle and a square, prompt 4\" "
                                             "(seed 1004) in the baseline but \"two stars\" "
                                             "(seed 1004) in the treatment")));
  b = a;
  b[6].id.seed.reset();
  EXPECT_THAT([&] { compare_paired(a, b, paired()); },
              ThrowsMessage<Error>(HasSubstr("(seed 1006) in the baseline but \"a circle and a "
                                             "square, prompt 6\" (no seed)")));
  PairedOptions bad = paired();
  bad.level = 1.5;
  EXPECT_THROW(compare_paired(a, a, bad), Error);
  bad = paired(-1);
  EXPECT_THAT([&] { compare_paired(a, a, bad); },
              ThrowsMessage<Error>(HasSubstr("resamples must be >= 0")));
}

}  // namespace
}  // namespace recap::eval
