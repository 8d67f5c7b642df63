// `recap eval` on a smoke corpus with a smoke evaluator. A smoke detector is weak, so these
// tests check what holds whatever its quality: a folder holding the reference renders
// themselves scores exactly like the ceiling row and has FID ~0 against the reference set,
// reports are complete, the per-image results recompute the summary, and bad folders or prompt
// files are refused by name.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <cmath>
#include <map>
#include <variant>

#include <fmt/format.h>

#include "core/atomic_file.h"
#include "core/error.h"
#include "core/jsonl.h"
#include "core/weights.h"
#include "data/image.h"
#include "data/source.h"
#include "data/loader.h"
#include "eval/image_results.h"
#include "models/inception.h"
#include "stages/clip_train.h"
#include "stages/corpus.h"
#include "stages/tokenizer_train.h"
#include "stages/evaluate.h"
#include "stages/evaluator_train.h"
#include "stages/model_settings.h"
#include "stages/sample.h"
#include "stages/settings.h"
#include "data/tensor_batch.h"
#include "world/geneval_prompts.h"
#include "world/parser.h"
#include "test_util.h"

namespace recap::stages {
namespace {

using ::testing::AllOf;
using ::testing::HasSubstr;
using ::testing::Not;
using ::testing::ThrowsMessage;

class Evaluate : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    torch::set_num_threads(1);
    dir_ = new test::TempDir("evaluate");
    const Config smoke = Config::load("smoke");
    corpus::make_corpus(smoke, corpus(), 2);
    train_evaluator(world_settings(smoke), evaluator_settings(smoke), evaluator());
    write_render_folder(corpus(), renders());
  }
  // The eval split's renders as a sample folder, prompted with their human long captions
  // (targets left to the parser, as for plain-text prompts).
  static void write_render_folder(const fs::path& corpus_dir, const fs::path& out) {
    std::string index;
    int k = 0;
    for (const auto& shard : corpus::list_shards(corpus_dir, corpus::Split::Eval)) {
      auto source = data::open_source(shard);
      while (auto item = source->next()) {
        const auto& s = std::get<data::Sample>(*item);
        const std::string file = fmt::format("{:06d}.png", k++);
        write_file_atomic(out / file, s.image_bytes);
        index +=
            nlohmann::json{
                {"file", file}, {"prompt", s.caption}, {"suite", nullptr}, {"target", nullptr}}
                .dump() +
            "\n";
      }
    }
    write_file_atomic(out / "images.jsonl", index);
  }
  static void TearDownTestSuite() { delete dir_; }

  static fs::path corpus() { return *dir_ / "corpus"; }
  static fs::path evaluator() { return *dir_ / "evaluator"; }
  static fs::path renders() { return *dir_ / "renders"; }
  static EvaluateOptions options() {
    auto o = evaluate_settings(corpus::corpus_config(corpus()));
    o.metrics.bootstrap_samples = 50;
    o.kid.subsets = 10;
    return o;
  }

  static test::TempDir* dir_;
};

test::TempDir* Evaluate::dir_ = nullptr;

