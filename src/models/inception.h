// The FID-standard InceptionV3 (Szegedy et al. 2016) up to its 2048-d pool3 output: the network
// pytorch-fid and the original TensorFlow FID compute features with, so FIDs on real weights
// are comparable with published ones. Our own FID/KID run in the evaluator's feature space
// (models/evaluator.h), which knows the embedded world; this network is for users who want the
// standard number beside it.
//
// It is torchvision's inception_v3 with pytorch-fid's FID variants of the Mixed blocks (the
// 2015 TensorFlow graph differs from torchvision's there): the average pools of Mixed_5*,
// Mixed_6b-e and Mixed_7b leave padding out of the mean (count_include_pad = false), and
// Mixed_7c pools with a max pool instead. No auxiliary classifier, no final fc.
//
// Parameter names are torchvision's module paths ("Conv2d_1a_3x3.conv.weight",
// "Mixed_5b.branch1x1.bn.running_mean", ...), so pytorch-fid's weights, exported from
// fid_inception_v3().state_dict() without the "fc.*" entries, load directly (README.md).
#pragma once
#include <filesystem>
#include <vector>

#include "core/torch_pch.h"

namespace recap::models {

// Conv (no bias), BatchNorm (eps 1e-3), ReLU: torchvision's BasicConv2d ("conv.*", "bn.*").
class InceptionConvImpl : public torch::nn::Module {
 public:
  InceptionConvImpl(int64_t in, int64_t out, torch::ExpandingArray<2> kernel,
                    torch::ExpandingArray<2> stride = 1, torch::ExpandingArray<2> padding = 0);
  torch::Tensor forward(const torch::Tensor& x);

 private:
  torch::nn::Conv2d conv{nullptr};
  torch::nn::BatchNorm2d bn{nullptr};
};
TORCH_MODULE(InceptionConv);

class InceptionV3Impl : public torch::nn::Module {
 public:
  InceptionV3Impl();

  // images [B, 3, 299, 299] already scaled to [-1, 1] -> pool3 features [B, 2048]. Spatial
  // sizes other than 299 run too (>= 75 px) but give features FID was not defined on.
  torch::Tensor forward(const torch::Tensor& images);

 private:
  InceptionConv Conv2d_1a_3x3{nullptr}, Conv2d_2a_3x3{nullptr}, Conv2d_2b_3x3{nullptr},
      Conv2d_3b_1x1{nullptr}, Conv2d_4a_3x3{nullptr};
  // The eleven Mixed blocks in order (Mixed_5b ... Mixed_7c), registered under those names.
  std::vector<torch::nn::AnyModule> mixed_;
};
TORCH_MODULE(InceptionV3);

// A network with the weights of a safetensors file (names as above). Throws recap::Error
// naming every missing, unexpected or mis-shaped tensor.
InceptionV3 load_inception(const std::filesystem::path& safetensors);

// images [B, 3, H, W] in [-1, 1], any H, W, on any device -> [B, 2048] float pool3 features
// on the images' device. Resized to 299 x 299 bilinearly (align_corners = false, as
// pytorch-fid does); the network runs in eval mode without gradients on its own device.
torch::Tensor inception_features(InceptionV3& model, const torch::Tensor& images);

}  // namespace recap::models
