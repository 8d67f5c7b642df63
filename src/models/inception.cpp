#include "core/torch_pch.h"
#include "models/inception.h"

#include <fmt/format.h>
#include <fmt/ranges.h>

#include "core/error.h"
#include "core/weights.h"

namespace recap::models {

namespace F = torch::nn::functional;

InceptionConvImpl::InceptionConvImpl(int64_t in, int64_t out, torch::ExpandingArray<2> kernel,
                                     torch::ExpandingArray<2> stride,
                                     torch::ExpandingArray<2> padding) {
  conv = register_module(
      "conv",
      torch::nn::Conv2d(
          torch::nn::Conv2dOptions(in, out, kernel).stride(stride).padding(padding).bias(false)));
  bn = register_module("bn", torch::nn::BatchNorm2d(torch::nn::BatchNorm2dOptions(out).eps(1e-3)));
}

torch::Tensor InceptionConvImpl::forward(const torch::Tensor& x) {
  return torch::relu(bn->forward(conv->forward(x)));
}

namespace {

// 3x3 stride-1 pools that keep the size: the FID graph's average pools divide by the number of
// real (unpadded) pixels under the window.
torch::Tensor fid_avg_pool(const torch::Tensor& x) {
  return F::avg_pool2d(x, F::AvgPool2dFuncOptions(3).stride(1).padding(1).count_include_pad(false));
}

// A 1 x n then n x 1 (or the reverse) factorised conv, as the 7x7 and 3x3 branches use.
InceptionConv conv_1xn(int64_t in, int64_t out, int64_t n) {
  return InceptionConv(in, out, torch::ExpandingArray<2>({1, n}), 1,
                       torch::ExpandingArray<2>({0, n / 2}));
}
InceptionConv conv_nx1(int64_t in, int64_t out, int64_t n) {
  return InceptionConv(in, out, torch::ExpandingArray<2>({n, 1}), 1,
                       torch::ExpandingArray<2>({n / 2, 0}));
}

// Mixed_5b-d (35 x 35): -> 64 + 64 + 96 + pool_features channels.
class InceptionAImpl : public torch::nn::Module {
 public:
  InceptionAImpl(int64_t in, int64_t pool_features)
      : branch1x1(register_module("branch1x1", InceptionConv(in, 64, 1))),
        branch5x5_1(register_module("branch5x5_1", InceptionConv(in, 48, 1))),
        branch5x5_2(register_module("branch5x5_2", InceptionConv(48, 64, 5, 1, 2))),
        branch3x3dbl_1(register_module("branch3x3dbl_1", InceptionConv(in, 64, 1))),
        branch3x3dbl_2(register_module("branch3x3dbl_2", InceptionConv(64, 96, 3, 1, 1))),
        branch3x3dbl_3(register_module("branch3x3dbl_3", InceptionConv(96, 96, 3, 1, 1))),
        branch_pool(register_module("branch_pool", InceptionConv(in, pool_features, 1))) {}

  torch::Tensor forward(const torch::Tensor& x) {
    return torch::cat(
        {branch1x1(x), branch5x5_2(branch5x5_1(x)),
         branch3x3dbl_3(branch3x3dbl_2(branch3x3dbl_1(x))), branch_pool(fid_avg_pool(x))},
        1);
  }

  InceptionConv branch1x1, branch5x5_1, branch5x5_2, branch3x3dbl_1, branch3x3dbl_2, branch3x3dbl_3,
      branch_pool;
};
TORCH_MODULE(InceptionA);

// Mixed_6a: 35 -> 17 px, -> 384 + 96 + in channels.
class InceptionBImpl : public torch::nn::Module {
 public:
  explicit InceptionBImpl(int64_t in)
      : branch3x3(register_module("branch3x3", InceptionConv(in, 384, 3, 2))),
        branch3x3dbl_1(register_module("branch3x3dbl_1", InceptionConv(in, 64, 1))),
        branch3x3dbl_2(register_module("branch3x3dbl_2", InceptionConv(64, 96, 3, 1, 1))),
        branch3x3dbl_3(register_module("branch3x3dbl_3", InceptionConv(96, 96, 3, 2))) {}

  torch::Tensor forward(const torch::Tensor& x) {
    return torch::cat({branch3x3(x), branch3x3dbl_3(branch3x3dbl_2(branch3x3dbl_1(x))),
                       F::max_pool2d(x, F::MaxPool2dFuncOptions(3).stride(2))},
                      1);
  }