TEST_F(Evaluate, ReferenceRendersScoreAsTheCeilingWithFidZero) {
  const auto images = evaluate_images(renders(), evaluator(), corpus(), options());
  const auto ceiling = evaluate_reference(evaluator(), corpus(), options());
  EXPECT_EQ(images.name, "renders");
  EXPECT_EQ(ceiling.name, "ceiling");
  EXPECT_EQ(images.images, 100);
  EXPECT_EQ(ceiling.images, 100);
  // Same images, same parsed targets, same detector and bootstrap: the same metrics.
  EXPECT_EQ(eval::to_json(images.overall), eval::to_json(ceiling.overall));
  EXPECT_TRUE(images.suites.empty());  // plain prompts belong to no suite
  // The ceiling keeps its images too, named by sample key, paired with the folder's by prompt.
  ASSERT_EQ(ceiling.per_image.size(), 100u);
  EXPECT_EQ(ceiling.per_image[3].file, "eval-000000003");
  EXPECT_EQ(ceiling.per_image[3].image.id.prompt, images.per_image[3].image.id.prompt);
  EXPECT_EQ(eval::to_json(ceiling.per_image[3].score), eval::to_json(images.per_image[3].score));

  // The folder against the reference set it copies: identical features, FID ~0; fresh
  // renders of other scenes are further away.
  ASSERT_TRUE(images.fid && images.fid_floor);
  EXPECT_NEAR(images.fid->fid, 0, 1e-6);
  EXPECT_EQ(images.fid->n_generated, 100);
  EXPECT_EQ(images.fid->n_reference, 100);
  EXPECT_GT(images.fid_floor->fid, 1e-3);
  EXPECT_EQ(images.fid_floor->n_generated, 100);
  EXPECT_FALSE(ceiling.fid);
  ASSERT_TRUE(ceiling.fid_floor);
  // The same floor from another entry point: same renders, batches and threads, but separate
  // float64 matmul/eigh calls, not promised to round alike (see Fid.StatsAreReusable: ~1e-13).
  // Another floor set or reference would move it by far more than 1e-6 of itself.
  EXPECT_NEAR(ceiling.fid_floor->fid, images.fid_floor->fid, 1e-6 * images.fid_floor->fid);
  EXPECT_TRUE(images.evaluator_accuracy.contains("accuracy"));

  const auto json = to_json(images);
  for (const char* key :
       {"name", "images", "overall", "suites", "fid", "fid_floor", "evaluator_accuracy"})
    EXPECT_TRUE(json.contains(key)) << key;
  for (const char* key : {"mean", "std", "std_error", "subsets", "subset_size"})
    EXPECT_TRUE(json["fid"]["kid"].contains(key)) << key;
  EXPECT_EQ(json["fid"]["kid"]["subsets"], 10);
  EXPECT_TRUE(json["overall"]["soa_c"].contains("ci"));
  EXPECT_TRUE(to_json(ceiling)["fid"].is_null());

  const auto table = format_eval_table({images, ceiling});
  EXPECT_THAT(table, HasSubstr("renders"));
  EXPECT_THAT(table, HasSubstr("ceiling"));
  EXPECT_THAT(table, HasSubstr("floor FID"));
}

TEST_F(Evaluate, SuitePromptsAreScoredPerSuite) {
  test::TempDir dir("evaluate-suites");
  // Counting and position prompts, and a suite of the user's own (multi-object prompts under
  // another name), on arbitrary images: the report's shape, not its values.
  std::string index;
  int k = 0;
  for (const char* suite : {"counting", "position", "my_suite"}) {
    const std::string source = suite == std::string("my_suite") ? "multi_object" : suite;
    const auto prompts = read_jsonl(corpus::prompts_path(corpus(), source));
    for (int i = 0; i < 3; ++i, ++k) {
      const std::string file = fmt::format("{:06d}.png", k);
      fs::copy_file(renders() / file, dir / file);
      const auto& p = prompts[static_cast<size_t>(i)];
      index += nlohmann::json{{"file", file},
                              {"prompt", p.at("text")},
                              {"suite", suite},
                              {"target", p.at("target")}}
                   .dump() +
               "\n";
    }
  }
  write_file_atomic(dir / "images.jsonl", index);
  auto o = options();
  o.fid = false;
  const auto report = evaluate_images(dir.path(), evaluator(), corpus(), o);
  EXPECT_EQ(report.images, 9);
  ASSERT_EQ(report.suites.size(), 3u);
  EXPECT_EQ(report.suites.at("my_suite").images, 3);
  EXPECT_EQ(report.suites.at("counting").images, 3);
  EXPECT_EQ(report.suites.at("position").images, 3);
  EXPECT_EQ(report.suites.at("position").position.n, 3);  // one relation each
  EXPECT_FALSE(report.fid);
  const auto json = to_json(report);
  EXPECT_TRUE(json["suites"].contains("counting"));
  EXPECT_TRUE(json["fid"].is_null());
  EXPECT_TRUE(json["suites"].contains("my_suite"));
  EXPECT_THAT(format_eval_table({report}), HasSubstr(" / position"));
  EXPECT_THAT(format_eval_table({report}), HasSubstr(" / my_suite"));

  // A prompts file holding them all passes; one with the counting prompts only is refused.
  o.prompts = corpus::prompts_path(corpus(), "counting");
  EXPECT_THAT([&] { evaluate_images(dir.path(), evaluator(), corpus(), o); },
              ThrowsMessage<Error>(HasSubstr("counting.jsonl does not hold")));
  std::string all;
  for (const char* suite : {"counting", "position", "multi_object"})
    all += read_file(corpus::prompts_path(corpus(), suite));
  write_file_atomic(dir / "all.jsonl", all);
  o.prompts = dir / "all.jsonl";
  EXPECT_EQ(evaluate_images(dir.path(), evaluator(), corpus(), o).images, 9);
}

