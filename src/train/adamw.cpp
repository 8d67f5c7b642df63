#include "core/torch_pch.h"
#include "train/adamw.h"
#include "train/adamw_kernel.h"

#include <algorithm>
#include <cmath>

#include <ATen/Parallel.h>

namespace recap::train {

double clip_scale(double grad_norm, double max_norm) {
  return max_norm > 0 ? std::min(1.0, max_norm / (grad_norm + 1e-6)) : 1.0;
}

AdamW::AdamW(FlatParameters& params, AdamWOptions options)
    : params_(params),
      options_(options),
      exp_avg_(torch::zeros_like(params.values())),
      exp_avg_sq_(torch::zeros_like(params.values())) {
  state_.moments = params.views(exp_avg_, ".exp_avg");
  for (auto& named : params.views(exp_avg_sq_, ".exp_avg_sq")) state_.moments.push_back(named);
}

void AdamW::step(double lr, double grad_scale) {
  torch::NoGradGuard no_grad;
  const int64_t t = ++state_.step;
  const AdamWCoefficients c{grad_scale,
                            options_.beta1,
                            options_.beta2,
                            1 - lr * options_.weight_decay,
                            lr / (1 - std::pow(options_.beta1, static_cast<double>(t))),
                            std::sqrt(1 - std::pow(options_.beta2, static_cast<double>(t))),
                            options_.eps};
  const torch::Tensor& p = params_.values();
  const torch::Tensor& g = params_.grads();
  if (p.is_cpu()) {
    AT_DISPATCH_FLOATING_TYPES(p.scalar_type(), "adamw", [&] {
      scalar_t *values = p.data_ptr<scalar_t>(), *m = exp_avg_.data_ptr<scalar_t>(),
               *v = exp_avg_sq_.data_ptr<scalar_t>();
      const scalar_t* grads = g.data_ptr<scalar_t>();
      at::parallel_for(0, p.numel(), int64_t{1} << 15, [&](int64_t begin, int64_t end) {
        adamw_update(values, grads, m, v, begin, end, c);
      });
    });
    return;
  }
  // Elsewhere (CUDA) the same arithmetic as whole-buffer ops: a handful of kernels per step.
  const torch::Tensor grad = grad_scale == 1.0 ? g : g * grad_scale;
  p.mul_(c.decay);
  exp_avg_.mul_(c.beta1).add_(grad, 1 - c.beta1);
  exp_avg_sq_.mul_(c.beta2).addcmul_(grad, grad, 1 - c.beta2);
  p.addcdiv_(exp_avg_, (exp_avg_sq_.sqrt() / c.sqrt_bc2).add_(c.eps), -c.step_size);
}

}  // namespace recap::train
