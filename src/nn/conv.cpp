#include "core/torch_pch.h"
#include "nn/conv.h"

#include <algorithm>
#include <numeric>

#include <fmt/format.h>
#include <fmt/ranges.h>

#include "core/error.h"

namespace recap::nn {

namespace {

bool is_power_of_two(int64_t v) { return v > 0 && (v & (v - 1)) == 0; }

}  // namespace

torch::nn::Sequential conv_block(int64_t in, int64_t out, int64_t stride) {
  return torch::nn::Sequential(
      torch::nn::Conv2d(torch::nn::Conv2dOptions(in, out, 3).stride(stride).padding(1)),
      torch::nn::GroupNorm(torch::nn::GroupNormOptions(std::gcd<int64_t>(8, out), out)),
      torch::nn::SiLU());
}

ConvBackboneImpl::ConvBackboneImpl(const ConvBackboneOptions& o) : options_(o) {
  if (o.width < 8 || o.depth < 0 || o.stride < 2 || !is_power_of_two(o.stride))
    throw Error(fmt::format("conv backbone: width {} (>= 8), depth {} (>= 0) and stride {} (a "
                            "power of two >= 2) out of range", o.width, o.depth, o.stride));
  const int64_t stem_width = std::max<int64_t>(8, o.width / 2);
  stem = register_module("stem", conv_block(3, stem_width));
  down = register_module("down", torch::nn::ModuleList());
  int64_t channels = stem_width;
  for (int64_t s = 1; s < o.stride; s *= 2) {
    down->push_back(conv_block(channels, o.width, 2));
    channels = o.width;
  }
  blocks = register_module("blocks", torch::nn::ModuleList());
  for (int64_t i = 0; i < o.depth; ++i) blocks->push_back(conv_block(o.width, o.width));
}

torch::Tensor ConvBackboneImpl::forward(const torch::Tensor& images) {
  if (images.dim() != 4 || images.size(1) != 3 || images.size(2) % options_.stride != 0 ||
      images.size(3) % options_.stride != 0)
    throw Error(fmt::format("conv backbone: expected images [B, 3, H, W] with H, W multiples of "
                            "{}, got [{}]", options_.stride, fmt::join(images.sizes(), ", ")));
  auto x = stem->forward(images);  // [B, width / 2, H, W]
  for (const auto& b : *down) x = b->as<torch::nn::Sequential>()->forward(x);
  // Residual blocks: each adds 2 * stride px of receptive field, and the skip keeps the deep
  // stack easy to train from scratch.
  for (const auto& b : *blocks) x = x + b->as<torch::nn::Sequential>()->forward(x);
  return x;  // [B, width, H / stride, W / stride]
}

}  // namespace recap::nn