// Suite prompts with seeds on arbitrary images (the eval renders): `per_suite` of each of the
// counting, position and multi-object suites.
void write_suite_folder(const fs::path& dir, const fs::path& corpus_dir, const fs::path& renders,
                        int per_suite) {
  std::string index;
  int k = 0;
  for (const char* suite : {"counting", "position", "multi_object"}) {
    const auto prompts = read_jsonl(corpus::prompts_path(corpus_dir, suite));
    for (int i = 0; i < per_suite; ++i, ++k) {
      const std::string file = fmt::format("{:06d}.png", k);
      fs::copy_file(renders / file, dir / file);
      const auto& p = prompts[static_cast<size_t>(i)];
      index += nlohmann::json{{"file", file},
                              {"prompt", p.at("text")},
                              {"suite", suite},
                              {"target", p.at("target")},
                              {"seed", 7000 + k}}
                   .dump() +
               "\n";
    }
  }
  write_file_atomic(dir / "images.jsonl", index);
}

TEST_F(Evaluate, PerImageResultsRecomputeTheSummary) {
  test::TempDir dir("evaluate-per-image");
  write_suite_folder(dir.path(), corpus(), renders(), 20);  // all the smoke prompts
  auto o = options();
  o.fid = false;
  o.metrics.bootstrap_samples = 200;
  const auto report = evaluate_images(dir.path(), evaluator(), corpus(), o);
  const fs::path written = eval::write_image_results_beside(dir / "arm.json", report.per_image);
  EXPECT_EQ(written, dir / "arm.images.jsonl");
  const auto results = eval::read_image_results(written);
  ASSERT_EQ(results.size(), 60u);
  EXPECT_EQ(results[31].file, "000031.png");
  EXPECT_EQ(results[31].image.id.seed, 7031u);
  EXPECT_EQ(results[31].suite, "position");
  EXPECT_EQ(results[31].image.id.prompt,
            read_jsonl(corpus::prompts_path(corpus(), "position"))[11].at("text"));

  // The summary again from the file: from the tallies, and from the targets and detections.
  // The same sums in the same order (JSON keeps doubles exactly), so equal in fact; the
  // tolerance only says these are separate computations.
  std::vector<eval::ImageScore> scores;
  std::vector<eval::ImageDetections> images;
  std::map<std::string, std::vector<eval::ImageScore>> by_suite;
  for (const auto& r : results) {
    scores.push_back(r.score);
    images.push_back(r.image);
    by_suite[*r.suite].push_back(r.score);
  }
  const auto expect_same = [](const eval::PromptMetrics& got, const eval::PromptMetrics& want) {
    const auto g = eval::to_json(got), w = eval::to_json(want);
    EXPECT_EQ(g["images"], w["images"]);
    for (const auto& [key, stat] : w.items()) {
      if (key == "images") continue;
      SCOPED_TRACE(key);
      EXPECT_EQ(g[key]["n"], stat["n"]);
      ASSERT_EQ(g[key]["value"].is_null(), stat["value"].is_null());
      if (stat["value"].is_null()) continue;
      EXPECT_NEAR(g[key]["value"].get<double>(), stat["value"].get<double>(), 1e-12);
      EXPECT_NEAR(g[key]["ci"][0].get<double>(), stat["ci"][0].get<double>(), 1e-12);
      EXPECT_NEAR(g[key]["ci"][1].get<double>(), stat["ci"][1].get<double>(), 1e-12);
    }
  };
  expect_same(eval::summarize(scores, o.metrics), report.overall);
  expect_same(eval::score_prompts(images, o.metrics), report.overall);
  ASSERT_EQ(by_suite.size(), 3u);
  for (const auto& [suite, part] : by_suite)
    expect_same(eval::summarize(part, o.metrics), report.suites.at(suite));

  // What a reader of the format does, by hand from the raw lines: SOA-I is the mean of the
  // per-image shares, colour binding pooled, position pooled over the position suite.
  double shares = 0, bound = 0, coloured = 0, hold = 0, relations = 0;
  int with_groups = 0;
  for (const auto& line : read_jsonl(written)) {
    const auto& m = line.at("metrics");
    if (m["soa_i"][1] > 0) {
      shares += m["soa_i"][0].get<double>() / m["soa_i"][1].get<double>();
      ++with_groups;
    }
    bound += m["colour_binding"][0].get<double>();
    coloured += m["colour_binding"][1].get<double>();
    hold += m["position"][0].get<double>();
    relations += m["position"][1].get<double>();
    EXPECT_TRUE(line.at("detections").is_array());
  }
  EXPECT_NEAR(shares / with_groups, *report.overall.soa_i.value, 1e-12);
  EXPECT_NEAR(bound / coloured, *report.overall.colour_binding.value, 1e-12);
  EXPECT_EQ(relations, 20) << "one relation per position prompt";
  EXPECT_NEAR(hold / relations, *report.overall.position.value, 1e-12);

  // A seed that is not an unsigned integer is refused by name.
  std::string index = read_file(dir / "images.jsonl");
  index.replace(index.find("\"seed\":7000"), 11, "\"seed\":-3");
  write_file_atomic(dir / "images.jsonl", index);
  EXPECT_THAT([&] { evaluate_images(dir.path(), evaluator(), corpus(), o); },
              ThrowsMessage<Error>(HasSubstr("000000.png: \"seed\" is -3")));
}

