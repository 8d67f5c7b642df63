// Distribution distances between two sets of evaluator features, each a [N, D] tensor (one row
// per image, any floating dtype and device; computed in float64): FID (Heusel et al. 2017)
// and KID (Binkowski et al. 2018). DESIGN.md reports both for generated images against
// renders of the evaluation scenes, beside the noise floor of held-out renders.
#pragma once
#include <cstdint>

#include "core/torch_pch.h"

namespace recap::eval {

// The Gaussian FID fits to one feature set; computing it once lets a reference set be compared
// against many generated sets.
struct GaussianStats {
  torch::Tensor mean;  // [D], float64
  torch::Tensor cov;   // [D, D], float64, unbiased (divides by N - 1)
  int64_t n = 0;       // N
};

// Throws recap::Error when `features` is not [N, D] with N >= 2 and D >= 1, or holds a
// non-finite value; `what` names the set in the message.
GaussianStats gaussian_stats(const torch::Tensor& features, const char* what = "features");

// |mu1 - mu2|^2 + tr(S1) + tr(S2) - 2 tr((S1^1/2 S2 S1^1/2)^1/2), both square roots through
// symmetric eigendecompositions with eigenvalues below 0 (rounding) clamped to 0. The inner
// product is similar to S1 S2, so this equals the usual tr((S1 S2)^1/2) form. Rounding can
// leave identical sets a tiny negative value (about -1e-13 at D = 16). Throws recap::Error
// when D differs.
double frechet_distance(const GaussianStats& a, const GaussianStats& b);
double fid(const torch::Tensor& a, const torch::Tensor& b);

struct KidOptions {
  int subsets = 100;
  int64_t subset_size = 1000;  // capped at the smaller set's N
  uint64_t seed = 0;           // subset draws use recap::Rng, so results are reproducible
};

struct KidResult {
  double mean = 0;       // mean of the per-subset unbiased MMD^2 estimates
  double std = 0;        // their standard deviation (N - 1), what torch-fidelity reports
  double std_error = 0;  // std / sqrt(subsets); 0 with one subset
  int subsets = 0;
  int64_t subset_size = 0;
};

// Each subset draws subset_size rows of each set without replacement and estimates MMD^2 with
// the kernel k(x, y) = (x.y / D + 1)^3, unbiased: within-set sums leave out the diagonal.
// Throws recap::Error like gaussian_stats, when D differs, or for subsets < 1 or a subset
// size < 2.
KidResult kid(const torch::Tensor& a, const torch::Tensor& b, const KidOptions& options = {});

}  // namespace recap::eval
