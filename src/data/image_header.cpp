#include "data/image_header.h"

namespace recap::data {

namespace {

uint8_t byte_at(std::string_view b, std::size_t i) { return static_cast<uint8_t>(b[i]); }

uint32_t be16(std::string_view b, std::size_t i) {
  return (uint32_t{byte_at(b, i)} << 8) | byte_at(b, i + 1);
}

uint32_t be32(std::string_view b, std::size_t i) { return (be16(b, i) << 16) | be16(b, i + 2); }

uint32_t le16(std::string_view b, std::size_t i) {
  return byte_at(b, i) | (uint32_t{byte_at(b, i + 1)} << 8);
}

uint32_t le24(std::string_view b, std::size_t i) {
  return le16(b, i) | (uint32_t{byte_at(b, i + 2)} << 16);
}

std::optional<ImageHeader> png_header(std::string_view b) {
  // signature (8), IHDR length (4), "IHDR" (4), width (4), height (4)
  if (b.size() < 24 || b.substr(12, 4) != "IHDR") return std::nullopt;
  return ImageHeader{ImageFormat::png, be32(b, 16), be32(b, 20)};
}

bool is_jpeg_sof(uint8_t marker) {
  // SOF0..SOF15 except DHT (C4), JPG (C8) and DAC (CC), which share the range.
  return marker >= 0xC0 && marker <= 0xCF && marker != 0xC4 && marker != 0xC8 && marker != 0xCC;
}

// Walks the marker segments up to the frame header. Returns the offset just past the
// start-of-scan segment in `scan_start` when asked (for has_complete_body).
std::optional<ImageHeader> jpeg_header(std::string_view b, std::size_t* scan_start = nullptr) {
  std::optional<ImageHeader> header;
  std::size_t i = 2;
  while (i + 4 <= b.size()) {
    if (byte_at(b, i) != 0xFF) return std::nullopt;
    uint8_t marker = byte_at(b, i + 1);
    if (marker == 0xFF) {  // fill byte
      ++i;
      continue;
    }
    if ((marker >= 0xD0 && marker <= 0xD7) || marker == 0x01) {  // no length field
      i += 2;
      continue;
    }
    std::size_t length = be16(b, i + 2);  // includes its own two bytes
    if (length < 2) return std::nullopt;
    if (is_jpeg_sof(marker)) {
      // length (2), precision (1), height (2), width (2)
      if (i + 9 > b.size()) return std::nullopt;
      header = ImageHeader{ImageFormat::jpeg, be16(b, i + 7), be16(b, i + 5)};
      if (!scan_start) return header;
    }
    if (marker == 0xDA) {  // start of scan: entropy-coded data follows
      if (scan_start) *scan_start = i + 2 + length;
      return header;
    }
    i += 2 + length;
  }
  return header;
}

std::optional<ImageHeader> webp_header(std::string_view b) {
  // "RIFF" size "WEBP", then the first chunk's fourcc (4) and size (4); its data starts at 20.
  if (b.size() < 30) return std::nullopt;
  std::string_view chunk = b.substr(12, 4);
  if (chunk == "VP8 ") {
    // frame tag (3), start code 9D 01 2A, then 14-bit width and height
    if (byte_at(b, 23) != 0x9D || byte_at(b, 24) != 0x01 || byte_at(b, 25) != 0x2A)
      return std::nullopt;
    return ImageHeader{ImageFormat::webp, le16(b, 26) & 0x3FFF, le16(b, 28) & 0x3FFF};
  }
  if (chunk == "VP8L") {
    // signature 0x2F, then 14 bits width-1 and 14 bits height-1, little-endian bit order
    if (byte_at(b, 20) != 0x2F) return std::nullopt;
    uint32_t bits = le16(b, 21) | (le16(b, 23) << 16);
    return ImageHeader{ImageFormat::webp, (bits & 0x3FFF) + 1, ((bits >> 14) & 0x3FFF) + 1};
  }
  if (chunk == "VP8X") {
    // flags (4), canvas width-1 (3), canvas height-1 (3)
    return ImageHeader{ImageFormat::webp, le24(b, 24) + 1, le24(b, 27) + 1};
  }
  return std::nullopt;
}

}  // namespace

std::optional<ImageFormat> sniff_format(std::string_view b) {
  if (b.size() >= 8 && b.substr(0, 8) == "\x89PNG\r\n\x1a\n") return ImageFormat::png;
  if (b.size() >= 3 && byte_at(b, 0) == 0xFF && byte_at(b, 1) == 0xD8 && byte_at(b, 2) == 0xFF)
    return ImageFormat::jpeg;
  if (b.size() >= 12 && b.substr(0, 4) == "RIFF" && b.substr(8, 4) == "WEBP")
    return ImageFormat::webp;
  return std::nullopt;
}

std::optional<ImageHeader> read_image_header(std::string_view b) {
  auto format = sniff_format(b);
  if (!format) return std::nullopt;
  switch (*format) {
    case ImageFormat::png:
      return png_header(b);
    case ImageFormat::jpeg:
      return jpeg_header(b);
    case ImageFormat::webp:
      return webp_header(b);
  }
  return std::nullopt;
}

bool has_complete_body(std::string_view b, ImageFormat format) {
  if (format != ImageFormat::jpeg) return true;
  std::size_t scan = 0;
  if (!jpeg_header(b, &scan) || scan == 0 || scan > b.size()) return false;
  // Inside entropy-coded data a literal 0xFF is stuffed as FF 00, so FF D9 only occurs as the
  // real end-of-image marker.
  return b.find("\xFF\xD9", scan) != std::string_view::npos;
}

}  // namespace recap::data
