// A pre-norm transformer block: self-attention, optional cross-attention to a context, and an
// MLP, each as a residual branch (x + f(LayerNorm(x))). The same block serves the causal text
// encoder, the captioner's decoder (causal + cross to image features) and the UNet's spatial
// transformers (self + cross to text tokens).
#pragma once
#include "core/torch_pch.h"
#include "nn/attention.h"

namespace recap::nn {

struct TransformerBlockOptions {
  int64_t dim;
  int64_t heads;
  int64_t context_dim = 0;  // > 0 adds cross-attention to a context of this width
  int64_t mlp_ratio = 4;
  double dropout = 0;
};

// Per-block decoding state: the self-attention cache grows, the cross-attention one is fixed.
struct BlockCache {
  KVCache self, cross;
};

class TransformerBlockImpl : public torch::nn::Module {
 public:
  explicit TransformerBlockImpl(TransformerBlockOptions options);

  // x [B, T, D]; context [B, S, Dc] when the block has cross-attention; `context_padding`
  // [B, S] true on padded context positions; `padding` [B, T] true on padded positions of x,
  // which self-attention then ignores.
  torch::Tensor forward(const torch::Tensor& x, const torch::Tensor& context = {},
                        bool causal = false, BlockCache* cache = nullptr,
                        const torch::Tensor& context_padding = {},
                        const torch::Tensor& padding = {});

  torch::nn::LayerNorm norm1{nullptr}, norm2{nullptr}, norm3{nullptr};
  Attention attn1{nullptr}, attn2{nullptr};  // self, cross (null without context)
  torch::nn::Sequential ff{nullptr};
  torch::nn::Dropout dropout{nullptr};
};
TORCH_MODULE(TransformerBlock);

}  // namespace recap::nn
