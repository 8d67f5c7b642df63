// Training checkpoints: everything needed to continue bit-exactly on CPU.
//
//   DIR/step-000000100/
//     model.safetensors      parameters and buffers by module path
//     optimizer.safetensors  AdamW moments by parameter path ("<name>.exp_avg", ...)
//     ema.safetensors        EMA shadow weights (when the trainer keeps them)
//     rng.safetensors        torch generator states (CPU, and CUDA when present)
//     state.json             step, per-parameter AdamW step counts, data cursor, extras
//
// A checkpoint folder is filled under a temporary name and renamed into place, so a kill
// leaves either the previous checkpoint or the new one; older ones beyond keep_last go.
#pragma once
#include <cstdint>
#include <filesystem>
#include <optional>
#include <vector>

#include <nlohmann/json.hpp>

#include "core/torch_pch.h"
#include "core/weights.h"

namespace recap {

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
                             torch::optim::AdamW& optimizer, const NamedTensors* ema);
  // The newest complete checkpoint, if any.
  std::optional<std::filesystem::path> latest() const;
  // Every complete checkpoint, oldest first.
  std::vector<std::filesystem::path> all() const;
  // The training step a checkpoint folder (step-NNNNNNNNN) was saved at; recap::Error for a
  // folder not named so.
  static int64_t step_of(const std::filesystem::path& checkpoint);
  // Restores model, optimizer moments, EMA and RNG; returns step, cursor and extras.
  TrainingState restore(const std::filesystem::path& checkpoint, torch::nn::Module& model,
                        torch::optim::AdamW& optimizer, NamedTensors* ema) const;

 private:
  std::filesystem::path dir_;
  int keep_last_;
};

}  // namespace recap
