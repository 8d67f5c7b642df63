// The generic trainer: schedule values, that it learns, resume after a crash is bit-exact
// (also past damaged checkpoints), gradient accumulation, EMA, and a clear stop on a
// non-finite loss.
#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <spdlog/sinks/ostream_sink.h>
#include <spdlog/spdlog.h>

#include <functional>
#include <sstream>

#include <fmt/format.h>

#include "core/atomic_file.h"
#include "core/error.h"
#include "core/jsonl.h"
#include "core/weights.h"
#include "test_util.h"
#include "train/ema.h"
#include "train/trainer.h"

namespace recap::train {
namespace {

using ::testing::HasSubstr;

// Learns y = W x from a stream of rows; row r is a pure function of r, so the cursor is the
// next row and a micro-batch is the next `batch` rows.
class RegressionTask : public Task {
 public:
  explicit RegressionTask(int64_t batch = 16, int64_t fail_at_call = -1, double dropout = 0.1)
      : batch_(batch), fail_at_call_(fail_at_call), dropout_(torch::nn::DropoutOptions(dropout)) {
    torch::manual_seed(5);
    model_ = torch::nn::Linear(6, 3);
    true_w_ = torch::randn({3, 6}, at::detail::createCPUGenerator(99));
  }
  torch::nn::Module& module() override { return *model_; }
  torch::Tensor loss(Metrics& metrics) override {
    if (calls_++ == fail_at_call_) throw std::runtime_error("simulated crash");
    std::vector<torch::Tensor> rows;
    for (int64_t i = 0; i < batch_; ++i)
      rows.push_back(torch::randn({1, 6}, at::detail::createCPUGenerator(1000 + next_row_++)));
    auto x = torch::cat(rows);
    auto pred = dropout_(model_->forward(x));  // dropout makes the torch RNG matter
    metrics["rows_seen"] = static_cast<double>(next_row_);
    return torch::mse_loss(pred, torch::matmul(x, true_w_.t()));
  }
  nlohmann::json cursor() const override { return {{"next_row", next_row_}}; }
  void restore(const nlohmann::json& c) override { next_row_ = c.at("next_row").get<int64_t>(); }
  void validate(int64_t, Metrics& m) override { m["validated"] = 1; }

  torch::nn::Linear model_{nullptr};

