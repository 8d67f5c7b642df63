#include "core/torch_pch.h"
#include "train/trainer.h"

#include <chrono>
#include <cmath>
#include <numbers>

#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include "core/checkpoint.h"
#include "core/error.h"
#include "core/jsonl.h"
#include "core/progress.h"
#include "train/adamw.h"
#include "train/ema.h"
#include "train/flat_parameters.h"

namespace recap::train {

double lr_at(const TrainerOptions& o, int64_t step) {
  if (step < o.warmup_steps) return o.lr * static_cast<double>(step + 1) / o.warmup_steps;
  const int64_t decay_steps = std::max<int64_t>(1, o.steps - 1 - o.warmup_steps);
  const double t = std::min(1.0, static_cast<double>(step - o.warmup_steps) / decay_steps);
  const double min_lr = o.lr * o.min_lr_ratio;
  return min_lr + 0.5 * (o.lr - min_lr) * (1 + std::cos(std::numbers::pi * t));
}

namespace {

// Runs validation with the EMA weights swapped in, then puts the training weights back.
void validate_with_ema(Task& task, Ema* ema, int64_t step, Metrics& metrics) {
  torch::nn::Module& model = task.module();
  NamedTensors saved;
  if (ema) {
    for (auto& [name, t] : module_state(model)) saved.emplace_back(name, t.detach().clone());
    ema->copy_to(model);
  }
  model.eval();
  task.validate(step, metrics);
  model.train();
  if (ema) {
    torch::NoGradGuard no_grad;
    auto state = module_state(model);
    for (size_t i = 0; i < saved.size(); ++i) state[i].second.copy_(saved[i].second);
  }
}

}  // namespace

TrainResult train(Task& task, const TrainerOptions& o) {
  if (o.steps <= 0 || o.grad_accum <= 0 || o.lr <= 0)
    throw Error(fmt::format("trainer: steps ({}), grad_accum ({}) and lr ({}) must be positive",
                            o.steps, o.grad_accum, o.lr));
  torch::nn::Module& model = task.module();
  model.train();
  FlatParameters params(model);
  AdamW optimizer(params, {.beta1 = o.beta1, .beta2 = o.beta2, .weight_decay = o.weight_decay});
  std::unique_ptr<Ema> ema;
  if (o.ema_decay > 0) ema = std::make_unique<Ema>(model, params, o.ema_decay);

  Checkpointer checkpoints(o.dir / "checkpoints", o.keep_last);
  JsonlWriter log(o.dir / "metrics.jsonl");
  TrainResult result;
  if (auto resumed = checkpoints.resume(model, optimizer.state(), ema ? &ema->shadow() : nullptr)) {
    const TrainingState& state = resumed->state;
    task.restore(state.cursor);
    result.start_step = state.step;
    spdlog::info("resumed from {} (step {})", resumed->checkpoint.string(), state.step);
  }
  // The log holds this run's steps only: a resumed run drops what was logged after its
  // checkpoint, a fresh one what an attempt killed before its first checkpoint logged.
  log.truncate_after("step", static_cast<double>(result.start_step));

  int64_t step = result.start_step;
  Progress progress("train", o.steps - step, "step");
  auto t0 = std::chrono::steady_clock::now();
  double train_seconds = 0;  // optimizer steps only: no validation, no checkpoints
  // Where the step's time goes, summed since the last log record: forward + loss, backward,
  // and the update (clipping, AdamW, EMA). Logged as means per step.
  double forward_sum = 0, backward_sum = 0, update_sum = 0;
  int64_t timed_steps = 0;
  auto since = [](std::chrono::steady_clock::time_point t) {
    return std::chrono::duration<double>(std::chrono::steady_clock::now() - t).count();
  };
  while (step < o.steps) {
    const auto step_start = std::chrono::steady_clock::now();
    const double lr = lr_at(o, step);
    params.zero_grad();
    Metrics metrics;
    double loss_sum = 0;
    for (int micro = 0; micro < o.grad_accum; ++micro) {
      auto phase = std::chrono::steady_clock::now();
      torch::Tensor loss = task.loss(metrics);
      const double value = loss.item<double>();
      forward_sum += since(phase);
      if (!std::isfinite(value))
        throw Error(
            fmt::format("trainer: loss is {} at step {} (lr {:.3g}); lower the learning "
                        "rate or check the data",
                        value, step, lr));
      phase = std::chrono::steady_clock::now();
      (loss / o.grad_accum).backward();
      backward_sum += since(phase);
      loss_sum += value;
    }
    const auto update_start = std::chrono::steady_clock::now();
    // The global norm before clipping: the number worth watching for instability. Clipping
    // scales the gradients inside the optimizer's pass, as torch's clip_grad_norm_ would.
    const double grad_norm = params.grad_norm();
    optimizer.step(lr, clip_scale(grad_norm, o.grad_clip));
    if (ema) ema->update(model, step);
    update_sum += since(update_start);
    ++timed_steps;
    ++step;
    result.last_loss = loss_sum / o.grad_accum;
    train_seconds += since(step_start);

    const bool last = step == o.steps;
    if (step % o.log_every == 0 || last) {
      const auto per_step = [&](double sum) { return sum / static_cast<double>(timed_steps); };
      nlohmann::json record = {{"step", step},
                               {"loss", result.last_loss},
                               {"lr", lr},
                               {"grad_norm", grad_norm},
                               {"seconds", since(t0)},
                               {"train_seconds", train_seconds},
                               {"forward_seconds", per_step(forward_sum)},
                               {"backward_seconds", per_step(backward_sum)},
                               {"update_seconds", per_step(update_sum)}};
      forward_sum = backward_sum = update_sum = 0;
      timed_steps = 0;
      for (const auto& [k, v] : metrics) record[k] = v;
      log.write(record);
    }
    if ((o.validate_every > 0 && step % o.validate_every == 0) || last) {
      Metrics val = {{"train_seconds", train_seconds}};
      validate_with_ema(task, ema.get(), step, val);
      if (val.size() > 1) {
        nlohmann::json record = {{"step", step}, {"split", "validation"}};
        for (const auto& [k, v] : val) record[k] = v;
        log.write(record);
      }
    }
    if (step % o.checkpoint_every == 0 || last)
      checkpoints.save({step, task.cursor(), {}}, model, optimizer.state(),
                       ema ? &ema->shadow() : nullptr);
    progress.set_status(fmt::format("loss {:.4f} lr {:.2e}", result.last_loss, lr));
    progress.add();
  }
  progress.finish();
  if (ema) ema->copy_to(model);
  result.steps = step;
  return result;
}

}  // namespace recap::train
