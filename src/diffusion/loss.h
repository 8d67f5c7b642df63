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

// Uniform timesteps in [0, T), long [batch] on `device`, drawn on the CPU from `gen`.
torch::Tensor sample_timesteps(int64_t batch, const NoiseSchedule& schedule, at::Generator gen,
                               torch::Device device = torch::kCPU);

}  // namespace recap::diffusion
