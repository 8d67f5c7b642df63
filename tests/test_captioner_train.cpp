// RECAP step 1 on a smoke corpus the tests make: pre-training on alt-text, fine-tuning on
// human captions, saving, loading and bit-exact resume.
#include "core/torch_pch.h"

#include <memory>

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "core/error.h"
#include "core/sha256.h"
#include "core/weights.h"
#include "stages/captioner_train.h"
#include "stages/corpus.h"
#include "stages/evaluator_train.h"
#include "stages/model_settings.h"
#include "stages/settings.h"
#include "stages/tokenizer_train.h"
#include "smoke_corpus.h"
#include "test_util.h"

namespace recap::stages {
namespace {

using ::testing::HasSubstr;

class CaptionerTrain : public ::testing::Test {
 protected:
  // One corpus and tokenizer for the whole suite: making them is most of the cost.
  static void SetUpTestSuite() {
    dir_ = new test::TempDir("captioner");
    test::make_smoke_corpus(corpus_dir(), tokenizer_path());
  }
  static void TearDownTestSuite() {
    delete dir_;
    dir_ = nullptr;
  }
  // Bit-exact comparisons need a fixed thread count.
  void SetUp() override { torch::set_num_threads(1); }

  static fs::path corpus_dir() { return *dir_ / "corpus"; }
  static fs::path tokenizer_path() { return *dir_ / "tok.model"; }
  // Checkpoints every 2 steps, so a stage can be cut short.
  static Config config() { return Config::load("smoke", {"checkpoint.every=2"}); }
  static CaptionerTrainResult train(const fs::path& out) {
    return train_captioner(corpus_dir(), tokenizer_path(), out, config(), 2);
  }