TEST_F(Evaluate, ScorerOnTensorsAgreesWithTheCeilingOnTheSameRenders) {
  // The reference renders as one tensor, their targets parsed from the human long captions:
  // the in-memory scorer must judge them exactly as the ceiling row does (8-bit images
  // survive its quantisation unchanged; same detector, batch and threads).
  std::vector<data::DecodedSample> renders;
  std::vector<world::Facts> targets;
  const world::CaptionParser parser(world_settings(corpus::corpus_config(corpus())));
  for (const auto& shard : corpus::list_shards(corpus(), corpus::Split::Eval)) {
    auto source = data::open_source(shard);
    while (auto item = source->next()) {
      const auto& s = std::get<data::Sample>(*item);
      data::DecodedSample d;
      d.image = *data::decode_image(s.image_bytes).image;
      renders.push_back(std::move(d));
      targets.push_back(parser.parse(s.caption));
    }
  }
  auto o = options();
  o.metrics.bootstrap_samples = 0;
  const auto ceiling = evaluate_reference(evaluator(), corpus(), o);
  PromptScorer scorer(evaluator(), corpus());
  const auto images = data::to_tensor_batch(renders).images;
  const auto scored = scorer.score(images, targets, o.metrics);
  EXPECT_EQ(eval::to_json(scored), eval::to_json(ceiling.overall));
  // Off-grid values round to the nearest 8-bit level first, as a written PNG would.
  const auto nudged = images + 0.3 / 255;
  EXPECT_EQ(eval::to_json(scorer.score(nudged, targets, o.metrics)),
            eval::to_json(ceiling.overall));
  // Wrong shapes and counts are refused.
  EXPECT_THAT([&] { scorer.score(images.narrow(0, 0, 3), targets, o.metrics); },
              ThrowsMessage<Error>(HasSubstr("need [100, 3, 32, 32] images")));
  EXPECT_THROW(scorer.score(torch::zeros({100, 3, 16, 16}), targets, o.metrics), Error);
  EXPECT_THROW(PromptScorer(*dir_ / "no-such-evaluator", corpus()), Error);
}

