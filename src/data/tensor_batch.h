// A loader batch as model input: images stacked into one float tensor, captions and keys
// alongside. The one place pixel bytes become tensors, so every model sees the same scaling.
#pragma once
#include <string>
#include <vector>

#include "core/torch_pch.h"
#include "data/image.h"
#include "data/loader.h"

namespace recap::data {

struct TensorBatch {
  torch::Tensor images;  // [B, 3, H, W] float32 in [-1, 1]
  std::vector<std::string> keys;
  std::vector<std::string> captions;
};

// Throws recap::Error if the images differ in size or are not RGB (the loader's image_size
// option makes them uniform).
TensorBatch to_tensor_batch(const std::vector<DecodedSample>& batch);

// [3, H, W] or [B, 3, H, W] in [-1, 1] back to 8-bit RGB images (clamped, rounded), for
// writing samples and grids.
std::vector<Image> to_images(const torch::Tensor& images);

}  // namespace recap::data
