#include "data/text_checks.h"

#include <cstdint>

#include "data/rejects.h"

namespace recap::data {

bool is_valid_utf8(std::string_view text) {
  const auto* s = reinterpret_cast<const unsigned char*>(text.data());
  std::size_t n = text.size();
  std::size_t i = 0;
  while (i < n) {
    unsigned char c = s[i];
    if (c < 0x80) {
      ++i;
      continue;
    }
    int extra;
    uint32_t min;  // smallest code point this length may encode (rejects overlong forms)
    uint32_t cp;
    if ((c & 0xE0) == 0xC0) {
      extra = 1, min = 0x80, cp = c & 0x1F;
    } else if ((c & 0xF0) == 0xE0) {
      extra = 2, min = 0x800, cp = c & 0x0F;
    } else if ((c & 0xF8) == 0xF0) {
      extra = 3, min = 0x10000, cp = c & 0x07;
    } else {
      return false;
    }
    if (n - i <= static_cast<std::size_t>(extra)) return false;
    for (int k = 1; k <= extra; ++k) {
      unsigned char cc = s[i + k];
      if ((cc & 0xC0) != 0x80) return false;
      cp = (cp << 6) | (cc & 0x3F);
    }
    if (cp < min || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF)) return false;
    i += extra + 1;
  }
  return true;
}

std::size_t utf8_length(std::string_view text) {
  std::size_t count = 0;
  for (char c : text) count += (static_cast<unsigned char>(c) & 0xC0) != 0x80;
  return count;
}

std::optional<CaptionProblem> check_caption(std::string_view caption, const CaptionLimits& limits) {
  if (caption.size() > limits.max_bytes)
    return CaptionProblem{
        std::string(reason::kCaptionTooLong),
        std::to_string(caption.size()) + " bytes > limit " + std::to_string(limits.max_bytes)};
  if (!is_valid_utf8(caption))
    return CaptionProblem{std::string(reason::kCaptionInvalidUtf8), "caption is not valid UTF-8"};
  std::size_t chars = utf8_length(caption);
  if (chars > limits.max_chars)
    return CaptionProblem{
        std::string(reason::kCaptionTooLong),
        std::to_string(chars) + " characters > limit " + std::to_string(limits.max_chars)};
  return std::nullopt;
}

}  // namespace recap::data
