// The FID InceptionV3: its size matches pytorch-fid's network, its names are torchvision's, and
// weights round-trip through safetensors with strict checking.
#include <cmath>

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "core/error.h"
#include "core/weights.h"
#include "models/inception.h"
#include "test_util.h"

namespace recap::models {
namespace {

// Parameters (conv weights, BatchNorm weight and bias) of torchvision's inception_v3 up to
// pool3. Derived by hand from torchvision's layer definitions (sum over every BasicConv2d of
// in * out * kh * kw + 2 * out) and cross-checked: adding the auxiliary classifier (3,326,696)
// and the 1000-class fc (2,049,000) gives 27,161,264, the count torchvision publishes for
// inception_v3.
constexpr int64_t kPool3Parameters = 21'785'568;

TEST(Inception, ParameterCountAndNamesMatchTorchvision) {
  InceptionV3 net;
  int64_t n = 0;
  for (const auto& p : net->parameters()) n += p.numel();
  EXPECT_EQ(n, kPool3Parameters);
  std::map<std::string, std::vector<int64_t>> shapes;
  for (const auto& [name, t] : module_state(*net)) shapes[name] = t.sizes().vec();
  EXPECT_EQ(shapes["Conv2d_1a_3x3.conv.weight"], (std::vector<int64_t>{32, 3, 3, 3}));
  EXPECT_EQ(shapes["Mixed_5b.branch_pool.conv.weight"], (std::vector<int64_t>{32, 192, 1, 1}));
  EXPECT_EQ(shapes["Mixed_6b.branch7x7_2.conv.weight"], (std::vector<int64_t>{128, 128, 1, 7}));
  EXPECT_EQ(shapes["Mixed_7c.branch3x3dbl_3b.conv.weight"], (std::vector<int64_t>{384, 384, 3, 1}));
  EXPECT_EQ(shapes["Mixed_7c.branch_pool.bn.running_var"], (std::vector<int64_t>{192}));
  EXPECT_EQ(shapes.count("Mixed_7a.branch7x7x3_4.bn.num_batches_tracked"), 1u);
  for (const auto& [name, shape] : shapes) {
    EXPECT_THAT(name, testing::Not(testing::HasSubstr("fc")));
    EXPECT_THAT(name, testing::Not(testing::HasSubstr("AuxLogits")));
  }
}

// Random weights (with non-trivial BatchNorm statistics) saved and loaded into a fresh network
// give the same features; a 64 x 64 input is resized to 299 and yields [2, 2048].
TEST(Inception, WeightsRoundTripAndFeatureShape) {
  at::set_num_threads(1);
  torch::manual_seed(0);
  InceptionV3 net;
  {
    // He-normal convolutions keep the signal alive through the 94 conv layers (the default
    // init shrinks it to nothing, and every image would give the same features).
    torch::NoGradGuard no_grad;
    for (auto& p : net->parameters())
      if (p.dim() == 4) p.normal_(0, std::sqrt(2.0 / static_cast<double>(p[0].numel())));
    for (auto& b : net->named_buffers()) {
      if (b.key().ends_with("running_mean")) b.value().uniform_(-0.1, 0.1);
      if (b.key().ends_with("running_var")) b.value().uniform_(0.5, 1.5);
    }
  }
  test::TempDir dir("inception");
  save_module(dir / "inception.safetensors", *net);
  InceptionV3 loaded = load_inception(dir / "inception.safetensors");

  auto images = torch::rand({2, 3, 64, 64}) * 2 - 1;
  auto a = inception_features(net, images);
  auto b = inception_features(loaded, images);
  EXPECT_EQ(a.sizes(), (std::vector<int64_t>{2, 2048}));
  EXPECT_EQ(a.scalar_type(), torch::kFloat);
  EXPECT_TRUE(torch::isfinite(a).all().item<bool>());
  EXPECT_GE(a.min().item<float>(), 0.0f);  // the mean of ReLU outputs
  EXPECT_GT(a.max().item<float>(), 0.01f);
  EXPECT_TRUE(torch::equal(a, b));
  EXPECT_FALSE(torch::allclose(a[0], a[1], 1e-3, 1e-3));  // other images, other features
}

TEST(Inception, MisShapedTensorIsNamed) {
  InceptionV3 net;
  NamedTensors state = module_state(*net);
  for (auto& [name, t] : state)
    if (name == "Mixed_6c.branch7x7dbl_3.conv.weight") t = torch::zeros({160, 160, 7, 1});
  test::TempDir dir("inception");
  save_tensors(dir / "bad.safetensors", state);
  try {
    load_inception(dir / "bad.safetensors");
    FAIL() << "loaded a mis-shaped file";
  } catch (const Error& e) {
    EXPECT_THAT(e.what(), testing::HasSubstr("bad.safetensors"));
    EXPECT_THAT(e.what(), testing::HasSubstr("Mixed_6c.branch7x7dbl_3.conv.weight: file "
                                             "[160,160,7,1] vs model [160,160,1,7]"));
  }
}

TEST(Inception, RejectsNonImages) {
  InceptionV3 net;
  EXPECT_THROW(inception_features(net, torch::zeros({2, 1, 64, 64})), Error);
  EXPECT_THROW(net->forward(torch::zeros({1, 3, 32, 32})), Error);  // too small for the stem
}

}  // namespace
}  // namespace recap::models