 private:
  int64_t batch_, fail_at_call_, calls_ = 0, next_row_ = 0;
  torch::nn::Dropout dropout_;
  torch::Tensor true_w_;
};

TrainerOptions options(const std::filesystem::path& dir, int64_t steps) {
  TrainerOptions o;
  o.steps = steps;
  o.lr = 5e-2;
  o.warmup_steps = 5;
  o.checkpoint_every = 10;
  o.log_every = 1;
  o.ema_decay = 0.9;
  o.dir = dir;
  return o;
}

TEST(LrSchedule, WarmupThenCosineToTheFloor) {
  TrainerOptions o;
  o.steps = 101;
  o.lr = 1.0;
  o.warmup_steps = 10;
  o.min_lr_ratio = 0.1;
  EXPECT_DOUBLE_EQ(lr_at(o, 0), 0.1);
  EXPECT_DOUBLE_EQ(lr_at(o, 9), 1.0);
  EXPECT_DOUBLE_EQ(lr_at(o, 10), 1.0);                     // cosine starts at the peak
  EXPECT_NEAR(lr_at(o, 10 + 45), 0.1 + 0.9 * 0.5, 1e-12);  // halfway: the midpoint
  EXPECT_NEAR(lr_at(o, 100), 0.1, 1e-12);                  // last step: the floor
}

TEST(Trainer, LearnsTheRegression) {
  torch::set_num_threads(1);
  test::TempDir dir("trainer");
  RegressionTask task(16, -1, /*dropout=*/0);  // dropout's noise would floor the loss
  auto o = options(dir.path(), 200);
  o.ema_decay = 0;
  auto result = train(task, o);
  EXPECT_EQ(result.steps, 200);
  auto log = read_jsonl(dir / "metrics.jsonl");
  EXPECT_LT(result.last_loss, log.front()["loss"].get<double>() / 20);
  EXPECT_EQ(log.front()["step"], 1);
  EXPECT_TRUE(log.front().contains("grad_norm"));
  EXPECT_EQ(log.back()["split"], "validation");
}

TEST(Trainer, EndsWithTheEmaWeightsInTheModel) {
  torch::set_num_threads(1);
  test::TempDir dir("trainer");
  RegressionTask task;
  train(task, options(dir.path(), 30));  // EMA decay 0.9
  const auto last = dir / "checkpoints" / "step-000000030";
  const auto ema = load_tensors(last / "ema.safetensors");
  const auto raw = load_tensors(last / "model.safetensors");
  for (const auto& [name, t] : module_state(task.module())) {
    EXPECT_TRUE(torch::equal(t, ema.at(name))) << name;
    EXPECT_FALSE(torch::equal(t, raw.at(name))) << name;  // the average is not the last step
  }
  // A rerun finds training finished and still hands back the EMA weights.
  RegressionTask again;
  train(again, options(dir.path(), 30));
  for (const auto& [name, t] : module_state(again.module()))
    EXPECT_TRUE(torch::equal(t, ema.at(name))) << name;
}

// Trains 30 steps into `dir` and dies after the step-20 checkpoint: step-10 and step-20 are
// on disk.
void crash_after_step_20(const std::filesystem::path& dir) {
  RegressionTask crashing(16, /*fail_at_call=*/23);
  EXPECT_THROW(train(crashing, options(dir, 30)), std::runtime_error);
}

// Runs 30 steps without a break, and into `crash_dir` a run that crashes after step 20, has
// `damage` done to its checkpoints folder, and resumes. The resume must start at
// `start_step` and end where the unbroken run did, bit for bit (the thread count pinned).
void expect_resume_is_bit_exact(
    const std::filesystem::path& crash_dir, int64_t start_step,
    const std::function<void(const std::filesystem::path&)>& damage = {}) {
  torch::set_num_threads(1);
  test::TempDir straight_dir("trainer");
  RegressionTask straight;
  train(straight, options(straight_dir.path(), 30));

  crash_after_step_20(crash_dir);
  if (damage) damage(crash_dir / "checkpoints");
  RegressionTask resumed;
  auto result = train(resumed, options(crash_dir, 30));
  EXPECT_EQ(result.start_step, start_step);
  EXPECT_TRUE(torch::equal(straight.model_->weight, resumed.model_->weight));
  EXPECT_TRUE(torch::equal(straight.model_->bias, resumed.model_->bias));

  // The log holds each step once, as if there had been no crash.
  auto a = read_jsonl(straight_dir / "metrics.jsonl");
  auto b = read_jsonl(crash_dir / "metrics.jsonl");
  ASSERT_EQ(a.size(), b.size());
  for (size_t i = 0; i < a.size(); ++i) {
    EXPECT_EQ(a[i]["step"], b[i]["step"]);
    EXPECT_EQ(a[i].value("loss", -1.0), b[i].value("loss", -1.0));
  }
  // EMA shadows were restored too: the final checkpoints match.
  auto ema_a = load_tensors(straight_dir / "checkpoints/step-000000030/ema.safetensors");
  auto ema_b = load_tensors(crash_dir / "checkpoints/step-000000030/ema.safetensors");
  for (const auto& [name, t] : ema_a) EXPECT_TRUE(torch::equal(t, ema_b.at(name))) << name;
}

// What spdlog logs while it lives.
class CapturedLog {
 public:
  CapturedLog() : previous_(spdlog::default_logger()) {
    spdlog::set_default_logger(std::make_shared<spdlog::logger>(
        "captured", std::make_shared<spdlog::sinks::ostream_sink_mt>(stream_)));
  }
  ~CapturedLog() { spdlog::set_default_logger(previous_); }
  std::string text() const { return stream_.str(); }

