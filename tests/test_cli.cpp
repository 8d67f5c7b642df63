// The real binary: help, version, config and weights commands, exit codes and messages.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "core/atomic_file.h"
#include "core/threads.h"
#include "core/weights.h"
#include "test_util.h"

namespace recap {
namespace {

using ::testing::HasSubstr;
using ::testing::Not;
using test::run_recap;

TEST(Cli, HelpListsOnlyRealSubcommandsWithDefaults) {
  auto r = run_recap("--help");
  EXPECT_EQ(r.status, 0);
  for (const char* cmd : {"version", "weights", "config"}) EXPECT_THAT(r.output, HasSubstr(cmd));
  EXPECT_THAT(r.output, HasSubstr("--threads"));
  EXPECT_THAT(r.output, HasSubstr("--device"));
  EXPECT_THAT(r.output, HasSubstr("--device TEXT=cpu"));  // defaults are shown
  EXPECT_EQ(run_recap("config show --help").status, 0);
  EXPECT_THAT(run_recap("config show --help").output, HasSubstr("--preset TEXT=quick"));
}

TEST(Cli, VersionReportsTorchBlasThreadsDevice) {
  auto r = run_recap("version --threads 2");
  EXPECT_EQ(r.status, 0) << r.output;
  EXPECT_THAT(r.output, HasSubstr("libtorch 1."));
  EXPECT_THAT(r.output, HasSubstr("BLAS "));
  EXPECT_THAT(r.output, HasSubstr("threads 2"));
  EXPECT_THAT(r.output, HasSubstr("device cpu"));
}

TEST(Cli, VersionNamesOpenBlasKernelsAndWhatPinnedThem) {
  // The binary loads the same OpenBLAS with the same environment as this test process.
  const std::string own = openblas_core();
  ASSERT_FALSE(own.empty());
  auto r = run_recap("version --threads 1");
  EXPECT_EQ(r.status, 0) << r.output;
  EXPECT_THAT(r.output, HasSubstr(", " + own + " kernels ("));
  if (openblas_narrower_than_cpu(own, cpu_has_avx512())) EXPECT_THAT(r.output, HasSubstr("AVX-512"));
}

TEST(Cli, UnavailableDeviceIsAClearError) {
  auto r = run_recap("version --device cuda");
  if (r.status == 0) GTEST_SKIP() << "this machine has CUDA";
  EXPECT_EQ(r.status, 2);
  EXPECT_THAT(r.output, HasSubstr("error: --device cuda"));
  EXPECT_THAT(run_recap("version --device tpu").output, HasSubstr("expected cpu, cuda or cuda:N"));
}

TEST(Cli, ConfigShowAppliesOverridesAndRejectsBadOnes) {
  auto r = run_recap("config show --preset smoke --set run.seed=5 --set checkpoint.keep_last=9");
  EXPECT_EQ(r.status, 0) << r.output;
  EXPECT_THAT(r.output, HasSubstr("seed = 5"));
  EXPECT_THAT(r.output, HasSubstr("keep_last = 9"));
  EXPECT_THAT(run_recap("config show --preset smoke --seed 11").output, HasSubstr("seed = 11"));

  auto bad = run_recap("config show --set run.seed=x");
  EXPECT_EQ(bad.status, 2);
  EXPECT_THAT(bad.output, HasSubstr("error: --set run.seed=x: key 'run.seed'"));
  auto unknown = run_recap("config show --preset nope");
  EXPECT_EQ(unknown.status, 2);
  EXPECT_THAT(unknown.output, HasSubstr("unknown preset 'nope'"));
}

TEST(Cli, ConfigKeysListsSchema) {
  auto r = run_recap("config keys");
  EXPECT_EQ(r.status, 0);
  EXPECT_THAT(r.output, HasSubstr("run.seed"));
  EXPECT_THAT(r.output, HasSubstr("checkpoint.keep_last"));
}

TEST(Cli, WeightsInspectListsTensorsAndRejectsMalformed) {
  test::TempDir dir("cli");
  save_tensors(dir / "w.safetensors",
               {{"enc.weight", torch::zeros({3, 4})}, {"enc.bias", torch::zeros({3}, torch::kF16)}},
               {{"model", "demo"}});
  auto r = run_recap("weights inspect " + (dir / "w.safetensors").string());
  EXPECT_EQ(r.status, 0) << r.output;
  EXPECT_THAT(r.output, HasSubstr("enc.weight"));
  EXPECT_THAT(r.output, HasSubstr("[3, 4]"));
  EXPECT_THAT(r.output, HasSubstr("F16"));
  EXPECT_THAT(r.output, HasSubstr("2 tensors, 15 elements, 54 bytes"));
  EXPECT_THAT(r.output, HasSubstr("model = demo"));

  write_file_atomic(dir / "bad.safetensors", std::string("\xff\xff\xff\xff\xff\xff\xff\x7f{}", 10));
  auto bad = run_recap("weights inspect " + (dir / "bad.safetensors").string());
  EXPECT_EQ(bad.status, 2);
  EXPECT_THAT(bad.output, HasSubstr("bad.safetensors"));
  EXPECT_THAT(bad.output, Not(HasSubstr("terminate")));
  EXPECT_EQ(run_recap("weights inspect " + (dir / "none.safetensors").string()).status, 2);
}

TEST(Cli, UnknownSubcommandFails) {
  EXPECT_NE(run_recap("frobnicate").status, 0);
  EXPECT_NE(run_recap("").status, 0);  // a subcommand is required
}

}  // namespace
}  // namespace recap
