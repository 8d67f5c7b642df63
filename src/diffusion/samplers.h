// Samplers: turn noise x_T into data with any Predictor. They know the schedule and the
// prediction type, nothing of the model.
//
// Timesteps: every sampler visits the same `steps` timesteps, evenly spaced over the whole
// schedule including both ends ("linspace" in diffusers' terms):
// t_i = round((T - 1) (steps - 1 - i) / (steps - 1)) for i = 0 .. steps - 1 (halves round up;
// one step visits T - 1 alone). Starting at T - 1 matters because x_T ~ N(0, I) is only what
// the model saw in training there (Lin et al. 2024 on "leading" spacing, which never visits it).
// Ending at 0 matters because after the last t_i every sampler jumps to clean data (abar = 1,
// as diffusers' DDPM and DDIM with set_alpha_to_one) by taking the x0 prediction, i.e. the
// posterior mean, which lacks the detail still hidden at that noise level: ending at
// "trailing"'s T / steps - 1 (abar ~ 0.98 at 50 steps of the SD schedule) measurably shrinks
// the output's variance, ending at abar_0 ~ 0.999 does not.
//
// x_T is the state at t_0 in the variance-preserving scale, ~N(0, I); the caller draws it.
// All noise drawn inside a sampler comes from a CPU generator seeded with options.seed, so a
// seed gives the same samples on every device.
#pragma once
#include <cstdint>
#include <string_view>
#include <vector>

#include "core/torch_pch.h"
#include "diffusion/schedule.h"

namespace recap::diffusion {

enum class Sampler {
  DDPM,     // ancestral (Ho et al. 2020), posterior variance beta_tilde
  DDIM,     // Song et al. 2021; eta = 0 deterministic, eta = 1 matches DDPM
  Euler,    // Karras et al. 2022 / k-diffusion Euler on sigma = sqrt((1 - abar) / abar)
  DPMpp2M,  // DPM-Solver++(2M), Lu et al. 2022: multistep, second order, data prediction
};

// "ddpm", "ddim", "euler", "dpm++2m"; unknown names throw recap::Error. sampler_name is the
// inverse.
Sampler parse_sampler(std::string_view name);
std::string_view sampler_name(Sampler sampler);

struct SamplerOptions {
  double eta = 0;     // DDIM only: 0 deterministic, 1 ancestral like DDPM
  uint64_t seed = 0;  // for the noise the stochastic samplers (DDPM, DDIM eta > 0) draw
  // > 0: every x0 prediction is clamped to [-clip_x0, clip_x0], the data range (diffusers'
  // clip_sample). At the first steps of a cosine schedule sqrt(abar) is ~1e-3, so reading x0
  // off an eps prediction multiplies its error ~1000x; an undertrained UNet then sampled
  // saturated colour noise (quick preset, 150 steps). DDIM re-derives eps from the clamped x0.
  double clip_x0 = 0;
};

// The timesteps described above, descending; throws recap::Error unless
// 1 <= steps <= T.
std::vector<int64_t> sampling_timesteps(int64_t num_train_timesteps, int steps);

// x_T [B, ...] -> x_0 [B, ...] in `steps` model calls. The model is called with x_t in the
// variance-preserving scale and t a long [B] tensor on x_T's device.
torch::Tensor sample(Sampler sampler, const Predictor& model, Prediction type,
                     const NoiseSchedule& schedule, torch::Tensor x_T, int steps,
                     const SamplerOptions& options = {});

torch::Tensor sample_ddpm(const Predictor& model, Prediction type, const NoiseSchedule& schedule,
                          torch::Tensor x_T, int steps, const SamplerOptions& options = {});
torch::Tensor sample_ddim(const Predictor& model, Prediction type, const NoiseSchedule& schedule,
                          torch::Tensor x_T, int steps, const SamplerOptions& options = {});
torch::Tensor sample_euler(const Predictor& model, Prediction type, const NoiseSchedule& schedule,
                           torch::Tensor x_T, int steps, const SamplerOptions& options = {});
torch::Tensor sample_dpmpp_2m(const Predictor& model, Prediction type,
                              const NoiseSchedule& schedule, torch::Tensor x_T, int steps,
                              const SamplerOptions& options = {});

}  // namespace recap::diffusion
