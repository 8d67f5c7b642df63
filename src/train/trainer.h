// The one training loop every model uses (captioner, text encoder + UNet): AdamW with linear
// warmup and cosine decay, gradient accumulation and clipping, optional EMA, JSONL metrics,
// progress, and checkpoints that resume bit-exactly on CPU. A model plugs in through Task;
// the loop knows nothing of captions, images or noise.
#pragma once
#include <cstdint>
#include <filesystem>
#include <map>
#include <string>

#include <nlohmann/json.hpp>

#include "core/torch_pch.h"

namespace recap::train {

struct TrainerOptions {
  int64_t steps = 1000;         // optimizer steps in total
  double lr = 3e-4;             // peak learning rate
  double min_lr_ratio = 0.1;    // cosine decays to lr * min_lr_ratio at the last step
  int64_t warmup_steps = 100;   // linear warmup from 0
  double weight_decay = 0.01;
  double beta1 = 0.9, beta2 = 0.999;
  double grad_clip = 1.0;       // max global L2 norm; <= 0 disables clipping
  int grad_accum = 1;           // micro-batches per optimizer step
  double ema_decay = 0;         // 0 disables the EMA; else training ends with its weights
  int64_t checkpoint_every = 500;
  int keep_last = 3;
  int64_t log_every = 10;
  int64_t validate_every = 0;   // 0: only at the end
  std::filesystem::path dir;    // checkpoints/ and metrics.jsonl go here
};

// Learning rate at `step` (0-based): linear warmup to lr over warmup_steps, then cosine decay
// to lr * min_lr_ratio at steps - 1.
double lr_at(const TrainerOptions& options, int64_t step);

using Metrics = std::map<std::string, double>;

// What a model brings to the trainer.
class Task {
 public:
  virtual ~Task() = default;
  virtual torch::nn::Module& module() = 0;
  // Draws the next micro-batch from the task's own data stream and returns its mean loss
  // (a scalar with grad). May add scalars to `metrics` for the log.
  virtual torch::Tensor loss(Metrics& metrics) = 0;
  // The data stream's position, saved in checkpoints; restore() continues from it.
  virtual nlohmann::json cursor() const = 0;
  virtual void restore(const nlohmann::json& cursor) = 0;
  // Held-out evaluation (validation loss, sample captions, image grids), called every
  // validate_every steps and at the end, with the EMA weights loaded when there is an EMA.
  // `metrics` arrives holding "train_seconds": this process's time in optimizer steps so far.
  virtual void validate(int64_t /*step*/, Metrics& /*metrics*/) {}
};

struct TrainResult {
  int64_t start_step = 0;  // > 0 when resumed from a checkpoint
  int64_t steps = 0;
  double last_loss = 0;
};

// Trains `task` to options.steps, resuming from the newest checkpoint in options.dir that
// restores (Checkpointer::resume: damaged newer ones are renamed with a warning; a recap::Error
// when there are checkpoints and none restores). A non-finite loss stops training with a
// recap::Error naming the step. With an EMA, the model ends holding the EMA weights (those
// worth keeping; the raw ones stay in the last checkpoint's model.safetensors).
TrainResult train(Task& task, const TrainerOptions& options);

}  // namespace recap::train
