#include "core/torch_pch.h"
#include "train/flat_parameters.h"

#include <set>

#include <fmt/format.h>

#include "core/error.h"

namespace recap::train {

FlatParameters::FlatParameters(torch::nn::Module& module) {
  std::vector<torch::Tensor> params;
  std::set<const void*> seen;  // a module registered twice shares its parameters
  int64_t total = 0;
  for (const auto& p : module.named_parameters()) {
    const torch::Tensor& t = p.value();
    if (!t.requires_grad() || !seen.insert(t.unsafeGetTensorImpl()).second) continue;
    if (!params.empty() &&
        (t.scalar_type() != params[0].scalar_type() || t.device() != params[0].device()))
      throw Error(
          fmt::format("trainer: parameter '{}' is {} on {}, the others {} on {}: one "
                      "optimizer buffer needs one dtype and device",
                      p.key(), c10::toString(t.scalar_type()), t.device().str(),
                      c10::toString(params[0].scalar_type()), params[0].device().str()));
    slots_.push_back({p.key(), total, t.numel(), t.sizes().vec()});
    params.push_back(t);
    total += t.numel();
  }
  const auto options = params.empty() ? torch::TensorOptions(torch::kFloat)
                                      : params[0].options().requires_grad(false);
  values_ = torch::empty({total}, options);
  grads_ = torch::zeros({total}, options);
  torch::NoGradGuard no_grad;
  for (size_t i = 0; i < params.size(); ++i) {
    const Slot& s = slots_[i];
    torch::Tensor value = values_.narrow(0, s.offset, s.numel).view(s.shape);
    value.copy_(params[i]);
    params[i].set_data(value);
    params[i].mutable_grad() = grads_.narrow(0, s.offset, s.numel).view(s.shape);
  }
}

NamedTensors FlatParameters::views(const torch::Tensor& flat, const std::string& suffix) const {
  NamedTensors out;
  out.reserve(slots_.size());
  for (const Slot& s : slots_)
    out.emplace_back(s.name + suffix, flat.narrow(0, s.offset, s.numel).view(s.shape));
  return out;
}

double FlatParameters::grad_norm() const {
  return grads_.numel() == 0 ? 0.0 : grads_.norm().item<double>();
}

}  // namespace recap::train
