#include "core/torch_pch.h"
#include "nn/transformer.h"

#include "core/error.h"

namespace recap::nn {

TransformerBlockImpl::TransformerBlockImpl(TransformerBlockOptions o) {
  auto ln = [&] { return torch::nn::LayerNorm(torch::nn::LayerNormOptions({o.dim})); };
  norm1 = register_module("norm1", ln());
  attn1 = register_module("attn1", Attention(AttentionOptions{o.dim, o.heads, 0}));
  if (o.context_dim > 0) {
    norm2 = register_module("norm2", ln());
    attn2 = register_module("attn2", Attention(AttentionOptions{o.dim, o.heads, o.context_dim}));
  }
  norm3 = register_module("norm3", ln());
  ff = register_module("ff", torch::nn::Sequential(torch::nn::Linear(o.dim, o.dim * o.mlp_ratio),
                                                   torch::nn::GELU(),
                                                   torch::nn::Linear(o.dim * o.mlp_ratio, o.dim)));
  dropout = register_module("dropout", torch::nn::Dropout(o.dropout));
}

torch::Tensor TransformerBlockImpl::forward(const torch::Tensor& x, const torch::Tensor& context,
                                            bool causal, BlockCache* cache,
                                            const torch::Tensor& context_padding,
                                            const torch::Tensor& padding) {
  auto h = x + dropout(
                   attn1->forward(norm1(x), {}, causal, cache ? &cache->self : nullptr, padding));
  if (attn2) {
    if (!context.defined()) throw Error("transformer block: cross-attention needs a context");
    h = h + dropout(attn2->forward(norm2(h), context, false, cache ? &cache->cross : nullptr,
                                  context_padding));
  }
  return h + dropout(ff->forward(norm3(h)));
}

}  // namespace recap::nn
