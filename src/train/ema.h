// Exponential moving average of a model's weights (parameters and floating buffers), kept
// as shadow tensors named like the model state so checkpoints store them by module path.
#pragma once
#include "core/torch_pch.h"
#include "core/weights.h"

namespace recap::train {

class Ema {
 public:
  Ema(const torch::nn::Module& model, double decay);

  // shadow = d * shadow + (1 - d) * weight for every floating tensor, after optimizer step
  // `step` (0-based), with d = min(decay, (1 + step) / (10 + step)): the usual warm-up, without
  // which a 0.999 average would still be mostly the random initialisation after 1,000 steps.
  // Frozen parameters (requires_grad false) are copied, so their average is exactly their value.
  void update(const torch::nn::Module& model, int64_t step);
  // Loads the averaged weights into `model` (e.g. for validation or export).
  void copy_to(torch::nn::Module& model) const;

  NamedTensors& shadow() { return shadow_; }
  const NamedTensors& shadow() const { return shadow_; }
  double decay() const { return decay_; }

 private:
  NamedTensors shadow_;
  size_t parameters_;  // the shadow's first entries are parameters, the rest buffers
  double decay_;
};

}  // namespace recap::train
