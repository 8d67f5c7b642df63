// The trainer's update (gradient norm and clipping, AdamW, EMA, clearing the gradients) on the
// quick preset's text-to-image model, against the same update made the per-tensor way with
// torch::optim::AdamW and torch::nn::utils::clip_grad_norm_ (the reference in the same run).
//   ./build/bench/recap_bench --benchmark_filter='Update'
#include <benchmark/benchmark.h>

#include "core/config.h"
#include "core/threads.h"
#include "core/weights.h"
#include "stages/model_settings.h"
#include "stages/t2i_model.h"
#include "train/adamw.h"
#include "train/ema.h"
#include "train/flat_parameters.h"

namespace recap::train {
namespace {

constexpr double kLr = 1e-3, kClip = 1.0, kEmaDecay = 0.99;

stages::T2iModel quick_model() {
  const Config c = Config::load("quick");
  torch::manual_seed(1);
  return stages::T2iModel(stages::T2iModelOptions{
      text_encoder_settings(c, c.get_int("tokenizer.vocab_size")),
      unet_settings(c), std::nullopt, std::nullopt});
}

// Gradients as backward leaves them: torch's AdamW skips a parameter without one.
void fill_grads(const std::vector<torch::Tensor>& params) {
  torch::NoGradGuard no_grad;
  for (const auto& p : params) p.mutable_grad() = torch::randn_like(p) * 1e-2;
}

void BM_UpdateReferencePerTensor(benchmark::State& state) {
  configure_threads(static_cast<int>(state.range(0)));
  auto model = quick_model();
  const auto params = model->parameters();
  torch::optim::AdamW optimizer(params, torch::optim::AdamWOptions(kLr));
  NamedTensors ema;
  for (auto& [name, t] : module_state(*model)) ema.emplace_back(name, t.detach().clone());
  fill_grads(params);
  for (auto _ : state) {
    torch::nn::utils::clip_grad_norm_(params, kClip);
    optimizer.step();
    torch::NoGradGuard no_grad;
    const auto weights = module_state(*model);
    for (size_t i = 0; i < ema.size(); ++i)
      ema[i].second.mul_(kEmaDecay).add_(weights[i].second, 1 - kEmaDecay);
    optimizer.zero_grad();  // 1.13 zeroes each gradient in place
  }
  state.counters["tensors"] = static_cast<double>(params.size());
}

void BM_UpdateFlat(benchmark::State& state) {
  configure_threads(static_cast<int>(state.range(0)));
  auto model = quick_model();
  FlatParameters flat(*model);
  AdamW optimizer(flat, {});
  Ema ema(*model, flat, kEmaDecay);
  int64_t step = 0;
  for (auto _ : state) {
    optimizer.step(kLr, clip_scale(flat.grad_norm(), kClip));
    ema.update(*model, step++);
    flat.zero_grad();
  }
  state.counters["parameters"] = static_cast<double>(flat.numel());
}

BENCHMARK(BM_UpdateReferencePerTensor)->Arg(1)->Arg(2)->Unit(benchmark::kMillisecond);
BENCHMARK(BM_UpdateFlat)->Arg(1)->Arg(2)->Unit(benchmark::kMillisecond);

}  // namespace
}  // namespace recap::train
