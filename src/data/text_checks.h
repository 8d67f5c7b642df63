// Caption text checks shared by every sample source: captions must be valid UTF-8 (the
// tokenizer and the JSONL sidecars assume it) and bounded in size, so one pathological
// sample cannot blow up a batch or a log line.
#pragma once
#include <cstddef>
#include <optional>
#include <string>
#include <string_view>

namespace recap::data {

// Strict UTF-8: rejects overlong forms, surrogates (U+D800..U+DFFF) and code points above
// U+10FFFF, as RFC 3629 requires.
bool is_valid_utf8(std::string_view text);

// Number of code points in valid UTF-8 text.
std::size_t utf8_length(std::string_view text);

struct CaptionLimits {
  std::size_t max_bytes = 16384;  // longest caption accepted, in bytes
  std::size_t max_chars = 4096;   // longest caption accepted, in code points
};

// A problem with a caption, named by a reject reason (see rejects.h) and a detail.
struct CaptionProblem {
  std::string reason;
  std::string detail;
};

// Empty captions pass: empty alt-text is real web data that recaptioning is meant to fix.
std::optional<CaptionProblem> check_caption(std::string_view caption, const CaptionLimits& limits);

}  // namespace recap::data