TEST_F(Evaluate, BadFoldersAreRefusedByName) {
  test::TempDir dir("evaluate-bad");
  auto o = options();
  o.fid = false;
  EXPECT_THAT([&] { evaluate_images(dir.path(), evaluator(), corpus(), o); },
              ThrowsMessage<Error>(HasSubstr("images.jsonl: missing")));
  fs::copy_file(renders() / "000000.png", dir / "000000.png");
  write_file_atomic(dir / "images.jsonl",
                    "{\"file\": \"000000.png\", \"prompt\": \"a star\"}\n"
                    "{\"file\": \n");
  EXPECT_THAT([&] { evaluate_images(dir.path(), evaluator(), corpus(), o); },
              ThrowsMessage<Error>(HasSubstr("images.jsonl:2")));
  write_file_atomic(dir / "images.jsonl", "{\"prompt\": \"a star\"}\n");
  EXPECT_THAT([&] { evaluate_images(dir.path(), evaluator(), corpus(), o); },
              ThrowsMessage<Error>(HasSubstr("images.jsonl:1")));
  write_file_atomic(dir / "images.jsonl", "{\"file\": \"gone.png\", \"prompt\": \"a star\"}\n");
  EXPECT_THAT([&] { evaluate_images(dir.path(), evaluator(), corpus(), o); },
              ThrowsMessage<Error>(HasSubstr("gone.png")));
  write_file_atomic(dir / "big.png",
                    data::encode_png({64, 64, 3, std::vector<uint8_t>(64 * 64 * 3)}));
  write_file_atomic(dir / "images.jsonl", "{\"file\": \"big.png\", \"prompt\": \"a star\"}\n");
  EXPECT_THAT([&] { evaluate_images(dir.path(), evaluator(), corpus(), o); },
              ThrowsMessage<Error>(HasSubstr("big.png: the image is 64x64")));
  EXPECT_THAT([&] { evaluate_images(renders(), dir / "none", corpus(), o); },
              ThrowsMessage<Error>(HasSubstr("none/evaluator.safetensors")));
}

