// Shared blocks: causal masking, KV-cache equivalence, padding masks, parameter names,
// timestep embeddings.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "core/error.h"
#include "core/weights.h"
#include "nn/attention.h"
#include "nn/embeddings.h"
#include "nn/transformer.h"

namespace recap::nn {
namespace {

TEST(Attention, CausalOutputIgnoresTheFuture) {
  torch::manual_seed(0);
  Attention attn(AttentionOptions{16, 4});
  auto x = torch::randn({2, 6, 16});
  auto changed = x.clone();
  changed.narrow(1, 4, 2).normal_();  // tokens 4 and 5 differ
  auto a = attn->forward(x, {}, /*causal=*/true), b = attn->forward(changed, {}, true);
  EXPECT_TRUE(torch::allclose(a.narrow(1, 0, 4), b.narrow(1, 0, 4), 1e-6, 1e-6));
  EXPECT_FALSE(torch::allclose(a.narrow(1, 4, 2), b.narrow(1, 4, 2), 1e-3, 1e-3));
  // Without the mask, every position sees the change.
  EXPECT_FALSE(
      torch::allclose(attn->forward(x).narrow(1, 0, 1), attn->forward(changed).narrow(1, 0, 1),
                      1e-3, 1e-3));
}

TEST(TransformerBlock, KvCachedDecodingEqualsFullRecomputation) {
  torch::manual_seed(1);
  TransformerBlock block(TransformerBlockOptions{32, 4, /*context_dim=*/24});
  block->eval();
  auto x = torch::randn({3, 7, 32});
  auto context = torch::randn({3, 5, 24});
  auto full = block->forward(x, context, /*causal=*/true);

  BlockCache cache;
  std::vector<torch::Tensor> steps;
  steps.push_back(block->forward(x.narrow(1, 0, 3), context, true, &cache));  // 3-token prompt
  for (int64_t t = 3; t < 7; ++t)
    steps.push_back(block->forward(x.narrow(1, t, 1), context, true, &cache));
  EXPECT_EQ(cache.self.length(), 7);
  EXPECT_EQ(cache.cross.length(), 5);
  EXPECT_TRUE(torch::allclose(torch::cat(steps, 1), full, 1e-5, 1e-5));
}

TEST(Attention, PaddedContextPositionsHaveNoEffect) {
  torch::manual_seed(2);
  Attention cross(AttentionOptions{16, 2, /*context_dim=*/8});
  auto x = torch::randn({1, 3, 16});
  auto context = torch::randn({1, 4, 8});
  auto padding = torch::tensor({{false, false, true, true}});
  auto other = context.clone();
  other.narrow(1, 2, 2).normal_();
  EXPECT_TRUE(torch::allclose(cross->forward(x, context, false, nullptr, padding),
                              cross->forward(x, other, false, nullptr, padding), 1e-6, 1e-6));
  // Same as attending to the unpadded prefix alone.
  EXPECT_TRUE(torch::allclose(cross->forward(x, context, false, nullptr, padding),
                              cross->forward(x, context.narrow(1, 0, 2)), 1e-6, 1e-6));
}

TEST(TransformerBlock, ParameterNamesFollowTheModulePath) {
  TransformerBlock block(TransformerBlockOptions{16, 2, 8});
  std::set<std::string> names;
  for (const auto& [name, t] : module_state(*block)) names.insert(name);
  for (const char* expected : {"norm1.weight", "attn1.to_q.weight", "attn2.to_k.weight",
                               "attn2.to_out.bias", "ff.0.weight", "ff.2.bias", "norm3.bias"})
    EXPECT_TRUE(names.count(expected)) << expected;
  EXPECT_FALSE(names.count("attn1.to_q.bias"));  // projections have no bias, as in SD
  TransformerBlock self_only(TransformerBlockOptions{16, 2});
  for (const auto& [name, t] : module_state(*self_only))
    EXPECT_EQ(name.find("attn2"), std::string::npos) << name;
  EXPECT_NO_THROW(self_only->forward(torch::randn({1, 2, 16})));
  EXPECT_THROW(block->forward(torch::randn({1, 2, 16})), Error);  // cross needs a context
  EXPECT_THROW(Attention(AttentionOptions{10, 3}), Error);
}

TEST(Embeddings, TimestepEmbeddingClosedForm) {
  auto e = timestep_embedding(torch::tensor({0.0, 1.0, 500.0}), 8);
  ASSERT_EQ(e.sizes(), (std::vector<int64_t>{3, 8}));
  // t = 0: cos terms 1, sin terms 0.
  EXPECT_TRUE(torch::allclose(e[0], torch::tensor({1.f, 1.f, 1.f, 1.f, 0.f, 0.f, 0.f, 0.f})));
  // t = 1, i = 1: f = 10000^(-1/4) = 0.1.
  EXPECT_NEAR(e[1][1].item<float>(), std::cos(0.1), 1e-6);
  EXPECT_NEAR(e[1][5].item<float>(), std::sin(0.1), 1e-6);
  EXPECT_NEAR(e[2][0].item<float>(), std::cos(500.0), 1e-4);
  EXPECT_THROW(timestep_embedding(torch::tensor({1.0}), 7), Error);
}

}  // namespace
}  // namespace recap::nn