  InceptionConv branch3x3, branch3x3dbl_1, branch3x3dbl_2, branch3x3dbl_3;
};
TORCH_MODULE(InceptionB);

// Mixed_6b-e (17 x 17): factorised 7x7 convs with c7 inner channels, -> 4 x 192 channels.
class InceptionCImpl : public torch::nn::Module {
 public:
  InceptionCImpl(int64_t in, int64_t c7)
      : branch1x1(register_module("branch1x1", InceptionConv(in, 192, 1))),
        branch7x7_1(register_module("branch7x7_1", InceptionConv(in, c7, 1))),
        branch7x7_2(register_module("branch7x7_2", conv_1xn(c7, c7, 7))),
        branch7x7_3(register_module("branch7x7_3", conv_nx1(c7, 192, 7))),
        branch7x7dbl_1(register_module("branch7x7dbl_1", InceptionConv(in, c7, 1))),
        branch7x7dbl_2(register_module("branch7x7dbl_2", conv_nx1(c7, c7, 7))),
        branch7x7dbl_3(register_module("branch7x7dbl_3", conv_1xn(c7, c7, 7))),
        branch7x7dbl_4(register_module("branch7x7dbl_4", conv_nx1(c7, c7, 7))),
        branch7x7dbl_5(register_module("branch7x7dbl_5", conv_1xn(c7, 192, 7))),
        branch_pool(register_module("branch_pool", InceptionConv(in, 192, 1))) {}

  torch::Tensor forward(const torch::Tensor& x) {
    auto dbl = branch7x7dbl_3(branch7x7dbl_2(branch7x7dbl_1(x)));
    return torch::cat({branch1x1(x), branch7x7_3(branch7x7_2(branch7x7_1(x))),
                       branch7x7dbl_5(branch7x7dbl_4(dbl)), branch_pool(fid_avg_pool(x))},
                      1);
  }

  InceptionConv branch1x1, branch7x7_1, branch7x7_2, branch7x7_3, branch7x7dbl_1, branch7x7dbl_2,
      branch7x7dbl_3, branch7x7dbl_4, branch7x7dbl_5, branch_pool;
};
TORCH_MODULE(InceptionC);

// Mixed_7a: 17 -> 8 px, -> 320 + 192 + in channels.
class InceptionDImpl : public torch::nn::Module {
 public:
  explicit InceptionDImpl(int64_t in)
      : branch3x3_1(register_module("branch3x3_1", InceptionConv(in, 192, 1))),
        branch3x3_2(register_module("branch3x3_2", InceptionConv(192, 320, 3, 2))),
        branch7x7x3_1(register_module("branch7x7x3_1", InceptionConv(in, 192, 1))),
        branch7x7x3_2(register_module("branch7x7x3_2", conv_1xn(192, 192, 7))),
        branch7x7x3_3(register_module("branch7x7x3_3", conv_nx1(192, 192, 7))),
        branch7x7x3_4(register_module("branch7x7x3_4", InceptionConv(192, 192, 3, 2))) {}

  torch::Tensor forward(const torch::Tensor& x) {
    auto b7 = branch7x7x3_4(branch7x7x3_3(branch7x7x3_2(branch7x7x3_1(x))));
    return torch::cat(
        {branch3x3_2(branch3x3_1(x)), b7, F::max_pool2d(x, F::MaxPool2dFuncOptions(3).stride(2))},
        1);
  }

  InceptionConv branch3x3_1, branch3x3_2, branch7x7x3_1, branch7x7x3_2, branch7x7x3_3,
      branch7x7x3_4;
};
TORCH_MODULE(InceptionD);

// Mixed_7b-c (8 x 8): -> 320 + 2 x 384 + 2 x 384 + 192 = 2048 channels. Mixed_7b pools with
// the FID average pool, Mixed_7c with a 3x3 stride-1 max pool (the 2015 graph's quirk).
class InceptionEImpl : public torch::nn::Module {
 public:
  InceptionEImpl(int64_t in, bool max_pool)
      : max_pool_(max_pool),
        branch1x1(register_module("branch1x1", InceptionConv(in, 320, 1))),
        branch3x3_1(register_module("branch3x3_1", InceptionConv(in, 384, 1))),
        branch3x3_2a(register_module("branch3x3_2a", conv_1xn(384, 384, 3))),
        branch3x3_2b(register_module("branch3x3_2b", conv_nx1(384, 384, 3))),
        branch3x3dbl_1(register_module("branch3x3dbl_1", InceptionConv(in, 448, 1))),
        branch3x3dbl_2(register_module("branch3x3dbl_2", InceptionConv(448, 384, 3, 1, 1))),
        branch3x3dbl_3a(register_module("branch3x3dbl_3a", conv_1xn(384, 384, 3))),
        branch3x3dbl_3b(register_module("branch3x3dbl_3b", conv_nx1(384, 384, 3))),
        branch_pool(register_module("branch_pool", InceptionConv(in, 192, 1))) {}

