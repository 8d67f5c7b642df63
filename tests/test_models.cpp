// Text encoder and UNet: shapes, conditioning actually reaches the output, masking, names and
// pinned parameter counts (a change to the architecture must change these numbers knowingly).
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "core/error.h"
#include "core/weights.h"
#include "models/text_encoder.h"
#include "models/unet.h"
#include "stages/model_settings.h"

namespace recap::models {
namespace {

using ::testing::HasSubstr;
using ::testing::ThrowsMessage;

int64_t parameter_count(const torch::nn::Module& m) {
  int64_t n = 0;
  for (const auto& p : m.parameters()) n += p.numel();
  return n;
}

TEST(TextEncoder, ShapesCausalityAndNames) {
  torch::manual_seed(0);
  TextEncoder enc(TextEncoderOptions{100, 16, 32, 2, 4});
  auto ids = torch::randint(0, 100, {2, 10}, torch::kLong);
  auto h = enc->forward(ids);
  EXPECT_EQ(h.sizes(), (std::vector<int64_t>{2, 10, 32}));
  auto changed = ids.clone();
  changed.index_put_({torch::indexing::Slice(), 9}, (ids.select(1, 9) + 1) % 100);
  auto h2 = enc->forward(changed);
  EXPECT_TRUE(torch::allclose(h.narrow(1, 0, 9), h2.narrow(1, 0, 9), 1e-6, 1e-6));
  EXPECT_FALSE(torch::allclose(h.narrow(1, 9, 1), h2.narrow(1, 9, 1), 1e-4, 1e-4));
  std::set<std::string> names;
  for (const auto& [name, t] : module_state(*enc)) names.insert(name);
  EXPECT_TRUE(names.count("token_embedding.weight"));
  EXPECT_TRUE(names.count("blocks.1.attn1.to_q.weight"));
  EXPECT_TRUE(names.count("final_norm.bias"));
  EXPECT_THROW(enc->forward(torch::zeros({1, 17}, torch::kLong)), Error);  // over max_length
}

TEST(TextEncoder, BidirectionalSeesTheWholeCaptionButNotItsPadding) {
  torch::manual_seed(0);
  TextEncoderOptions o{100, 16, 32, 2, 4};
  o.causal = false;
  TextEncoder enc(o);
  // Row 0: 6 real tokens then padding (Tokenizer::kPad = 0); ids 3..99 are never padding.
  auto ids = torch::randint(3, 100, {1, 10}, torch::kLong);
  ids.narrow(1, 6, 4).fill_(0);
  auto h = enc->forward(ids);
  // A later real token changes an earlier token's state (a causal encoder would not).
  auto later = ids.clone();
  later.index_put_({0, 5}, ids[0][5].item<int64_t>() % 97 + 3);
  EXPECT_FALSE(torch::allclose(h.narrow(1, 0, 1), enc->forward(later).narrow(1, 0, 1), 1e-4,
                               1e-4));
  // Dropping the padding leaves the real tokens' states alone.
  auto shorter = enc->forward(ids.narrow(1, 0, 6));
  EXPECT_TRUE(torch::allclose(h.narrow(1, 0, 6), shorter, 1e-5, 1e-5));
  // The option travels with the weights: files without it read a causal encoder.
  EXPECT_FALSE(nlohmann::json(o).get<TextEncoderOptions>().causal);
  auto old = nlohmann::json(o);
  old.erase("causal");
  EXPECT_TRUE(old.get<TextEncoderOptions>().causal);
}

UNetOptions small_unet() {
  UNetOptions o;
  o.channels = 16;
  o.channel_mult = {1, 2};
  o.attention_levels = {1};
  o.heads = 2;
  o.context_dim = 24;
  o.groups = 4;
  return o;
}

TEST(UNet, ShapesAndConditioningReachTheOutput) {
  torch::manual_seed(1);
  UNet unet(small_unet());
  auto x = torch::randn({2, 3, 16, 16});
  auto t = torch::tensor({10, 500}, torch::kLong);
  auto ctx = torch::randn({2, 5, 24});
  auto out = unet->forward(x, t, ctx);
  EXPECT_EQ(out.sizes(), x.sizes());
  EXPECT_FALSE(torch::allclose(out, unet->forward(x, t + 7, ctx), 1e-4, 1e-4));
  EXPECT_FALSE(torch::allclose(out, unet->forward(x, t, ctx * 2), 1e-4, 1e-4));
  // Padded context tokens have no effect.
  auto pad = torch::tensor({{false, false, false, true, true}, {false, true, true, true, true}});
  auto other = ctx.clone();
  other.narrow(1, 3, 2).normal_();
  other.select(0, 1).narrow(0, 1, 4).normal_();
  EXPECT_TRUE(torch::allclose(unet->forward(x, t, ctx, pad), unet->forward(x, t, other, pad),
                              1e-5, 1e-5));
  EXPECT_THROW(
      unet->forward(torch::randn({1, 3, 15, 16}), t.narrow(0, 0, 1), ctx.narrow(0, 0, 1)), Error);
}

TEST(UNet, FeatureTapReturnsTheLevelsActivationWithoutChangingTheOutput) {
  torch::set_num_threads(1);
  torch::manual_seed(1);
  UNet unet(small_unet());
  auto x = torch::randn({2, 3, 16, 16});
  auto t = torch::tensor({10, 500}, torch::kLong);
  auto ctx = torch::randn({2, 5, 24});
  const auto plain = unet->forward(x, t, ctx);
  const auto& o = unet->options();
  for (int64_t level = 0; level < static_cast<int64_t>(o.channel_mult.size()); ++level) {
    FeatureTap tap{level, {}};
    EXPECT_TRUE(torch::equal(unet->forward(x, t, ctx, {}, &tap), plain));
    const int64_t side = 16 >> level;
    EXPECT_EQ(tap.features.sizes(),
              (std::vector<int64_t>{2, o.channels * o.channel_mult[level], side, side}));
  }
  FeatureTap outside{static_cast<int64_t>(o.channel_mult.size()), {}};
  EXPECT_THAT([&] { unet->forward(x, t, ctx, {}, &outside); },
              ThrowsMessage<Error>(HasSubstr("feature tap at level")));
}

TEST(UNet, NamesFollowTheModulePathAndGradientsFlowEverywhere) {
  UNet unet(small_unet());
  std::set<std::string> names;
  for (const auto& [name, t] : module_state(*unet)) names.insert(name);
  for (const char* expected :
       {"conv_in.weight", "time_mlp.0.weight", "down.0.res.0.conv1.weight",
        "down.0.downsample.weight", "down.1.attn.0.block.attn2.to_k.weight",
        "mid_attn.proj_in.weight", "up.0.res.1.skip.weight", "up.0.upsample.weight",
        "conv_out.bias"})
    EXPECT_TRUE(names.count(expected)) << expected;
  auto out =
      unet->forward(torch::randn({1, 3, 8, 8}), torch::tensor({3}), torch::randn({1, 2, 24}));
  out.pow(2).mean().backward();
  for (const auto& p : unet->named_parameters())
    EXPECT_TRUE(p.value().grad().defined() && p.value().grad().abs().sum().item<float>() > 0)
        << p.key() << " gets no gradient";
}

TEST(UNet, ParameterCountIsPinned) {
  EXPECT_EQ(parameter_count(*UNet(small_unet())), 234131);
  EXPECT_EQ(parameter_count(*UNet(UNetOptions{})), 6252099);
  EXPECT_EQ(parameter_count(*TextEncoder(TextEncoderOptions{})), 931072);
  UNetOptions bad = small_unet();
  bad.attention_levels = {2};
  EXPECT_THROW(UNet{bad}, Error);
  bad = small_unet();
  bad.groups = 5;
  EXPECT_THROW(UNet{bad}, Error);
}

TEST(UNet, PatchedInputRunsAtHalfResolutionAndKeepsTheImageShape) {
  auto o = small_unet();
  o.patch = 2;
  torch::manual_seed(2);
  UNet unet(o);
  // 2x2 patches of 3 channels enter as 12; the output unfolds back to 3.
  EXPECT_EQ(unet->conv_in->weight.size(1), 12);
  EXPECT_EQ(unet->conv_out->weight.size(0), 12);
  auto x = torch::randn({2, 3, 16, 16});
  auto t = torch::tensor({10, 500}, torch::kLong);
  auto out = unet->forward(x, t, torch::randn({2, 5, 24}));
  EXPECT_EQ(out.sizes(), x.sizes());
  // Two levels and 2x2 patches: sides must divide by 4.
  EXPECT_THAT([&] { unet->forward(torch::randn({1, 3, 18, 18}), t.narrow(0, 0, 1),
                                  torch::randn({1, 5, 24})); },
              ThrowsMessage<Error>(HasSubstr("divisible by 4")));
  o.patch = 0;
  EXPECT_THROW(UNet{o}, Error);
}

TEST(UNet, ZeroInitStartsAtZeroOutputAndStillLearnsEverywhere) {
  auto o = small_unet();
  o.zero_init = true;
  torch::manual_seed(3);
  UNet unet(o);
  auto x = torch::randn({2, 3, 8, 8});
  auto t = torch::tensor({3, 700});
  auto ctx = torch::randn({2, 2, 24});
  EXPECT_EQ(unet->forward(x, t, ctx).abs().max().item<float>(), 0.0f);
  // Only the output conv sees a gradient at first, then the zeroed residual layers; from
  // the third step on, every layer does.
  torch::optim::SGD sgd(unet->parameters(), 0.1);
  auto loss = [&] { return (unet->forward(x, t, ctx) - x).pow(2).mean(); };
  for (int step = 0; step < 2; ++step) {
    sgd.zero_grad();
    loss().backward();
    sgd.step();
  }
  sgd.zero_grad();
  loss().backward();
  for (const auto& p : unet->named_parameters())
    EXPECT_GT(p.value().grad().abs().sum().item<float>(), 0) << p.key() << " gets no gradient";
  // Same seed without zero_init: the same weights outside the zeroed layers.
  torch::manual_seed(3);
  UNet zeroed(o);
  torch::manual_seed(3);
  UNet plain(small_unet());
  EXPECT_TRUE(torch::equal(plain->conv_in->weight, zeroed->conv_in->weight));
  EXPECT_TRUE(torch::equal(plain->mid_res1->conv1->weight, zeroed->mid_res1->conv1->weight));
  EXPECT_FALSE(torch::equal(plain->conv_out->weight, zeroed->conv_out->weight));
}

// The pooled text embedding: the projected mean of the unpadded text states joins the timestep
// embedding. Without attention anywhere but the middle, it is a second path from the prompt to
// every ResBlock: the same weights with the projection zeroed give another output, and padded
// tokens still change nothing.
TEST(UNet, PooledTextReachesTheOutputAndIgnoresPadding) {
  torch::manual_seed(2);
  auto o = small_unet();
  o.pooled_text = true;
  UNet unet(o);
  std::set<std::string> names;
  for (const auto& [name, t] : module_state(*unet)) names.insert(name);
  EXPECT_TRUE(names.count("text_pool.weight"));
  for (const auto& [name, t] : module_state(*UNet(small_unet()))) EXPECT_NE(name, "text_pool.weight");
  auto x = torch::randn({2, 3, 16, 16});
  auto t = torch::tensor({10, 500}, torch::kLong);
  auto ctx = torch::randn({2, 5, 24});
  auto pad = torch::tensor({{false, false, false, true, true}, {false, true, true, true, true}});
  auto out = unet->forward(x, t, ctx, pad);
  auto other = ctx.clone();
  other.narrow(1, 3, 2).normal_();
  other.select(0, 1).narrow(0, 1, 4).normal_();
  EXPECT_TRUE(torch::allclose(out, unet->forward(x, t, other, pad), 1e-5, 1e-5));
  {
    torch::NoGradGuard no_grad;
    unet->text_pool->weight.zero_();
  }
  EXPECT_FALSE(torch::allclose(out, unet->forward(x, t, ctx, pad), 1e-4, 1e-4));
}

TEST(UNet, OptionsFromOlderFilesReadTheNewFieldsDefaults) {
  nlohmann::json j = small_unet();
  j.erase("patch");
  j.erase("zero_init");
  j.erase("pooled_text");
  const auto o = j.get<UNetOptions>();
  EXPECT_EQ(o.patch, 1);
  EXPECT_FALSE(o.zero_init);
  EXPECT_FALSE(o.pooled_text);
  EXPECT_EQ(o.channels, 16);
}

TEST(ModelSettings, EveryPresetBuildsWithAPinnedSize) {
  // Parameters of (text encoder at a 1000-piece vocabulary, UNet) per preset.
  const std::map<std::string, std::pair<int64_t, int64_t>> expected = {
      {"smoke", {46720, 236179}}, {"quick", {532224, 3967747}}, {"full", {730112, 3967747}}};
  for (const auto& [preset, sizes] : expected) {
    Config config = Config::load(preset);
    TextEncoder text(text_encoder_settings(config, 1000));
    UNet unet(unet_settings(config));
    EXPECT_EQ(parameter_count(*text), sizes.first) << preset;
    EXPECT_EQ(parameter_count(*unet), sizes.second) << preset;
  }
  EXPECT_THROW(unet_settings(Config::load("smoke", {"unet.channel_mult=[1, \"x\"]"})), Error);
  EXPECT_THROW(unet_settings(Config::load("smoke", {"unet.channel_mult=[1, 0]"})), Error);
}

}  // namespace
}  // namespace recap::models
