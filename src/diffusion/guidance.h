// Classifier-free guidance (Ho & Salimans 2022) and its training-side half, condition dropout.
// The condition is an opaque tensor whose first dimension is the batch: text embeddings
// [B, S, D], token ids [B, L], a padding mask... the model decides what it means.
#pragma once
#include <functional>

#include "core/torch_pch.h"
#include "diffusion/schedule.h"

namespace recap::diffusion {

// A conditional denoiser: x_t [B, ...], t [B], cond [B, ...] -> output [B, ...].
using ConditionalModel = std::function<torch::Tensor(
    const torch::Tensor& x_t, const torch::Tensor& t, const torch::Tensor& cond)>;

// A Predictor returning uncond + scale * (cond - uncond) for the fixed conditions `cond`
// [B, ...] and `uncond` ([B, ...] or [1, ...], expanded to B). Both halves run in one model
// call on a [2B] batch (uncond first). Scale 0 and 1 call the model once on [B] with only the
// condition that matters: half the work, and the result is exactly the unconditional or
// conditional output rather than that value after a round trip through the formula.
Predictor classifier_free_guidance(ConditionalModel model, torch::Tensor cond, torch::Tensor uncond,
                                   double scale);

// Which samples drop their condition in training: bool [batch], each true with probability p,
// drawn on the CPU from `gen` (so the choice is the same on every device).
torch::Tensor condition_dropout_mask(int64_t batch, double p, at::Generator gen);

// `cond` [B, ...] with the rows where mask [B] is true replaced by `uncond` ([1, ...] or
// [B, ...]). Applying one mask to the embeddings and their padding mask keeps them paired.
torch::Tensor drop_conditions(const torch::Tensor& cond, const torch::Tensor& uncond,
                              const torch::Tensor& mask);

}  // namespace recap::diffusion
