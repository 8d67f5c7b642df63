// Checkpoints and module weights: bit-exact resume, keep-last-N, load reports.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "core/atomic_file.h"
#include "core/checkpoint.h"
#include "core/error.h"
#include "core/weights.h"
#include "test_util.h"
#include "train/adamw.h"
#include "train/ema.h"
#include "train/flat_parameters.h"

namespace recap {
namespace {

using ::testing::HasSubstr;

// Dropout makes the result depend on the torch RNG, so the test also proves RNG restore.
struct NetImpl : torch::nn::Module {
  NetImpl() {
    fc1 = register_module("fc1", torch::nn::Linear(8, 16));
    drop = register_module("drop", torch::nn::Dropout(0.3));
    fc2 = register_module("fc2", torch::nn::Linear(16, 4));
    register_buffer("seen", torch::zeros({1}));
  }
  torch::Tensor forward(torch::Tensor x) { return fc2(drop(torch::relu(fc1(x)))); }
  torch::nn::Linear fc1{nullptr}, fc2{nullptr};
  torch::nn::Dropout drop{nullptr};
};
TORCH_MODULE(Net);

// A data stream whose position is its cursor: batch i is a pure function of (seed, i).
std::pair<torch::Tensor, torch::Tensor> batch_at(int64_t i) {
  auto gen = at::detail::createCPUGenerator(1000 + i);
  auto x = torch::randn({16, 8}, gen);
  return {x, x.narrow(1, 0, 4) * 2.0 - 1.0};
}

// The trainer's own pieces (train/trainer.cpp wires them the same way).
struct Trainer {
  explicit Trainer(uint64_t init_seed) {
    torch::manual_seed(init_seed);
    net = Net();
    params = std::make_unique<train::FlatParameters>(*net);
    opt = std::make_unique<train::AdamW>(*params, train::AdamWOptions{.weight_decay = 0.1});
    ema = std::make_unique<train::Ema>(*net, *params, 0.9);
  }
  void step(int64_t i) {
    auto [x, y] = batch_at(i);
    params->zero_grad();
    auto loss = torch::mse_loss(net->forward(x), y);
    loss.backward();
    opt->step(1e-2);
    torch::NoGradGuard g;
    net->named_buffers()["seen"].add_(1);
    ema->update(*net, i);
  }
  Net net{nullptr};
  std::unique_ptr<train::FlatParameters> params;
  std::unique_ptr<train::AdamW> opt;
  std::unique_ptr<train::Ema> ema;
};

void expect_bit_identical(const NamedTensors& a, const NamedTensors& b) {
  ASSERT_EQ(a.size(), b.size());
  for (size_t i = 0; i < a.size(); ++i) {
    EXPECT_EQ(a[i].first, b[i].first);
    EXPECT_TRUE(torch::equal(a[i].second, b[i].second)) << a[i].first;
  }
}

TEST(Checkpoint, ResumeIsBitExact) {
  torch::set_num_threads(1);  // bit-exactness is only promised for a fixed thread count
  constexpr int64_t kSteps = 12;
  test::TempDir dir("ckpt");

  Trainer straight(7);
  for (int64_t i = 0; i < kSteps; ++i) straight.step(i);

  {
    Trainer first(7);
    for (int64_t i = 0; i < kSteps / 2; ++i) first.step(i);
    Checkpointer ck(dir.path(), 2);
    ck.save({kSteps / 2, {{"batch", kSteps / 2}}, {}}, *first.net, first.opt->state(),
            &first.ema->shadow());
    // Keep drawing from the global RNG, as a process that dies later would have.
    torch::rand({100});
  }

  Trainer resumed(12345);  // different init: everything must come from the checkpoint
  Checkpointer ck(dir.path(), 2);
  auto latest = ck.latest();
  ASSERT_TRUE(latest.has_value());
  TrainingState st =
      ck.restore(*latest, *resumed.net, resumed.opt->state(), &resumed.ema->shadow());
  EXPECT_EQ(st.step, kSteps / 2);
  for (int64_t i = st.cursor["batch"].get<int64_t>(); i < kSteps; ++i) resumed.step(i);

  expect_bit_identical(module_state(*straight.net), module_state(*resumed.net));
  expect_bit_identical(straight.ema->shadow(), resumed.ema->shadow());
  EXPECT_EQ(straight.opt->state().step, kSteps);
  EXPECT_EQ(resumed.opt->state().step, kSteps);
  expect_bit_identical(straight.opt->state().moments, resumed.opt->state().moments);
}

TEST(Checkpoint, KeepsOnlyTheLastN) {
  test::TempDir dir("ckpt");
  Trainer t(1);
  Checkpointer ck(dir.path(), 2);
  for (int64_t s : {1, 2, 3, 4}) {
    t.step(s);
    ck.save({s, {}, {}}, *t.net, t.opt->state(), nullptr);
  }
  std::vector<std::string> names;
  for (const auto& e : std::filesystem::directory_iterator(dir.path()))
    names.push_back(e.path().filename().string());
  std::sort(names.begin(), names.end());
  EXPECT_EQ(names, (std::vector<std::string>{"step-000000003", "step-000000004"}));
  EXPECT_EQ(ck.latest()->filename(), "step-000000004");
  std::vector<int64_t> steps;
  for (const auto& c : ck.all()) steps.push_back(Checkpointer::step_of(c));
  EXPECT_EQ(steps, (std::vector<int64_t>{3, 4}));  // oldest first
  EXPECT_THROW(Checkpointer::step_of(dir.path() / "step-12"), Error);
}

TEST(Checkpoint, MissingPiecesAreNamed) {
  test::TempDir dir("ckpt");
  Trainer t(1);
  t.step(0);
  Checkpointer ck(dir.path(), 1);
  auto path = ck.save({1, {}, {}}, *t.net, t.opt->state(), nullptr);
  std::filesystem::remove(path / "model.safetensors");
  try {
    ck.restore(path, *t.net, t.opt->state(), nullptr);
    FAIL();
  } catch (const Error& e) {
    EXPECT_THAT(e.what(), HasSubstr("model.safetensors"));
  }
}

// A changed digit in state.json still parses; its own checksum catches it, naming both hashes.
TEST(Checkpoint, ChangedStateJsonFailsItsOwnChecksum) {
  test::TempDir dir("ckpt");
  Trainer t(1);
  t.step(0);
  Checkpointer ck(dir.path(), 1);
  const auto path = ck.save({1, {{"batch", 1}}, {}}, *t.net, t.opt->state(), nullptr);
  std::string state = read_file(path / "state.json");
  const auto at = state.find("\"batch\": 1");
  ASSERT_NE(at, std::string::npos);
  state[at + 9] = '7';
  write_file_atomic(path / "state.json", state);
  try {
    ck.restore(path, *t.net, t.opt->state(), nullptr);
    FAIL() << "restored a changed state.json";
  } catch (const Error& e) {
    EXPECT_THAT(e.what(), HasSubstr("state.json: contents hash to sha256 "));
    EXPECT_THAT(e.what(), HasSubstr("its state_sha256 records "));
  }
}

// What readers of a checkpoint's weights outside training call first (the run's
// intermediate-checkpoint evaluations): a flipped bit in tensor data is named, nothing loaded.
TEST(Checkpoint, VerifyNamesAFlippedBitInTensorData) {
  test::TempDir dir("ckpt");
  Trainer t(1);
  t.step(0);
  Checkpointer ck(dir.path(), 1);
  const auto path = ck.save({1, {}, {}}, *t.net, t.opt->state(), &t.ema->shadow());
  Checkpointer::verify(path);
  std::string bytes = read_file(path / "ema.safetensors");
  bytes.back() ^= 0x10;
  write_file_atomic(path / "ema.safetensors", bytes);
  try {
    Checkpointer::verify(path);
    FAIL() << "verified a checkpoint with a flipped bit";
  } catch (const Error& e) {
    EXPECT_THAT(e.what(), HasSubstr("ema.safetensors: sha256 "));
    EXPECT_THAT(e.what(), HasSubstr("state.json records"));
  }
}

TEST(Weights, ModuleRoundTripAndReportOfBadTensors) {
  test::TempDir dir("weights");
  torch::manual_seed(3);
  Net a, b;
  save_module(dir / "a.safetensors", *a, {{"model", "net"}});
  auto report = load_module(dir / "a.safetensors", *b);
  EXPECT_TRUE(report.complete());
  EXPECT_EQ(report.loaded, 5u);  // 4 parameters + 1 buffer
  expect_bit_identical(module_state(*a), module_state(*b));

  // A file from a differently shaped model: refused with the names of the bad tensors.
  save_tensors(dir / "bad.safetensors", {{"fc1.weight", torch::zeros({32, 8})},
                                         {"fc1.bias", torch::zeros({16})},
                                         {"extra.weight", torch::zeros({2})}});
  auto before = module_state(*b)[0].second.clone();
  try {
    load_module(dir / "bad.safetensors", *b);
    FAIL();
  } catch (const Error& e) {
    EXPECT_THAT(e.what(), HasSubstr("fc1.weight: file [32,8] vs model [16,8]"));
    EXPECT_THAT(e.what(), HasSubstr("unexpected in file: extra.weight"));
    EXPECT_THAT(e.what(), HasSubstr("missing from file: fc2.weight"));
    EXPECT_THAT(e.what(), HasSubstr("--allow-partial"));
  }
  EXPECT_TRUE(torch::equal(before, module_state(*b)[0].second));  // untouched on refusal

  auto partial = load_module(dir / "bad.safetensors", *b, /*allow_partial=*/true);
  EXPECT_EQ(partial.loaded, 1u);  // fc1.bias
  EXPECT_EQ(partial.mismatched.size(), 1u);
  EXPECT_EQ(partial.unexpected, std::vector<std::string>{"extra.weight"});
  EXPECT_TRUE(torch::equal(b->fc1->bias, torch::zeros({16})));
}

TEST(Weights, EveryTorchDtypeRoundTrips) {
  test::TempDir dir("weights");
  NamedTensors tensors;
  for (auto t : {torch::kFloat64, torch::kFloat32, torch::kFloat16, torch::kBFloat16, torch::kInt64,
                 torch::kInt32, torch::kInt16, torch::kInt8, torch::kUInt8, torch::kBool})
    tensors.emplace_back(c10::toString(t), (torch::arange(12) % 5).reshape({3, 4}).to(t));
  save_tensors(dir / "all.safetensors", tensors);
  auto back = load_tensors(dir / "all.safetensors");
  for (const auto& [name, t] : tensors) {
    ASSERT_TRUE(back.count(name)) << name;
    EXPECT_EQ(back[name].scalar_type(), t.scalar_type());
    EXPECT_TRUE(torch::equal(back[name], t)) << name;
  }
  EXPECT_THROW(to_dtype(torch::kComplexFloat), Error);
}

}  // namespace
}  // namespace recap
