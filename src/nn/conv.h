// Convolutional image encoders shared by the evaluator's detector and the captioner.
#pragma once
#include <nlohmann/json.hpp>

#include "core/torch_pch.h"

namespace recap::nn {

// 3x3 conv (padding 1), GroupNorm with gcd(8, out) groups, SiLU:
// [B, in, H, W] -> [B, out, H / stride, W / stride]. Names "0.*" (conv) and "1.*" (norm).
torch::nn::Sequential conv_block(int64_t in, int64_t out, int64_t stride = 1);

struct ConvBackboneOptions {
  int64_t width = 48;  // channels at the output resolution
  int64_t depth = 4;   // residual blocks at the output resolution
  int64_t stride = 2;  // output stride in px; a power of two >= 2
};
NLOHMANN_DEFINE_TYPE_NON_INTRUSIVE(ConvBackboneOptions, width, depth, stride)

// conv_block at full resolution (width / 2 channels, at least 8), log2(stride) stride-2 blocks
// to `width`, then `depth` residual blocks. Names:
// "stem.*", "down.N.*", "blocks.N.*". recap::Error on options out of range.
class ConvBackboneImpl : public torch::nn::Module {
 public:
  explicit ConvBackboneImpl(const ConvBackboneOptions& options = {});

  // images [B, 3, H, W], H and W multiples of the stride -> [B, width, H / stride, W / stride].
  torch::Tensor forward(const torch::Tensor& images);
  const ConvBackboneOptions& options() const { return options_; }

 private:
  ConvBackboneOptions options_;
  torch::nn::Sequential stem{nullptr};
  torch::nn::ModuleList down{nullptr}, blocks{nullptr};
};
TORCH_MODULE(ConvBackbone);

}  // namespace recap::nn
