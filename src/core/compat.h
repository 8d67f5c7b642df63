// The few places where libtorch 1.13 (Debian) and 2.x (a CUDA build) differ, kept in one
// header so the rest of the code is written once.
#pragma once
#include <sstream>
#include <type_traits>

#include "core/torch_pch.h"

namespace recap::compat {

// Optimizer::state() is keyed by the parameter's TensorImpl: as a std::string of the pointer
// in 1.13, as the raw void* in 2.x.
template <typename Optimizer>
auto optimizer_state_key(Optimizer& opt, const torch::Tensor& param) {
  using Key = typename std::decay_t<decltype(opt.state())>::key_type;
  void* impl = param.unsafeGetTensorImpl();
  if constexpr (std::is_same_v<Key, std::string>) {
    std::ostringstream s;
    s << impl;
    return s.str();
  } else {
    return static_cast<Key>(impl);
  }
}

}  // namespace recap::compat
