#include "core/torch_pch.h"
#include "diffusion/loss.h"

#include <stdexcept>
#include <vector>

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
                               torch::Device device) {
  return torch::randint(schedule.size(), {batch}, gen, torch::TensorOptions().dtype(torch::kLong))
      .to(device);
}

}  // namespace recap::diffusion
