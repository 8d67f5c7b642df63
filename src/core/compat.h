// The few places where libtorch 1.13 (Debian) and 2.x (a CUDA build) differ, kept in one
// header so the rest of the code is written once.
#pragma once
#include <cmath>

#include "core/torch_pch.h"
#include <torch/version.h>

namespace recap::compat {

// softmax(q k^T / sqrt(d) + bias) v for q [B, H, T, d], k and v [B, H, S, d]; `bias` is an
// additive mask broadcastable to [B, H, T, S] (0 or -inf), or undefined. libtorch 2.x has a
// fused kernel (flash / memory-efficient on CUDA); 1.13 gets the same math written out.
inline torch::Tensor attention(const torch::Tensor& q, const torch::Tensor& k,
                               const torch::Tensor& v, const torch::Tensor& bias) {
#if TORCH_VERSION_MAJOR >= 2
  return at::scaled_dot_product_attention(
      q, k, v, bias.defined() ? c10::optional<torch::Tensor>(bias) : c10::nullopt);
#else
  auto scores = torch::matmul(q, k.transpose(-2, -1)) / std::sqrt(static_cast<double>(q.size(-1)));
  if (bias.defined()) scores = scores + bias;
  return torch::matmul(torch::softmax(scores, -1), v);
#endif
}

}  // namespace recap::compat
