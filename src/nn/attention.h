// Multi-head attention, self or cross, with an optional KV cache for step-by-step decoding.
// Shared by the captioner's decoder, the text encoder and the UNet's transformer blocks.
// Parameter names follow diffusers (to_q, to_k, to_v, to_out) so weights map across tools.
#pragma once
#include "core/torch_pch.h"

namespace recap::nn {

// Keys and values seen so far, [B, H, S, Dh] each. For self-attention decoding it grows by the
// new tokens every call; for cross-attention it holds the projected context, computed once.
struct KVCache {
  torch::Tensor k, v;
  int64_t length() const { return k.defined() ? k.size(2) : 0; }
  void clear() { k = v = torch::Tensor(); }
};

struct AttentionOptions {
  int64_t dim;              // model width D
  int64_t heads;            // D must be divisible by heads
  int64_t context_dim = 0;  // width of the attended sequence for cross-attention; 0: self
};

class AttentionImpl : public torch::nn::Module {
 public:
  explicit AttentionImpl(AttentionOptions options);

  // x: [B, T, D]. Self-attention when `context` is undefined, else cross-attention to
  // context [B, S, Dc]. `causal` masks future positions (self-attention only; with a cache the
  // new tokens sit after the cached ones). `key_padding` [B, S] is true where keys are padding.
  torch::Tensor forward(const torch::Tensor& x, const torch::Tensor& context = {},
                        bool causal = false, KVCache* cache = nullptr,
                        const torch::Tensor& key_padding = {});

  torch::nn::Linear to_q{nullptr}, to_k{nullptr}, to_v{nullptr}, to_out{nullptr};

 private:
  torch::Tensor split_heads(const torch::Tensor& t) const;  // [B, T, D] -> [B, H, T, Dh]
  AttentionOptions options_;
};
TORCH_MODULE(Attention);

// Additive mask [T, S] that hides key s from query t when s > t + offset (query t is token
// offset + t of the sequence).
torch::Tensor causal_bias(int64_t queries, int64_t keys, int64_t offset,
                          const torch::TensorOptions& options);

}  // namespace recap::nn
