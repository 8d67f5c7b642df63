// A contrastive image-text model (CLIP, Radford et al. 2021) at the world's scale. The image
// tower is a convolutional backbone (nn::ConvBackbone), average-pooled and projected; the text
// tower is the text-to-image model's own TextEncoder, read at each caption's last token (EOS:
// causal attention has let it see the whole caption) and projected. Both land L2-normalised
// in one embedding space, where matching pairs score high. Its text tower is registered as
// "text_encoder", the name a t2i model gives its own, so `t2i.text_encoder` starts (and with
// `t2i.freeze_text` keeps) a text-to-image model's encoder from a trained CLIP, as Stable
// Diffusion took CLIP's.
#pragma once
#include <cstdint>

#include <nlohmann/json.hpp>

#include "core/torch_pch.h"
#include "models/text_encoder.h"
#include "nn/conv.h"

namespace recap::models {

struct ClipOptions {
  nn::ConvBackboneOptions image{64, 2, 4};  // 8x8 feature grid at 32 px
  TextEncoderOptions text_encoder;
  int64_t embed_dim = 128;
};
// Saved in the weights' metadata ("clip_options") so the model can be rebuilt from its file.
NLOHMANN_DEFINE_TYPE_NON_INTRUSIVE(ClipOptions, image, text_encoder, embed_dim)

class ClipImpl : public torch::nn::Module {
 public:
  explicit ClipImpl(const ClipOptions& options);

  // images [B, 3, H, W] in [-1, 1] -> unit vectors [B, E].
  torch::Tensor encode_image(const torch::Tensor& images);
  // ids [B, T] ([BOS, tokens, EOS] right-padded with PAD, stages::prompt_ids) -> unit
  // vectors [B, E], read at each row's last non-PAD token.
  torch::Tensor encode_text(const torch::Tensor& ids);
  // exp(logit_scale), clamped to CLIP's 100: the temperature's inverse.
  torch::Tensor scale() const;

  const ClipOptions& options() const { return options_; }

  nn::ConvBackbone image_encoder{nullptr};
  torch::nn::Linear image_projection{nullptr};
  TextEncoder text_encoder{nullptr};
  torch::nn::Linear text_projection{nullptr};
  torch::Tensor logit_scale;  // scalar, learnt; starts at log(1 / 0.07) as CLIP's

 private:
  ClipOptions options_;
};
TORCH_MODULE(Clip);

// Index of the last non-PAD id of every row: ids [B, T] -> [B] long. A row of PAD only is
// refused (std::invalid_argument): it holds no caption.
torch::Tensor last_token_index(const torch::Tensor& ids);

// CLIP's symmetric contrastive loss: image i's caption is text i, every other text in the
// batch is a negative, and the other way round. image, text [B, E] unit vectors; scale a
// scalar. Mean of the two cross-entropies over logits scale * image @ text^T.
torch::Tensor clip_loss(const torch::Tensor& image, const torch::Tensor& text,
                        const torch::Tensor& scale);

// Top-1 retrieval among n pairs, both ways: the share of images whose most similar text is
// their own, and of texts whose most similar image is their own (ties count as misses).
struct Retrieval {
  double image_to_text = 0, text_to_image = 0;
  int64_t pairs = 0;
};
Retrieval retrieval_accuracy(const torch::Tensor& image, const torch::Tensor& text);

}  // namespace recap::models
