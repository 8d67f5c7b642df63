// FID and KID in float64 with libtorch linear algebra; subset draws for KID use recap::Rng so
// that they do not depend on torch's generators or on the device.
#include "core/torch_pch.h"
#include "eval/fid.h"

#include <fmt/format.h>

#include <cmath>
#include <numeric>
#include <string>
#include <vector>

#include "core/error.h"
#include "core/rng.h"

namespace recap::eval {
namespace {

// `features` as float64 after checking it is a finite [N >= min_rows, D >= 1] matrix.
torch::Tensor checked(const torch::Tensor& features, const char* what, int64_t min_rows) {
  if (!features.defined() || features.dim() != 2 || features.size(1) < 1 ||
      !torch::isFloatingType(features.scalar_type()))
    throw Error(fmt::format("{}: expected a floating [N, D] feature matrix with D >= 1", what));
  if (features.size(0) < min_rows)
    throw Error(fmt::format("{}: {} samples; at least {} are needed", what, features.size(0),
                            min_rows));
  torch::Tensor x = features.to(torch::kFloat64);
  if (!torch::isfinite(x).all().item<bool>())
    throw Error(fmt::format("{}: features contain NaN or infinity", what));
  return x;
}

void check_same_dim(int64_t da, int64_t db) {
  if (da != db)
    throw Error(fmt::format("feature dimensions differ: {} vs {} (features must come from the "
                            "same network layer)",
                            da, db));
}

// Square root of a symmetric positive semi-definite [D, D] matrix: V diag(sqrt(l)) V^T.
torch::Tensor sqrt_psd(const torch::Tensor& m) {
  auto [values, vectors] = torch::linalg::eigh(m, "L");
  return torch::matmul(vectors * values.clamp_min(0).sqrt().unsqueeze(0), vectors.t());
}

// Polynomial kernel matrix between rows of x [n, D] and y [m, D]: [n, m].
torch::Tensor poly_kernel(const torch::Tensor& x, const torch::Tensor& y) {
  return (torch::matmul(x, y.t()) / double(x.size(1)) + 1).pow(3);
}

// Unbiased MMD^2 between the rows of x [n, D] and y [m, D], float64, n, m >= 2.
torch::Tensor mmd2(const torch::Tensor& x, const torch::Tensor& y) {
  const double n = double(x.size(0)), m = double(y.size(0));
  const torch::Tensor kxx = poly_kernel(x, x), kyy = poly_kernel(y, y);
  return (kxx.sum() - kxx.trace()) / (n * (n - 1)) + (kyy.sum() - kyy.trace()) / (m * (m - 1)) -
         2 * poly_kernel(x, y).sum() / (n * m);
}

// `count` distinct row indices of [0, n): the first `count` entries of a partial Fisher-Yates
// shuffle of `pool`. Continuing from the previous arrangement keeps every draw uniform.
torch::Tensor draw_rows(std::vector<int64_t>& pool, int64_t count, Rng& rng) {
  const auto n = static_cast<uint64_t>(pool.size());
  for (uint64_t i = 0; i < static_cast<uint64_t>(count); ++i)
    std::swap(pool[i], pool[i + rng.below(n - i)]);
  return torch::tensor(std::vector<int64_t>(pool.begin(), pool.begin() + count), torch::kLong);
}

}  // namespace

GaussianStats gaussian_stats(const torch::Tensor& features, const char* what) {
  const torch::Tensor x = checked(features, what, 2);
  GaussianStats s;
  s.n = x.size(0);
  s.mean = x.mean(0);
  const torch::Tensor centred = x - s.mean;  // [N, D]
  s.cov = torch::matmul(centred.t(), centred) / double(s.n - 1);
  return s;
}

double frechet_distance(const GaussianStats& a, const GaussianStats& b) {
  check_same_dim(a.mean.size(0), b.mean.size(0));
  const torch::Tensor cov_b = b.cov.to(a.cov.device());
  const torch::Tensor root_a = sqrt_psd(a.cov);
  torch::Tensor inner = torch::matmul(torch::matmul(root_a, cov_b), root_a);
  inner = (inner + inner.t()) / 2;  // symmetric in exact arithmetic; make it so for eigh
  const torch::Tensor eig = torch::linalg::eigvalsh(inner, "L").clamp_min(0);
  const torch::Tensor diff = a.mean - b.mean.to(a.mean.device());
  const torch::Tensor d = diff.dot(diff) + a.cov.trace() + cov_b.trace() - 2 * eig.sqrt().sum();
  return d.item<double>();
}

double fid(const torch::Tensor& a, const torch::Tensor& b) {
  return frechet_distance(gaussian_stats(a, "fid: first feature set"),
                          gaussian_stats(b, "fid: second feature set"));
}

KidResult kid(const torch::Tensor& a, const torch::Tensor& b, const KidOptions& options) {
  const torch::Tensor x = checked(a, "kid: first feature set", 2);
  const torch::Tensor y = checked(b, "kid: second feature set", 2).to(x.device());
  check_same_dim(x.size(1), y.size(1));
  if (options.subsets < 1) throw Error("kid: subsets must be >= 1");
  const int64_t n = std::min(x.size(0), y.size(0));
  const int64_t m = std::min(options.subset_size, n / 2);
  if (m < 2)
    throw Error(fmt::format("kid: subsets of {} rows (subset_size {}, at most half of the "
                            "smaller set's {}); need >= 2",
                            m, options.subset_size, n));

  std::vector<int64_t> pool_x(x.size(0)), pool_y(y.size(0));
  std::iota(pool_x.begin(), pool_x.end(), 0);
  std::iota(pool_y.begin(), pool_y.end(), 0);
  Rng rng(options.seed);
  std::vector<double> estimates;
  for (int s = 0; s < options.subsets; ++s) {
    const torch::Tensor xs = x.index_select(0, draw_rows(pool_x, m, rng).to(x.device()));
    const torch::Tensor ys = y.index_select(0, draw_rows(pool_y, m, rng).to(x.device()));
    estimates.push_back(mmd2(xs, ys).item<double>());
  }

  KidResult r;
  r.subsets = options.subsets;
  r.subset_size = m;
  r.mean = std::accumulate(estimates.begin(), estimates.end(), 0.0) / double(estimates.size());
  if (estimates.size() > 1) {
    double ss = 0;
    for (double e : estimates) ss += (e - r.mean) * (e - r.mean);
    r.std = std::sqrt(ss / double(estimates.size() - 1));
    r.std_error = r.std * std::sqrt(double(m) / double(n - m));
  }
  return r;
}

double mmd2_unbiased(const torch::Tensor& a, const torch::Tensor& b) {
  const torch::Tensor x = checked(a, "mmd: first feature set", 2);
  const torch::Tensor y = checked(b, "mmd: second feature set", 2).to(x.device());
  check_same_dim(x.size(1), y.size(1));
  return mmd2(x, y).item<double>();
}

}  // namespace recap::eval
