// An 8-bit image in memory (rows of interleaved channels, RGB order) and the codec and
// geometry operations the pipeline needs, on top of OpenCV (the choice img2dataset makes).
// Decoding never throws for bad bytes: it returns a reject reason, since broken images are
// a normal part of web corpora.
#pragma once
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace recap::data {

struct Image {
  int width = 0;
  int height = 0;
  int channels = 0;             // 1 (grey), 3 (RGB) or 4 (RGBA)
  std::vector<uint8_t> pixels;  // height * width * channels bytes, HWC

  uint8_t at(int y, int x, int c) const {
    return pixels[(static_cast<std::size_t>(y) * width + x) * channels + c];
  }
};

struct DecodeLimits {
  // Largest declared width*height accepted, in pixels; PIL's default bomb limit (~89.5 M).
  uint64_t max_pixels = 89'478'485;
};

struct DecodeResult {
  std::optional<Image> image;  // RGB, 3 channels, when decoding succeeded
  std::string reason;          // a reason from rejects.h otherwise
  std::string detail;
};

// PNG, JPEG or WebP bytes to RGB. Dimensions are checked against `limits` from the header
// before the decoder runs. Alpha is dropped and grey is expanded to three channels.
DecodeResult decode_image(std::string_view bytes, const DecodeLimits& limits = {});

// Lossless; same pixels give the same bytes (fixed compression level, no timestamps).
std::string encode_png(const Image& image);
// `quality` 1..100.
std::string encode_jpeg(const Image& image, int quality = 95);

// Area averaging when shrinking (no aliasing), bicubic when enlarging in either direction.
Image resize(const Image& image, int width, int height);
// The largest square starting `offset` pixels along the long side (0 .. long - short).
Image square_crop(const Image& image, int offset);
// The largest centred square; for odd margins the extra row/column is dropped at the end.
Image center_crop_square(const Image& image);
// Left and right swapped.
Image flip_horizontal(const Image& image);

// How a photograph of any size and aspect becomes a square training image.
enum class Crop { kCenter, kRandom };
struct Preprocess {
  int size = 64;  // output side in pixels
  Crop crop = Crop::kCenter;
  // Mirror half the images. Off by default: a mirrored image no longer matches a caption
  // that says "left of" or "on the right", which is what positional prompts test.
  bool flip = false;
};
// The largest square of `image` (centred, or with Crop::kRandom at an offset along the long
// side drawn from `seed`), resized to size x size, and with `flip` mirrored when the same
// draw says so (probability 1/2). The same crop as resizing the shortest side to `size` and
// cropping (torchvision's Resize + CenterCrop / RandomCrop), up to interpolation at the edges,
// without resampling what is cut away. The centre crop without flip ignores `seed`.
Image preprocess(const Image& image, const Preprocess& options, uint64_t seed);
// Centre crop to a square, then resize to size x size: what a square-image model trains on.
Image fit_square(const Image& image, int size);

}  // namespace recap::data
