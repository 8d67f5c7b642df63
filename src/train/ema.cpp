#include "core/torch_pch.h"
#include "train/ema.h"

#include <algorithm>
#include <map>

namespace recap::train {

Ema::Ema(const torch::nn::Module& model, const FlatParameters& flat, double decay)
    : flat_(flat), flat_shadow_(flat.values().clone()), decay_(decay) {
  std::map<std::string, torch::Tensor> views;
  for (auto& [name, view] : flat.views(flat_shadow_)) views.emplace(name, view);
  const size_t parameters = model.parameters().size();
  for (auto& [name, t] : module_state(model)) {  // parameters, then buffers
    const auto it = views.find(name);
    if (it != views.end()) {
      shadow_.emplace_back(name, it->second);
      continue;
    }
    const bool buffer = shadow_.size() >= parameters;
    others_.push_back({shadow_.size(), t.is_floating_point() && (buffer || t.requires_grad())});
    shadow_.emplace_back(name, t.detach().clone());
  }
}

void Ema::update(const torch::nn::Module& model, int64_t step) {
  torch::NoGradGuard no_grad;
  const double decay =
      std::min(decay_, static_cast<double>(1 + step) / static_cast<double>(10 + step));
  flat_shadow_.lerp_(flat_.values(), 1.0 - decay);
  if (others_.empty()) return;
  const auto state = module_state(model);  // the shadow's order
  for (const Other& o : others_) {
    torch::Tensor& s = shadow_[o.index].second;
    const torch::Tensor w = state[o.index].second.detach();
    if (o.averaged)
      s.lerp_(w, 1.0 - decay);
    else
      s.copy_(w);
  }
}

void Ema::copy_to(torch::nn::Module& model) const {
  torch::NoGradGuard no_grad;
  auto state = module_state(model);
  for (size_t i = 0; i < shadow_.size(); ++i) state[i].second.copy_(shadow_[i].second);
}

}  // namespace recap::train
