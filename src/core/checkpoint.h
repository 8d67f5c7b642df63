// Training checkpoints: everything needed to continue bit-exactly on CPU.
//
//   DIR/step-000000100/
//     model.safetensors      parameters and buffers by module path
//     optimizer.safetensors  AdamW moments by parameter path ("<name>.exp_avg", ...)
//     ema.safetensors        EMA shadow weights (when the trainer keeps them)
//     rng.safetensors        torch generator states (CPU, and CUDA when present)
//     state.json             step, per-parameter AdamW step counts, data cursor, extras, and
//                            the sha256 and size of every other file plus its own checksum
//
// A checkpoint folder is filled under a temporary name and renamed into place, so a kill
// leaves either the previous checkpoint or the new one; older ones beyond keep_last go.
// A kill cannot damage a checkpoint, but a disk or a copy can: restore() checks every file
// against state.json first, and resume() falls back to the newest checkpoint that restores.
#pragma once
#include <cstdint>
#include <filesystem>
#include <optional>
#include <vector>

#include <nlohmann/json.hpp>

#include "core/torch_pch.h"
#include "core/weights.h"

namespace recap {

// An optimizer as a checkpoint sees it: moment tensors named "<parameter path>.exp_avg" and
// ".exp_avg_sq" (views into the optimizer's own buffers: save() writes them, restore() copies
// into them), and the number of steps taken (AdamW's bias correction).
struct OptimizerState {
  NamedTensors moments;
  int64_t step = 0;
};

struct TrainingState {
  int64_t step = 0;
  nlohmann::json cursor;  // the data stream's position, from the loader
  nlohmann::json extra;   // anything else a trainer wants back (e.g. best validation loss)
};

class Checkpointer {
 public:
  Checkpointer(std::filesystem::path dir, int keep_last);

  // `ema` (may be null) holds shadow tensors named like the model's state.
  std::filesystem::path save(const TrainingState& state, const torch::nn::Module& model,
                             const OptimizerState& optimizer, const NamedTensors* ema);
  // The newest complete checkpoint, if any.
  std::optional<std::filesystem::path> latest() const;
  // Every complete checkpoint, oldest first.
  std::vector<std::filesystem::path> all() const;
  // The training step a checkpoint folder (step-NNNNNNNNN) was saved at; recap::Error for a
  // folder not named so.
  static int64_t step_of(const std::filesystem::path& checkpoint);
  // Checks a checkpoint as restore() does before loading anything (state.json against its own
  // checksum, every file it lists against its size and sha256): a recap::Error naming the file
  // and the problem. For readers of a checkpoint's weights outside training.
  static void verify(const std::filesystem::path& checkpoint);
  // Restores model, optimizer moments and step count, EMA and RNG; returns step, cursor and
  // extras. A moment the file lacks is zero when state.json's optimizer_steps lacks its
  // parameter too (never stepped, e.g. unused or frozen then) and an error otherwise. A
  // recap::Error names the file and the problem when state.json does not parse or does not
  // match itself, or a file it lists is missing or differs in size or sha256 (checkpoints from
  // before the checksums have none to check, and only the files' own validation applies).
  TrainingState restore(const std::filesystem::path& checkpoint, torch::nn::Module& model,
                        OptimizerState& optimizer, NamedTensors* ema) const;
  // For a trainer starting up: restores the newest checkpoint that restores; std::nullopt
  // when there is none. Each newer one that fails is logged as a warning with its problem and
  // renamed to step-N.damaged (kept for inspection, out of latest(), all() and the keep_last
  // rotation, so the next save of that step does not meet it). When every checkpoint fails,
  // a recap::Error lists them all and nothing is renamed: a run that had progress must not
  // quietly start over.
  struct Resumed {
    std::filesystem::path checkpoint;
    TrainingState state;
  };
  std::optional<Resumed> resume(torch::nn::Module& model, OptimizerState& optimizer,
                                NamedTensors* ema);

 private:
  std::filesystem::path dir_;
  int keep_last_;
};

}  // namespace recap
