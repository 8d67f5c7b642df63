#include "core/torch_pch.h"
#include "data/tensor_batch.h"

#include <fmt/format.h>
#include <fmt/ranges.h>

#include "core/error.h"

namespace recap::data {

TensorBatch to_tensor_batch(const std::vector<DecodedSample>& batch) {
  TensorBatch out;
  if (batch.empty()) {
    out.images = torch::empty({0, 3, 0, 0});
    return out;
  }
  const int h = batch[0].image.height, w = batch[0].image.width;
  auto bytes = torch::empty({static_cast<int64_t>(batch.size()), h, w, 3}, torch::kUInt8);
  uint8_t* dst = bytes.data_ptr<uint8_t>();
  for (const auto& s : batch) {
    if (s.image.height != h || s.image.width != w || s.image.channels != 3)
      throw Error(fmt::format("batch: sample '{}' is {}x{}x{}, expected {}x{}x3 like the first "
                              "(set the loader's image_size)", s.key, s.image.width,
                              s.image.height, s.image.channels, w, h));
    std::memcpy(dst, s.image.pixels.data(), s.image.pixels.size());
    dst += s.image.pixels.size();
    out.keys.push_back(s.key);
    out.captions.push_back(s.caption);
  }
  // HWC bytes -> CHW floats in [-1, 1], the range diffusion models and encoders expect.
  out.images = bytes.permute({0, 3, 1, 2}).to(torch::kFloat32).div_(127.5).sub_(1.0).contiguous();
  return out;
}

std::vector<Image> to_images(const torch::Tensor& images) {
  auto batch = images.dim() == 3 ? images.unsqueeze(0) : images;
  if (batch.dim() != 4 || batch.size(1) != 3)
    throw Error(fmt::format("to_images: expected [B, 3, H, W], got [{}]",
                            fmt::join(batch.sizes(), ", ")));
  auto bytes = batch.detach().to(torch::kCPU, torch::kFloat32).add(1.0).mul(127.5).round()
                   .clamp(0, 255).to(torch::kUInt8).permute({0, 2, 3, 1}).contiguous();
  std::vector<Image> out;
  const int64_t h = bytes.size(1), w = bytes.size(2);
  const uint8_t* src = bytes.data_ptr<uint8_t>();
  for (int64_t b = 0; b < bytes.size(0); ++b, src += h * w * 3)
    out.push_back({static_cast<int>(w), static_cast<int>(h), 3,
                   std::vector<uint8_t>(src, src + h * w * 3)});
  return out;
}

}  // namespace recap::data
