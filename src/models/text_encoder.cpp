#include "core/torch_pch.h"
#include "models/text_encoder.h"

#include <fmt/format.h>

#include "core/error.h"
#include "text/tokenizer.h"

namespace recap::models {

TextEncoderImpl::TextEncoderImpl(TextEncoderOptions o) : options_(o) {
  token_embedding = register_module("token_embedding", torch::nn::Embedding(o.vocab_size, o.dim));
  position_embedding =
      register_module("position_embedding", torch::nn::Embedding(o.max_length, o.dim));
  blocks = register_module("blocks", torch::nn::ModuleList());
  for (int64_t i = 0; i < o.layers; ++i)
    blocks->push_back(nn::TransformerBlock(nn::TransformerBlockOptions{o.dim, o.heads}));
  final_norm = register_module("final_norm",
                               torch::nn::LayerNorm(torch::nn::LayerNormOptions({o.dim})));
}

torch::Tensor TextEncoderImpl::forward(const torch::Tensor& ids) {
  if (ids.dim() != 2 || ids.size(1) > options_.max_length)
    throw Error(fmt::format("text encoder: expected token ids [B, T<={}], got {} dims of length "
                            "{}", options_.max_length, ids.dim(), ids.dim() ? ids.size(-1) : 0));
  auto positions = torch::arange(ids.size(1), ids.options());
  auto h = token_embedding(ids) + position_embedding(positions).unsqueeze(0);
  torch::Tensor padding;  // [B, T] true on padding; bidirectional attention only
  if (!options_.causal) padding = ids == text::Tokenizer::kPad;
  for (const auto& block : *blocks)
    h = block->as<nn::TransformerBlock>()->forward(h, {}, options_.causal, nullptr, {}, padding);
  return final_norm(h);
}

}  // namespace recap::models
