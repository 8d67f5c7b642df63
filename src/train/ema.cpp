#include "core/torch_pch.h"
#include "train/ema.h"

#include <algorithm>

namespace recap::train {

Ema::Ema(const torch::nn::Module& model, double decay)
    : parameters_(model.parameters().size()), decay_(decay) {
  for (auto& [name, t] : module_state(model)) shadow_.emplace_back(name, t.detach().clone());
}

void Ema::update(const torch::nn::Module& model, int64_t step) {
  torch::NoGradGuard no_grad;
  const double decay =
      std::min(decay_, static_cast<double>(1 + step) / static_cast<double>(10 + step));
  auto state = module_state(model);  // same order as the shadow: parameters, then buffers
  for (size_t i = 0; i < shadow_.size(); ++i) {
    auto& s = shadow_[i].second;
    const auto& w = state[i].second;
    const bool frozen = i < parameters_ && !w.requires_grad();
    // Integer buffers (counters) are copied, not averaged; so are frozen parameters, whose
    // average would otherwise drift from their value by rounding.
    if (s.is_floating_point() && !frozen) s.mul_(decay).add_(w.detach(), 1.0 - decay);
    else s.copy_(w);
  }
}

void Ema::copy_to(torch::nn::Module& model) const {
  torch::NoGradGuard no_grad;
  auto state = module_state(model);
  for (size_t i = 0; i < shadow_.size(); ++i) state[i].second.copy_(shadow_[i].second);
}

}  // namespace recap::train