TEST_F(Evaluate, CommandPrintsTableAccuracyAndJson) {
  test::TempDir dir("evaluate-cli");
  auto r = test::run_recap("eval --threads 1 --images " + renders().string() + " --evaluator " +
                           evaluator().string() + " --corpus " + corpus().string() +
                           " --ceiling --set eval.bootstrap=20 --set eval.kid_subsets=5 --json " +
                           (dir / "eval.json").string());
  ASSERT_EQ(r.status, 0) << r.output;
  EXPECT_THAT(r.output, HasSubstr("ceiling"));
  EXPECT_THAT(r.output, HasSubstr("SOA-C"));
  EXPECT_THAT(r.output, HasSubstr("evaluator accuracy on 50 held-out renders"));
  const auto json = nlohmann::json::parse(read_file(dir / "eval.json"));
  EXPECT_EQ(json["name"], "renders");
  EXPECT_EQ(json["fid"]["kid"]["subsets"], 5);
  EXPECT_EQ(json["ceiling"]["name"], "ceiling");
  // One line per image beside the report, as many as it counts.
  EXPECT_THAT(r.output, HasSubstr("eval.images.jsonl"));
  EXPECT_EQ(eval::read_image_results(dir / "eval.images.jsonl").size(), 100u);

  // Against its own per-image file: every difference 0, every pair a tie.
  auto versus = test::run_recap("eval --threads 1 --no-fid --images " + renders().string() +
                                " --evaluator " + evaluator().string() + " --corpus " +
                                corpus().string() + " --set eval.bootstrap=20 --versus " +
                                (dir / "eval.images.jsonl").string());
  ASSERT_EQ(versus.status, 0) << versus.output;
  EXPECT_THAT(versus.output, AllOf(HasSubstr("renders - eval.images.jsonl (100 pairs)"),
                                   HasSubstr("+0.00"), HasSubstr("wins of the decided pairs")));
  EXPECT_THAT(versus.output, ::testing::ContainsRegex("ties +100\\.0"));
  auto one = read_file(dir / "eval.images.jsonl");
  write_file_atomic(dir / "short.images.jsonl", one.substr(0, one.find('\n') + 1));
  auto unpaired = test::run_recap("eval --no-fid --images " + renders().string() +
                                  " --evaluator " + evaluator().string() + " --corpus " +
                                  corpus().string() + " --versus " +
                                  (dir / "short.images.jsonl").string());
  EXPECT_EQ(unpaired.status, 2) << unpaired.output;
  EXPECT_THAT(unpaired.output, HasSubstr("the baseline has 1 images, the treatment 100"));

  auto missing = test::run_recap("eval --images " + dir.path().string() + " --evaluator " +
                                 evaluator().string() + " --corpus " + corpus().string());
  EXPECT_EQ(missing.status, 2);
  EXPECT_THAT(missing.output, HasSubstr("error: "));
  EXPECT_THAT(missing.output, HasSubstr("images.jsonl"));
}

// GenEval's ceiling: the reference report also judges one render of the perfect scene of each
// GenEval prompt a run evaluates (the first eval.geneval_per_task of each task; smoke: 2),
// named in GenEval's layout, apart from the row's other metrics. A smoke detector is too weak
// for its verdicts to mean anything (GenevalCeiling.ThePerfectSceneOfEveryPromptIsCorrect
// shows the scenes are right); what holds whatever its quality is checked here.
TEST_F(Evaluate, CeilingJudgesAPerfectRenderOfEachGenevalPrompt) {
  auto o = options();
  o.fid = false;
  ASSERT_EQ(o.geneval_per_task, 2);
  const auto prompts = corpus_geneval_prompts(corpus(), o.geneval_per_task);
  ASSERT_EQ(prompts.size(), 12u);  // six tasks, two each
  const auto ceiling = evaluate_reference(evaluator(), corpus(), o);
  ASSERT_TRUE(ceiling.geneval);
  EXPECT_EQ(ceiling.geneval->images, 12);
  ASSERT_EQ(ceiling.geneval->tag_order(), world::geneval_tags());
  int correct = 0;
  for (const auto& [tag, task] : ceiling.geneval->tasks) {
    EXPECT_EQ(task.images, 2) << tag;
    correct += task.correct;
  }
  ASSERT_EQ(ceiling.geneval_lines.size(), 12u);
  int correct_lines = 0;
  for (size_t i = 0; i < prompts.size(); ++i) {
    const auto& line = ceiling.geneval_lines[i];
    EXPECT_EQ(line.at("filename"), fmt::format("{:05}/samples/0000.png", i));
    EXPECT_EQ(line.at("prompt"), prompts[i].text);
    EXPECT_EQ(world::geneval_from_json(nlohmann::json::parse(line.at("metadata").get<std::string>())),
              *prompts[i].geneval);
    correct_lines += line.at("correct").get<bool>();
  }
  EXPECT_EQ(correct_lines, correct);
  // The GenEval renders join no other metric of the row, and come out the same every time.
  EXPECT_EQ(ceiling.images, 100);
  EXPECT_EQ(ceiling.per_image.size(), 100u);
  o.geneval_per_task = 0;
  const auto without = evaluate_reference(evaluator(), corpus(), o);
  EXPECT_FALSE(without.geneval);
  EXPECT_TRUE(without.geneval_lines.empty());
  EXPECT_EQ(eval::to_json(without.overall), eval::to_json(ceiling.overall));
  o.geneval_per_task = 2;
  EXPECT_EQ(evaluate_reference(evaluator(), corpus(), o).geneval_lines, ceiling.geneval_lines);

  // `recap eval --ceiling` without --images: the ceiling alone, its GenEval lines beside it.
  test::TempDir dir("evaluate-ceiling-cli");
  auto r = test::run_recap("eval --threads 1 --no-fid --ceiling --evaluator " +
                           evaluator().string() + " --corpus " + corpus().string() +
                           " --set eval.bootstrap=20 --json " + (dir / "ceiling.json").string());
  ASSERT_EQ(r.status, 0) << r.output;
  EXPECT_THAT(r.output, HasSubstr("ceiling: GenEval-style (our detector judging, 12 images)"));
  const auto json = nlohmann::json::parse(read_file(dir / "ceiling.json"));
  EXPECT_EQ(json.at("name"), "ceiling");
  EXPECT_EQ(json.at("geneval").at("images"), 12);
  EXPECT_EQ(read_jsonl(dir / "ceiling.geneval.jsonl").size(), 12u);
  auto neither = test::run_recap("eval --evaluator " + evaluator().string() + " --corpus " +
                                 corpus().string());
  EXPECT_EQ(neither.status, 2);
  EXPECT_THAT(neither.output, HasSubstr("give --images DIR, or --ceiling"));
}

