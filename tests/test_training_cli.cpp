// The training commands end to end on the smoke preset: corpus -> tokenizer -> captioner
// (pre-train + fine-tune) and t2i (one arm), through the real binary.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "test_util.h"

namespace recap {
namespace {

using ::testing::HasSubstr;

TEST(TrainingCli, SmokeCaptionerAndT2iRunAndResume) {
  test::TempDir dir("training");
  const std::string corpus = (dir / "corpus").string(), tok = (dir / "tok.model").string();
  ASSERT_EQ(test::run_recap("corpus make --preset smoke --out " + corpus).status, 0);
  ASSERT_EQ(test::run_recap("tokenizer train --corpus " + corpus + " --out " + tok).status, 0);

  auto cap = test::run_recap("captioner train --threads 2 --corpus " + corpus + " --tokenizer " +
                             tok + " --out " + (dir / "cap").string());
  EXPECT_EQ(cap.status, 0) << cap.output;
  EXPECT_THAT(cap.output, HasSubstr("captioner: pre-trained"));
  EXPECT_TRUE(std::filesystem::exists(dir / "cap" / "captioner.safetensors"));

  const std::string t2i = "t2i train --threads 2 --corpus " + corpus + " --tokenizer " + tok +
                          " --out " + (dir / "t2i").string() + " --set t2i.captions=human";
  auto first = test::run_recap(t2i);
  EXPECT_EQ(first.status, 0) << first.output;
  EXPECT_THAT(first.output, HasSubstr("fell back 0, skipped 0"));
  EXPECT_TRUE(std::filesystem::exists(dir / "t2i" / "t2i.safetensors"));
  // Run again: everything is there, nothing is trained twice.
  auto again = test::run_recap(t2i);
  EXPECT_EQ(again.status, 0) << again.output;

  auto no_recaps = test::run_recap("t2i train --corpus " + corpus + " --tokenizer " + tok +
                                   " --out " + (dir / "r").string() + " --set t2i.captions=recap");
  EXPECT_EQ(no_recaps.status, 2);
  EXPECT_THAT(no_recaps.output, HasSubstr("error:"));
  auto missing = test::run_recap("captioner train --corpus " + corpus + " --tokenizer " +
                                 (dir / "none.model").string() + " --out " + (dir / "c2").string());
  EXPECT_EQ(missing.status, 2);
  EXPECT_THAT(missing.output, HasSubstr("none.model"));
}

}  // namespace
}  // namespace recap
