// FID and KID: analytic cases, agreement with scipy (run live, and a checked-in fixture made by
// tests/fixtures/make_fid_fixture.py), determinism and input errors.
#include <ATen/CPUGeneratorImpl.h>
#include <fmt/format.h>
#include <gtest/gtest.h>

#include <cmath>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>

#include "core/error.h"
#include "eval/fid.h"
#include "test_util.h"

namespace recap::eval {
namespace {

// [n, d] samples of a correlated Gaussian: standard normal rows times a fixed random mixing
// matrix, so that the covariance is not diagonal.
torch::Tensor gaussian(int64_t n, int64_t d, uint64_t seed, double shift = 0) {
  auto gen = at::detail::createCPUGenerator(seed);
  const auto f64 = torch::TensorOptions().dtype(torch::kFloat64);
  auto mix_gen = at::detail::createCPUGenerator(12345);
  const torch::Tensor mix = torch::randn({d, d}, mix_gen, f64) / std::sqrt(double(d));
  return torch::matmul(torch::randn({n, d}, gen, f64), mix) + shift;
}

TEST(Fid, IdenticalSetsAreZero) {
  const torch::Tensor a = gaussian(2000, 16, 1);
  EXPECT_LT(std::abs(fid(a, a)), 1e-6);
  EXPECT_LT(std::abs(fid(a.to(torch::kFloat32), a.to(torch::kFloat32))), 1e-6);
}

TEST(Fid, ShiftedCopyIsSquaredMeanDistance) {
  // B = A + d has exactly A's covariance, so the trace terms cancel and FID = |d|^2.
  const torch::Tensor a = gaussian(20000, 32, 2);
  const torch::Tensor d = torch::linspace(-1, 1, 32, torch::kFloat64);
  const double expected = d.dot(d).item<double>();
  EXPECT_NEAR(fid(a, a + d), expected, 1e-8 * expected);
  EXPECT_NEAR(fid(a + d, a), expected, 1e-8 * expected);
}

TEST(Fid, StatsAreReusable) {
  const torch::Tensor a = gaussian(300, 8, 3), b = gaussian(200, 8, 4, 0.3);
  const GaussianStats sa = gaussian_stats(a);
  EXPECT_EQ(sa.n, 300);
  EXPECT_EQ(sa.cov.sizes(), (std::vector<int64_t>{8, 8}));
  // Reused and recomputed stats go through separate matmul/eigh calls, which need not round
  // alike on every CPU (seen 2e-13 apart on an AVX2-only EPYC). Rounding is ~D * eps times the
  // covariance traces (8 each here): well under 1e-10, which no wrong reuse would meet.
  EXPECT_NEAR(frechet_distance(sa, gaussian_stats(b)), fid(a, b), 1e-10);
  EXPECT_GT(fid(a, b), 0.5);
}

void write_rows(const std::filesystem::path& path, const torch::Tensor& x) {
  std::ofstream out(path);
  const auto acc = x.accessor<double, 2>();
  for (int64_t i = 0; i < x.size(0); ++i) {
    for (int64_t j = 0; j < x.size(1); ++j) out << fmt::format("{:.17g} ", acc[i][j]);
    out << '\n';
  }
}

// KID's estimator on every row at once, comparable with a whole-set reference.
double kid_full(const torch::Tensor& a, const torch::Tensor& b) { return mmd2_unbiased(a, b); }

TEST(Fid, MatchesScipy) {
  const std::string script = std::string(RECAP_SOURCE_DIR) + "/tests/fixtures/make_fid_fixture.py";
  // scripts/install-deps.sh installs python3-scipy for this test: never a skip.
  ASSERT_EQ(std::system("/usr/bin/python3 -c 'import numpy, scipy.linalg' >/dev/null 2>&1"), 0)
      << "/usr/bin/python3 with numpy and scipy is not available: run scripts/install-deps.sh";
  test::TempDir dir("fid");
  // Unequal spread and means: a case where the matrix square root term matters.
  const torch::Tensor a = gaussian(400, 12, 5), b = gaussian(400, 12, 6, 0.2) * 1.3;
  write_rows(dir / "a.txt", a);
  write_rows(dir / "b.txt", b);
  const std::string cmd = fmt::format("/usr/bin/python3 {} --compute {} {} > {}", script,
                                      (dir / "a.txt").string(), (dir / "b.txt").string(),
                                      (dir / "out.json").string());
  ASSERT_EQ(std::system(cmd.c_str()), 0) << cmd;
  const nlohmann::json ref = nlohmann::json::parse(std::ifstream(dir / "out.json"));
  const double want_fid = ref["fid"].get<double>(), want_kid = ref["kid_full"].get<double>();
  EXPECT_NEAR(fid(a, b), want_fid, 1e-6 * std::abs(want_fid));
  EXPECT_NEAR(kid_full(a, b), want_kid, 1e-6 * std::abs(want_kid));
}

TEST(Fid, MatchesCheckedInFixture) {
  std::ifstream in(std::string(RECAP_SOURCE_DIR) + "/tests/fixtures/fid_fixture.json");
  ASSERT_TRUE(in) << "tests/fixtures/fid_fixture.json is missing";
  const nlohmann::json fx = nlohmann::json::parse(in);
  const auto matrix = [](const nlohmann::json& rows) {
    std::vector<double> flat;
    for (const auto& row : rows)
      for (const auto& v : row) flat.push_back(v.get<double>());
    const auto n = int64_t(rows.size());
    return torch::tensor(flat, torch::kFloat64).reshape({n, int64_t(flat.size()) / n});
  };
  const torch::Tensor a = matrix(fx["a"]), b = matrix(fx["b"]);
  const double want_fid = fx["fid"].get<double>(), want_kid = fx["kid_full"].get<double>();
  EXPECT_NEAR(fid(a, b), want_fid, 1e-8 * std::abs(want_fid));
  EXPECT_NEAR(kid_full(a, b), want_kid, 1e-8 * std::abs(want_kid));
}

TEST(Fid, BadInputThrows) {
  const torch::Tensor a = gaussian(10, 4, 7);
  EXPECT_THROW(fid(a, gaussian(10, 5, 8)), Error);
  EXPECT_THROW(fid(a, a.slice(0, 0, 1)), Error);
  EXPECT_THROW(fid(a, a.flatten()), Error);
  EXPECT_THROW(fid(a, torch::ones({10, 4}, torch::kLong)), Error);
  torch::Tensor bad = a.clone();
  bad[3][2] = std::nan("");
  EXPECT_THROW(fid(a, bad), Error);
  bad[3][2] = INFINITY;
  EXPECT_THROW(gaussian_stats(bad), Error);
  try {
    fid(a, gaussian(10, 5, 8));
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("4 vs 5"), std::string::npos) << e.what();
  }
}

TEST(Kid, IdenticalDistributionsNearZero) {
  const torch::Tensor a = gaussian(5000, 16, 9), b = gaussian(5000, 16, 10);
  const KidResult r = kid(a, b, {.subsets = 100, .subset_size = 100, .seed = 1});
  EXPECT_EQ(r.subsets, 100);
  EXPECT_EQ(r.subset_size, 100);
  EXPECT_GT(r.std_error, 0);
  // Subsets of 100 of 5000: the delete-d jackknife scales their spread by sqrt(100 / 4900).
  EXPECT_NEAR(r.std_error, r.std / 7, 1e-12);
  EXPECT_LT(std::abs(r.mean), 3 * r.std_error) << r.mean << " +- " << r.std_error;
}

TEST(Kid, ShiftedDistributionsArePositive) {
  const torch::Tensor a = gaussian(2000, 16, 11), b = gaussian(2000, 16, 12, 0.5);
  const KidResult r = kid(a, b, {.subsets = 50, .subset_size = 200, .seed = 1});
  EXPECT_GT(r.mean, 10 * r.std_error) << r.mean << " +- " << r.std_error;
}

TEST(Kid, DefaultSubsetSizeIsHalfTheSmallerSet) {
  const torch::Tensor a = gaussian(300, 8, 13), b = gaussian(251, 8, 14);
  const KidResult r = kid(a, b, {.subsets = 3});
  EXPECT_EQ(r.subset_size, 125);
  EXPECT_EQ(r.subsets, 3);
  EXPECT_EQ(kid(a, b, {.subsets = 3, .subset_size = 40}).subset_size, 40);
}

TEST(Kid, StandardErrorDoesNotNarrowWithMoreSubsets) {
  // 400 images against 400, as in a quick run. The standard error describes the images, not
  // how many subsets were drawn from them: 25x the subsets must leave it where it was (the
  // spread of 20 subsets is itself known to about +-16%, hence the bounds), where a
  // std / sqrt(subsets) error would shrink 5x.
  const torch::Tensor a = gaussian(400, 8, 21), b = gaussian(400, 8, 22, 0.2);
  const KidResult few = kid(a, b, {.subsets = 20, .seed = 1});
  const KidResult many = kid(a, b, {.subsets = 500, .seed = 1});
  EXPECT_EQ(many.subset_size, 200);
  ASSERT_GT(few.std_error, 0);
  EXPECT_GT(many.std_error / few.std_error, 0.6);
  EXPECT_LT(many.std_error / few.std_error, 1.6);
  EXPECT_NEAR(many.std_error, many.std, 1e-15) << "half-samples: the spread is the error";
}

TEST(Kid, StandardErrorMatchesTheSpreadOverFreshImages) {
  // What the standard error claims: how far KID moves with other images from the same
  // distributions. 200 independent pairs of sets of 100 give the truth directly (the spread
  // of their KIDs, known to about +-5%); the mean reported standard error must match it.
  std::vector<double> means, errors;
  for (uint64_t r = 0; r < 200; ++r) {
    const torch::Tensor a = gaussian(100, 4, 1000 + 2 * r), b = gaussian(100, 4, 1001 + 2 * r, 0.3);
    const KidResult k = kid(a, b, {.subsets = 50, .seed = r});
    means.push_back(k.mean);
    errors.push_back(k.std_error);
  }
  double mean = 0, error = 0, ss = 0;
  for (size_t r = 0; r < means.size(); ++r) mean += means[r] / 200, error += errors[r] / 200;
  for (double m : means) ss += (m - mean) * (m - mean);
  const double spread = std::sqrt(ss / 199);
  EXPECT_GT(error / spread, 0.8) << error << " vs " << spread;
  EXPECT_LT(error / spread, 1.25) << error << " vs " << spread;
}

TEST(Kid, DeterministicBySeed) {
  torch::set_num_threads(1);  // bit-exactness is only promised for a fixed thread count
  const torch::Tensor a = gaussian(500, 8, 15), b = gaussian(500, 8, 16, 0.1);
  const KidOptions o{.subsets = 20, .subset_size = 50, .seed = 3};
  const KidResult r1 = kid(a, b, o), r2 = kid(a, b, o);
  EXPECT_EQ(r1.mean, r2.mean);
  EXPECT_EQ(r1.std, r2.std);
  KidOptions other = o;
  other.seed = 4;
  EXPECT_NE(kid(a, b, other).mean, r1.mean);
}

TEST(Kid, BadInputThrows) {
  const torch::Tensor a = gaussian(10, 4, 17);
  EXPECT_THROW(kid(a, gaussian(10, 3, 18)), Error);
  EXPECT_THROW(kid(a, a, {.subsets = 0}), Error);
  EXPECT_THROW(kid(a, a, {.subsets = 1, .subset_size = 1}), Error);
  EXPECT_THROW(kid(a, a.slice(0, 0, 1)), Error);
  EXPECT_THROW(kid(a, a.slice(0, 0, 3)), Error) << "half of 3 rows is a subset of 1";
  EXPECT_EQ(kid(a, a.slice(0, 0, 4)).subset_size, 2);
  EXPECT_THROW(mmd2_unbiased(a, a.slice(0, 0, 1)), Error);
  EXPECT_THROW(mmd2_unbiased(a, gaussian(10, 3, 18)), Error);
  torch::Tensor bad = a.clone();
  bad[0][0] = std::nan("");
  EXPECT_THROW(kid(bad, a), Error);
}

}  // namespace
}  // namespace recap::eval
