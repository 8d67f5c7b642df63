#include <gtest/gtest.h>

#include "core/threads.h"
#include "core/torch_pch.h"

namespace recap {
namespace {

TEST(Blas, ReferenceIsSlowOpenBlasIsTrustedUnknownIsTimed) {
  EXPECT_TRUE(blas_is_slow({"reference BLAS", "/usr/lib/x86_64-linux-gnu/blas/libblas.so.3", 80,
                            true}));
  EXPECT_FALSE(blas_is_slow({"OpenBLAS (openmp)", "x", 3.0, false}));  // busy machine
  EXPECT_TRUE(blas_is_slow({"unknown", "x", 3.0, false}));
  EXPECT_FALSE(blas_is_slow({"unknown", "x", 60.0, false}));
}

TEST(Blas, ThisMachineHasAnOptimizedBlas) {
  // install-deps.sh installs OpenBLAS; without it libtorch silently runs 15-30x slower.
  BlasInfo info = detect_blas();
  EXPECT_FALSE(info.reference) << info.path;
  EXPECT_NE(info.library.find("OpenBLAS"), std::string::npos) << info.library << " " << info.path;
  EXPECT_GT(info.gflops, 0);
}

TEST(Blas, Avx2KernelFamiliesAreNarrowOnlyOnAvx512Cpus) {
  EXPECT_TRUE(openblas_narrower_than_cpu("Haswell", true));  // OPENBLAS_CORETYPE=Haswell
  EXPECT_TRUE(openblas_narrower_than_cpu("Zen", true));
  EXPECT_TRUE(openblas_narrower_than_cpu("HASWELL", true));  // OpenBLAS ignores case too
  EXPECT_FALSE(openblas_narrower_than_cpu("Haswell", false));  // the best an AVX2 CPU runs
  EXPECT_FALSE(openblas_narrower_than_cpu("SkylakeX", true));
  EXPECT_FALSE(openblas_narrower_than_cpu("Cooperlake", true));
  EXPECT_FALSE(openblas_narrower_than_cpu("", true));  // not OpenBLAS
}

TEST(Blas, ThisProcessKnowsItsOpenBlasKernels) {
  const BlasInfo info = detect_blas();
  EXPECT_FALSE(info.core.empty()) << info.library;  // install-deps.sh installs OpenBLAS
  EXPECT_EQ(info.core, openblas_core());
}

TEST(Threads, ConfigureSetsTheCount) {
  EXPECT_GE(usable_cores(), 1);
  EXPECT_EQ(configure_threads(2), 2);
  EXPECT_EQ(torch::get_num_threads(), 2);
  EXPECT_EQ(configure_threads(0), usable_cores());
  EXPECT_EQ(torch::get_num_threads(), usable_cores());
}

}  // namespace
}  // namespace recap
