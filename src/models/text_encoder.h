// The text encoder: a causal transformer over tokenizer ids, like CLIP's text tower. Its
// per-token hidden states [B, T, D] are the context the UNet cross-attends to. Trained
// jointly with the UNet from scratch by default, or loaded from safetensors and frozen.
#pragma once
#include <cstdint>
#include <vector>

#include <nlohmann/json.hpp>

#include "core/torch_pch.h"
#include "nn/transformer.h"

namespace recap::models {

struct TextEncoderOptions {
  int64_t vocab_size = 1024;
  int64_t max_length = 64;  // tokens, including BOS/EOS
  int64_t dim = 128;
  int64_t layers = 4;
  int64_t heads = 4;
};

// Saved in weight-file metadata so a model can be rebuilt from its file.
NLOHMANN_DEFINE_TYPE_NON_INTRUSIVE(TextEncoderOptions, vocab_size, max_length, dim, layers,
                                   heads)

class TextEncoderImpl : public torch::nn::Module {
 public:
  explicit TextEncoderImpl(TextEncoderOptions options);

  // ids [B, T] (T <= max_length, right-padded) -> hidden states [B, T, D]. Causal attention
  // keeps padding after the real tokens from influencing them.
  torch::Tensor forward(const torch::Tensor& ids);
  const TextEncoderOptions& options() const { return options_; }

  torch::nn::Embedding token_embedding{nullptr}, position_embedding{nullptr};
  torch::nn::ModuleList blocks{nullptr};
  torch::nn::LayerNorm final_norm{nullptr};

 private:
  TextEncoderOptions options_;
};
TORCH_MODULE(TextEncoder);

}  // namespace recap::models
