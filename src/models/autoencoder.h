// The image autoencoder of latent diffusion (Rombach et al. 2022, the Stable Diffusion the
// RECAP paper fine-tuned): a convolutional encoder that shrinks an image by 2^(levels - 1)
// per side into a few latent channels, and a decoder that draws it back. The text-to-image
// UNet then diffuses in the latent, 16x fewer positions at 4x, and the decoder renders the
// shapes' edges the UNet no longer has to learn pixel by pixel. Plain (no KL term): the
// latents are standardised per channel with statistics measured on the training images, which
// is what the KL weight of 1e-6 in SD's autoencoder amounts to in practice.
#pragma once
#include <cstdint>
#include <vector>

#include <nlohmann/json.hpp>

#include "core/torch_pch.h"
#include "models/unet.h"

namespace recap::models {

struct AutoencoderOptions {
  int64_t in_channels = 3;
  int64_t channels = 32;                          // width of the full-resolution level
  std::vector<int64_t> channel_mult = {1, 2, 2};  // level i: channels * mult[i]; a 2x
                                                  // downsample between levels
  int64_t res_blocks = 1;                         // ResBlocks per level, each way
  int64_t latent_channels = 4;
  int64_t groups = 8;  // GroupNorm groups; divides every level's width
  // Per-channel standardisation of the encoder's output, measured after training
  // (stages/autoencoder_train.h): encode() returns (z - shift) / scale. Empty: 0 and 1.
  std::vector<double> latent_shift, latent_scale;
  // Largest |standardised latent| measured with them: samplers clamp x0 predictions to it as
  // pixel samplers clamp to [-1, 1]. 0: unknown, no clamp.
  double latent_bound = 0;

  int64_t downsample() const { return int64_t{1} << (channel_mult.size() - 1); }
};
NLOHMANN_DEFINE_TYPE_NON_INTRUSIVE_WITH_DEFAULT(AutoencoderOptions, in_channels, channels,
                                                channel_mult, res_blocks, latent_channels,
                                                groups, latent_shift, latent_scale,
                                                latent_bound)

class AutoencoderImpl : public torch::nn::Module {
 public:
  explicit AutoencoderImpl(AutoencoderOptions options);  // recap::Error on bad options

  // images [B, in, H, W] in [-1, 1], H and W multiples of downsample()
  // -> standardised latents [B, latent_channels, H / f, W / f].
  torch::Tensor encode(const torch::Tensor& images);
  // Standardised latents -> images [B, in, H * f, W * f] (not clamped).
  torch::Tensor decode(const torch::Tensor& latents);
  // decode(encode(images)): what training and the reconstruction checks compare.
  torch::Tensor forward(const torch::Tensor& images) { return decode(encode(images)); }

  const AutoencoderOptions& options() const { return options_; }
  // Sets the standardisation (one value per latent channel, scale > 0; or both empty) and
  // the bound (>= 0) of AutoencoderOptions.
  void set_latent_stats(std::vector<double> shift, std::vector<double> scale, double bound);

  torch::nn::Conv2d enc_in{nullptr}, enc_out{nullptr}, dec_in{nullptr}, dec_out{nullptr};
  torch::nn::ModuleList enc_res{nullptr}, enc_down{nullptr}, dec_res{nullptr}, dec_up{nullptr};
  ResBlock enc_mid{nullptr}, dec_mid{nullptr};
  torch::nn::GroupNorm enc_norm{nullptr}, dec_norm{nullptr};

 private:
  torch::Tensor stat(const std::vector<double>& values, double fallback,
                     const torch::Tensor& like) const;  // [1, C, 1, 1]
  AutoencoderOptions options_;
};
TORCH_MODULE(Autoencoder);

}  // namespace recap::models