 private:
  std::ostringstream stream_;
  std::shared_ptr<spdlog::logger> previous_;
};

// An attempt killed before its first checkpoint leaves log lines but nothing to resume from;
// the fresh start must not append its steps after them.
TEST(Trainer, FreshStartDropsTheLogOfAnAttemptWithoutCheckpoints) {
  test::TempDir dir("trainer");
  RegressionTask crashing(16, /*fail_at_call=*/6);
  EXPECT_THROW(train(crashing, options(dir.path(), 30)), std::runtime_error);
  ASSERT_EQ(read_jsonl(dir / "metrics.jsonl").size(), 6u);  // steps 1-6, no checkpoint yet
  RegressionTask task;
  train(task, options(dir.path(), 30));
  const auto log = read_jsonl(dir / "metrics.jsonl");
  std::vector<int64_t> steps;
  for (const auto& line : log)
    if (!line.contains("split")) steps.push_back(line["step"]);
  ASSERT_EQ(steps.size(), 30u);
  for (int64_t i = 0; i < 30; ++i) EXPECT_EQ(steps[i], i + 1);
}

TEST(Trainer, ResumeAfterACrashIsBitExact) {
  test::TempDir crash_dir("trainer");
  expect_resume_is_bit_exact(crash_dir.path(), 20);
}

// The newest checkpoint damaged where the safetensors reader cannot see it (a bit of tensor
// data): the checksum catches it, training resumes from step 10 with a warning naming the
// folder and the hashes, and the damaged folder is kept under another name.
TEST(Trainer, ResumeSkipsACheckpointWithAFlippedBit) {
  test::TempDir crash_dir("trainer");
  CapturedLog log;
  expect_resume_is_bit_exact(crash_dir.path(), 10, [](const std::filesystem::path& ck) {
    const auto model = ck / "step-000000020/model.safetensors";
    test::flip_bit(model, std::filesystem::file_size(model) - 1);
  });
  EXPECT_THAT(log.text(),
              HasSubstr("checkpoint " + (crash_dir / "checkpoints/step-000000020").string() +
                        " is damaged, renamed to step-000000020.damaged"));
  EXPECT_THAT(log.text(), HasSubstr("step-000000020/model.safetensors: sha256 "));
  EXPECT_THAT(log.text(), HasSubstr(", state.json records "));
  EXPECT_TRUE(std::filesystem::is_directory(crash_dir / "checkpoints/step-000000020.damaged"));
}

TEST(Trainer, ResumeSkipsACheckpointWithATruncatedFile) {
  test::TempDir crash_dir("trainer");
  CapturedLog log;
  std::uintmax_t bytes = 0;
  expect_resume_is_bit_exact(crash_dir.path(), 10, [&](const std::filesystem::path& ck) {
    const auto optimizer = ck / "step-000000020/optimizer.safetensors";
    bytes = std::filesystem::file_size(optimizer);
    std::filesystem::resize_file(optimizer, bytes / 2);
  });
  EXPECT_THAT(log.text(), HasSubstr(fmt::format("step-000000020/optimizer.safetensors: {} bytes, "
                                                "state.json records {}",
                                                bytes / 2, bytes)));
  EXPECT_TRUE(std::filesystem::is_directory(crash_dir / "checkpoints/step-000000020.damaged"));
}

// With nothing to resume from, starting over would throw away the run's progress without the
// user's say: an error naming every checkpoint's problem, and the checkpoints left as they are.
TEST(Trainer, EveryCheckpointDamagedIsAnErrorNamingEach) {
  torch::set_num_threads(1);
  test::TempDir dir("trainer");
  crash_after_step_20(dir.path());
  const auto ck = dir / "checkpoints";
  test::flip_bit(ck / "step-000000010/rng.safetensors", 100);
  std::filesystem::resize_file(ck / "step-000000020/model.safetensors", 10);
  RegressionTask resumed;
  try {
    train(resumed, options(dir.path(), 30));
    FAIL() << "trained over damaged checkpoints";
  } catch (const Error& e) {
    EXPECT_THAT(e.what(), HasSubstr("none of the 2 checkpoint(s) restores"));
    EXPECT_THAT(e.what(), HasSubstr("step-000000010/rng.safetensors: sha256 "));
    EXPECT_THAT(e.what(), HasSubstr("step-000000020/model.safetensors: 10 bytes"));
    EXPECT_THAT(e.what(), HasSubstr("move the folder aside to train from scratch"));
  }
  std::vector<std::string> names;
  for (const auto& e : std::filesystem::directory_iterator(ck))
    names.push_back(e.path().filename().string());
  std::sort(names.begin(), names.end());
  EXPECT_EQ(names, (std::vector<std::string>{"step-000000010", "step-000000020"}));
}

// Checkpoints written before the checksums (no "files", no "state_sha256") resume as before.
TEST(Trainer, CheckpointWithoutChecksumsStillResumes) {
  test::TempDir crash_dir("trainer");
  expect_resume_is_bit_exact(crash_dir.path(), 20, [](const std::filesystem::path& ck) {
    for (const char* step : {"step-000000010", "step-000000020"}) {
      const auto file = ck / step / "state.json";
      auto state = nlohmann::json::parse(read_file(file));
      ASSERT_TRUE(state.contains("files"));
      state.erase("files");
      state.erase("state_sha256");
      write_file_atomic(file, state.dump(2) + "\n");
    }
  });
}

TEST(Trainer, AccumulationMatchesOneLargeBatch) {
  // Two micro-batches of 8 rows per step see the same 16 rows as one batch of 16, so the
  // averaged gradients and hence the trained weights agree up to float rounding.
  torch::set_num_threads(1);
  test::TempDir a("trainer"), b("trainer");
  RegressionTask large(16, -1, /*dropout=*/0), small(8, -1, /*dropout=*/0);
  auto o = options(a.path(), 20);
  train(large, o);
  o.dir = b.path();
  o.grad_accum = 2;
  train(small, o);
  EXPECT_TRUE(torch::allclose(large.model_->weight, small.model_->weight, 1e-5, 1e-6));
  EXPECT_FALSE(torch::equal(large.model_->weight, RegressionTask().model_->weight));
}

TEST(Ema, AveragesTowardsTheWeightsAfterAWarmUpAndCopiesFrozenOnes) {
  torch::nn::Linear model(2, 1);
  {
    torch::NoGradGuard g;
    model->weight.fill_(0);
    model->bias.fill_(1);
  }
  model->bias.set_requires_grad(false);
  FlatParameters flat(*model);  // the weight only: the bias is frozen
  ASSERT_EQ(flat.numel(), 2);
  Ema ema(*model, flat, 0.5);
  {
    torch::NoGradGuard g;
    model->weight.fill_(4);
    model->bias.fill_(-1);  // changed by hand; a frozen tensor is copied, never averaged
  }
  ema.update(*model, 100);  // d = min(0.5, 101 / 110): 0.5 * 0 + 0.5 * 4
  ema.update(*model, 101);  // 0.5 * 2 + 0.5 * 4
  torch::nn::Linear out(2, 1);
  ema.copy_to(*out);
  EXPECT_TRUE(torch::allclose(out->weight, torch::full({1, 2}, 3.0)));
  EXPECT_TRUE(torch::equal(out->bias, torch::full({1}, -1.0)));

  // The first update weighs the old average by 1 / 10, the second by 2 / 11.
  FlatParameters out_flat(*out);
  Ema fresh(*out, out_flat, 0.999);
  {
    torch::NoGradGuard g;
    out->weight.fill_(13);
  }
  fresh.update(*out, 0);  // 0.1 * 3 + 0.9 * 13 = 12
  fresh.copy_to(*model);
  EXPECT_TRUE(torch::allclose(model->weight, torch::full({1, 2}, 12.0)));
}

class NanTask : public RegressionTask {
 public:
  torch::Tensor loss(Metrics& m) override {
    return RegressionTask::loss(m) * std::numeric_limits<float>::quiet_NaN();
  }
};

TEST(Trainer, NonFiniteLossStopsWithTheStep) {
  test::TempDir dir("trainer");
  NanTask task;
  try {
    train(task, options(dir.path(), 5));
    FAIL();
  } catch (const Error& e) {
    EXPECT_THAT(e.what(), HasSubstr("loss is nan at step 0"));
  }
  TrainerOptions bad = options(dir.path(), 0);
  EXPECT_THROW(train(task, bad), Error);
}

}  // namespace
}  // namespace recap::train
