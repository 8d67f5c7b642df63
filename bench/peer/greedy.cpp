#include "core/torch_pch.h"
#include "peer/greedy.h"

#include "models/decoding.h"

namespace recap::peer {

std::vector<std::vector<int>> greedy_long_captions(models::Captioner& model,
                                                   const torch::Tensor& images) {
  return models::decode(model, images, models::CaptionStyle::kLong, models::DecodeOptions{});
}

}  // namespace recap::peer
