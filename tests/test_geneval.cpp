// GenEval compatibility, torch-free parts: the world's GenEval prompt file (its six tasks in
// the world's shapes and colours, text that says what the metadata asks), metadata JSON both
// ways with errors by field, GenEval's rules per task on hand-made detections (a correct and
// an incorrect case each) and its summary (overall = mean of the task scores), and the
// ceiling without a detector: the perfect scene of every prompt judged correct.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <algorithm>
#include <map>
#include <set>
#include <tuple>

#include "core/config.h"
#include "core/error.h"
#include "core/rng.h"
#include "eval/geneval.h"
#include "stages/settings.h"
#include "world/geneval_prompts.h"
#include "world/parser.h"
#include "world/sampler.h"
#include "world/score.h"

namespace recap::eval {
namespace {

using ::testing::HasSubstr;
using ::testing::ThrowsMessage;
using world::GenevalPrompt;

// Facts up to the order of their groups: groups as (shape, colour, count) and relations by
// the shapes they join, each stated one way round.
using GroupKey = std::tuple<std::string, std::string, int>;
using RelationKey = std::tuple<std::string, std::string, world::Relation>;
std::pair<std::multiset<GroupKey>, std::set<RelationKey>> geneval_order_free(const world::Facts& f) {
  std::multiset<GroupKey> groups;
  for (const auto& g : f.groups) groups.insert({g.shape, g.colour.value_or(""), g.count.value_or(0)});
  std::set<RelationKey> relations;
  for (const auto& r : f.relations) {
    const auto& a = f.groups[r.a].shape;
    const auto& b = f.groups[r.b].shape;
    if (a < b)
      relations.insert({a, b, r.relation});
    else
      relations.insert({b, a, world::inverse(r.relation)});
  }
  return {groups, relations};
}

TEST(GenevalPrompts, TheWorldsFileHasGenevalsSixTasksInItsOwnTerms) {
  const world::WorldConfig cfg;
  const world::CaptionParser parser(cfg);
  const auto prompts = world::make_geneval_prompts(cfg, 30, 5);
  std::map<std::string, int> per_tag;
  std::set<std::string> keys, single_shapes;
  for (const auto& p : prompts) {
    ++per_tag[p.tag];
    EXPECT_TRUE(keys.insert(world::geneval_request_key(p)).second) << "repeated: " << p.prompt;
    EXPECT_NO_THROW(world::check_geneval_in_world(p, cfg)) << p.prompt;
    // The text says exactly what the metadata asks for, in words the world's parser reads.
    EXPECT_EQ(geneval_order_free(parser.parse(p.prompt)), geneval_order_free(world::geneval_target(p)))
        << p.prompt;
    if (p.tag == "single_object") single_shapes.insert(p.include.at(0).cls);
    if (p.tag == "counting") {
      ASSERT_EQ(p.exclude.size(), 1u);
      EXPECT_EQ(p.exclude[0].count, p.include.at(0).count + 1);
      EXPECT_GE(p.include[0].count, 2);
      EXPECT_LE(p.include[0].count, 4);
    }
    if (p.tag == "position") {
      ASSERT_EQ(p.include.size(), 2u);
      ASSERT_TRUE(p.include[1].position);
      EXPECT_EQ(p.include[1].position->target, 0);
      EXPECT_NE(p.include[0].cls, p.include[1].cls);
    }
    if (p.tag == "color_attr") {
      ASSERT_EQ(p.include.size(), 2u);
      EXPECT_NE(p.include[0].cls, p.include[1].cls);
      EXPECT_NE(p.include[0].color, p.include[1].color);
      EXPECT_TRUE(p.include[0].color && p.include[1].color);
    }
  }
  EXPECT_EQ(single_shapes.size(), cfg.shapes.size());  // every shape once, as GenEval's classes
  for (const auto& tag : world::geneval_tags()) EXPECT_GT(per_tag[tag], 0) << tag;
  EXPECT_EQ(per_tag.size(), 6u);
  EXPECT_EQ(world::make_geneval_prompts(cfg, 30, 5), prompts);
  EXPECT_NE(world::make_geneval_prompts(cfg, 30, 6), prompts);
}

TEST(GenevalPrompts, MetadataJsonBothWaysAndErrorsByField) {
  // A line of GenEval's own prompts/evaluation_metadata.jsonl reads as it is...
  const auto theirs = world::geneval_from_json(nlohmann::json::parse(
      R"({"tag": "position", "include": [{"class": "couch", "count": 1}, {"class": "bird", )"
      R"("count": 1, "position": ["left of", 0]}], "prompt": "a photo of a bird left of a couch"})"));
  ASSERT_TRUE(theirs.include.at(1).position);
  EXPECT_EQ(theirs.include[1].position->relation, world::Relation::LeftOf);
  // ... and is written back in GenEval's key order.
  EXPECT_EQ(world::to_json(theirs).dump(),
            R"({"tag":"position","include":[{"class":"couch","count":1},{"class":"bird",)"
            R"("count":1,"position":["left of",0]}],"prompt":"a photo of a bird left of a couch"})");
  // Its COCO classes are no shapes of the world: its detector cannot judge them.
  EXPECT_THAT([&] { world::check_geneval_in_world(theirs, world::WorldConfig{}); },
              ThrowsMessage<Error>(HasSubstr("\"couch\" is not a shape of this world")));
  for (const auto& p : world::make_geneval_prompts(world::WorldConfig{}, 5, 1))
    EXPECT_EQ(world::geneval_from_json(nlohmann::json::parse(world::to_json(p).dump())), p);

  const auto error = [](const char* text) {
    try {
      world::geneval_from_json(nlohmann::json::parse(text));
    } catch (const Error& e) {
      return std::string(e.what());
    }
    return std::string("no error");
  };
  EXPECT_THAT(error(R"({"include": [], "prompt": "x"})"), HasSubstr("\"tag\""));
  EXPECT_THAT(error(R"({"tag": "t", "include": [{"class": "circle", "count": 0}], "prompt": "x"})"),
              HasSubstr("include[0]: \"count\""));
  EXPECT_THAT(error(R"({"tag": "t", "include": [{"class": "circle", "count": 1, )"
                    R"("position": ["left of", 0]}], "prompt": "x"})"),
              HasSubstr("include[0]: position index 0 names no earlier include clause"));
  EXPECT_THAT(error(R"({"tag": "t", "include": [{"class": "circle", "count": 1}, {"class": "star", )"
                    R"("count": 1, "position": ["near", 0]}], "prompt": "x"})"),
              HasSubstr("unknown relation \"near\""));
}

Detection geneval_det(const std::string& shape, const std::string& colour, double x, double y,
              double score = 0.9) {
  return {shape, colour, x, y, 7, score};
}

GenevalPrompt geneval_meta(const char* json) {
  return world::geneval_from_json(nlohmann::json::parse(json));
}

MetricOptions geneval_rules() {
  MetricOptions o;
  o.relation_margin_px = 3.2;  // the world's default margin on a 32 px canvas
  o.min_score = 0.5;
  return o;
}

TEST(GenevalRules, EachTaskHasACorrectAndAnIncorrectCase) {
  const auto o = geneval_rules();
  const auto single = geneval_meta(R"({"tag": "single_object", "include": [{"class": "circle", "count": 1}],
                                "prompt": "a circle"})");
  EXPECT_TRUE(geneval_judge(single, {geneval_det("circle", "red", 8, 8)}, o).correct);
  const auto missing = geneval_judge(single, {geneval_det("star", "red", 8, 8)}, o);
  EXPECT_FALSE(missing.correct);
  EXPECT_EQ(missing.reason, "expected circle>=1, found 0");
  // Below min_score a detection does not count.
  EXPECT_FALSE(geneval_judge(single, {geneval_det("circle", "red", 8, 8, 0.2)}, o).correct);

