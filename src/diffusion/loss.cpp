#include "core/torch_pch.h"
#include "diffusion/loss.h"

#include <cmath>
#include <limits>
#include <numbers>
#include <stdexcept>
#include <vector>

#include <fmt/format.h>

#include "core/error.h"

namespace recap::diffusion {

torch::Tensor min_snr_weights(const NoiseSchedule& schedule, const torch::Tensor& t,
                              Prediction type, double gamma) {
  if (gamma <= 0) throw std::invalid_argument("min_snr_weights: gamma must be positive");
  auto snr = schedule.snr(t);
  auto clipped = snr.clamp_max(gamma);
  return type == Prediction::Eps ? clipped / snr : clipped / (snr + 1);
}

torch::Tensor diffusion_loss(const NoiseSchedule& schedule, const torch::Tensor& out,
                             const torch::Tensor& x0, const torch::Tensor& eps,
                             const torch::Tensor& t, const LossOptions& options) {
  auto target = schedule.target(options.prediction, x0, eps, t);
  if (options.min_snr_gamma <= 0) return torch::mse_loss(out, target);
  auto per_sample = (out - target).square().flatten(1).mean(1);  // [B]
  auto weights = min_snr_weights(schedule, t, options.prediction, options.min_snr_gamma);
  return (per_sample * weights.to(per_sample.device(), per_sample.scalar_type())).mean();
}

torch::Tensor training_noise(const torch::Tensor& x0, at::Generator gen, double offset) {
  auto eps = gaussian_noise(x0, gen);
  if (offset <= 0) return eps;
  if (x0.dim() < 2) throw std::invalid_argument("training_noise: x0 must be [B, C, ...]");
  std::vector<int64_t> shape(static_cast<size_t>(x0.dim()), 1);
  shape[0] = x0.size(0);
  shape[1] = x0.size(1);
  return eps + offset * gaussian_noise(torch::empty(shape, x0.options()), gen);
}

torch::Tensor sample_timesteps(int64_t batch, const NoiseSchedule& schedule, at::Generator gen,
                               torch::Device device, const TimestepDensity& density) {
  const auto long_options = torch::TensorOptions().dtype(torch::kLong);
  if (density.log_snr_std < 0 || !std::isfinite(density.log_snr_std) ||
      !std::isfinite(density.log_snr_mean))
    throw Error(fmt::format("timestep density: log-SNR mean {} and std {} must be finite, the "
                            "std >= 0", density.log_snr_mean, density.log_snr_std));
  if (density.log_snr_std == 0)
    return torch::randint(schedule.size(), {batch}, gen, long_options).to(device);
  // Index i covers the log-SNR interval between the midpoints to its neighbours; its mass
  // under N(mean, std^2) is the difference of the normal CDF at those edges. log SNR falls
  // with i, so the edges run from high to low.
  const auto& abar = schedule.alphas_cumprod();  // float64 [T]
  const auto lambda = (abar / (1 - abar)).log();
  const auto inner = (lambda.slice(0, 1) + lambda.slice(0, 0, -1)) / 2;  // [T - 1]
  const double inf = std::numeric_limits<double>::infinity();
  const auto edges = torch::cat({torch::full({1}, inf, lambda.options()), inner,
                                 torch::full({1}, -inf, lambda.options())});  // [T + 1]
  const auto cdf = 0.5 * torch::erfc(-(edges - density.log_snr_mean) /
                                     (density.log_snr_std * std::numbers::sqrt2));
  const auto mass = cdf.slice(0, 0, -1) - cdf.slice(0, 1);  // [T], sums to 1
  return torch::multinomial(mass, batch, /*replacement=*/true, gen).to(device);
}

}  // namespace recap::diffusion
