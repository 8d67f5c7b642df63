// AdamW (Loshchilov & Hutter, as torch.optim.AdamW computes it) over a FlatParameters buffer,
// in one pass per step: each element's gradient is read once, scaled (clipping), and its
// moments and parameter updated while in registers. torch::optim::AdamW in this libtorch makes
// ~10 whole-tensor passes per parameter tensor. One difference: a parameter that got no
// gradient this step (unused by the loss) still has its weight decay and moment decay applied
// with a zero gradient, where torch's AdamW skips a tensor whose .grad is undefined.
#pragma once
#include <cstdint>

#include "core/checkpoint.h"
#include "core/torch_pch.h"
#include "train/flat_parameters.h"

namespace recap::train {

struct AdamWOptions {
  double beta1 = 0.9, beta2 = 0.999;
  double eps = 1e-8;
  double weight_decay = 0.01;  // decoupled: parameters shrink by lr * weight_decay per step
};

// The factor torch's clip_grad_norm_ scales gradients by: max_norm / (norm + 1e-6) when that
// is below 1, else 1; also 1 when max_norm <= 0 (no clipping).
double clip_scale(double grad_norm, double max_norm);

class AdamW {
 public:
  AdamW(FlatParameters& params, AdamWOptions options);

  // One update at learning rate `lr` from the gradients times `grad_scale` (the clipping
  // factor; 1 leaves them as they are).
  void step(double lr, double grad_scale = 1.0);

  // The moments as checkpoints store them ("<parameter path>.exp_avg" / ".exp_avg_sq",
  // views into this optimizer's buffers) and the number of steps taken.
  OptimizerState& state() { return state_; }

 private:
  FlatParameters& params_;
  AdamWOptions options_;
  torch::Tensor exp_avg_, exp_avg_sq_;  // [numel], laid out like params_.values()
  OptimizerState state_;
};

}  // namespace recap::train
