// Exponential moving average of a model's weights (parameters and floating buffers), kept
// as shadow tensors named like the model state so checkpoints store them by module path.
#pragma once
#include <vector>

#include "core/torch_pch.h"
#include "core/weights.h"
#include "train/flat_parameters.h"

namespace recap::train {

class Ema {
 public:
  // The trainable parameters' shadows are views into one buffer laid out like `flat`'s, so
  // they are averaged in one pass; `flat` must outlive the Ema.
  Ema(const torch::nn::Module& model, const FlatParameters& flat, double decay);

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
  const FlatParameters& flat_;
  torch::Tensor flat_shadow_;  // [flat_.numel()]: the trainable parameters' averages
  NamedTensors shadow_;        // module_state() order; trainable entries view flat_shadow_
  // The entries outside flat_shadow_: floating buffers (and a parameter shared under a second
  // name) are averaged; integer buffers (counters) and frozen parameters are copied, the
  // latter so that their average cannot drift from their value by rounding.
  struct Other {
    size_t index;
    bool averaged;
  };
  std::vector<Other> others_;
  double decay_;
};

}  // namespace recap::train
