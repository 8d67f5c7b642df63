#include "core/torch_pch.h"
#include "train/ema.h"

namespace recap::train {

Ema::Ema(const torch::nn::Module& model, double decay) : decay_(decay) {
  for (auto& [name, t] : module_state(model)) shadow_.emplace_back(name, t.detach().clone());
}

void Ema::update(const torch::nn::Module& model) {
  torch::NoGradGuard no_grad;
  auto state = module_state(model);  // same order as the shadow: parameters, then buffers
  for (size_t i = 0; i < shadow_.size(); ++i) {
    auto& s = shadow_[i].second;
    if (s.is_floating_point()) s.mul_(decay_).add_(state[i].second.detach(), 1.0 - decay_);
    else s.copy_(state[i].second);  // integer buffers (counters) are copied, not averaged
  }
}

void Ema::copy_to(torch::nn::Module& model) const {
  torch::NoGradGuard no_grad;
  auto state = module_state(model);
  for (size_t i = 0; i < shadow_.size(); ++i) state[i].second.copy_(shadow_[i].second);
}

}  // namespace recap::train
