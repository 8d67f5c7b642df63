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

// KID is estimated on subsets so that its spread says how much the estimate would move with
// other images. A subset holds at most half the smaller set: with every subset the whole set
// (the old cap at N), all subsets were the same images, their spread was only rounding, and a
// standard error of spread / sqrt(subsets) shrank towards 0 as subsets were added while the
// images stayed the same 400. Subsets of half the set give the half-sampling (delete-d
// jackknife, d = N / 2; Shao and Wu 1989) estimate of the sampling variance instead: for a set
// of N and subsets of m drawn without replacement, variance = m / (N - m) x the variance of the
// subset estimates, which at m = N / 2 is the subset variance itself (for a mean, the finite
// population correction 1 - m/N = 1/2 turns sigma^2 / m into exactly sigma^2 / N). It does not
// fall as subsets are added; more subsets only estimate it better. Both sets are subsampled;
// N is the smaller, which overstates the larger set's share of the variance (conservative).
struct KidOptions {
  int subsets = 100;
  int64_t subset_size = 1000;  // at most; capped at half the smaller set's N (rounded down)
  uint64_t seed = 0;           // subset draws use recap::Rng, so results are reproducible
};

struct KidResult {
  double mean = 0;       // mean of the per-subset unbiased MMD^2 estimates
  double std = 0;        // their standard deviation (N - 1), what torch-fidelity reports
  double std_error = 0;  // of the KID estimate: std x sqrt(m / (N - m)), m = subset_size and N
                         // the smaller set (see above); 0 with one subset
  int subsets = 0;
  int64_t subset_size = 0;
};

// Each subset draws subset_size rows of each set without replacement and estimates MMD^2 with
// the kernel k(x, y) = (x.y / D + 1)^3, unbiased: within-set sums leave out the diagonal.
// Throws recap::Error like gaussian_stats, when D differs, or for subsets < 1 or a subset
// size < 2 (so each set needs at least 4 rows).
KidResult kid(const torch::Tensor& a, const torch::Tensor& b, const KidOptions& options = {});

// The same unbiased MMD^2 estimate on the whole sets, of any sizes >= 2 (what one KID subset
// computes): within-set kernel means without the diagonal, minus twice the cross mean. Throws
// recap::Error like gaussian_stats or when D differs.
double mmd2_unbiased(const torch::Tensor& a, const torch::Tensor& b);

}  // namespace recap::eval
