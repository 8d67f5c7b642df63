// The denoiser: Stable Diffusion's UNet structure, scaled by the preset. ResBlocks (GroupNorm,
// SiLU, timestep embedding added between the convolutions), spatial transformers (self-
// attention over pixels, cross-attention to the text encoder's tokens) at chosen levels, a
// down path whose activations are kept as skips, a middle, and an up path that concatenates
// them back. Pixel space for the embedded world. It predicts whatever the caller trains it to
// (eps or v); it knows nothing of noise schedules.
#pragma once
#include <cstdint>
#include <vector>

#include <nlohmann/json.hpp>

#include "core/torch_pch.h"
#include "nn/transformer.h"

namespace recap::models {

struct UNetOptions {
  int64_t in_channels = 3, out_channels = 3;
  int64_t channels = 64;                        // width of the first level
  std::vector<int64_t> channel_mult = {1, 2, 2};  // width of level i = channels * mult[i]
  int64_t res_blocks = 1;                       // ResBlocks per level on the way down
  std::vector<int64_t> attention_levels = {1, 2};  // levels with spatial transformers
  int64_t heads = 4;
  int64_t context_dim = 128;                    // the text encoder's width
  int64_t groups = 8;                           // GroupNorm groups; divides every width
  double dropout = 0;
  // Side of the square pixel patches the first layer folds into channels (pixel_unshuffle)
  // and the last unfolds (pixel_shuffle): 2 runs the whole network at half resolution, a
  // quarter of the cost, as simple diffusion and DiT do. 1: pixels as they are.
  int64_t patch = 1;
  // Zero the layers that write into the residual stream (each ResBlock's second conv, each
  // transformer's proj_out) and the output conv, as ADM and Stable Diffusion do: every block
  // starts as the identity and the first prediction is 0.
  bool zero_init = false;
  // Add the text states' mean (padding excluded), projected, to the timestep embedding, as
  // Imagen and SDXL add a pooled text embedding: what the prompt asks for as a whole reaches
  // every ResBlock, not only the attention levels.
  bool pooled_text = false;
};

// Saved in weight-file metadata so a model can be rebuilt from its file; files written before
// a field existed read its default.
NLOHMANN_DEFINE_TYPE_NON_INTRUSIVE_WITH_DEFAULT(UNetOptions, in_channels, out_channels, channels,
                                                channel_mult, res_blocks, attention_levels, heads,
                                                context_dim, groups, dropout, patch, zero_init,
                                                pooled_text)

// GroupNorm, SiLU, conv, (+ timestep embedding), GroupNorm, SiLU, conv, plus the input (1x1
// conv when the width changes). time_dim 0: no timestep input (the autoencoder's blocks).
class ResBlockImpl : public torch::nn::Module {
 public:
  ResBlockImpl(int64_t in, int64_t out, int64_t time_dim, int64_t groups, double dropout);
  // x [B, in, H, W], time [B, time_dim] (undefined when time_dim is 0) -> [B, out, H, W]
  torch::Tensor forward(const torch::Tensor& x, const torch::Tensor& time = {});
  torch::nn::GroupNorm norm1{nullptr}, norm2{nullptr};
  torch::nn::Conv2d conv1{nullptr}, conv2{nullptr}, skip{nullptr};
  torch::nn::Linear time_proj{nullptr};
  torch::nn::Dropout dropout{nullptr};
};
TORCH_MODULE(ResBlock);

// Pixels as tokens: [B, C, H, W] -> [B, H*W, C] through one transformer block and back.
class SpatialTransformerImpl : public torch::nn::Module {
 public:
  SpatialTransformerImpl(int64_t channels, int64_t heads, int64_t context_dim, int64_t groups);
  torch::Tensor forward(const torch::Tensor& x, const torch::Tensor& context,
                        const torch::Tensor& context_padding);
  torch::nn::GroupNorm norm{nullptr};
  torch::nn::Conv2d proj_in{nullptr}, proj_out{nullptr};
  nn::TransformerBlock block{nullptr};
};
TORCH_MODULE(SpatialTransformer);

// One resolution of the UNet: ResBlocks, each optionally followed by a spatial transformer,
// then a resampling convolution (down or up; absent at the bottom / top).
class UNetLevelImpl : public torch::nn::Module {
 public:
  torch::nn::ModuleList res{nullptr}, attn{nullptr};
  torch::nn::Conv2d resample{nullptr};
};
TORCH_MODULE(UNetLevel);

// Asks UNet::forward for the activation at the end of one level of the down path (after its
// last ResBlock / transformer, before downsampling): [B, channels * mult[level], H', W'].
// Representation alignment (REPA) trains it towards a frozen encoder's features.
struct FeatureTap {
  int64_t level = 1;
  torch::Tensor features;  // set by forward
};

class UNetImpl : public torch::nn::Module {
 public:
  explicit UNetImpl(UNetOptions options);

  // x [B, in, H, W] (H and W divisible by 2^(levels-1)), t [B] timesteps, context [B, S, D]
  // text states, context_padding [B, S] true on padding (may be undefined)
  // -> [B, out, H, W]. With `tap`, also fills tap->features.
  torch::Tensor forward(const torch::Tensor& x, const torch::Tensor& t,
                        const torch::Tensor& context, const torch::Tensor& context_padding = {},
                        FeatureTap* tap = nullptr);
  const UNetOptions& options() const { return options_; }

  torch::nn::Conv2d conv_in{nullptr}, conv_out{nullptr};
  torch::nn::Sequential time_mlp{nullptr};
  torch::nn::Linear text_pool{nullptr};  // pooled_text only: [B, context_dim] -> [B, 4C]
  torch::nn::ModuleList down{nullptr}, up{nullptr};
  ResBlock mid_res1{nullptr}, mid_res2{nullptr};
  SpatialTransformer mid_attn{nullptr};
  torch::nn::GroupNorm norm_out{nullptr};

 private:
  UNetOptions options_;
};
TORCH_MODULE(UNet);

}  // namespace recap::models
