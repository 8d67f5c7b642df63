// The experiment report (stages/report.h) on a hand-made run folder with known numbers.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <algorithm>
#include <regex>
#include <string>

#include <nlohmann/json.hpp>

#include "core/atomic_file.h"
#include "core/config.h"
#include "core/error.h"
#include "core/safetensors.h"
#include "data/image.h"
#include "eval/image_results.h"
#include "stages/corpus.h"
#include "stages/competence.h"
#include "stages/report.h"
#include "test_util.h"

namespace recap {
namespace {

namespace fs = std::filesystem;
using nlohmann::json;
using stages::RunLayout;

json stat(double value, double lo, double hi, int n = 100) {
  return {{"value", value}, {"ci", {lo, hi}}, {"n", n}};
}

// A PromptMetrics JSON: soa_i and count_error as given, the rest fixed.
json metrics(int images, json soa_i, json count_error) {
  return {{"images", images},
          {"soa_c", stat(0.9, 0.88, 0.92)},
          {"soa_i", std::move(soa_i)},
          {"count_error", std::move(count_error)},
          {"count_exact", stat(0.5, 0.45, 0.55)},
          {"position", stat(0.6, 0.55, 0.65)},
          {"position_given_found", {{"value", nullptr}, {"ci", nullptr}, {"n", 0}}},
          {"colour_binding", stat(0.7, 0.65, 0.75)}};
}

json fid(double value, double kid) {
  return {{"fid", value},
          {"kid",
           {{"mean", kid},
            {"std", 0.001},
            {"std_error", 0.0001},
            {"subsets", 100},
            {"subset_size", 50}}},
          {"n_generated", 200},
          {"n_reference", 200}};
}

json eval_report(const std::string& name, json soa_i, json count_error, json fid_json) {
  json overall = metrics(200, soa_i, count_error);
  return {{"name", name},
          {"images", 200},
          {"overall", overall},
          {"suites", {{"counting", metrics(50, soa_i, count_error)}}},
          {"fid", std::move(fid_json)},
          {"fid_floor", fid(0.5, 0.0002)},
          {"evaluator_accuracy", json::object()}};
}

void write_json(const fs::path& path, const json& j) { write_file_atomic(path, j.dump(2)); }

void write_png(const fs::path& path, uint8_t shade) {
  data::Image image{32, 32, 3, std::vector<uint8_t>(32 * 32 * 3, shade)};
  write_file_atomic(path, data::encode_png(image));
}

// Samples for one arm and suite: `prompts` images with images.jsonl.
void write_samples(const RunLayout& layout, const std::string& arm, const std::string& suite,
                   int prompts) {
  const fs::path dir = layout.samples(arm, suite);
  std::string lines;
  for (int i = 0; i < prompts; ++i) {
    const std::string file = "img-" + std::to_string(i) + ".png";
    write_png(dir / file, static_cast<uint8_t>(40 * i));
    lines += json{{"file", file},
                  {"prompt", "two red stars number " + std::to_string(i)},
                  {"suite", suite},
                  {"target", nullptr},
                  {"seed", i},
                  {"sampler", "ddim"},
                  {"steps", 20},
                  {"guidance", 3.0},
                  {"model", "t2i.safetensors"}}
                 .dump() +
             "\n";
  }
  write_file_atomic(dir / "images.jsonl", lines);
}

// Per-image results beside eval/ARM.json: 200 images ("prompt i", seed i) each prompting a
// circle and a square (one each, coloured) and one relation between them. Every image draws
// the circle; the images listed draw the square too. No relation ever holds.
void write_image_results(const RunLayout& layout, const std::string& arm,
                         const std::vector<int>& with_square, int images = 200) {
  std::vector<eval::ImageResult> results(static_cast<size_t>(images));
  for (int i = 0; i < images; ++i) {
    auto& r = results[static_cast<size_t>(i)];
    const bool square =
        std::find(with_square.begin(), with_square.end(), i) != with_square.end();
    r.file = "counting/" + std::to_string(i) + ".png";
    r.image.id = {"prompt " + std::to_string(i), static_cast<uint64_t>(i)};
    r.score.shapes = {{"circle", true}, {"square", square}};
    r.score.groups = r.score.counted = r.score.coloured = 2;
    r.score.groups_found = r.score.count_exact = r.score.bound = 1 + square;
    r.score.count_abs_error = 1 - square;
    r.score.relations = 1;
    r.score.relations_found = square;
  }
  eval::write_image_results_beside(layout.eval_json(arm), results);
}

std::vector<int> every_fifth() {
  std::vector<int> out;
  for (int i = 0; i < 200; i += 5) out.push_back(i);
  return out;
}

// A run with arms alt and recap evaluated, human not run; evaluator, ceiling, caption quality,
// samples for the counting suite, a t2i loss log and a manifest.
void make_run(const RunLayout& layout) {
  write_json(layout.eval_json("alt"),
             eval_report("alt", stat(0.789, 0.75, 0.80), stat(1.5, 1.4, 1.6), fid(20.0, 0.012)));
  write_json(layout.eval_json("recap"), eval_report("recap", stat(0.843, 0.821, 0.86),
                                                    stat(1.45, 1.35, 1.55), fid(15.0, 0.008)));
  // recap draws the square in a fifth of the images, alt in none.
  write_image_results(layout, "alt", {});
  write_image_results(layout, "recap", every_fifth());
  json ceiling = eval_report("ceiling", stat(0.99, 0.98, 1.0), stat(0.01, 0.0, 0.02), nullptr);
  write_json(layout.eval_json("ceiling"), ceiling);

  json accuracy = {{"images", 1000},          {"count_exact", 0.991}, {"shape", 0.995},
                   {"colour", 0.998},         {"precision", 0.97},    {"recall", 0.96},
                   {"centre_error_px", 0.42}, {"relation", 0.9},      {"image_exact", 0.95},
                   {"passes_gate", true}};
  write_json(layout.evaluator() / "evaluator_accuracy.json",
             {{"accuracy", accuracy}, {"accuracy_augmented", nullptr}});

  const auto source = [](const std::string& name, double recall, double words) {
    return json{{"name", name},
                {"captions", 500},
                {"missing", 0},
                {"unknown_keys", 0},
                {"mean_words", 7.25},
                {"median_words", 7},
                {"vocabulary", 120},
                {"shares",
                 {{"correct_shape", 0.5},
                  {"correct_binding", 0.4},
                  {"correct_count", 0.3},
                  {"correct_relation_or_position", 0.2},
                  {"wrong_fact", 0.1}}},
                {"precision", 0.8},
                {"recall", recall},
                {"eval_coverage", {{"words", words}, {"bigrams", 0.5}, {"trigrams", 0.25}}}};
  };
  write_json(layout.caption_quality_json(),
             {{"dir", "corpus"},
              {"eval_prompts", 400},
              {"eval_ngrams", {{"words", 60}, {"bigrams", 300}, {"trigrams", 700}}},
              {"sources", {source("alt", 0.123, 0.456), source("recap-long", 0.789, 0.987)}}});

  write_samples(layout, "alt", "counting", 3);
  write_samples(layout, "recap", "counting", 3);

  std::string log;
  for (int step = 10; step <= 200; step += 10)
    log += json{{"step", step}, {"loss", 1.0 / step}}.dump() + "\n";
  log += json{{"step", 200}, {"split", "validation"}, {"grid_seconds", 1.0}}.dump() + "\n";
  write_file_atomic(layout.t2i_metrics("alt"), log);

  write_json(
      layout.manifest(),
      {{"created", "2024-01-01T00:00:00Z"},
       {"seed", 1234},
       {"config_origin", "preset quick"},
       {"stages",
        {{"corpus", {{"status", "done"}, {"started", "2024-01-01T00:00:01Z"}, {"seconds", 75.0}}},
         {"t2i-alt",
          {{"status", "failed"},
           {"started", "2024-01-01T00:01:00Z"},
           {"seconds", 3.5},
           {"error", "out of memory"}}}}}});
}

stages::ReportOptions options() {
  stages::ReportOptions o;
  o.arms = {"alt", "recap", "human"};
  return o;
}

bool has_gnuplot() { return std::system("command -v gnuplot > /dev/null 2>&1") == 0; }

TEST(Report, TablesCarryIntervalsPaperNumbersAndNotRun) {
  test::TempDir tmp("report");
  RunLayout layout{tmp / "run"};
  make_run(layout);
  const auto result = stages::write_report(layout, options());
  ASSERT_TRUE(fs::exists(result.index_html));
  ASSERT_TRUE(fs::exists(result.report_md));
  const std::string html = read_file(result.index_html);
  const std::string md = read_file(result.report_md);
  for (const std::string* page : {&html, &md}) {
    // Our values with their intervals: SOA-I in percent, counting error as is, KID x 1000.
    EXPECT_NE(page->find("84.3 [82.1, 86.0]"), std::string::npos);
    EXPECT_NE(page->find("78.9 [75.0, 80.0]"), std::string::npos);
    EXPECT_NE(page->find("1.45 [1.35, 1.55]"), std::string::npos);
    EXPECT_NE(page->find("8.00 [7.80, 8.20]"), std::string::npos);  // recap's KID
    EXPECT_NE(page->find("15.00"), std::string::npos);              // recap's FID
    // The paper's numbers.
    for (const char* paper : {"17.87", "14.84", "78.90", "84.34", "1.44", "1.32", "57.60", "62.42"})
      EXPECT_NE(page->find(paper), std::string::npos) << paper;
    EXPECT_NE(page->find("Segalis"), std::string::npos);
    EXPECT_NE(page->find("not run"), std::string::npos);  // the human arm
    // recap minus alt, paired image by image: SOA-I +0.5 in 40 of 200 images (+10.0 points,
    // interval about +-2.8); counting error -1 per 2 groups there (-0.10); no relation holds in
    // either (+0.0 exactly, every permutation ties); position given found undefined for alt.
    EXPECT_NE(page->find("recap - alt: paired difference [95%]"), std::string::npos);
    EXPECT_NE(page->find("+10.0 [+7."), std::string::npos);
    EXPECT_NE(page->find("better, p "), std::string::npos);
    EXPECT_NE(page->find("-0.10 [-0.1"), std::string::npos);
    EXPECT_NE(page->find("+0.0 [+0.0, +0.0] no clear difference, p = 1.000"), std::string::npos);
    // KID: 8.00 - 12.00 with standard errors 0.1 each: -4.00 +- 1.96 * 0.141.
    EXPECT_NE(page->find("-4.00 [-4.28, -3.72] better (unpaired)"), std::string::npos);
    EXPECT_NE(page->find("paired bootstrap"), std::string::npos);
    EXPECT_EQ(page->find("not available"), std::string::npos);
    // Evaluator accuracy, ceiling, caption quality, coverage, wall times.
    EXPECT_NE(page->find("99.1"), std::string::npos);
    EXPECT_NE(page->find("99.0 [98.0, 100.0]"), std::string::npos);
    EXPECT_NE(page->find("78.9"), std::string::npos);
    EXPECT_NE(page->find("recap-long"), std::string::npos);
    EXPECT_NE(page->find("98.7"), std::string::npos);  // recap-long's word coverage
    EXPECT_NE(page->find("1m 15s"), std::string::npos);
    EXPECT_NE(page->find("out of memory"), std::string::npos);
    EXPECT_NE(page->find("1234"), std::string::npos);
    EXPECT_NE(page->find("Suite: counting"), std::string::npos);
  }
  EXPECT_NE(result.main_table.find("84.3 [82.1, 86.0]"), std::string::npos);
  EXPECT_NE(result.main_table.find("not run"), std::string::npos);
  // 40 pairs all one way: no permutation of 1000 reaches it, p = 1/1001.
  EXPECT_NE(md.find("better, p < 0.001"), std::string::npos);
  EXPECT_NE(html.find("better, p &lt; 0.001"), std::string::npos);
  EXPECT_NE(result.main_table.find("17.87"), std::string::npos);
  EXPECT_NE(result.main_table.find("+10.0 [+7."), std::string::npos);
}

// With an oracle arm, each RECAP arm's share of the alt -> oracle gap, per metric; without
// one, no such table.
TEST(Report, GapClosedNeedsAnOracleArm) {
  test::TempDir tmp("report-gap");
  RunLayout layout{tmp / "run"};
  make_run(layout);
  EXPECT_EQ(read_file(stages::write_report(layout, options()).report_md).find("gap closed"),
            std::string::npos);  // the human arm did not run
  write_json(layout.eval_json("human"), eval_report("human", stat(0.900, 0.88, 0.92),
                                                    stat(1.30, 1.20, 1.40), fid(10.0, 0.005)));
  const std::string md = read_file(stages::write_report(layout, options()).report_md);
  ASSERT_NE(md.find("share of the alt -> human gap closed (%)"), std::string::npos);
  // SOA-I: (84.3 - 78.9) / (90.0 - 78.9) = 49%; counting error: (1.45 - 1.5) / (1.3 - 1.5) =
  // 25%; SOA-C is 0.9 in every arm: no gap, no share.
  const auto table = md.find("gap closed (%)");
  const auto row = [&](const std::string& label) {
    const auto at = md.find("| " + label, table);
    return at == std::string::npos ? std::string() : md.substr(at, md.find('\n', at) - at);
  };
  EXPECT_THAT(row("object accuracy SOA-I (%)"), ::testing::HasSubstr("| 49"));
  EXPECT_THAT(row("counting error (lower is better)"), ::testing::HasSubstr("| 25"));
}

TEST(Report, PairedColumnNeedsBothArmsPerImageResults) {
  test::TempDir tmp("report");
  RunLayout layout{tmp / "run"};
  make_run(layout);
  fs::remove(layout.eval_images("alt"));
  const auto result = stages::write_report(layout, options());
  const std::string md = read_file(result.report_md);
  EXPECT_NE(md.find("Paired differences: not available: " + layout.eval_images("alt").string() +
                    " missing"),
            std::string::npos);
  EXPECT_EQ(md.find("better, p"), std::string::npos);
  EXPECT_NE(md.find("(unpaired)"), std::string::npos) << "KID needs no per-image results";
}

TEST(Report, UnpairedPerImageResultsAreRefusedByName) {
  using ::testing::HasSubstr;
  using ::testing::ThrowsMessage;
  test::TempDir tmp("report");
  RunLayout layout{tmp / "run"};
  make_run(layout);
  // Other images than the summary counts: not the same evaluation.
  write_image_results(layout, "recap", every_fifth(), 199);
  EXPECT_THAT([&] { stages::write_report(layout, options()); },
              ThrowsMessage<Error>(HasSubstr("recap.images.jsonl: 199 images, but")));
  // As many, but another prompt at one index.
  write_image_results(layout, "recap", every_fifth());
  auto lines = read_file(layout.eval_images("recap"));
  lines.replace(lines.find("\"prompt 3\""), 10, "\"prompt X\"");
  write_file_atomic(layout.eval_images("recap"), lines);
  EXPECT_THAT([&] { stages::write_report(layout, options()); },
              ThrowsMessage<Error>(HasSubstr("alt.images.jsonl vs ")));
  EXPECT_THAT([&] { stages::write_report(layout, options()); },
              ThrowsMessage<Error>(HasSubstr("image 3 is \"prompt 3\" (seed 3) in the baseline "
                                             "but \"prompt X\" (seed 3) in the treatment")));
  // A broken line is named with its record.
  write_file_atomic(layout.eval_images("recap"), "{\"file\": 1}\n");
  EXPECT_THAT([&] { stages::write_report(layout, options()); },
              ThrowsMessage<Error>(HasSubstr("recap.images.jsonl: record 1")));
}

TEST(Report, TreatmentIsTheRunsFirstRecapArm) {
  EXPECT_EQ(stages::treatment_arm({"alt", "recap-mix"}), "recap-mix");
  EXPECT_EQ(stages::treatment_arm({"alt", "recap", "recap-mix"}), "recap");
  EXPECT_EQ(stages::treatment_arm({"human-mix", "recap-mix", "recap"}), "recap-mix");
  EXPECT_EQ(stages::treatment_arm({"alt", "human"}), "recap");
}

TEST(Report, EveryImageResolvesInsideTheReport) {
  test::TempDir tmp("report");
  RunLayout layout{tmp / "run"};
  make_run(layout);
  const auto result = stages::write_report(layout, options());
  const std::string html = read_file(result.index_html);
  const std::regex img("<img src=\"([^\"]+)\"");
  int images = 0;
  for (auto it = std::sregex_iterator(html.begin(), html.end(), img); it != std::sregex_iterator();
       ++it, ++images) {
    const fs::path src = (*it)[1].str();
    EXPECT_TRUE(src.is_relative()) << src;
    EXPECT_EQ(src.string().find(".."), std::string::npos) << src;
    EXPECT_TRUE(fs::is_regular_file(layout.report() / src)) << src;
  }
  EXPECT_GE(images, 1);                             // the grid, and the curve with gnuplot
  EXPECT_EQ(html.find("http"), std::string::npos);  // nothing external
}

TEST(Report, GridHasOneRowPerPromptAndOneColumnPerArm) {
  test::TempDir tmp("report");
  RunLayout layout{tmp / "run"};
  make_run(layout);
  auto o = options();
  o.grid_prompts = 2;  // of the 3 sampled
  stages::write_report(layout, o);
  const auto decoded = data::decode_image(read_file(layout.report() / "grid-counting.png"));
  ASSERT_TRUE(decoded.image);
  using stages::kGridCellPx, stages::kGridMarginPx;
  EXPECT_EQ(decoded.image->width,
            2 * kGridMarginPx + stages::kGridLabelPx + 3 * (kGridMarginPx + kGridCellPx));
  EXPECT_EQ(decoded.image->height,
            2 * kGridMarginPx + stages::kGridHeaderPx + 2 * (kGridMarginPx + kGridCellPx));
  // The alt column's first cell shows its first sample (shade 0); the human column is grey.
  const int y = kGridMarginPx + stages::kGridHeaderPx + kGridMarginPx + kGridCellPx / 2;
  const int alt_x = 2 * kGridMarginPx + stages::kGridLabelPx + kGridCellPx / 2;
  const int human_x = alt_x + 2 * (kGridMarginPx + kGridCellPx) - kGridCellPx / 2 + 2;
  EXPECT_EQ(decoded.image->at(y, alt_x, 0), 0);
  EXPECT_EQ(decoded.image->at(y, human_x, 0), decoded.image->at(y, human_x, 2));
  EXPECT_GT(decoded.image->at(y, human_x, 0), 200);
}

TEST(Report, TrainingCurveIsPlottedWithGnuplot) {
  ASSERT_TRUE(has_gnuplot()) << "gnuplot is not installed: run scripts/install-deps.sh";
  test::TempDir tmp("report");
  RunLayout layout{tmp / "run"};
  make_run(layout);
  const auto result = stages::write_report(layout, options());
  EXPECT_EQ(result.plots_skipped, 0);
  const auto decoded = data::decode_image(read_file(layout.report() / "t2i_loss.png"));
  ASSERT_TRUE(decoded.image);
  EXPECT_GT(decoded.image->width, 100);
  // No scratch files are left behind.
  for (const auto& entry : fs::directory_iterator(layout.report()))
    EXPECT_NE(entry.path().filename().string().front(), '.') << entry.path();
}

TEST(Report, SampleEfficiencyNeedsTheFinalModelsStep) {
  ASSERT_TRUE(has_gnuplot()) << "gnuplot is not installed: run scripts/install-deps.sh";
  test::TempDir tmp("report");
  RunLayout layout{tmp / "run"};
  make_run(layout);
  const std::string md_before = read_file(stages::write_report(layout, options()).report_md);
  EXPECT_NE(md_before.find("intermediate checkpoints: not run."), std::string::npos);

  write_json(layout.eval_json("alt", 100),
             eval_report("alt-step-100", stat(0.5, 0.4, 0.6), stat(2.0, 1.9, 2.1), nullptr));
  const float weight = 1.0f;
  const std::string_view bytes(reinterpret_cast<const char*>(&weight), sizeof weight);
  // The final model says it was trained to step 200: the curve is 100 -> 200.
  save_safetensors(layout.t2i_weights("alt"), {{"w", DType::F32, {1}, bytes}},
                   {{"steps", "200"}});
  const auto result = stages::write_report(layout, options());
  EXPECT_EQ(result.plots_skipped, 0);
  EXPECT_NE(read_file(result.report_md).find("(sample_efficiency.png)"), std::string::npos);
  EXPECT_TRUE(data::decode_image(read_file(layout.report() / "sample_efficiency.png")).image);

  // A model without its step is named, not guessed.
  save_safetensors(layout.t2i_weights("alt"), {{"w", DType::F32, {1}, bytes}}, {});
  try {
    stages::write_report(layout, options());
    FAIL() << "expected recap::Error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("t2i.safetensors"), std::string::npos) << e.what();
  }
}

TEST(Report, CaptionExamplesShowEverySource) {
  test::TempDir tmp("report");
  RunLayout layout{tmp / "run"};
  corpus::make_corpus(Config::load("smoke", {"corpus.web_samples=12", "corpus.shard_size=6",
                                             "corpus.eval_samples=4", "corpus.human_samples=4",
                                             "corpus.prompts_per_suite=2"}),
                      layout.corpus(), 1);
  const std::string k0 = corpus::sample_key(corpus::Split::Web, 0);
  const std::string k1 = corpus::sample_key(corpus::Split::Web, 1);
  // RECAP captions for the first two samples, a stage-1 caption for the first only.
  write_file_atomic(
      layout.recaption("long") / "web-00000.recap.jsonl",
      json{{"key", k0}, {"caption", "recap says two stars"}, {"kind", "long"}}.dump() + "\n" +
          json{{"key", k1}, {"caption", "recap says a heart"}, {"kind", "long"}}.dump() + "\n");
  write_file_atomic(layout.caption_quality() / "stage1.jsonl",
                    json{{"key", k0}, {"caption", "stage one says shapes"}}.dump() + "\n");
  auto o = options();
  o.caption_examples = 3;
  const auto result = stages::write_report(layout, o);
  const std::string html = read_file(result.index_html);
  for (const auto& key : {k0, k1, corpus::sample_key(corpus::Split::Web, 2)}) {
    EXPECT_NE(html.find("<img src=\"examples/" + key + ".png\""), std::string::npos) << key;
    const auto image = data::decode_image(read_file(layout.report() / "examples" / (key + ".png")));
    ASSERT_TRUE(image.image);
    EXPECT_EQ(image.image->width, 32);
  }
  EXPECT_NE(html.find("recap says two stars"), std::string::npos);
  EXPECT_NE(html.find("recap says a heart"), std::string::npos);
  EXPECT_NE(html.find("stage one says shapes"), std::string::npos);
  EXPECT_NE(html.find("(none)"), std::string::npos);  // no stage-1 caption for the others
  EXPECT_EQ(html.find("web-000000003"), std::string::npos);
}

TEST(Report, EmptyRunIsAllNotRun) {
  test::TempDir tmp("report");
  RunLayout layout{tmp / "run"};
  fs::create_directories(layout.root);
  const auto result = stages::write_report(layout, options());
  const std::string md = read_file(result.report_md);
  EXPECT_NE(md.find("Samples: not run."), std::string::npos);
  EXPECT_NE(md.find("Caption quality: not run."), std::string::npos);
  EXPECT_NE(md.find("manifest.json: not run."), std::string::npos);
  EXPECT_NE(result.main_table.find("not run"), std::string::npos);
}

TEST(Report, CompetenceTableShowsEveryProbedArm) {
  test::TempDir tmp("report");
  RunLayout layout{tmp / "run"};
  make_run(layout);
  auto probe = [&](const std::string& arm, double soa_c, double colour) {
    eval::PromptMetrics m;
    m.images = 100;
    m.soa_c = {soa_c, std::nullopt, 7};
    m.colour_binding = {colour, std::nullopt, 230};
    write_json(stages::probe_path(layout.t2i(arm)),
               {{"step", 900}, {"train_seconds", 612.5}, {"images", 100},
                {"competent", stages::competent(m)}, {"metrics", eval::to_json(m)}});
  };
  probe("alt", 0.853, 0.612);
  probe("recap", 0.71, 0.65);
  const auto result = stages::write_report(layout, options());
  const std::string md = read_file(result.report_md);
  EXPECT_NE(md.find("Competence"), std::string::npos);
  for (const std::string* text : {&md, &result.competence_table}) {
    EXPECT_NE(text->find("85.3"), std::string::npos);
    EXPECT_NE(text->find("61.2"), std::string::npos);
    EXPECT_NE(text->find("71.0"), std::string::npos);
    EXPECT_NE(text->find("yes"), std::string::npos);  // alt
    EXPECT_NE(text->find("no"), std::string::npos);   // recap
  }
  // A run trained without probes has no competence table.
  test::TempDir plain("report");
  RunLayout other{plain / "run"};
  make_run(other);
  EXPECT_TRUE(stages::write_report(other, options()).competence_table.empty());
  // A probe record without its metrics is refused by name.
  write_json(stages::probe_path(layout.t2i("recap")),
             {{"step", 900}, {"competent", false}, {"metrics", json::object()}});
  EXPECT_THAT([&] { stages::write_report(layout, options()); },
              ::testing::ThrowsMessage<Error>(::testing::HasSubstr("probe.json")));
}

TEST(Report, MalformedEvalReportNamesTheFile) {
  test::TempDir tmp("report");
  RunLayout layout{tmp / "run"};
  make_run(layout);
  json bad = eval_report("recap", stat(0.8, 0.7, 0.9), stat(1, 1, 1), nullptr);
  bad["overall"]["soa_i"]["value"] = "high";
  write_json(layout.eval_json("recap"), bad);
  try {
    stages::write_report(layout, options());
    FAIL() << "expected recap::Error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("recap.json"), std::string::npos) << e.what();
  }
  write_file_atomic(layout.eval_json("recap"), "{\"images\": ");
  EXPECT_THROW(stages::write_report(layout, options()), Error);
}

}  // namespace
}  // namespace recap
