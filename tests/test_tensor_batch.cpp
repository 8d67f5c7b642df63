#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "core/error.h"
#include "data/tensor_batch.h"

namespace recap::data {
namespace {

DecodedSample sample(const std::string& key, int w, int h, uint8_t base) {
  DecodedSample s;
  s.key = key;
  s.caption = "caption of " + key;
  s.image = {w, h, 3, std::vector<uint8_t>(size_t(w) * h * 3)};
  for (size_t i = 0; i < s.image.pixels.size(); ++i)
    s.image.pixels[i] = static_cast<uint8_t>(base + i);
  return s;
}

TEST(TensorBatch, LayoutRangeAndRoundTrip) {
  std::vector<DecodedSample> batch = {sample("a", 4, 2, 0), sample("b", 4, 2, 200)};
  TensorBatch t = to_tensor_batch(batch);
  ASSERT_EQ(t.images.sizes(), (std::vector<int64_t>{2, 3, 2, 4}));
  EXPECT_EQ(t.keys, (std::vector<std::string>{"a", "b"}));
  EXPECT_EQ(t.captions[1], "caption of b");
  // Pixel (y=1, x=2), channel 1 of sample b: byte index (1*4+2)*3+1 = 19 -> 219.
  EXPECT_FLOAT_EQ(t.images[1][1][1][2].item<float>(), 219 / 127.5f - 1);
  EXPECT_GE(t.images.min().item<float>(), -1.0f);
  EXPECT_LE(t.images.max().item<float>(), 1.0f);
  auto back = to_images(t.images);
  ASSERT_EQ(back.size(), 2u);
  EXPECT_EQ(back[0].pixels, batch[0].image.pixels);
  EXPECT_EQ(back[1].pixels, batch[1].image.pixels);
}

TEST(TensorBatch, MixedSizesAreRefusedWithTheKey) {
  try {
    to_tensor_batch({sample("a", 4, 4, 0), sample("odd", 5, 4, 0)});
    FAIL();
  } catch (const Error& e) {
    EXPECT_THAT(e.what(), ::testing::HasSubstr("sample 'odd' is 5x4x3"));
  }
  EXPECT_EQ(to_tensor_batch({}).images.size(0), 0);
  EXPECT_THROW(to_images(torch::zeros({2, 1, 4, 4})), Error);
  EXPECT_EQ(to_images(torch::full({3, 2, 2}, 5.0))[0].pixels[0], 255);  // clamped
}

}  // namespace
}  // namespace recap::data
