#include "core/torch_pch.h"
#include "diffusion/guidance.h"

#include <fmt/format.h>

#include <stdexcept>
#include <utility>
#include <vector>

#include "core/error.h"

namespace recap::diffusion {
namespace {

// `uncond` [1, ...] or [B, ...] as [B, ...], checked against cond [B, ...].
torch::Tensor batched_like(const torch::Tensor& uncond, const torch::Tensor& cond) {
  if (!cond.defined() || !uncond.defined() || cond.dim() < 1 || uncond.dim() != cond.dim() ||
      uncond.sizes().slice(1) != cond.sizes().slice(1) ||
      (uncond.size(0) != 1 && uncond.size(0) != cond.size(0)))
    throw std::invalid_argument("guidance: uncond must be [1, ...] or [B, ...] like cond");
  return uncond.expand_as(cond);
}

}  // namespace

Predictor classifier_free_guidance(ConditionalModel model, torch::Tensor cond, torch::Tensor uncond,
                                   double scale) {
  uncond = batched_like(uncond, cond);
  if (scale == 0 || scale == 1) {
    auto only = scale == 0 ? uncond : cond;
    return [model = std::move(model), only](const torch::Tensor& x, const torch::Tensor& t) {
      return model(x, t, only);
    };
  }
  auto both = torch::cat({uncond, cond});  // [2B, ...], built once for every step
  return [model = std::move(model), both, scale](const torch::Tensor& x, const torch::Tensor& t) {
    auto out = model(torch::cat({x, x}), torch::cat({t, t}), both);
    auto halves = out.chunk(2);
    return halves[0] + scale * (halves[1] - halves[0]);
  };
}

torch::Tensor condition_dropout_mask(int64_t batch, double p, at::Generator gen) {
  if (p < 0 || p > 1) throw Error(fmt::format("condition dropout p = {} outside [0, 1]", p));
  // Compare in float64 so p = 1 drops everything and p = 0 nothing (uniform is in [0, 1)).
  return torch::rand({batch}, gen, torch::TensorOptions().dtype(torch::kFloat64)) < p;
}

torch::Tensor drop_conditions(const torch::Tensor& cond, const torch::Tensor& uncond,
                              const torch::Tensor& mask) {
  auto replacement = batched_like(uncond, cond);
  if (mask.dim() != 1 || mask.size(0) != cond.size(0) || mask.scalar_type() != torch::kBool)
    throw std::invalid_argument("drop_conditions: mask must be bool [B]");
  std::vector<int64_t> shape(static_cast<size_t>(cond.dim()), 1);
  shape[0] = cond.size(0);
  return torch::where(mask.to(cond.device()).view(shape), replacement.to(cond.device()), cond);
}

}  // namespace recap::diffusion
