// Exponential moving average of a model's weights (parameters and floating buffers), kept
// as shadow tensors named like the model state so checkpoints store them by module path.
#pragma once
#include "core/torch_pch.h"
#include "core/weights.h"

namespace recap::train {

class Ema {
 public:
  Ema(const torch::nn::Module& model, double decay);

  // shadow = decay * shadow + (1 - decay) * weight, for every floating tensor.
  void update(const torch::nn::Module& model);
  // Loads the averaged weights into `model` (e.g. for validation or export).
  void copy_to(torch::nn::Module& model) const;

  NamedTensors& shadow() { return shadow_; }
  const NamedTensors& shadow() const { return shadow_; }
  double decay() const { return decay_; }

 private:
  NamedTensors shadow_;
  double decay_;
};

}  // namespace recap::train
