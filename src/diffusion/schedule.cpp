#include "core/torch_pch.h"
#include "diffusion/schedule.h"

#include <fmt/format.h>

#include <cmath>
#include <numbers>
#include <stdexcept>
#include <vector>

#include "core/error.h"

namespace recap::diffusion {
namespace {

torch::Tensor make_betas(BetaSchedule kind, int64_t steps) {
  const auto f64 = torch::TensorOptions().dtype(torch::kFloat64);
  switch (kind) {
    case BetaSchedule::Linear:
      return torch::linspace(1e-4, 0.02, steps, f64);
    case BetaSchedule::ScaledLinear:
      return torch::linspace(std::sqrt(0.00085), std::sqrt(0.012), steps, f64).square();
    case BetaSchedule::Cosine: {
      // abar(u) = f(u) / f(0), f(u) = cos^2((u / T + s) / (1 + s) * pi / 2); beta for index t
      // takes abar from u = t to u = t + 1. The clip keeps the last steps from being all noise
      // with beta = 1 (abar_T = 0 exactly would make x0_from_eps divide by zero).
      constexpr double s = 0.008;
      auto u = torch::arange(steps + 1, f64) / static_cast<double>(steps);
      auto f = torch::cos((u + s) / (1 + s) * (std::numbers::pi / 2)).square();
      auto abar = f / f[0];
      auto ratio = abar.slice(0, 1) / abar.slice(0, 0, steps);
      return (1 - ratio).clamp_max(0.999);
    }
  }
  throw std::logic_error("make_betas: unknown schedule");
}

void check_timesteps(const torch::Tensor& t) {
  if (!t.defined() || t.dim() != 1 || at::isFloatingType(t.scalar_type()))
    throw std::invalid_argument("diffusion: timesteps must be an integer tensor [B]");
}

}  // namespace

BetaSchedule parse_beta_schedule(std::string_view name) {
  if (name == "linear") return BetaSchedule::Linear;
  if (name == "scaled-linear") return BetaSchedule::ScaledLinear;
  if (name == "cosine") return BetaSchedule::Cosine;
  throw Error(fmt::format("unknown beta schedule '{}' (linear, scaled-linear, cosine)", name));
}

Prediction parse_prediction(std::string_view name) {
  if (name == "eps") return Prediction::Eps;
  if (name == "v") return Prediction::V;
  throw Error(fmt::format("unknown prediction type '{}' (eps, v)", name));
}

std::string_view beta_schedule_name(BetaSchedule schedule) {
  switch (schedule) {
    case BetaSchedule::Linear: return "linear";
    case BetaSchedule::ScaledLinear: return "scaled-linear";
    case BetaSchedule::Cosine: return "cosine";
  }
  throw std::logic_error("beta_schedule_name: unknown schedule");
}

std::string_view prediction_name(Prediction prediction) {
  return prediction == Prediction::V ? "v" : "eps";
}

NoiseSchedule::NoiseSchedule(BetaSchedule kind, int64_t steps, double log_snr_shift) {
  if (steps < 1) throw Error(fmt::format("noise schedule: {} timesteps, need at least 1", steps));
  if (!std::isfinite(log_snr_shift) || std::abs(log_snr_shift) > 20)
    throw Error(fmt::format("noise schedule: log SNR shift {} outside [-20, 20]", log_snr_shift));
  betas_ = make_betas(kind, steps);
  alphas_ = 1 - betas_;
  alphas_cumprod_ = torch::cumprod(alphas_, 0);
  if (log_snr_shift != 0) {
    // sigmoid(logit(abar) + shift), then the betas that give it: alpha_t = abar_t / abar_{t-1}.
    alphas_cumprod_ = torch::sigmoid(torch::logit(alphas_cumprod_) + log_snr_shift);
    alphas_ = alphas_cumprod_ / torch::cat({torch::ones({1}, alphas_cumprod_.options()),
                                            alphas_cumprod_.slice(0, 0, steps - 1)});
    betas_ = 1 - alphas_;
  }
  sqrt_abar_ = alphas_cumprod_.sqrt();
  sqrt_one_minus_abar_ = (1 - alphas_cumprod_).sqrt();
}

double NoiseSchedule::alpha_bar(int64_t t) const {
  if (t < 0 || t >= size())
    throw std::out_of_range(fmt::format("alpha_bar: t = {} outside [0, {})", t, size()));
  return alphas_cumprod_[t].item<double>();
}

torch::Tensor NoiseSchedule::coefficient(const torch::Tensor& table, const torch::Tensor& t,
                                         const torch::Tensor& like) const {
  check_timesteps(t);
  if (like.dim() < 1 || like.size(0) != t.size(0))
    throw std::invalid_argument("diffusion: timesteps [B] do not match the batch [B, ...]");
  std::vector<int64_t> shape(static_cast<size_t>(like.dim()), 1);
  shape[0] = t.size(0);
  // Gather in float64 on the CPU (where the table lives), round once to like's dtype.
  return table.index_select(0, t.to(torch::kCPU, torch::kLong))
      .to(like.device(), like.scalar_type())
      .view(shape);
}

torch::Tensor NoiseSchedule::add_noise(const torch::Tensor& x0, const torch::Tensor& eps,
                                       const torch::Tensor& t) const {
  return coefficient(sqrt_abar_, t, x0) * x0 + coefficient(sqrt_one_minus_abar_, t, x0) * eps;
}

torch::Tensor NoiseSchedule::snr(const torch::Tensor& t) const {
  check_timesteps(t);
  auto abar = alphas_cumprod_.index_select(0, t.to(torch::kCPU, torch::kLong));
  return (abar / (1 - abar)).to(t.device());
}

torch::Tensor NoiseSchedule::x0_from_eps(const torch::Tensor& x_t, const torch::Tensor& eps,
                                         const torch::Tensor& t) const {
  return (x_t - coefficient(sqrt_one_minus_abar_, t, x_t) * eps) / coefficient(sqrt_abar_, t, x_t);
}

torch::Tensor NoiseSchedule::eps_from_x0(const torch::Tensor& x_t, const torch::Tensor& x0,
                                         const torch::Tensor& t) const {
  return (x_t - coefficient(sqrt_abar_, t, x_t) * x0) / coefficient(sqrt_one_minus_abar_, t, x_t);
}

torch::Tensor NoiseSchedule::v_from(const torch::Tensor& x0, const torch::Tensor& eps,
                                    const torch::Tensor& t) const {
  return coefficient(sqrt_abar_, t, x0) * eps - coefficient(sqrt_one_minus_abar_, t, x0) * x0;
}

torch::Tensor NoiseSchedule::predicted_x0(const torch::Tensor& out, Prediction type,
                                          const torch::Tensor& x_t, const torch::Tensor& t) const {
  if (type == Prediction::Eps) return x0_from_eps(x_t, out, t);
  // x0 = sqrt(abar) x_t - sqrt(1 - abar) v: substitute x_t and v and the eps terms cancel.
  return coefficient(sqrt_abar_, t, x_t) * x_t - coefficient(sqrt_one_minus_abar_, t, x_t) * out;
}

torch::Tensor NoiseSchedule::predicted_eps(const torch::Tensor& out, Prediction type,
                                           const torch::Tensor& x_t, const torch::Tensor& t) const {
  if (type == Prediction::Eps) return out;
  // eps = sqrt(1 - abar) x_t + sqrt(abar) v.
  return coefficient(sqrt_one_minus_abar_, t, x_t) * x_t + coefficient(sqrt_abar_, t, x_t) * out;
}

torch::Tensor NoiseSchedule::target(Prediction type, const torch::Tensor& x0,
                                    const torch::Tensor& eps, const torch::Tensor& t) const {
  return type == Prediction::Eps ? eps : v_from(x0, eps, t);
}

torch::Tensor gaussian_noise(const torch::Tensor& like, at::Generator gen) {
  const auto dtype = like.scalar_type() == torch::kFloat64 ? torch::kFloat64 : torch::kFloat32;
  return torch::randn(like.sizes(), gen, torch::TensorOptions().dtype(dtype))
      .to(like.device(), like.scalar_type());
}

}  // namespace recap::diffusion
