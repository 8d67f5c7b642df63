#include "core/torch_pch.h"
#include "models/autoencoder.h"

#include <cmath>

#include <fmt/format.h>

#include "core/error.h"

namespace recap::models {

namespace {

torch::nn::Conv2d conv3(int64_t in, int64_t out, int64_t stride = 1) {
  return torch::nn::Conv2d(torch::nn::Conv2dOptions(in, out, 3).stride(stride).padding(1));
}

}  // namespace

AutoencoderImpl::AutoencoderImpl(AutoencoderOptions o) : options_(std::move(o)) {
  const auto& m = options_.channel_mult;
  const int64_t levels = static_cast<int64_t>(m.size());
  if (levels == 0 || levels > 6 || options_.channels <= 0 || options_.res_blocks <= 0 ||
      options_.latent_channels <= 0 || options_.in_channels <= 0 || options_.groups <= 0)
    throw Error("autoencoder: channel_mult needs 1..6 levels; channels, res_blocks, "
                "latent_channels, in_channels and groups must be positive");
  for (int64_t mult : m)
    if (mult <= 0 || (options_.channels * mult) % options_.groups != 0)
      throw Error(fmt::format("autoencoder: width {} x {} must be positive and divisible by "
                              "groups ({})", options_.channels, mult, options_.groups));
  set_latent_stats(options_.latent_shift, options_.latent_scale, options_.latent_bound);

  const int64_t g = options_.groups;
  enc_in = register_module("enc_in", conv3(options_.in_channels, options_.channels * m[0]));
  enc_res = register_module("enc_res", torch::nn::ModuleList());
  enc_down = register_module("enc_down", torch::nn::ModuleList());
  int64_t width = options_.channels * m[0];
  for (int64_t i = 0; i < levels; ++i) {
    const int64_t out = options_.channels * m[i];
    for (int64_t j = 0; j < options_.res_blocks; ++j) {
      enc_res->push_back(ResBlock(width, out, 0, g, 0));
      width = out;
    }
    if (i + 1 < levels) enc_down->push_back(conv3(width, width, 2));
  }
  enc_mid = register_module("enc_mid", ResBlock(width, width, 0, g, 0));
  enc_norm = register_module("enc_norm", torch::nn::GroupNorm(g, width));
  enc_out = register_module("enc_out", conv3(width, options_.latent_channels));

  dec_in = register_module("dec_in", conv3(options_.latent_channels, width));
  dec_mid = register_module("dec_mid", ResBlock(width, width, 0, g, 0));
  dec_res = register_module("dec_res", torch::nn::ModuleList());
  dec_up = register_module("dec_up", torch::nn::ModuleList());
  for (int64_t i = levels - 1; i >= 0; --i) {
    const int64_t out = options_.channels * m[i];
    for (int64_t j = 0; j < options_.res_blocks; ++j) {
      dec_res->push_back(ResBlock(width, out, 0, g, 0));
      width = out;
    }
    if (i > 0) dec_up->push_back(conv3(width, width));
  }
  dec_norm = register_module("dec_norm", torch::nn::GroupNorm(g, width));
  dec_out = register_module("dec_out", conv3(width, options_.in_channels));
}

void AutoencoderImpl::set_latent_stats(std::vector<double> shift, std::vector<double> scale,
                                       double bound) {
  const auto c = static_cast<size_t>(options_.latent_channels);
  if ((!shift.empty() && shift.size() != c) || (!scale.empty() && scale.size() != c))
    throw Error(fmt::format("autoencoder: latent statistics need {} values per kind, got {} "
                            "shifts and {} scales", c, shift.size(), scale.size()));
  for (double s : scale)
    if (!(s > 0) || !std::isfinite(s))
      throw Error(fmt::format("autoencoder: latent scale {} is not a positive number", s));
  for (double s : shift)
    if (!std::isfinite(s))
      throw Error(fmt::format("autoencoder: latent shift {} is not a finite number", s));
  if (!(bound >= 0) || !std::isfinite(bound))
    throw Error(fmt::format("autoencoder: latent bound {} is not a number >= 0", bound));
  options_.latent_bound = bound;
  options_.latent_shift = std::move(shift);
  options_.latent_scale = std::move(scale);
}

torch::Tensor AutoencoderImpl::stat(const std::vector<double>& values, double fallback,
                                    const torch::Tensor& like) const {
  if (values.empty()) return torch::full({1, options_.latent_channels, 1, 1}, fallback,
                                         like.options());
  return torch::tensor(values, torch::kDouble)
      .to(like.options())
      .reshape({1, options_.latent_channels, 1, 1});
}

torch::Tensor AutoencoderImpl::encode(const torch::Tensor& images) {
  const int64_t f = options_.downsample();
  if (images.dim() != 4 || images.size(1) != options_.in_channels || images.size(2) % f != 0 ||
      images.size(3) % f != 0)
    throw Error(fmt::format("autoencoder: images must be [B, {}, H, W] with H and W multiples "
                            "of {}, got {}", options_.in_channels, f,
                            c10::str(images.sizes())));
  auto h = enc_in(images);
  const auto per_level = static_cast<size_t>(options_.res_blocks);
  for (size_t i = 0; i < enc_res->size(); ++i) {
    h = enc_res[i]->as<ResBlock>()->forward(h);
    const size_t level = i / per_level;
    if ((i + 1) % per_level == 0 && level < enc_down->size())
      h = enc_down[level]->as<torch::nn::Conv2d>()->forward(h);
  }
  auto z = enc_out(torch::silu(enc_norm(enc_mid(h))));
  return (z - stat(options_.latent_shift, 0, z)) / stat(options_.latent_scale, 1, z);
}

torch::Tensor AutoencoderImpl::decode(const torch::Tensor& latents) {
  if (latents.dim() != 4 || latents.size(1) != options_.latent_channels)
    throw Error(fmt::format("autoencoder: latents must be [B, {}, h, w], got {}",
                            options_.latent_channels, c10::str(latents.sizes())));
  const auto z = latents * stat(options_.latent_scale, 1, latents) +
                 stat(options_.latent_shift, 0, latents);
  auto h = dec_mid(dec_in(z));
  const auto per_level = static_cast<size_t>(options_.res_blocks);
  for (size_t i = 0; i < dec_res->size(); ++i) {
    h = dec_res[i]->as<ResBlock>()->forward(h);
    const size_t level = i / per_level;
    if ((i + 1) % per_level == 0 && level < dec_up->size())
      h = dec_up[level]->as<torch::nn::Conv2d>()->forward(torch::nn::functional::interpolate(
          h, torch::nn::functional::InterpolateFuncOptions()
                 .scale_factor(std::vector<double>{2, 2})
                 .mode(torch::kNearest)));
  }
  return dec_out(torch::silu(dec_norm(h)));
}

}  // namespace recap::models
