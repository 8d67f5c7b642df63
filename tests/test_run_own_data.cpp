// `recap run --preset FILE.toml` on your own data (own.images): RECAP's three steps on the
// real photographs of tests/fixtures/photos at the smoke scale, the world's stages skipped with
// their reasons, a report and a viewer page; resumed without rerunning a stage; and the
// settings own data cannot run with refused by name before any stage.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <algorithm>
#include <filesystem>
#include <string>

#include <nlohmann/json.hpp>

#include "core/atomic_file.h"
#include "core/safetensors.h"
#include "test_util.h"

namespace recap {
namespace {

namespace fs = std::filesystem;
using ::testing::HasSubstr;

const fs::path kRepo = RECAP_SOURCE_DIR;

// The smoke preset with an [own] section: what a user's TOML for their photos looks like.
fs::path write_own_preset(const fs::path& dir, const std::string& own) {
  const fs::path file = dir / "mine.toml";
  write_file_atomic(file, read_file(kRepo / "configs" / "smoke.toml") + "\n[own]\n" + own);
  return file;
}

std::string own_section(const fs::path& dir) {
  write_file_atomic(dir / "prompts.txt", "a cup of espresso on a red saucer\na white rocket\n");
  return "images = [\"" + (kRepo / "tests/fixtures/photos").string() + "\"]\ncaptions = \"" +
         (kRepo / "tests/fixtures/photos-human.jsonl").string() + "\"\nprompts = \"" +
         (dir / "prompts.txt").string() + "\"\n";
}

TEST(RunOwnData, ThePresetFileRunsTheThreeStepsAndSkipsTheWorldsWithReasons) {
  test::TempDir dir("run-own");
  const fs::path preset = write_own_preset(dir.path(), own_section(dir.path()));
  const std::string command = "--threads 2 run --preset " + preset.string() + " --runs-dir " +
                              dir.path().string() +
                              " --arms alt,recap-mix --set tokenizer.vocab_size=64";
  auto r = test::run_recap(command);
  ASSERT_EQ(r.status, 0) << r.output;
  const fs::path run = dir / "mine";
  for (const char* skipped :
       {"evaluator", "caption_quality", "eval/ceiling, eval/ARM", "vision", "judge-clip", "corpus"})
    EXPECT_THAT(r.output, HasSubstr(std::string(skipped) + " ")) << skipped;
  EXPECT_THAT(r.output, HasSubstr("skipped: scores captions against each image's true scene"));
  for (const char* stage : {"tokenizer", "captioner", "recaption-long", "recaption-short",
                            "t2i-alt", "t2i-recap-mix", "samples-alt", "samples-recap-mix"})
    EXPECT_THAT(r.output, ::testing::ContainsRegex(std::string(stage) + " +done")) << stage;

  // Step 2 relabelled all ten photos; step 3's arms drew from their own sources.
  EXPECT_EQ(test::run_shell("grep -c '\"kind\":\"short\"' " +
                            (run / "recaption-short" / "photos.recap.jsonl").string())
                .output,
            "10\n");
  EXPECT_EQ(Safetensors::load(run / "t2i-alt" / "t2i.safetensors").metadata().at("captions"),
            "original=1");
  EXPECT_EQ(Safetensors::load(run / "t2i-recap-mix" / "t2i.safetensors").metadata().at("captions"),
            "long=0.5,short=0.5");
  for (const char* arm : {"alt", "recap-mix"}) {
    const std::string list = read_file(run / ("samples-" + std::string(arm)) / "images.jsonl");
    EXPECT_EQ(std::count(list.begin(), list.end(), '\n'), 2) << arm;  // one per prompt
  }
  const std::string report = read_file(run / "report" / "report.md");
  EXPECT_THAT(report, HasSubstr("skipped: trained on the world's renders"));
  const std::string view = read_file(run / "report" / "view.html");
  EXPECT_THAT(view, HasSubstr("data-name=\"short\""));
  EXPECT_THAT(view, HasSubstr("<dd>Chelsea the cat</dd>"));

  // The same command resumes: every stage is kept.
  r = test::run_recap(command);
  ASSERT_EQ(r.status, 0) << r.output;
  EXPECT_THAT(r.output, HasSubstr("resuming"));
  EXPECT_THAT(r.output, ::testing::Not(HasSubstr("train [")));
  // recap status lists this run's own stages, every one done.
  r = test::run_recap("status " + run.string());
  ASSERT_EQ(r.status, 0) << r.output;
  EXPECT_THAT(r.output, ::testing::ContainsRegex("samples-recap-mix +done"));
  EXPECT_THAT(r.output, ::testing::Not(HasSubstr("pending")));
  EXPECT_THAT(r.output, ::testing::Not(HasSubstr("evaluator")));
}

TEST(RunOwnData, WhatOwnDataCannotRunIsRefusedBeforeAnyStage) {
  test::TempDir dir("run-own-bad");
  const fs::path preset =
      write_own_preset(dir.path(), "images = [\"" + (dir / "nowhere").string() + "\"]\n");
  auto r = test::run_recap("run --preset " + preset.string() + " --runs-dir " +
                           dir.path().string() + " --arms alt,human --set t2i.space=latent");
  EXPECT_EQ(r.status, 2);
  EXPECT_THAT(r.output, HasSubstr((dir / "nowhere").string() + ": no such file or folder"));
  EXPECT_THAT(r.output, HasSubstr("own.captions is empty"));
  EXPECT_THAT(r.output, HasSubstr("run.arms: 'human' trains on an exact human caption"));
  EXPECT_THAT(r.output, HasSubstr("t2i.space = latent needs t2i.autoencoder"));
  EXPECT_FALSE(fs::exists(dir / "mine" / "manifest.json"));
}

}  // namespace
}  // namespace recap
