#include "core/torch_pch.h"
#include "models/clip.h"

#include <cmath>
#include <stdexcept>

#include "text/tokenizer.h"

namespace recap::models {

ClipImpl::ClipImpl(const ClipOptions& o) : options_(o) {
  image_encoder = register_module("image_encoder", nn::ConvBackbone(o.image));
  image_projection = register_module(
      "image_projection",
      torch::nn::Linear(torch::nn::LinearOptions(o.image.width, o.embed_dim).bias(false)));
  text_encoder = register_module("text_encoder", TextEncoder(o.text_encoder));
  text_projection = register_module(
      "text_projection",
      torch::nn::Linear(torch::nn::LinearOptions(o.text_encoder.dim, o.embed_dim).bias(false)));
  logit_scale = register_parameter("logit_scale", torch::full({}, std::log(1 / 0.07)));
}

torch::Tensor ClipImpl::encode_image(const torch::Tensor& images) {
  const auto pooled = image_encoder(images).mean({2, 3});  // [B, width]
  return torch::nn::functional::normalize(
      image_projection(pooled), torch::nn::functional::NormalizeFuncOptions().dim(1));
}

torch::Tensor ClipImpl::encode_text(const torch::Tensor& ids) {
  const auto hidden = text_encoder(ids);  // [B, T, D]
  const auto last = last_token_index(ids).to(hidden.device());
  const auto rows = torch::arange(ids.size(0), last.options());
  return torch::nn::functional::normalize(
      text_projection(hidden.index({rows, last})),
      torch::nn::functional::NormalizeFuncOptions().dim(1));
}

torch::Tensor ClipImpl::scale() const { return logit_scale.exp().clamp_max(100.0); }

torch::Tensor last_token_index(const torch::Tensor& ids) {
  const auto real = (ids != text::Tokenizer::kPad).to(torch::kLong);  // [B, T]
  if (ids.size(0) > 0 && (real.sum(1) == 0).any().item<bool>())
    throw std::invalid_argument("last_token_index: a row of padding only");
  // Right-padded rows: the real ids are a prefix, so the last one is at count - 1.
  return real.sum(1) - 1;
}

torch::Tensor clip_loss(const torch::Tensor& image, const torch::Tensor& text,
                        const torch::Tensor& scale) {
  const auto logits = scale * image.matmul(text.t());  // [B, B]: row i = image i vs texts
  const auto targets = torch::arange(image.size(0), image.options().dtype(torch::kLong));
  return 0.5 * (torch::nn::functional::cross_entropy(logits, targets) +
                torch::nn::functional::cross_entropy(logits.t(), targets));
}

Retrieval retrieval_accuracy(const torch::Tensor& image, const torch::Tensor& text) {
  torch::NoGradGuard no_grad;
  const auto sim = image.matmul(text.t()).to(torch::kDouble);  // [n, n]
  const int64_t n = sim.size(0);
  if (n == 0) return {};
  const auto own = sim.diagonal();
  // Strictly above every other entry of its row (column): a tie is a miss.
  const auto others = sim - torch::eye(n, sim.options()) * 1e9;
  const auto rows = (own > std::get<0>(others.max(1))).to(torch::kDouble).mean();
  const auto cols = (own > std::get<0>(others.max(0))).to(torch::kDouble).mean();
  return {rows.item<double>(), cols.item<double>(), n};
}

}  // namespace recap::models
