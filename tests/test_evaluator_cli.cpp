// `recap evaluator train` end to end on the smoke preset, and the gate's refusal.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "core/config.h"
#include "core/error.h"
#include "stages/model_settings.h"
#include "test_util.h"

namespace recap {
namespace {

using ::testing::HasSubstr;

TEST(EvaluatorCli, SmokeRunWritesWeightsAndAccuracy) {
  test::TempDir dir("evaluator");
  auto r = test::run_recap("evaluator train --preset smoke --threads 2 --out " +
                           (dir / "ev").string());
  EXPECT_EQ(r.status, 0) << r.output;
  EXPECT_THAT(r.output, HasSubstr("\"count_exact\""));
  EXPECT_TRUE(std::filesystem::exists(dir / "ev" / "evaluator.safetensors"));
  EXPECT_TRUE(std::filesystem::exists(dir / "ev" / "evaluator_accuracy.json"));
  // The same run with the gate on fails, saying which measures fell short.
  auto gated = test::run_recap("evaluator train --preset smoke --set evaluator.gate=true --out " +
                               (dir / "ev").string());
  EXPECT_EQ(gated.status, 2);
  EXPECT_THAT(gated.output, HasSubstr("evaluator gate failed on 50 held-out renders"));
}

TEST(EvaluatorGate, NamesTheMeasuresBelowTheBar) {
  stages::EvaluatorAccuracy a;
  a.images = 10;
  a.count_exact = 0.97;
  a.shape = 0.99;
  a.colour = 0.5;
  try {
    check_evaluator_gate(Config::load("quick"), a);
    FAIL();
  } catch (const Error& e) {
    EXPECT_THAT(e.what(), HasSubstr("exact count 97.00%, colour 50.00%"));
  }
  EXPECT_NO_THROW(check_evaluator_gate(Config::load("smoke"), a));  // gate off
  a.count_exact = a.shape = a.colour = 0.985;
  EXPECT_NO_THROW(check_evaluator_gate(Config::load("quick"), a));
}

}  // namespace
}  // namespace recap
