// The trainer's update: parameters and gradients as views of one buffer, and AdamW over it
// against torch's own AdamW and gradient clipping.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "core/atomic_file.h"
#include "core/checkpoint.h"
#include "core/error.h"
#include "core/weights.h"
#include "test_util.h"
#include "train/adamw.h"
#include "train/flat_parameters.h"

namespace recap::train {
namespace {

using ::testing::HasSubstr;

struct MlpImpl : torch::nn::Module {
  MlpImpl() {
    fc1 = register_module("fc1", torch::nn::Linear(5, 7));
    fc2 = register_module("fc2", torch::nn::Linear(7, 3));
  }
  torch::Tensor forward(const torch::Tensor& x) { return fc2(torch::tanh(fc1(x))); }
  torch::nn::Linear fc1{nullptr}, fc2{nullptr};
};
TORCH_MODULE(Mlp);

torch::Tensor loss_at(Mlp& net, int64_t step) {
  auto gen = at::detail::createCPUGenerator(300 + step);
  const auto x = torch::randn({8, 5}, gen);
  return torch::mse_loss(net->forward(x), torch::sin(x.narrow(1, 0, 3) * 3));
}

TEST(FlatParameters, ParametersAndGradientsAreViewsOfOneBuffer) {
  torch::manual_seed(1);
  Mlp net;
  net->fc1->bias.set_requires_grad(false);  // frozen: stays outside the buffer
  std::map<std::string, torch::Tensor> before;
  for (const auto& p : net->named_parameters()) before[p.key()] = p.value().detach().clone();

  FlatParameters flat(*net);
  EXPECT_EQ(flat.numel(), 5 * 7 + 7 * 3 + 3);
  std::vector<std::string> names;
  for (const auto& s : flat.slots()) names.push_back(s.name);
  EXPECT_EQ(names, (std::vector<std::string>{"fc1.weight", "fc2.weight", "fc2.bias"}));
  // Values unchanged by the move; each one now lives in the buffer at its slot.
  for (const auto& p : net->named_parameters())
    EXPECT_TRUE(torch::equal(p.value(), before.at(p.key()))) << p.key();
  const auto& fc2_bias = flat.slots()[2];
  EXPECT_TRUE(torch::equal(flat.values().narrow(0, fc2_bias.offset, 3), net->fc2->bias));
  {
    torch::NoGradGuard g;
    flat.values().narrow(0, fc2_bias.offset, 3).fill_(0.25);
  }
  EXPECT_TRUE(torch::equal(net->fc2->bias, torch::full({3}, 0.25)));

  // Backward accumulates into the buffer, twice adds, and zero_grad clears it for the next step.
  loss_at(net, 0).backward();
  const auto once = flat.grads().clone();
  EXPECT_GT(once.abs().sum().item<double>(), 0);
  EXPECT_TRUE(torch::equal(net->fc1->weight.grad().flatten(), once.narrow(0, 0, 35)));
  EXPECT_FALSE(net->fc1->bias.grad().defined());
  loss_at(net, 0).backward();
  EXPECT_TRUE(torch::allclose(flat.grads(), 2 * once));
  EXPECT_NEAR(flat.grad_norm(), (2 * once).norm().item<double>(), 1e-6);
  flat.zero_grad();
  EXPECT_EQ(flat.grads().abs().sum().item<double>(), 0);
  EXPECT_TRUE(net->fc2->weight.grad().defined());
}

TEST(FlatParameters, MixedDtypesAreAnErrorNamingTheParameter) {
  Mlp net;
  net->fc2->to(torch::kDouble);
  try {
    FlatParameters flat(*net);
    FAIL() << "flattened float and double parameters into one buffer";
  } catch (const Error& e) {
    EXPECT_THAT(e.what(), HasSubstr("'fc2.weight' is Double"));
  }
}

// The same net trained by torch::optim::AdamW + clip_grad_norm_ and by FlatParameters + AdamW,
// with a clipping threshold that the early steps exceed: the weights stay together.
TEST(AdamW, FollowsTorchAdamWWithClipping) {
  constexpr double kMaxNorm = 0.3, kDecay = 0.05;
  torch::manual_seed(2);
  Mlp reference;
  Mlp ours;
  {
    torch::NoGradGuard g;
    for (auto& p : ours->named_parameters())
      p.value().copy_(reference->named_parameters()[p.key()]);
  }
  torch::optim::AdamW torch_adamw(
      reference->parameters(),
      torch::optim::AdamWOptions(1e-2).betas({0.8, 0.99}).weight_decay(kDecay));
  FlatParameters flat(*ours);
  AdamW adamw(flat, {.beta1 = 0.8, .beta2 = 0.99, .weight_decay = kDecay});

  int clipped = 0;
  for (int64_t step = 0; step < 30; ++step) {
    const double lr = 1e-2 * (1 + step % 3);
    for (auto& group : torch_adamw.param_groups())
      static_cast<torch::optim::AdamWOptions&>(group.options()).lr(lr);
    torch_adamw.zero_grad();
    loss_at(reference, step).backward();
    const double torch_norm = torch::nn::utils::clip_grad_norm_(reference->parameters(), kMaxNorm);
    torch_adamw.step();

    flat.zero_grad();
    loss_at(ours, step).backward();
    const double norm = flat.grad_norm();
    EXPECT_NEAR(norm, torch_norm, 1e-4 * torch_norm) << "step " << step;
    clipped += norm > kMaxNorm;
    adamw.step(lr, clip_scale(norm, kMaxNorm));
  }
  EXPECT_GT(clipped, 3);
  EXPECT_EQ(adamw.state().step, 30);
  for (const auto& p : ours->named_parameters())
    EXPECT_TRUE(torch::allclose(p.value(), reference->named_parameters()[p.key()], 1e-4, 1e-5))
        << p.key() << ": max difference "
        << (p.value() - reference->named_parameters()[p.key()]).abs().max().item<double>();
}

// Checkpoints of torch's AdamW left out a parameter that never had a gradient; such a one
// restores with zero moments, while a stepped parameter's missing moment is an error.
TEST(AdamW, RestoresMomentsOfCheckpointsThatOmitUnsteppedParameters) {
  test::TempDir dir("adamw");
  torch::manual_seed(3);
  Mlp net;
  FlatParameters flat(*net);
  AdamW adamw(flat, {});
  loss_at(net, 0).backward();
  adamw.step(1e-2);
  Checkpointer ck(dir.path(), 1);
  const auto path = ck.save({1, {}, {}}, *net, adamw.state(), nullptr);

  // Rewrite the checkpoint as if fc2.bias had never been stepped.
  auto moments = load_tensors(path / "optimizer.safetensors");
  moments.erase("fc2.bias.exp_avg");
  moments.erase("fc2.bias.exp_avg_sq");
  save_tensors(path / "optimizer.safetensors", NamedTensors(moments.begin(), moments.end()));
  auto state = nlohmann::json::parse(read_file(path / "state.json"));
  state.erase("files");
  state.erase("state_sha256");
  write_file_atomic(path / "state.json", state.dump());
  try {
    ck.restore(path, *net, adamw.state(), nullptr);
    FAIL() << "restored without fc2.bias's moments while state.json says it was stepped";
  } catch (const Error& e) {
    EXPECT_THAT(e.what(), HasSubstr("optimizer state lacks 'fc2.bias.exp_avg'"));
  }
  state["optimizer_steps"].erase("fc2.bias");
  write_file_atomic(path / "state.json", state.dump());
  ck.restore(path, *net, adamw.state(), nullptr);
  EXPECT_EQ(adamw.state().step, 1);
  for (const auto& [name, t] : adamw.state().moments) {
    const bool omitted = name.starts_with("fc2.bias.");
    EXPECT_EQ(t.abs().sum().item<double>() == 0, omitted) << name;
  }
}

}  // namespace
}  // namespace recap::train
