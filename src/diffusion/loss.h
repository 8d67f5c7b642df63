// The denoising training loss and the random draws that feed it (timesteps, noise). Generic
// over the model: it sees only the model's output tensor.
#pragma once
#include "core/torch_pch.h"
#include "diffusion/schedule.h"

namespace recap::diffusion {

struct LossOptions {
  Prediction prediction = Prediction::Eps;
  // > 0: Min-SNR-gamma weighting (Hang et al. 2023), gamma = 5 in the paper; 0: plain MSE.
  double min_snr_gamma = 0;
};

// Per-sample Min-SNR-gamma weights, float64 [B] on t's device: min(SNR, gamma) / SNR for eps
// targets, min(SNR, gamma) / (SNR + 1) for v targets (the v-MSE already carries a factor
// SNR + 1 relative to the x0-MSE, the eps-MSE a factor SNR).
torch::Tensor min_snr_weights(const NoiseSchedule& schedule, const torch::Tensor& t,
                              Prediction type, double gamma);

// Mean over the batch of the (weighted) per-sample MSE between the model output `out` and the
// target for (x0, eps, t); out, x0, eps [B, ...], t [B]. A scalar in out's dtype.
torch::Tensor diffusion_loss(const NoiseSchedule& schedule, const torch::Tensor& out,
                             const torch::Tensor& x0, const torch::Tensor& eps,
                             const torch::Tensor& t, const LossOptions& options = {});

// Training noise for x0 [B, C, ...]: eps ~ N(0, I), plus `offset` * a per-(sample, channel)
// constant ([B, C, 1, ..., 1]) when offset > 0. The offset ("noise offset", Guttenberg 2023)
// lets the model change an image's mean brightness, which pure per-pixel noise barely
// perturbs at large t.
torch::Tensor training_noise(const torch::Tensor& x0, at::Generator gen, double offset = 0);

// Which noise levels training visits. std = 0: every timestep index equally often (DDPM).
// std > 0: log SNR ~ N(mean, std^2), each index drawn with the probability mass of its
// interval of log SNR (the tails beyond the schedule's ends go to its first and last index). Rectified flow's logit-normal t (SD3,
// Esser et al. 2024) is log SNR = -2 logit(t) ~ N(0, 2^2): mean 0, std 2. Uniform t on the
// cosine schedule has log-SNR density sech(lambda / 2) / (2 pi), std pi.
struct TimestepDensity {
  double log_snr_mean = 0;
  double log_snr_std = 0;
};

// Training timesteps in [0, T), long [batch] on `device`, drawn on the CPU from `gen`.
// Throws recap::Error for a negative or non-finite std or a non-finite mean.
torch::Tensor sample_timesteps(int64_t batch, const NoiseSchedule& schedule, at::Generator gen,
                               torch::Device device = torch::kCPU,
                               const TimestepDensity& density = {});

}  // namespace recap::diffusion
