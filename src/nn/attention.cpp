#include "core/torch_pch.h"
#include "nn/attention.h"

#include <limits>

#include <fmt/format.h>

#include "core/compat.h"
#include "core/error.h"

namespace recap::nn {

AttentionImpl::AttentionImpl(AttentionOptions options) : options_(options) {
  if (options.heads <= 0 || options.dim % options.heads != 0)
    throw Error(fmt::format("attention: width {} is not divisible by {} heads", options.dim,
                            options.heads));
  const int64_t kv_dim = options.context_dim > 0 ? options.context_dim : options.dim;
  auto no_bias = [](int64_t in, int64_t out) {
    return torch::nn::Linear(torch::nn::LinearOptions(in, out).bias(false));
  };
  to_q = register_module("to_q", no_bias(options.dim, options.dim));
  to_k = register_module("to_k", no_bias(kv_dim, options.dim));
  to_v = register_module("to_v", no_bias(kv_dim, options.dim));
  to_out = register_module("to_out", torch::nn::Linear(options.dim, options.dim));
}

torch::Tensor AttentionImpl::split_heads(const torch::Tensor& t) const {
  return t.view({t.size(0), t.size(1), options_.heads, options_.dim / options_.heads})
      .transpose(1, 2);
}

torch::Tensor causal_bias(int64_t queries, int64_t keys, int64_t offset,
                          const torch::TensorOptions& options) {
  auto q = torch::arange(queries, options.dtype(torch::kLong)).unsqueeze(1) + offset;
  auto k = torch::arange(keys, options.dtype(torch::kLong)).unsqueeze(0);
  return torch::zeros({queries, keys}, options)
      .masked_fill(k > q, -std::numeric_limits<float>::infinity());
}

torch::Tensor AttentionImpl::forward(const torch::Tensor& x, const torch::Tensor& context,
                                     bool causal, KVCache* cache,
                                     const torch::Tensor& key_padding) {
  const bool cross = context.defined();
  auto q = split_heads(to_q(x));
  torch::Tensor k, v;
  int64_t offset = 0;  // cached tokens before these queries
  if (cross && cache && cache->length() > 0) {
    k = cache->k, v = cache->v;  // the context does not change while decoding
  } else {
    const auto& source = cross ? context : x;
    k = split_heads(to_k(source));
    v = split_heads(to_v(source));
    if (cache && !cross && cache->length() > 0) {
      offset = cache->length();
      k = torch::cat({cache->k, k}, 2);
      v = torch::cat({cache->v, v}, 2);
    }
    if (cache) cache->k = k, cache->v = v;
  }

  torch::Tensor bias;
  if (causal && !cross) bias = causal_bias(x.size(1), k.size(2), offset, q.options());
  if (key_padding.defined()) {
    // [B, S] -> [B, 1, 1, S], -inf on padding.
    auto pad = torch::zeros(key_padding.sizes(), q.options())
                   .masked_fill(key_padding, -std::numeric_limits<float>::infinity())
                   .view({key_padding.size(0), 1, 1, key_padding.size(1)});
    bias = bias.defined() ? bias + pad : pad;
  }
  auto out = compat::attention(q, k, v, bias);  // [B, H, T, Dh]
  return to_out(out.transpose(1, 2).reshape({x.size(0), x.size(1), options_.dim}));
}

}  // namespace recap::nn
