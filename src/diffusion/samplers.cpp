#include "core/torch_pch.h"
#include "diffusion/samplers.h"

#include <ATen/CPUGeneratorImpl.h>
#include <fmt/format.h>

#include <algorithm>
#include <cmath>
#include <stdexcept>

#include "core/error.h"

namespace recap::diffusion {
namespace {

torch::Tensor clipped(const torch::Tensor& x0, const SamplerOptions& options) {
  return options.clip_x0 > 0 ? x0.clamp(-options.clip_x0, options.clip_x0) : x0;
}

// One sampler step: from timestep t (noise level abar) to the next, less noisy level
// abar_next (1 after the last timestep: clean data).
struct Step {
  int64_t t;
  double abar, abar_next;
};

std::vector<Step> plan(const NoiseSchedule& schedule, const torch::Tensor& x_T, int steps) {
  if (!x_T.defined() || x_T.dim() < 1 || !at::isFloatingType(x_T.scalar_type()))
    throw std::invalid_argument("sample: x_T must be a floating tensor [B, ...]");
  auto ts = sampling_timesteps(schedule.size(), steps);
  std::vector<Step> out;
  for (size_t i = 0; i < ts.size(); ++i)
    out.push_back({ts[i], schedule.alpha_bar(ts[i]),
                   i + 1 < ts.size() ? schedule.alpha_bar(ts[i + 1]) : 1.0});
  return out;
}

torch::Tensor timesteps_for(const torch::Tensor& x, int64_t t) {
  return torch::full({x.size(0)}, t, torch::TensorOptions().dtype(torch::kLong).device(x.device()));
}

torch::Tensor call(const Predictor& model, const torch::Tensor& x, const torch::Tensor& t) {
  auto out = model(x, t);
  if (!out.defined() || out.sizes() != x.sizes())
    throw std::logic_error("sample: the model's output must have the shape of x_t");
  return out;
}

}  // namespace

Sampler parse_sampler(std::string_view name) {
  if (name == "ddpm") return Sampler::DDPM;
  if (name == "ddim") return Sampler::DDIM;
  if (name == "euler") return Sampler::Euler;
  if (name == "dpm++2m") return Sampler::DPMpp2M;
  throw Error(fmt::format("unknown sampler '{}' (ddpm, ddim, euler, dpm++2m)", name));
}

std::string_view sampler_name(Sampler sampler) {
  switch (sampler) {
    case Sampler::DDPM: return "ddpm";
    case Sampler::DDIM: return "ddim";
    case Sampler::Euler: return "euler";
    case Sampler::DPMpp2M: return "dpm++2m";
  }
  throw std::logic_error("sampler_name: unknown sampler");
}

std::vector<int64_t> sampling_timesteps(int64_t num_train_timesteps, int steps) {
  const int64_t T = num_train_timesteps, n = steps;
  if (n < 1 || n > T)
    throw Error(
        fmt::format("sampling steps = {}: must be in [1, {}] (the training timesteps)", steps, T));
  std::vector<int64_t> ts;
  if (n == 1) return {T - 1};
  // round((T - 1) (n - 1 - i) / (n - 1)) in integers, rounding halves up. Consecutive values
  // differ by (T - 1) / (n - 1) >= 1 before rounding, so they stay distinct.
  for (int64_t i = 0; i < n; ++i)
    ts.push_back((2 * (T - 1) * (n - 1 - i) + (n - 1)) / (2 * (n - 1)));
  return ts;
}

torch::Tensor sample(Sampler sampler, const Predictor& model, Prediction type,
                     const NoiseSchedule& schedule, torch::Tensor x_T, int steps,
                     const SamplerOptions& options) {
  switch (sampler) {
    case Sampler::DDPM:
      return sample_ddpm(model, type, schedule, x_T, steps, options);
    case Sampler::DDIM:
      return sample_ddim(model, type, schedule, x_T, steps, options);
    case Sampler::Euler:
      return sample_euler(model, type, schedule, x_T, steps, options);
    case Sampler::DPMpp2M:
      return sample_dpmpp_2m(model, type, schedule, x_T, steps, options);
  }
  throw std::logic_error("sample: unknown sampler");
}

torch::Tensor sample_ddpm(const Predictor& model, Prediction type, const NoiseSchedule& schedule,
                          torch::Tensor x_T, int steps, const SamplerOptions& options) {
  torch::NoGradGuard no_grad;
  auto gen = at::detail::createCPUGenerator(options.seed);
  auto x = x_T;
  for (const auto& s : plan(schedule, x_T, steps)) {
    auto t = timesteps_for(x, s.t);
    auto x0 = clipped(schedule.predicted_x0(call(model, x, t), type, x, t), options);
    // With strided steps the effective beta of the jump t -> next is 1 - abar / abar_next;
    // q(x_next | x_t, x0) is Gaussian with this mean and variance beta_tilde (DDPM eq. 7).
    const double alpha = s.abar / s.abar_next, beta = 1 - alpha;
    const double variance = (1 - s.abar_next) / (1 - s.abar) * beta;
    x = (std::sqrt(s.abar_next) * beta / (1 - s.abar)) * x0 +
        (std::sqrt(alpha) * (1 - s.abar_next) / (1 - s.abar)) * x;
    if (variance > 0) x = x + std::sqrt(variance) * gaussian_noise(x, gen);
  }
  return x;
}

torch::Tensor sample_ddim(const Predictor& model, Prediction type, const NoiseSchedule& schedule,
                          torch::Tensor x_T, int steps, const SamplerOptions& options) {
  if (options.eta < 0) throw Error(fmt::format("ddim: eta = {} must be >= 0", options.eta));
  torch::NoGradGuard no_grad;
  auto gen = at::detail::createCPUGenerator(options.seed);
  auto x = x_T;
  for (const auto& s : plan(schedule, x_T, steps)) {
    auto t = timesteps_for(x, s.t);
    auto out = call(model, x, t);
    auto x0 = schedule.predicted_x0(out, type, x, t);
    auto eps = schedule.predicted_eps(out, type, x, t);
    if (options.clip_x0 > 0) {
      x0 = clipped(x0, options);
      eps = schedule.eps_from_x0(x, x0, t);
    }
    // DDIM eq. 12/16: eta = 1 makes sigma^2 the DDPM posterior variance beta_tilde.
    const double sigma =
        options.eta * std::sqrt((1 - s.abar_next) / (1 - s.abar) * (1 - s.abar / s.abar_next));
    const double direction = std::sqrt(std::max(0.0, 1 - s.abar_next - sigma * sigma));
    x = std::sqrt(s.abar_next) * x0 + direction * eps;
    if (sigma > 0) x = x + sigma * gaussian_noise(x, gen);
  }
  return x;
}

torch::Tensor sample_euler(const Predictor& model, Prediction type, const NoiseSchedule& schedule,
                           torch::Tensor x_T, int steps, const SamplerOptions& options) {
  torch::NoGradGuard no_grad;
  const auto plan_steps = plan(schedule, x_T, steps);
  // Euler integrates the probability-flow ODE dx/dsigma = (x - x0(x)) / sigma in the
  // variance-exploding scale x = x_t / sqrt(abar) = x0 + sigma eps. x_T is the VP state at t_0,
  // so divide by sqrt(abar_0) exactly (diffusers approximates this with sigma_max).
  auto x = x_T / std::sqrt(plan_steps.front().abar);
  for (const auto& s : plan_steps) {
    const double sigma = std::sqrt((1 - s.abar) / s.abar);
    const double sigma_next = std::sqrt((1 - s.abar_next) / s.abar_next);
    auto x_vp = x * std::sqrt(s.abar);  // what the model was trained on
    auto t = timesteps_for(x, s.t);
    auto x0 = clipped(schedule.predicted_x0(call(model, x_vp, t), type, x_vp, t), options);
    x = x + (sigma_next - sigma) / sigma * (x - x0);
  }
  return x;
}

torch::Tensor sample_dpmpp_2m(const Predictor& model, Prediction type,
                              const NoiseSchedule& schedule, torch::Tensor x_T, int steps,
                              const SamplerOptions& options) {
  torch::NoGradGuard no_grad;
  // lambda = log(alpha / sigma), alpha = sqrt(abar), sigma = sqrt(1 - abar): the half
  // log-SNR in which the data-prediction ODE solution is exact for a constant x0.
  auto lambda = [](double abar) { return 0.5 * std::log(abar / (1 - abar)); };
  auto x = x_T;
  torch::Tensor previous_x0;
  double previous_h = 0;
  for (const auto& s : plan(schedule, x_T, steps)) {
    auto t = timesteps_for(x, s.t);
    auto x0 = clipped(schedule.predicted_x0(call(model, x, t), type, x, t), options);
    if (s.abar_next >= 1) {
      // lambda = inf at clean data: the update reduces to the x0 prediction (first order, as
      // k-diffusion and diffusers' lower_order_final do).
      x = x0;
      break;
    }
    const double h = lambda(s.abar_next) - lambda(s.abar);
    auto d = x0;
    if (previous_x0.defined()) {
      // Second order: extrapolate x0 linearly in lambda to the middle of the step (Lu et al.
      // 2022, alg. 2) from this and the previous prediction.
      const double r = previous_h / h;
      d = (1 + 1 / (2 * r)) * x0 - (1 / (2 * r)) * previous_x0;
    }
    x = (std::sqrt(1 - s.abar_next) / std::sqrt(1 - s.abar)) * x -
        (std::sqrt(s.abar_next) * std::expm1(-h)) * d;
    previous_x0 = x0;
    previous_h = h;
  }
  return x;
}

}  // namespace recap::diffusion
