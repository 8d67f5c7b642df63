// Image codec, header sniffing (the decompression-bomb guard) and caption text checks.
#include <gtest/gtest.h>

#include <cstdlib>
#include <string>

#include "core/error.h"
#include "data/image.h"
#include "data/image_header.h"
#include "data/rejects.h"
#include "data/text_checks.h"

namespace recap::data {
namespace {

using namespace std::string_literals;

// A 3x1 RGB PNG (red, blue, green) built by hand with Python's zlib, independent of OpenCV,
// so channel order is checked against a reference rather than against our own encoder.
const std::string kRedBlueGreenPng =
    "\x89\x50\x4e\x47\x0d\x0a\x1a\x0a\x00\x00\x00\x0d\x49\x48\x44\x52\x00\x00\x00\x03\x00\x00"
    "\x00\x01\x08\x02\x00\x00\x00\x94\x82\x83\xe3\x00\x00\x00\x0f\x49\x44\x41\x54\x78\x9c\x63"
    "\xf8\xcf\x00\x04\xff\x81\x10\x00\x0e\xfb\x02\xfe\x9c\x8b\x75\x40\x00\x00\x00\x00\x49\x45"
    "\x4e\x44\xae\x42\x60\x82"s;

Image pattern(int width, int height) {
  Image image{width, height, 3, {}};
  uint32_t state = 12345;
  for (int i = 0; i < width * height * 3; ++i) {
    state = state * 1664525u + 1013904223u;
    image.pixels.push_back(static_cast<uint8_t>(state >> 24));
  }
  return image;
}

Image solid(int width, int height, uint8_t r, uint8_t g, uint8_t b) {
  Image image{width, height, 3, {}};
  for (int i = 0; i < width * height; ++i) image.pixels.insert(image.pixels.end(), {r, g, b});
  return image;
}

// A PNG signature and IHDR declaring width x height, followed by nothing decodable.
std::string png_header_only(uint32_t width, uint32_t height) {
  std::string bytes = "\x89PNG\r\n\x1a\n\x00\x00\x00\x0dIHDR"s;
  for (uint32_t v : {width, height})
    for (int shift = 24; shift >= 0; shift -= 8) bytes.push_back(static_cast<char>(v >> shift));
  return bytes + "\x08\x02\x00\x00\x00\x00\x00\x00\x00"s + std::string(64, '\0');
}

TEST(DataUtf8, AcceptsValidAndRejectsMalformed) {
  EXPECT_TRUE(is_valid_utf8(""));
  EXPECT_TRUE(is_valid_utf8("plain ascii"));
  EXPECT_TRUE(is_valid_utf8("h\xc3\xa9llo \xe6\x97\xa5\xe6\x9c\xac \xf0\x9f\x98\x80"));
  EXPECT_FALSE(is_valid_utf8("\xc0\x80"));          // overlong NUL
  EXPECT_FALSE(is_valid_utf8("\xe0\x80\xaf"));      // overlong '/'
  EXPECT_FALSE(is_valid_utf8("\xed\xa0\x80"));      // surrogate U+D800
  EXPECT_FALSE(is_valid_utf8("\xf4\x90\x80\x80"));  // above U+10FFFF
  EXPECT_FALSE(is_valid_utf8("\xe2\x82"));          // cut short
  EXPECT_FALSE(is_valid_utf8("\x80"));              // lone continuation byte
  EXPECT_FALSE(is_valid_utf8("\xff\xfe"));
  EXPECT_EQ(utf8_length("h\xc3\xa9llo \xf0\x9f\x98\x80"), 7u);
}

TEST(DataUtf8, CaptionLimitsInBytesAndCharacters) {
  CaptionLimits limits{.max_bytes = 12, .max_chars = 4};
  EXPECT_FALSE(check_caption("", limits));
  EXPECT_FALSE(check_caption("abcd", limits));
  EXPECT_EQ(check_caption("abcde", limits)->reason, reason::kCaptionTooLong);
  // Four 3-byte characters: 12 bytes, within both limits; a fifth breaks both.
  EXPECT_FALSE(check_caption("\xe6\x97\xa5\xe6\x97\xa5\xe6\x97\xa5\xe6\x97\xa5", limits));
  EXPECT_EQ(check_caption(std::string(13, 'a'), limits)->reason, reason::kCaptionTooLong);
  EXPECT_EQ(check_caption("a\xff", limits)->reason, reason::kCaptionInvalidUtf8);
}

TEST(DataImage, PngRoundTripIsExactAndDeterministic) {
  Image image = pattern(7, 5);
  std::string png = encode_png(image);
  EXPECT_EQ(png, encode_png(image));
  DecodeResult decoded = decode_image(png);
  ASSERT_TRUE(decoded.image) << decoded.reason << ": " << decoded.detail;
  EXPECT_EQ(decoded.image->width, 7);
  EXPECT_EQ(decoded.image->height, 5);
  EXPECT_EQ(decoded.image->channels, 3);
  EXPECT_EQ(decoded.image->pixels, image.pixels);
}

TEST(DataImage, DecodesToRgbOrder) {
  DecodeResult decoded = decode_image(kRedBlueGreenPng);
  ASSERT_TRUE(decoded.image) << decoded.reason << ": " << decoded.detail;
  const Image& image = *decoded.image;
  ASSERT_EQ(image.width, 3);
  EXPECT_EQ(image.pixels, (std::vector<uint8_t>{255, 0, 0, 0, 0, 255, 0, 255, 0}));
  // Our encoder must write the same channel order back.
  EXPECT_EQ(decode_image(encode_png(image)).image->pixels, image.pixels);
}

TEST(DataImage, JpegRoundTripIsClose) {
  Image image = solid(32, 24, 200, 40, 90);
  DecodeResult decoded = decode_image(encode_jpeg(image, 95));
  ASSERT_TRUE(decoded.image);
  ASSERT_EQ(decoded.image->pixels.size(), image.pixels.size());
  for (std::size_t i = 0; i < image.pixels.size(); ++i)
    ASSERT_NEAR(decoded.image->pixels[i], image.pixels[i], 4) << "at byte " << i;
}

TEST(DataImage, ResizeCropAndFit) {
  Image big = pattern(64, 48);
  Image down = resize(big, 32, 24);
  EXPECT_EQ(down.width, 32);
  EXPECT_EQ(down.height, 24);
  EXPECT_EQ(down.pixels.size(), 32u * 24 * 3);
  Image up = resize(solid(8, 8, 10, 20, 30), 20, 20);
  EXPECT_EQ(up.width, 20);
  EXPECT_EQ(up.pixels, solid(20, 20, 10, 20, 30).pixels);  // bicubic keeps flat colour flat

  // Area downscale averages: a 2x2 black/white checker becomes mid grey.
  Image checker{2, 2, 3, {0, 0, 0, 255, 255, 255, 255, 255, 255, 0, 0, 0}};
  Image one = resize(checker, 1, 1);
  EXPECT_NEAR(one.pixels[0], 128, 1);

  Image wide = pattern(10, 6);
  Image square = center_crop_square(wide);
  EXPECT_EQ(square.width, 6);
  EXPECT_EQ(square.height, 6);
  for (int c = 0; c < 3; ++c) EXPECT_EQ(square.at(3, 0, c), wide.at(3, 2, c));  // x offset 2
  Image fitted = fit_square(wide, 4);
  EXPECT_EQ(fitted.width, 4);
  EXPECT_EQ(fitted.height, 4);
  EXPECT_THROW(resize(big, 0, 4), Error);
}

TEST(DataImage, HeaderSniffers) {
  auto png = read_image_header(encode_png(pattern(13, 9)));
  ASSERT_TRUE(png);
  EXPECT_EQ(png->format, ImageFormat::png);
  EXPECT_EQ(png->width, 13u);
  EXPECT_EQ(png->height, 9u);
  auto jpeg = read_image_header(encode_jpeg(pattern(13, 9)));
  ASSERT_TRUE(jpeg);
  EXPECT_EQ(jpeg->format, ImageFormat::jpeg);
  EXPECT_EQ(jpeg->width, 13u);
  EXPECT_EQ(jpeg->height, 9u);
  // WebP variants, headers only: lossy VP8, lossless VP8L, extended VP8X.
  std::string riff = "RIFF\x00\x00\x00\x00WEBP"s;
  auto vp8 =
      read_image_header(riff + "VP8 \x00\x00\x00\x00\x10\x02\x00\x9d\x01\x2a\x2c\x01\xc8\x00"s);
  ASSERT_TRUE(vp8);
  EXPECT_EQ(vp8->width, 300u);
  EXPECT_EQ(vp8->height, 200u);
  // VP8L: 14-bit fields width-1 = 299, height-1 = 199 packed little-endian after 0x2F.
  uint32_t bits = 299u | (199u << 14);
  std::string vp8l = riff + "VP8L\x00\x00\x00\x00\x2f"s;
  for (int i = 0; i < 4; ++i) vp8l.push_back(static_cast<char>(bits >> (8 * i)));
  auto lossless = read_image_header(vp8l + std::string(8, '\0'));
  ASSERT_TRUE(lossless);
  EXPECT_EQ(lossless->width, 300u);
  EXPECT_EQ(lossless->height, 200u);
  auto extended =
      read_image_header(riff + "VP8X\x0a\x00\x00\x00\x00\x00\x00\x00\x2b\x01\x00\xc7\x00\x00"s);
  ASSERT_TRUE(extended);
  EXPECT_EQ(extended->width, 300u);
  EXPECT_EQ(extended->height, 200u);
  EXPECT_FALSE(read_image_header("GIF89a......................"));
}

TEST(DataImage, BadBytesGiveReasonsNotCrashes) {
  EXPECT_EQ(decode_image("").reason, reason::kImageEmpty);
  EXPECT_EQ(decode_image("this is a text file, not a picture\n").reason,
            reason::kImageUnknownFormat);
  std::string png = encode_png(pattern(40, 30));
  EXPECT_EQ(decode_image(png.substr(0, png.size() / 2)).reason, reason::kImageCorrupt);
  EXPECT_EQ(decode_image(png.substr(0, 20)).reason, reason::kImageCorrupt);  // header cut
  std::string jpeg = encode_jpeg(pattern(40, 30));
  EXPECT_EQ(decode_image(jpeg.substr(0, jpeg.size() * 2 / 3)).reason, reason::kImageCorrupt);
  std::string garbage_jpeg = "\xff\xd8\xff";
  garbage_jpeg.append(100, '\x42');
  EXPECT_EQ(decode_image(garbage_jpeg).reason, reason::kImageCorrupt);
}

TEST(DataImage, RefusesHugeDeclaredDimensionsBeforeDecoding) {
  DecodeResult bomb = decode_image(png_header_only(100000, 100000));
  EXPECT_EQ(bomb.reason, reason::kImageTooLarge);
  EXPECT_NE(bomb.detail.find("100000x100000"), std::string::npos) << bomb.detail;
  // The limit is configurable: a real 40x30 image passes 1200 pixels and fails 1199.
  std::string png = encode_png(pattern(40, 30));
  EXPECT_TRUE(decode_image(png, {.max_pixels = 1200}).image);
  EXPECT_EQ(decode_image(png, {.max_pixels = 1199}).reason, reason::kImageTooLarge);
}

}  // namespace
}  // namespace recap::data