  static test::TempDir* dir_;
};
test::TempDir* CaptionerTrain::dir_ = nullptr;

torch::Tensor logits(models::Captioner& model) {
  torch::NoGradGuard no_grad;
  const auto size = model->options().image_size;
  const auto images = torch::linspace(-1, 1, 2 * 3 * size * size).reshape({2, 3, size, size});
  const auto ids = torch::tensor({2, 5, 10, 11, 2, 4, 12, 13}).reshape({2, 4});
  return model->logits(model->encode_image(images), ids);
}

TEST_F(CaptionerTrain, TrainsBothStagesAndLoadsTheResult) {
  test::TempDir out("captioner-out");
  const auto result = train(out.path());
  EXPECT_EQ(result.pretrain.steps, 6);
  EXPECT_EQ(result.finetune.steps, 4);
  EXPECT_FALSE(result.pretrain.skipped);
  for (const char* file : {"captioner_pretrain.safetensors", "captioner.safetensors",
                           "pretrain/metrics.jsonl", "finetune/metrics.jsonl"})
    EXPECT_TRUE(fs::exists(out / file)) << file;

  const auto pretrained = load_tensors(out / "captioner_pretrain.safetensors");
  const auto finetuned = load_tensors(out / "captioner.safetensors");
  ASSERT_EQ(pretrained.size(), finetuned.size());
  bool differs = false;
  for (const auto& [name, t] : pretrained) differs |= !torch::equal(t, finetuned.at(name));
  EXPECT_TRUE(differs);

  // The options come back from the metadata: same logits as a model built from the config.
  const auto tokenizer = text::Tokenizer::load(tokenizer_path());
  auto loaded = load_captioner(out / "captioner.safetensors", tokenizer);
  models::Captioner rebuilt(captioner_settings(config(), tokenizer.vocab_size(), 32));
  load_module(out / "captioner.safetensors", *rebuilt);
  rebuilt->eval();
  EXPECT_TRUE(torch::equal(logits(loaded), logits(rebuilt)));
  EXPECT_EQ(nlohmann::json(loaded->options()), nlohmann::json(result.options));

  // A second call finds both weight files and trains nothing.
  const auto again = train(out.path());
  EXPECT_TRUE(again.pretrain.skipped);
  EXPECT_TRUE(again.finetune.skipped);
}

TEST_F(CaptionerTrain, StartsFromAFrozenDetectorBackbone) {
  test::TempDir out("captioner-vision");
  auto detector_options = evaluator_settings(config());
  detector_options.model = {16, 1, 2};
  detector_options.steps = 2;
  detector_options.heldout_scenes = 4;
  train_evaluator(world_settings(config()), detector_options, out / "vision");
  auto with_vision = config();
  with_vision.set("captioner.vision", nlohmann::json((out / "vision").string()).dump(), "test");
  const auto result = train_captioner(corpus_dir(), tokenizer_path(), out / "c", with_vision, 2);
  EXPECT_EQ(result.options.vision.width, 16);  // the detector's shape, not the config's
  EXPECT_EQ(result.options.vision.depth, 1);

  // Frozen: both stages leave the backbone bit-identical; everything else trains.
  const auto detector = load_tensors(out / "vision" / "evaluator.safetensors");
  const auto pretrained = load_tensors(out / "c" / "captioner_pretrain.safetensors");
  const auto finetuned = load_tensors(out / "c" / "captioner.safetensors");
  int vision_tensors = 0;
  for (const auto& [name, t] : finetuned) {
    if (!name.starts_with("vision.")) continue;
    ++vision_tensors;
    EXPECT_TRUE(torch::equal(t, detector.at("backbone." + name.substr(7)))) << name;
  }
  EXPECT_EQ(vision_tensors, 12);  // stem, one stride-2 block, one residual block: 3 x 4
  EXPECT_FALSE(torch::equal(pretrained.at("image_proj.weight"),
                            finetuned.at("image_proj.weight")));
  const auto tokenizer = text::Tokenizer::load(tokenizer_path());
  EXPECT_EQ(load_captioner(out / "c" / "captioner.safetensors", tokenizer)->options().vision.width,
            16);

  auto missing = config();
  missing.set("captioner.vision", nlohmann::json((out / "nothing").string()).dump(), "test");
  try {
    train_captioner(corpus_dir(), tokenizer_path(), out / "d", missing, 1);
    FAIL() << "no error for a missing vision file";
  } catch (const Error& e) {
    EXPECT_THAT(e.what(), HasSubstr((out / "nothing").string()));
  }
}

TEST(CaptionerSettings, EveryPresetBuildsAModel) {
  for (const auto& name : Config::preset_names()) {
    const auto config = Config::load(name);
    const auto canvas = static_cast<int>(config.get_int("world.canvas"));
    EXPECT_NO_THROW(models::Captioner(captioner_settings(config, 300, canvas))) << name;
  }
}

// Removes the newest checkpoint of a stage, as if the run had been killed before it.
void drop_newest_checkpoint(const fs::path& stage_dir) {
  fs::path newest;
  for (const auto& entry : fs::directory_iterator(stage_dir / "checkpoints"))
    if (newest.empty() || entry.path().filename() > newest.filename()) newest = entry.path();
  ASSERT_FALSE(newest.empty());
  fs::remove_all(newest);
}

TEST_F(CaptionerTrain, ResumesBitExactlyAfterAKill) {
  test::TempDir whole("captioner-whole"), cut("captioner-cut");
  train(whole.path());
  // Killed mid-way through pre-training: the stage resumes from step 4 and fine-tuning runs
  // from scratch; then killed mid-way through fine-tuning: it resumes from step 2.
  train(cut.path());
  fs::remove(cut / "captioner.safetensors");
  fs::remove(cut / "captioner_pretrain.safetensors");
  drop_newest_checkpoint(cut / "pretrain");
  fs::remove_all(cut / "finetune");
  auto resumed = train(cut.path());
  EXPECT_EQ(resumed.pretrain.start_step, 4);
  EXPECT_EQ(resumed.finetune.start_step, 0);
  fs::remove(cut / "captioner.safetensors");
  drop_newest_checkpoint(cut / "finetune");
  resumed = train(cut.path());
  EXPECT_TRUE(resumed.pretrain.skipped);
  EXPECT_EQ(resumed.finetune.start_step, 2);
  for (const char* file : {"captioner_pretrain.safetensors", "captioner.safetensors"})
    EXPECT_EQ(sha256_file(whole / file), sha256_file(cut / file)) << file;
}

TEST_F(CaptionerTrain, RefusesBadInputsNamingTheFile) {
  test::TempDir out("captioner-bad");
  const auto missing = out / "missing.model";
  try {
    train_captioner(corpus_dir(), missing, out / "o", config(), 1);
    FAIL() << "no error for a missing tokenizer";
  } catch (const Error& e) {
    EXPECT_THAT(e.what(), HasSubstr(missing.string()));
  }
  try {
    train_captioner(out.path(), tokenizer_path(), out / "o", config(), 1);
    FAIL() << "no error for a folder that is not a corpus";
  } catch (const Error& e) {
    EXPECT_THAT(e.what(), HasSubstr(out.path().string()));
  }
  // Weights that are not a captioner's, and a captioner with another tokenizer.
  const auto tokenizer = text::Tokenizer::load(tokenizer_path());
  save_tensors(out / "plain.safetensors", {{"w", torch::zeros({2})}});
  EXPECT_THROW(load_captioner(out / "plain.safetensors", tokenizer), Error);
  train(out / "o");
  auto options = corpus::tokenizer_options(config());
  options.vocab_size = 200;
  corpus::train_corpus_tokenizer(corpus_dir(), out / "other.model", options);
  try {
    load_captioner(out / "o" / "captioner.safetensors", text::Tokenizer::load(out / "other.model"));
    FAIL() << "no error for another tokenizer";
  } catch (const Error& e) {
    EXPECT_THAT(e.what(), HasSubstr("captioner.safetensors"));
  }
}

}  // namespace
}  // namespace recap::stages