  const auto two = geneval_meta(R"({"tag": "two_object", "include": [{"class": "circle", "count": 1},
                             {"class": "star", "count": 1}], "prompt": "a circle and a star"})");
  EXPECT_TRUE(geneval_judge(two, {geneval_det("circle", "red", 8, 8), geneval_det("star", "blue", 24, 8)}, o).correct);
  EXPECT_FALSE(geneval_judge(two, {geneval_det("circle", "red", 8, 8), geneval_det("circle", "blue", 24, 8)}, o).correct);

  // Counting is exact: at least 3 by the include clause, fewer than 4 by the exclude clause.
  const auto three = geneval_meta(R"({"tag": "counting", "include": [{"class": "square", "count": 3}],
                               "exclude": [{"class": "square", "count": 4}], "prompt": "three squares"})");
  std::vector<Detection> squares = {geneval_det("square", "red", 4, 4), geneval_det("square", "red", 12, 4),
                                    geneval_det("square", "red", 20, 4)};
  EXPECT_TRUE(geneval_judge(three, squares, o).correct);
  squares.push_back(geneval_det("square", "red", 28, 4));
  const auto four = geneval_judge(three, squares, o);
  EXPECT_FALSE(four.correct);
  EXPECT_EQ(four.reason, "expected square<4, found 4");
  squares.resize(2);
  EXPECT_EQ(geneval_judge(three, squares, o).reason, "expected square>=3, found 2");

  const auto red = geneval_meta(R"({"tag": "colors", "include": [{"class": "heart", "count": 1,
                             "color": "red"}], "prompt": "a red heart"})");
  EXPECT_TRUE(geneval_judge(red, {geneval_det("heart", "red", 8, 8)}, o).correct);
  const auto blue = geneval_judge(red, {geneval_det("heart", "blue", 8, 8)}, o);
  EXPECT_FALSE(blue.correct);
  EXPECT_EQ(blue.reason, "expected red heart>=1, found 0 red; and 1 blue");
  // GenEval judges the most confident object of the class: a red heart behind a more
  // confident blue one does not make it right.
  EXPECT_FALSE(
      geneval_judge(red, {geneval_det("heart", "red", 8, 8, 0.6), geneval_det("heart", "blue", 24, 8, 0.9)}, o)
          .correct);

  // "a star left of a circle": include = [circle, star at ["left of", 0]].
  const auto left = geneval_meta(R"({"tag": "position", "include": [{"class": "circle", "count": 1},
                              {"class": "star", "count": 1, "position": ["left of", 0]}],
                              "prompt": "a star left of a circle"})");
  EXPECT_TRUE(geneval_judge(left, {geneval_det("circle", "red", 24, 16), geneval_det("star", "blue", 6, 16)}, o).correct);
  // The world's relation reads only its own axis: far left and lower still is left of.
  EXPECT_TRUE(geneval_judge(left, {geneval_det("circle", "red", 24, 4), geneval_det("star", "blue", 6, 28)}, o).correct);
  const auto swapped =
      geneval_judge(left, {geneval_det("circle", "red", 6, 16), geneval_det("star", "blue", 24, 16)}, o);
  EXPECT_FALSE(swapped.correct);
  EXPECT_EQ(swapped.reason, "expected star left of target, found right of target");
  EXPECT_EQ(geneval_judge(left, {geneval_det("star", "blue", 6, 16)}, o).reason,
            "expected circle>=1, found 0\nno target for star to be left of");

  // Colour attribution: both shapes, each in its own colour.
  const auto attr = geneval_meta(R"({"tag": "color_attr", "include": [{"class": "star", "count": 1,
                              "color": "red"}, {"class": "circle", "count": 1, "color": "blue"}],
                              "prompt": "a red star and a blue circle"})");
  EXPECT_TRUE(geneval_judge(attr, {geneval_det("star", "red", 6, 16), geneval_det("circle", "blue", 24, 16)}, o).correct);
  const auto bound_wrong =
      geneval_judge(attr, {geneval_det("star", "blue", 6, 16), geneval_det("circle", "red", 24, 16)}, o);
  EXPECT_FALSE(bound_wrong.correct);
  EXPECT_THAT(bound_wrong.reason, HasSubstr("expected red star>=1, found 0 red"));
  EXPECT_THAT(bound_wrong.reason, HasSubstr("expected blue circle>=1, found 0 blue"));
}