// With a judge CLIP every image also gets its CLIP score against its prompt: the number
// clip_scores gives for those images and prompts (to float32 precision), in the summary (mean, interval), the
// per-image file, the JSON report, the printed table and the paired comparison.
TEST_F(Evaluate, JudgeClipScoresEveryImageAgainstItsPrompt) {
  test::TempDir dir("evaluate-clip");
  corpus::train_corpus_tokenizer(corpus(), dir / "tok.model",
                                 corpus::tokenizer_options(corpus::corpus_config(corpus())));
  train_clip(corpus(), dir / "tok.model", {}, dir / "judge",
             Config::load("smoke", {"clip.data=renders", "clip.steps=4"}), 1);
  auto o = options();
  o.fid = false;
  o.clip = dir / "judge";
  const auto report = evaluate_images(renders(), evaluator(), corpus(), o);
  ASSERT_EQ(report.per_image.size(), 100u);
  EXPECT_TRUE(report.clip_judge.contains("short_captions"));

  auto judge = load_clip_judge(dir / "judge");
  std::vector<data::DecodedSample> decoded;
  std::vector<std::string> prompts;
  for (const auto& r : report.per_image) {
    data::DecodedSample sample;
    sample.image = *data::decode_image(read_file(renders() / r.file), {}).image;
    decoded.push_back(std::move(sample));
    prompts.push_back(r.image.id.prompt);
  }
  const auto direct = clip_scores(judge, data::to_tensor_batch(decoded).images, prompts, 7);
  double sum = 0;
  for (size_t i = 0; i < direct.size(); ++i) {
    const auto& got = report.per_image[i].score.clip_score;
    ASSERT_TRUE(got.has_value());
    EXPECT_NEAR(*got, direct[i], 1e-4);  // float32 at another batch size
    EXPECT_GE(*got, 0.0);
    EXPECT_LE(*got, 100.0);
    sum += *got;
  }
  ASSERT_TRUE(report.overall.clip_score.value.has_value());
  EXPECT_NEAR(*report.overall.clip_score.value, sum / 100, 1e-9);
  EXPECT_EQ(report.overall.clip_score.n, 100);
  ASSERT_TRUE(report.overall.clip_score.ci.has_value());

  // The per-image file keeps it; the paired comparison of the set with itself is 0.
  const auto written = eval::write_image_results_beside(dir / "arm.json", report.per_image);
  const auto results = eval::read_image_results(written);
  std::vector<eval::ImageScore> scores;
  for (const auto& r : results) scores.push_back(r.score);
  EXPECT_NEAR(*scores[17].clip_score, *report.per_image[17].score.clip_score, 1e-12);
  const auto paired = eval::compare_paired(scores, scores, {50, 0.95, 1});
  ASSERT_TRUE(paired.clip_score.value.has_value());
  EXPECT_DOUBLE_EQ(*paired.clip_score.value, 0.0);
  EXPECT_THAT(format_eval_table({report}), HasSubstr("CLIP score"));
  EXPECT_FALSE(to_json(report)["clip_judge"].is_null());
  // Without a judge there is no column.
  o.clip.reset();
  EXPECT_THAT(format_eval_table({evaluate_images(renders(), evaluator(), corpus(), o)}),
              Not(HasSubstr("CLIP score")));

  const auto r = test::run_recap("eval --threads 1 --no-fid --images " + renders().string() +
                                 " --evaluator " + evaluator().string() + " --corpus " +
                                 corpus().string() + " --clip " + (dir / "judge").string());
  ASSERT_EQ(r.status, 0) << r.output;
  EXPECT_THAT(r.output, AllOf(HasSubstr("CLIP score"), HasSubstr("judge CLIP: image -> caption")));
  const auto bad = test::run_recap("eval --no-fid --images " + renders().string() +
                                   " --evaluator " + evaluator().string() + " --corpus " +
                                   corpus().string() + " --clip " + dir.path().string());
  EXPECT_EQ(bad.status, 2) << bad.output;
  EXPECT_THAT(bad.output, HasSubstr("tokenizer.model: missing"));
}

