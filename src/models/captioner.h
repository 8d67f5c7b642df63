// The captioner: a convolutional vision encoder (nn::ConvBackbone, the evaluator's detector
// architecture, so it can start from a detector pre-trained on renders as PaLI's starts from a
// pre-trained ViT), average-pooled to a grid of image tokens with self-attention over them, and
// a causal transformer decoder that cross-attends to the image tokens. Pre-trained on alt-text,
// fine-tuned on detailed captions, then used to relabel the corpus (models/decoding.h). A
// caption sequence is
//   [BOS, <short>|<long>, tokens..., EOS, PAD...]
// where the style control token right after BOS asks for a short or a long caption; it is part
// of the prompt, so the loss never asks the model to predict it.
#pragma once
#include <cstdint>
#include <string_view>
#include <vector>

#include <nlohmann/json.hpp>

#include "core/torch_pch.h"
#include "nn/conv.h"
#include "nn/transformer.h"
#include "text/tokenizer.h"

namespace recap::models {

struct CaptionerOptions {
  int64_t vocab_size = 1024;
  int64_t max_length = 96;     // tokens, including BOS, style, EOS
  int64_t dim = 128;
  int64_t layers = 4;          // decoder blocks
  int64_t heads = 4;
  int64_t image_size = 64;     // square inputs
  int64_t grid = 8;            // image tokens per side; divides image_size / vision.stride
  nn::ConvBackboneOptions vision;
  int64_t encoder_layers = 1;  // self-attention blocks over the image tokens
  bool tie_embeddings = true;  // output projection = token embedding^T
  double dropout = 0;
};

// Saved in weight-file metadata so a model can be rebuilt from its file.
NLOHMANN_DEFINE_TYPE_NON_INTRUSIVE(CaptionerOptions, vocab_size, max_length, dim, layers, heads,
                                   image_size, grid, vision, encoder_layers, tie_embeddings,
                                   dropout)

// Tokens before the first predicted one: BOS and the style control.
inline constexpr int64_t kPromptLength = 2;

enum class CaptionStyle { kShort, kLong };
int style_token(CaptionStyle style);  // Tokenizer::kShort or kLong

class CaptionerImpl : public torch::nn::Module {
 public:
  explicit CaptionerImpl(CaptionerOptions options);  // recap::Error on inconsistent options

  // images [B, 3, S, S] in [-1, 1], S = image_size -> image tokens [B, grid^2, D].
  torch::Tensor encode_image(const torch::Tensor& images);

  // image_tokens [B, N, D], ids [B, T] -> next-token logits [B, T, V]. With `caches` (one
  // BlockCache per layer, from make_caches()) `ids` are the tokens after those already cached
  // and the caches grow by T; positions continue from the cached length.
  torch::Tensor logits(const torch::Tensor& image_tokens, const torch::Tensor& ids,
                       std::vector<nn::BlockCache>* caches = nullptr);
  std::vector<nn::BlockCache> make_caches() const;

  // Teacher-forced mean cross-entropy of ids [B, T] (T >= 3) given images; `padding` [B, T]
  // is true on PAD positions, which are ignored, as is the style token (it is given).
  torch::Tensor loss(const torch::Tensor& images, const torch::Tensor& ids,
                     const torch::Tensor& padding);

  const CaptionerOptions& options() const { return options_; }

  nn::ConvBackbone vision{nullptr};  // "vision.*": [B, 3, S, S] -> [B, W, S / stride, ...]
  torch::nn::Linear image_proj{nullptr};
  torch::Tensor image_position;  // [grid^2, D]
  torch::nn::ModuleList image_blocks{nullptr};
  torch::nn::LayerNorm image_norm{nullptr};
  torch::nn::Embedding token_embedding{nullptr}, position_embedding{nullptr};
  torch::nn::ModuleList blocks{nullptr};
  torch::nn::LayerNorm final_norm{nullptr};
  torch::nn::Linear lm_head{nullptr};  // only without tie_embeddings

 private:
  CaptionerOptions options_;
};
TORCH_MODULE(Captioner);

// [BOS, style, encode(text)..., EOS], the caption cut so the whole is at most max_length
// (>= 3) tokens; EOS is always kept. Style controls inside the text are dropped so a caption
// cannot carry a second one.
std::vector<int> caption_ids(const text::Tokenizer& tokenizer, std::string_view text,
                             CaptionStyle style, int64_t max_length);
// [BOS, encode(text)..., EOS] without a style control (>= 2 tokens, EOS kept, style controls
// in the text dropped): a prompt for the text-to-image model, which has no use for styles.
std::vector<int> caption_ids(const text::Tokenizer& tokenizer, std::string_view text,
                             int64_t max_length);

struct CaptionBatch {
  torch::Tensor ids;      // [B, T] long, right-padded with PAD, T = longest caption
  torch::Tensor padding;  // [B, T] bool, true on padding
};
CaptionBatch pad_captions(const std::vector<std::vector<int>>& captions);

}  // namespace recap::models