TEST(GenevalRules, OverallIsTheMeanOfTaskScoresAndLinesCarryWhatTheSummaryReads) {
  const std::vector<std::string> tags = {"single_object", "single_object", "single_object",
                                         "counting"};
  const std::vector<GenevalVerdict> verdicts = {{true, ""}, {true, ""}, {true, ""}, {false, "x"}};
  const auto s = geneval_scores(tags, verdicts);
  EXPECT_DOUBLE_EQ(s.tasks.at("single_object").score(), 1.0);
  EXPECT_DOUBLE_EQ(s.tasks.at("counting").score(), 0.0);
  EXPECT_DOUBLE_EQ(s.overall, 0.5);  // not the pooled 3 / 4
  EXPECT_EQ(s.images, 4);
  const auto back = geneval_scores_from_json(to_json(s));
  EXPECT_DOUBLE_EQ(back.overall, 0.5);
  EXPECT_EQ(back.tasks.at("counting").images, 1);
  EXPECT_THAT(format_geneval(s), HasSubstr("overall 0.50; single_object 1.00 (3/3), counting 0.00 (0/1)"));

  const auto p = world::make_geneval_prompts(world::WorldConfig{}, 1, 3).front();
  const auto line =
      geneval_result_line("d/00000/samples/0000.png", p, {geneval_det(p.include[0].cls, "red", 8, 8)},
                          geneval_judge(p, {geneval_det(p.include[0].cls, "red", 8, 8)}, geneval_rules()));
  EXPECT_EQ(line.at("filename"), "d/00000/samples/0000.png");
  EXPECT_EQ(line.at("tag"), p.tag);
  EXPECT_EQ(line.at("correct"), true);
  EXPECT_EQ(line.at("reason"), "");
  EXPECT_EQ(world::geneval_from_json(nlohmann::json::parse(line.at("metadata").get<std::string>())), p);
  const auto details = nlohmann::json::parse(line.at("details").get<std::string>());
  EXPECT_EQ(details.at(p.include[0].cls).at(0).size(), 5u);  // x0, y0, x1, y1, score
}

