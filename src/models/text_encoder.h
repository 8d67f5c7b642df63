// The text encoder: a transformer over tokenizer ids, causal like CLIP's text tower or
// bidirectional like T5's encoder (Imagen). Its per-token hidden states [B, T, D] are the
// context the UNet cross-attends to. Trained
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
  // true: each token sees only those before it (CLIP). false: every token sees the whole
  // caption, padding excluded, so "purple" in "purple circles" can know its noun (T5).
  bool causal = true;
};

// Saved in weight-file metadata so a model can be rebuilt from its file; files written before
// a field existed read its default.
NLOHMANN_DEFINE_TYPE_NON_INTRUSIVE_WITH_DEFAULT(TextEncoderOptions, vocab_size, max_length, dim,
                                                layers, heads, causal)

class TextEncoderImpl : public torch::nn::Module {
 public:
  explicit TextEncoderImpl(TextEncoderOptions options);

  // ids [B, T] (T <= max_length, right-padded with Tokenizer::kPad) -> hidden states
  // [B, T, D]. Padding never influences the real tokens: causal attention puts it after
  // them, bidirectional attention masks it.
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
