// Reads an encoded image's declared format and dimensions from its first bytes, without
// decoding. This is the decompression-bomb guard: a 100 KB PNG can declare 100000x100000
// pixels (30 GB decoded), so sizes are checked before any decoder allocates.
#pragma once
#include <cstdint>
#include <optional>
#include <string_view>

namespace recap::data {

enum class ImageFormat { png, jpeg, webp };

struct ImageHeader {
  ImageFormat format;
  uint32_t width = 0;   // declared, in pixels
  uint32_t height = 0;  // declared, in pixels
};

// The format from the signature alone; nullopt when the bytes are no PNG, JPEG or WebP.
std::optional<ImageFormat> sniff_format(std::string_view bytes);

// nullopt when the bytes are not a PNG, JPEG or WebP or the header is cut short.
std::optional<ImageHeader> read_image_header(std::string_view bytes);

// libjpeg decodes a truncated JPEG "successfully", filling the missing rows with grey; so a
// JPEG must show its end-of-image marker after the start of scan. PNG and WebP decoders
// report truncation themselves, so for them this is always true.
bool has_complete_body(std::string_view bytes, ImageFormat format);

}  // namespace recap::data
