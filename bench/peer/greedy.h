// Greedy relabeling for the peer benchmark, in a translation unit of its own: models/decoding.h
// and models/evaluator.h (reached through stages/model_settings.h) both define
// recap::models::DecodeOptions, so no file can include both.
#pragma once
#include <vector>

#include "core/torch_pch.h"
#include "models/captioner.h"

namespace recap::peer {

// models::decode with the default (greedy) options and long captions: per image, the tokens
// after the prompt.
std::vector<std::vector<int>> greedy_long_captions(models::Captioner& model,
                                                   const torch::Tensor& images);

}  // namespace recap::peer
