// `recap run` end to end on the smoke preset through the real binary: every stage's output,
// the report and a complete metrics JSON; `recap status`; and a run killed in the middle that
// resumes to exactly the results of an uninterrupted one.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include <algorithm>
#include <cmath>
#include <fstream>
#include <iterator>

#include "core/atomic_file.h"
#include "core/safetensors.h"
#include "stages/run_layout.h"
#include "test_util.h"

namespace recap {
namespace {

namespace fs = std::filesystem;
using ::testing::AllOf;
using ::testing::HasSubstr;

const std::vector<std::string> kArms = {"alt", "recap"};
const std::string kRunFlags = "--threads 1 run --preset smoke --arms alt,recap --runs-dir ";

nlohmann::json read_json(const fs::path& path) { return nlohmann::json::parse(read_file(path)); }

// The metrics every eval JSON must carry, each a {"value", "ci", "n"} object: a number inside
// its interval when something was measured (n > 0), null only when nothing was (n == 0). The
// keys in `measured` must have been measured: every prompt set asks for objects, and the
// smoke suites together state counts, relations and colours.
void expect_complete_metrics(const nlohmann::json& metrics, const std::string& where,
                             const std::vector<std::string>& measured = {"soa_c", "soa_i"}) {
  for (const char* key : {"soa_c", "soa_i", "count_error", "count_exact", "position",
                          "position_given_found", "colour_binding", "clip_score"}) {
    const std::string what = where + " " + key;
    ASSERT_TRUE(metrics.contains(key)) << where << " lacks " << key;
    const auto& m = metrics[key];
    ASSERT_TRUE(m.contains("value") && m.contains("ci") && m["n"].is_number_unsigned()) << what;
    if (m["n"].get<int64_t>() == 0) {
      EXPECT_TRUE(m["value"].is_null() && m["ci"].is_null()) << what << ": " << m;
      EXPECT_EQ(std::count(measured.begin(), measured.end(), key), 0) << what << " not measured";
      continue;
    }
    ASSERT_TRUE(m["value"].is_number() && m["ci"].is_array() && m["ci"].size() == 2)
        << what << ": " << m;
    const double value = m["value"], lo = m["ci"][0], hi = m["ci"][1];
    EXPECT_TRUE(std::isfinite(value) && lo <= value && value <= hi) << what << ": " << m;
  }
}

const std::vector<std::string> kAllMeasured = {"soa_c",    "soa_i",   "count_error",
                                               "count_exact", "position", "colour_binding"};
// An arm's images are also scored by the smoke preset's judge CLIP (run.judge_clip).
const std::vector<std::string> kArmMeasured = {"soa_c",       "soa_i",    "count_error",
                                               "count_exact", "position", "colour_binding",
                                               "clip_score"};

// Same keys, strings and integers; floating-point numbers within 1e-9 relative. The detector's
// metrics come out bit-identical, but FID and KID go through LAPACK's eigensolver, whose last
// bits were seen to differ between two calls on an AVX2-only EPYC (issue #14); one image more
// or less in any metric moves it by far more than 1e-9.
void expect_same_results(const nlohmann::json& a, const nlohmann::json& b,
                         const std::string& where) {
  if (a.is_number_float() || b.is_number_float()) {
    ASSERT_TRUE(a.is_number() && b.is_number()) << where << ": " << a << " vs " << b;
    const double x = a, y = b;
    EXPECT_LE(std::abs(x - y), 1e-9 * std::max({1.0, std::abs(x), std::abs(y)}))
        << where << ": " << x << " vs " << y;
  } else if (a.is_object() && b.is_object()) {
    ASSERT_EQ(a.size(), b.size()) << where;
    for (const auto& [key, value] : a.items()) {
      ASSERT_TRUE(b.contains(key)) << where << " lacks " << key;
      expect_same_results(value, b[key], where + "." + key);
    }
  } else if (a.is_array() && b.is_array()) {
    ASSERT_EQ(a.size(), b.size()) << where;
    for (size_t i = 0; i < a.size(); ++i)
      expect_same_results(a[i], b[i], where + "[" + std::to_string(i) + "]");
  } else {
    EXPECT_EQ(a, b) << where;
  }
}

// The main table `recap run` prints last: the paragraph before its "report: " line.
std::string main_table(const std::string& output) {
  const auto report = output.rfind("\nreport: ");
  if (report == std::string::npos) return "";
  const auto last = output.find_last_not_of('\n', report);  // the table's last character
  const auto begin = output.rfind("\n\n", last);
  return begin == std::string::npos ? "" : output.substr(begin + 2, last - begin - 1);
}

TEST(RunSmoke, EveryStageReportAndStatus) {
  test::TempDir dir("run");
  auto r = test::run_recap(kRunFlags + dir.path().string() + " --name s");
  ASSERT_EQ(r.status, 0) << r.output;
  const stages::RunLayout layout{dir / "s"};
  EXPECT_THAT(r.output, HasSubstr("report: " + (layout.report() / "index.html").string()));

  EXPECT_TRUE(fs::exists(layout.corpus() / "corpus.json"));
  EXPECT_TRUE(fs::exists(layout.tokenizer()));
  EXPECT_TRUE(fs::exists(layout.evaluator() / "evaluator.safetensors"));
  EXPECT_TRUE(fs::exists(layout.vision() / "evaluator.safetensors"));  // the captioner's encoder
  EXPECT_TRUE(fs::exists(layout.captioner_stage1()));
  EXPECT_TRUE(fs::exists(layout.captioner_final()));
  EXPECT_TRUE(fs::exists(layout.recaption("long") / "web-00000.recap.jsonl"));
  EXPECT_FALSE(fs::exists(layout.recaption("short")));  // no recap-mix arm asked for
  EXPECT_TRUE(fs::exists(layout.caption_quality_json()));
  EXPECT_TRUE(fs::exists(layout.judge_clip() / "clip.safetensors"));
  EXPECT_EQ(Safetensors::load(layout.judge_clip() / "clip.safetensors").metadata().at("captions"),
            "renders");
  EXPECT_TRUE(fs::exists(layout.report() / "report.md"));
  for (const auto& arm : kArms) {
    EXPECT_TRUE(fs::exists(layout.t2i_weights(arm))) << arm;
    EXPECT_TRUE(fs::exists(layout.samples(arm) / "images.jsonl")) << arm;
    auto eval = read_json(layout.eval_json(arm));
    EXPECT_EQ(eval["name"], arm);
    expect_complete_metrics(eval["overall"], arm, kArmMeasured);
    EXPECT_TRUE(eval["clip_judge"].contains("short_captions")) << arm;
    for (const char* suite : {"counting", "position", "colour_binding", "multi_object"})
      expect_complete_metrics(eval["suites"][suite], arm + "/" + suite);
    EXPECT_TRUE(eval["fid"].is_object()) << arm;
    // Image by image beside the summary, for the report's paired comparison.
    std::ifstream per_image(layout.eval_images(arm));
    const auto lines = std::count(std::istreambuf_iterator<char>(per_image),
                                  std::istreambuf_iterator<char>(), '\n');
    EXPECT_EQ(lines, eval["images"].get<int64_t>()) << arm;

    // Sample efficiency (run.checkpoint_evals = 1, checkpoint.every = 3 of 6 steps): the step-3
    // checkpoint is sampled with the same prompts and seeds, from other weights.
    auto at3 = read_json(layout.eval_json(arm, 3));
    EXPECT_EQ(at3["name"], arm + "-step-3");
    expect_complete_metrics(at3["overall"], arm + " at step 3");
    EXPECT_FALSE(fs::exists(layout.eval_json(arm, 6)));  // the final model is eval/ARM.json
    const auto first_line = [](const fs::path& list) {
      const std::string text = read_file(list);
      return nlohmann::json::parse(text.substr(0, text.find('\n')));
    };
    const auto final_image = first_line(layout.samples(arm) / "images.jsonl");
    const auto step3_image = first_line(layout.checkpoint_samples(arm, 3) / "images.jsonl");
    EXPECT_EQ(step3_image["prompt"], final_image["prompt"]);
    EXPECT_EQ(step3_image["seed"], final_image["seed"]);
    const std::string file = final_image["file"];
    EXPECT_NE(read_file(layout.checkpoint_samples(arm, 3) / file),
              read_file(layout.samples(arm) / file));  // other weights, another image
  }
  expect_complete_metrics(read_json(layout.eval_json("ceiling"))["overall"], "ceiling",
                          kArmMeasured);  // the renders against their own captions, for CLIP
  EXPECT_TRUE(fs::exists(layout.eval_images("ceiling")));
  const auto report = read_file(layout.report() / "report.md");
  EXPECT_THAT(report, ::testing::Not(HasSubstr("intermediate checkpoints: not run")));
  EXPECT_THAT(report, HasSubstr("recap - alt: paired difference"));
  // The main table and each of the four suites' tables have the paired column.
  size_t paired_tables = 0;
  for (size_t at = report.find("recap - alt: paired difference"); at != std::string::npos;
       at = report.find("recap - alt: paired difference", at + 1))
    ++paired_tables;
  EXPECT_EQ(paired_tables, 5u);
  EXPECT_THAT(report, HasSubstr("CLIP score (judge CLIP, 0-100)"));
  EXPECT_THAT(report, HasSubstr("Pairwise faithfulness"));
  EXPECT_THAT(report, HasSubstr("The judge CLIP behind the CLIP score (judge-clip/: 6 steps"));
  EXPECT_THAT(report, ::testing::Not(HasSubstr("Paired differences: not available")));

  auto manifest = read_json(layout.manifest());
  for (const auto& [name, record] : manifest["stages"].items())
    EXPECT_EQ(record["status"], "done") << name;

  auto status = test::run_recap("status s --runs-dir " + dir.path().string());
  ASSERT_EQ(status.status, 0) << status.output;
  EXPECT_THAT(status.output, HasSubstr("t2i-recap"));
  EXPECT_THAT(status.output, ::testing::Not(HasSubstr("pending")));

  // A second run skips every stage and gives the same table.
  auto again = test::run_recap(kRunFlags + dir.path().string() + " --name s");
  ASSERT_EQ(again.status, 0) << again.output;
  EXPECT_THAT(again.output, HasSubstr("resuming"));
  EXPECT_THAT(again.output, HasSubstr("stage t2i-alt: up to date, skipped"));
  EXPECT_THAT(again.output, HasSubstr("stage eval/recap: up to date, skipped"));
}

TEST(RunSmoke, KilledRunResumesToTheSameResults) {
  test::TempDir dir("run-kill");
  const stages::RunLayout killed{dir / "killed"};
  {
    // Kill it once the captioner is trained, in the middle of the later stages.
    test::Child child(kRunFlags + dir.path().string() + " --name killed", dir / "first.log");
    ASSERT_TRUE(child.wait_for([&] { return fs::exists(killed.captioner_final()); },
                               std::chrono::seconds(300)))
        << read_file(dir / "first.log");
    child.kill();
  }
  EXPECT_FALSE(fs::exists(killed.eval_json("recap")));
  auto resumed = test::run_recap(kRunFlags + dir.path().string() + " --name killed");
  ASSERT_EQ(resumed.status, 0) << resumed.output;
  EXPECT_THAT(resumed.output, HasSubstr("stage corpus: up to date, skipped"));

  auto straight = test::run_recap(kRunFlags + dir.path().string() + " --name straight");
  ASSERT_EQ(straight.status, 0) << straight.output;
  const stages::RunLayout uninterrupted{dir / "straight"};
  // The results, less the evaluator's training wall time that every eval JSON quotes.
  auto results = [](const fs::path& path) {
    auto json = read_json(path);
    json["evaluator_accuracy"].erase("train_seconds");
    return json;
  };
  // The table the user reads: the same numbers, as the same text.
  const std::string table = main_table(resumed.output);
  EXPECT_THAT(table, AllOf(HasSubstr("alt"), HasSubstr("recap"), HasSubstr("SOA-C"),
                           ::testing::Not(HasSubstr("report: "))));
  EXPECT_EQ(table, main_table(straight.output));
  for (const auto& arm : kArms) {
    expect_same_results(results(killed.eval_json(arm)), results(uninterrupted.eval_json(arm)),
                        arm);
    expect_same_results(results(killed.eval_json(arm, 3)),
                        results(uninterrupted.eval_json(arm, 3)), arm + "-step-3");
    EXPECT_EQ(read_file(killed.samples(arm) / "images.jsonl"),
              read_file(uninterrupted.samples(arm) / "images.jsonl"));
  }
}

// t2i.space = latent adds the autoencoder stage: trained with the vision encoder as its
// perceptual network, checked by the evaluator, and handed to every arm. run.base_steps adds
// the base model, trained on alt-text in the same latent space, which every arm starts from.
TEST(RunSmoke, LatentSpaceAndBaseModelStages) {
  test::TempDir dir("run-latent");
  auto r = test::run_recap("--threads 2 run --preset smoke --name l --arms alt --runs-dir " +
                           dir.path().string() +
                           " --set t2i.space=latent --set autoencoder.perceptual_weight=1"
                           " --set run.base_steps=3");
  ASSERT_EQ(r.status, 0) << r.output;
  const auto run = dir / "l";
  const auto manifest = nlohmann::json::parse(read_file(run / "manifest.json"));
  EXPECT_EQ(manifest.at("stages").at("autoencoder").at("status"), "done");
  const auto ae = nlohmann::json::parse(read_file(run / "autoencoder" / "autoencoder.json"));
  EXPECT_EQ(ae.at("perceptual_encoder").get<std::string>(), (run / "vision").string());
  EXPECT_FALSE(ae.at("check").is_null());
  const auto metadata = Safetensors::load(run / "t2i-alt" / "t2i.safetensors").metadata();
  EXPECT_EQ(metadata.at("autoencoder_from"), (run / "autoencoder").string());
  EXPECT_TRUE(std::filesystem::exists(run / "eval" / "alt.json"));
  EXPECT_EQ(manifest.at("stages").at("t2i-base").at("status"), "done");
  const auto base = Safetensors::load(run / "t2i-base" / "t2i.safetensors").metadata();
  EXPECT_EQ(base.at("captions"), "alt");
  EXPECT_EQ(base.at("steps"), "3");
  EXPECT_EQ(base.at("autoencoder_from"), (run / "autoencoder").string());
  EXPECT_EQ(metadata.at("init_from"), (run / "t2i-base" / "t2i.safetensors").string());
}

TEST(RunCli, BadArmsAndMissingRunsAreClearErrors) {
  test::TempDir dir("run-bad");
  auto bad = test::run_recap("run --preset smoke --arms alt,bogus --runs-dir " +
                             dir.path().string());
  EXPECT_EQ(bad.status, 2);
  EXPECT_THAT(bad.output, HasSubstr("unknown arm 'bogus'"));
  auto twice = test::run_recap("run --preset smoke --arms alt,alt --runs-dir " +
                               dir.path().string());
  EXPECT_EQ(twice.status, 2);
  EXPECT_THAT(twice.output, HasSubstr("given twice"));
  auto none = test::run_recap("status nothing --runs-dir " + dir.path().string());
  EXPECT_EQ(none.status, 2);
  EXPECT_THAT(none.output, HasSubstr("manifest.json"));
}

}  // namespace
}  // namespace recap