// What a detector that never errs reports for a scene: every object, exact, score 1.
std::vector<Detection> geneval_truth_detections(const world::Scene& scene) {
  std::vector<Detection> out;
  for (const auto& g : scene.groups)
    for (const auto& o : g.objects) out.push_back({g.shape, g.colour, o.x, o.y, o.size, 1.0});
  return out;
}

// GenEval's ceiling with the detector taken out: the scene the evaluation renders for each
// prompt of the quick world's GenEval file (world::scene_for_target of its target, as
// stages::evaluate_reference builds its GenEval renders), read by a perfect detector, is
// correct by GenEval's rules for every prompt of every task. A failure here is the scene
// builder's or the rules', never the evaluator's.
TEST(GenevalCeiling, ThePerfectSceneOfEveryPromptIsCorrect) {
  const Config config = Config::load("quick");
  const world::WorldConfig w = world_settings(config);
  MetricOptions o;
  o.relation_margin_px = world::relation_margin_px(w);
  o.min_score = config.get_float("eval.min_score");
  const auto prompts = world::make_geneval_prompts(
      w, static_cast<int>(config.get_int("corpus.prompts_per_suite")), 0x6E7E);
  std::map<std::string, int> correct, images;
  for (size_t i = 0; i < prompts.size(); ++i) {
    const auto& p = prompts[i];
    const auto scene = world::scene_for_target(w, world::geneval_target(p), derive_seed(9, i));
    const auto verdict = geneval_judge(p, geneval_truth_detections(scene), o);
    EXPECT_TRUE(verdict.correct) << p.prompt << ": " << verdict.reason << "\n"
                                 << world::to_json(scene).dump();
    EXPECT_EQ(verdict.reason.empty(), verdict.correct);
    ++images[p.tag];
    correct[p.tag] += verdict.correct;
  }
  EXPECT_EQ(images.size(), 6u);
  for (const auto& tag : world::geneval_tags()) {
    EXPECT_GT(images[tag], 0) << tag;
    EXPECT_EQ(correct[tag], images[tag]) << tag;
  }
  // The rules still see a wrong scene as wrong: the same scenes with every object one shape
  // along fail every prompt that names a shape (all of them).
  for (size_t i = 0; i < prompts.size(); ++i) {
    auto scene = world::scene_for_target(w, world::geneval_target(prompts[i]), derive_seed(9, i));
    for (auto& g : scene.groups) {
      const auto at = std::find(w.shapes.begin(), w.shapes.end(), g.shape) - w.shapes.begin();
      g.shape = w.shapes[static_cast<size_t>(at + 1) % w.shapes.size()];
    }
    EXPECT_FALSE(geneval_judge(prompts[i], geneval_truth_detections(scene), o).correct)
        << prompts[i].prompt;
  }
}

}  // namespace
}  // namespace recap::eval