  torch::Tensor forward(const torch::Tensor& x) {
    auto b3 = branch3x3_1(x);
    auto dbl = branch3x3dbl_2(branch3x3dbl_1(x));
    auto pooled = max_pool_ ? F::max_pool2d(x, F::MaxPool2dFuncOptions(3).stride(1).padding(1))
                            : fid_avg_pool(x);
    return torch::cat({branch1x1(x), branch3x3_2a(b3), branch3x3_2b(b3), branch3x3dbl_3a(dbl),
                       branch3x3dbl_3b(dbl), branch_pool(pooled)},
                      1);
  }

  bool max_pool_;
  InceptionConv branch1x1, branch3x3_1, branch3x3_2a, branch3x3_2b, branch3x3dbl_1, branch3x3dbl_2,
      branch3x3dbl_3a, branch3x3dbl_3b, branch_pool;
};
TORCH_MODULE(InceptionE);

}  // namespace

InceptionV3Impl::InceptionV3Impl() {
  Conv2d_1a_3x3 = register_module("Conv2d_1a_3x3", InceptionConv(3, 32, 3, 2));
  Conv2d_2a_3x3 = register_module("Conv2d_2a_3x3", InceptionConv(32, 32, 3));
  Conv2d_2b_3x3 = register_module("Conv2d_2b_3x3", InceptionConv(32, 64, 3, 1, 1));
  Conv2d_3b_1x1 = register_module("Conv2d_3b_1x1", InceptionConv(64, 80, 1));
  Conv2d_4a_3x3 = register_module("Conv2d_4a_3x3", InceptionConv(80, 192, 3));
  auto add = [this](const char* name, auto block) {
    mixed_.emplace_back(register_module(name, block));
  };
  add("Mixed_5b", InceptionA(192, 32));
  add("Mixed_5c", InceptionA(256, 64));
  add("Mixed_5d", InceptionA(288, 64));
  add("Mixed_6a", InceptionB(288));
  add("Mixed_6b", InceptionC(768, 128));
  add("Mixed_6c", InceptionC(768, 160));
  add("Mixed_6d", InceptionC(768, 160));
  add("Mixed_6e", InceptionC(768, 192));
  add("Mixed_7a", InceptionD(768));
  add("Mixed_7b", InceptionE(1280, false));
  add("Mixed_7c", InceptionE(2048, true));
}

torch::Tensor InceptionV3Impl::forward(const torch::Tensor& images) {
  if (images.dim() != 4 || images.size(1) != 3 || images.size(2) < 75 || images.size(3) < 75)
    throw Error(fmt::format("inception: expected images [B, 3, H, W] with H, W >= 75, got [{}]",
                            fmt::join(images.sizes(), ", ")));
  const auto max_pool = F::MaxPool2dFuncOptions(3).stride(2);
  auto x = Conv2d_2b_3x3(Conv2d_2a_3x3(Conv2d_1a_3x3(images)));  // [B, 64, 147, 147] at 299
  x = F::max_pool2d(x, max_pool);                                // [B, 64, 73, 73]
  x = Conv2d_4a_3x3(Conv2d_3b_1x1(x));                           // [B, 192, 71, 71]
  x = F::max_pool2d(x, max_pool);                                // [B, 192, 35, 35]
  for (auto& block : mixed_) x = block.forward(x);               // [B, 2048, 8, 8]
  return x.mean({2, 3});                                         // pool3: [B, 2048]
}

InceptionV3 load_inception(const std::filesystem::path& safetensors) {
  InceptionV3 model;
  load_module(safetensors, *model);
  model->eval();
  return model;
}

torch::Tensor inception_features(InceptionV3& model, const torch::Tensor& images) {
  if (images.dim() != 4 || images.size(1) != 3)
    throw Error(fmt::format("inception: expected images [B, 3, H, W], got [{}]",
                            fmt::join(images.sizes(), ", ")));
  torch::NoGradGuard no_grad;
  model->eval();
  const auto device = model->parameters().front().device();
  auto x =
      F::interpolate(images.to(device, torch::kFloat), F::InterpolateFuncOptions()
                                                           .size(std::vector<int64_t>{299, 299})
                                                           .mode(torch::kBilinear)
                                                           .align_corners(false));
  return model->forward(x).to(images.device());
}

}  // namespace recap::models
