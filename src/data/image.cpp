#include "data/image.h"

#include <algorithm>
#include <limits>

#include <opencv2/core.hpp>
#include <opencv2/imgcodecs.hpp>
#include <opencv2/imgproc.hpp>

#include "core/error.h"
#include "core/rng.h"
#include "data/image_header.h"
#include "data/rejects.h"

namespace recap::data {

namespace {

DecodeResult reject(std::string_view reason, std::string detail) {
  return DecodeResult{std::nullopt, std::string(reason), std::move(detail)};
}

// A header over the image's own pixels; valid while `image` lives and is not resized.
cv::Mat view(const Image& image) {
  return cv::Mat(image.height, image.width, CV_8UC(image.channels),
                 const_cast<uint8_t*>(image.pixels.data()));
}

Image from_mat(const cv::Mat& mat) {
  cv::Mat packed = mat.isContinuous() ? mat : mat.clone();
  Image image{packed.cols, packed.rows, packed.channels(), {}};
  image.pixels.assign(packed.data, packed.data + packed.total() * packed.elemSize());
  return image;
}

void check_image(const Image& image, const char* what) {
  if (image.width <= 0 || image.height <= 0 ||
      (image.channels != 1 && image.channels != 3 && image.channels != 4) ||
      image.pixels.size() != static_cast<std::size_t>(image.width) * image.height * image.channels)
    throw Error(std::string(what) + ": malformed image (" + std::to_string(image.width) + "x" +
                std::to_string(image.height) + "x" + std::to_string(image.channels) + ", " +
                std::to_string(image.pixels.size()) + " bytes)");
}

std::string encode(const Image& image, const char* ext, const std::vector<int>& params) {
  check_image(image, ext);
  // OpenCV encoders take BGR(A).
  cv::Mat bgr;
  if (image.channels == 3)
    cv::cvtColor(view(image), bgr, cv::COLOR_RGB2BGR);
  else if (image.channels == 4)
    cv::cvtColor(view(image), bgr, cv::COLOR_RGBA2BGRA);
  else
    bgr = view(image);
  std::vector<uint8_t> out;
  if (!cv::imencode(ext, bgr, out, params)) throw Error(std::string("cannot encode ") + ext);
  return std::string(out.begin(), out.end());
}

}  // namespace

DecodeResult decode_image(std::string_view bytes, const DecodeLimits& limits) {
  if (bytes.empty()) return reject(reason::kImageEmpty, "0 bytes");
  auto format = sniff_format(bytes);
  if (!format) return reject(reason::kImageUnknownFormat, "not a PNG, JPEG or WebP signature");
  auto header = read_image_header(bytes);
  if (!header || header->width == 0 || header->height == 0)
    return reject(reason::kImageCorrupt, "unreadable image header");
  uint64_t pixels = uint64_t{header->width} * header->height;
  if (pixels > limits.max_pixels)
    return reject(reason::kImageTooLarge, std::to_string(header->width) + "x" +
                                              std::to_string(header->height) + " > " +
                                              std::to_string(limits.max_pixels) + " pixels");
  if (bytes.size() > static_cast<std::size_t>(std::numeric_limits<int>::max()))
    return reject(reason::kImageTooLarge, std::to_string(bytes.size()) + " bytes");
  if (!has_complete_body(bytes, format.value()))
    return reject(reason::kImageCorrupt, "truncated: no end-of-image marker");
  cv::Mat decoded;
  try {
    cv::Mat raw(1, static_cast<int>(bytes.size()), CV_8U, const_cast<char*>(bytes.data()));
    decoded = cv::imdecode(raw, cv::IMREAD_COLOR);
  } catch (const cv::Exception& e) {
    return reject(reason::kImageCorrupt, e.what());
  }
  if (decoded.empty() || decoded.depth() != CV_8U || decoded.channels() != 3)
    return reject(reason::kImageCorrupt, "decoder failed");
  cv::Mat rgb;
  cv::cvtColor(decoded, rgb, cv::COLOR_BGR2RGB);
  return DecodeResult{from_mat(rgb), {}, {}};
}

std::string encode_png(const Image& image) {
  return encode(image, ".png", {cv::IMWRITE_PNG_COMPRESSION, 6});
}

std::string encode_jpeg(const Image& image, int quality) {
  return encode(image, ".jpg", {cv::IMWRITE_JPEG_QUALITY, quality});
}

Image resize(const Image& image, int width, int height) {
  check_image(image, "resize");
  if (width <= 0 || height <= 0)
    throw Error("resize: bad target size " + std::to_string(width) + "x" + std::to_string(height));
  if (width == image.width && height == image.height) return image;
  bool shrinking = width <= image.width && height <= image.height;
  cv::Mat out;
  cv::resize(view(image), out, cv::Size(width, height), 0, 0,
             shrinking ? cv::INTER_AREA : cv::INTER_CUBIC);
  return from_mat(out);
}

Image square_crop(const Image& image, int offset) {
  check_image(image, "square_crop");
  const int side = std::min(image.width, image.height);
  const int slack = std::max(image.width, image.height) - side;
  if (offset < 0 || offset > slack)
    throw Error("square_crop: offset " + std::to_string(offset) + " outside [0, " +
                std::to_string(slack) + "]");
  const bool wide = image.width > image.height;
  return from_mat(view(image)(cv::Rect(wide ? offset : 0, wide ? 0 : offset, side, side)));
}

Image center_crop_square(const Image& image) {
  return square_crop(image, (std::max(image.width, image.height) -
                             std::min(image.width, image.height)) / 2);
}

Image flip_horizontal(const Image& image) {
  check_image(image, "flip_horizontal");
  cv::Mat out;
  cv::flip(view(image), out, 1);
  return from_mat(out);
}

Image preprocess(const Image& image, const Preprocess& options, uint64_t seed) {
  check_image(image, "preprocess");
  Rng rng(seed);
  const int slack = std::max(image.width, image.height) - std::min(image.width, image.height);
  const int offset = options.crop == Crop::kRandom
                         ? static_cast<int>(rng.below(static_cast<uint64_t>(slack) + 1))
                         : slack / 2;
  // A square image skips the crop (a copy): the centre crop of the world's renders is theirs.
  Image out = resize(slack == 0 ? image : square_crop(image, offset), options.size, options.size);
  if (options.flip && rng.chance(0.5)) out = flip_horizontal(out);
  return out;
}

Image fit_square(const Image& image, int size) { return preprocess(image, {size}, 0); }

}  // namespace recap::data
