// Noise schedules and prediction parameterisations for DDPM-style (variance-preserving)
// diffusion: x_t = sqrt(abar_t) x0 + sqrt(1 - abar_t) eps. Knows nothing of models or text;
// samplers and losses take a schedule plus a Predictor.
//
// Index t in [0, T) is the (t+1)-th noising step, as in diffusers: abar_0 is already slightly
// noisy and abar_{T-1} is almost pure noise.
#pragma once
#include <functional>
#include <string_view>

#include "core/torch_pch.h"

namespace recap::diffusion {

enum class BetaSchedule {
  Linear,        // DDPM (Ho et al. 2020): betas = linspace(1e-4, 0.02, T)
  ScaledLinear,  // Stable Diffusion: betas = linspace(sqrt(0.00085), sqrt(0.012), T)^2
  Cosine,        // Nichol & Dhariwal 2021, s = 0.008, betas clipped at 0.999
};

// What the model outputs: the noise eps, or v = sqrt(abar) eps - sqrt(1 - abar) x0
// (Salimans & Ho 2022).
enum class Prediction { Eps, V };

// "linear", "scaled-linear", "cosine"; "eps", "v". Unknown names throw recap::Error. The
// *_name functions are the inverses.
BetaSchedule parse_beta_schedule(std::string_view name);
Prediction parse_prediction(std::string_view name);
std::string_view beta_schedule_name(BetaSchedule schedule);
std::string_view prediction_name(Prediction prediction);

// A denoising model as the samplers see it: x_t [B, ...] and timesteps t [B] (long, indices
// into the schedule) -> model output [B, ...] in the chosen Prediction.
using Predictor = std::function<torch::Tensor(const torch::Tensor& x_t, const torch::Tensor& t)>;

class NoiseSchedule {
 public:
  // log_snr_shift adds a constant to every timestep's log SNR, log(abar / (1 - abar)):
  // positive values keep more of the signal at every t. Simple diffusion (Hoogeboom et al.
  // 2023) shifts it by 2 ln(resolution ratio) when the resolution changes; on our 8x8 latent,
  // +2 learned slower than no shift (docs/RESULTS.md, "Session 4 levers"), so presets keep 0.
  explicit NoiseSchedule(BetaSchedule kind = BetaSchedule::Linear, int64_t steps = 1000,
                         double log_snr_shift = 0);

  int64_t size() const { return betas_.size(0); }  // T
  // float64 [T] on the CPU.
  const torch::Tensor& betas() const { return betas_; }
  const torch::Tensor& alphas() const { return alphas_; }
  const torch::Tensor& alphas_cumprod() const { return alphas_cumprod_; }
  double alpha_bar(int64_t t) const;  // alphas_cumprod[t] as a number, for the samplers

  // The per-sample coefficient table[t] for t [B] (any integer dtype, any device), shaped
  // [B, 1, ..., 1] to broadcast against `like` [B, ...], in like's dtype and device.
  torch::Tensor coefficient(const torch::Tensor& table, const torch::Tensor& t,
                            const torch::Tensor& like) const;

  // x_t = sqrt(abar_t) x0 + sqrt(1 - abar_t) eps; x0, eps [B, ...], t [B].
  torch::Tensor add_noise(const torch::Tensor& x0, const torch::Tensor& eps,
                          const torch::Tensor& t) const;
  // abar_t / (1 - abar_t), float64 [B] on t's device.
  torch::Tensor snr(const torch::Tensor& t) const;

  // Conversions between parameterisations at timesteps t [B]; tensors [B, ...].
  torch::Tensor x0_from_eps(const torch::Tensor& x_t, const torch::Tensor& eps,
                            const torch::Tensor& t) const;
  torch::Tensor eps_from_x0(const torch::Tensor& x_t, const torch::Tensor& x0,
                            const torch::Tensor& t) const;
  torch::Tensor v_from(const torch::Tensor& x0, const torch::Tensor& eps,
                       const torch::Tensor& t) const;
  // The model's output `out` in parameterisation `type`, read as x0 or as eps.
  torch::Tensor predicted_x0(const torch::Tensor& out, Prediction type, const torch::Tensor& x_t,
                             const torch::Tensor& t) const;
  torch::Tensor predicted_eps(const torch::Tensor& out, Prediction type, const torch::Tensor& x_t,
                              const torch::Tensor& t) const;
  // What a perfect model outputs for this (x0, eps): eps itself, or v.
  torch::Tensor target(Prediction type, const torch::Tensor& x0, const torch::Tensor& eps,
                       const torch::Tensor& t) const;

 private:
  torch::Tensor betas_, alphas_, alphas_cumprod_;
  torch::Tensor sqrt_abar_, sqrt_one_minus_abar_;  // cached: every conversion needs them
};

// Standard normal noise shaped like `like`, drawn on the CPU from `gen` (in float64 for float64
// tensors, else float32) and moved to like's device and dtype: one seed gives the same noise on
// every device, and nothing depends on the global generator.
torch::Tensor gaussian_noise(const torch::Tensor& like, at::Generator gen);

}  // namespace recap::diffusion