// With InceptionV3 weights, FID/KID (and the floor) are computed on its pool3 features; the
// prompt metrics still come from the evaluator. Random weights on six eval scenes keep it
// cheap; the set against itself is ~0, fresh renders are not.
TEST_F(Evaluate, InceptionFeaturesReplaceTheEvaluatorsForFid) {
  test::TempDir dir("eval-inception");
  corpus::make_corpus(Config::load("smoke", {"corpus.eval_samples=6"}), dir / "corpus", 2);
  write_render_folder(dir / "corpus", dir / "renders");
  torch::manual_seed(0);
  models::InceptionV3 net;
  {
    // He-normal convolutions keep the signal alive through the network (see test_inception).
    torch::NoGradGuard no_grad;
    for (auto& p : net->parameters())
      if (p.dim() == 4) p.normal_(0, std::sqrt(2.0 / static_cast<double>(p[0].numel())));
  }
  save_module(dir / "inception.safetensors", *net);

  auto o = evaluate_settings(corpus::corpus_config(dir / "corpus"));
  o.metrics.bootstrap_samples = 10;
  o.kid.subsets = 5;
  o.inception = dir / "inception.safetensors";
  const auto with = evaluate_images(dir / "renders", evaluator(), dir / "corpus", o);
  o.inception.reset();
  const auto without = evaluate_images(dir / "renders", evaluator(), dir / "corpus", o);
  ASSERT_TRUE(with.fid && with.fid_floor && without.fid);
  EXPECT_EQ(with.fid->features, "inception-v3");
  EXPECT_EQ(without.fid->features, "evaluator");
  EXPECT_EQ(to_json(with)["fid"]["features"], "inception-v3");
  EXPECT_GT(with.fid_floor->fid, 0);
  EXPECT_LT(std::abs(with.fid->fid), 1e-6 * with.fid_floor->fid);
  EXPECT_NE(with.fid_floor->fid, without.fid_floor->fid);
  EXPECT_EQ(eval::to_json(with.overall), eval::to_json(without.overall));

  o.inception = dir / "missing.safetensors";
  EXPECT_THAT([&] { evaluate_images(dir / "renders", evaluator(), dir / "corpus", o); },
              ThrowsMessage<Error>(HasSubstr("missing.safetensors")));
}

}  // namespace
}  // namespace recap::stages
