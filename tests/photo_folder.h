// A folder of photographs of several sizes and aspects with their captions (captions.jsonl),
// the image-folder fixture of the own-data tests.
#pragma once
#include <filesystem>
#include <string>
#include <vector>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "core/atomic_file.h"
#include "data/image.h"

namespace recap::test {

// FOLDER/pNN.png, n of them, (20 + 7 (i mod 5)) x (20 + 5 (i mod 3)) pixels of a pattern of
// their own, captioned `caption(i)`.
template <class Caption>
void write_photo_folder(const std::filesystem::path& folder, int n, Caption caption) {
  std::filesystem::create_directories(folder);
  std::string list;
  for (int i = 0; i < n; ++i) {
    const int w = 20 + 7 * (i % 5), h = 20 + 5 * (i % 3);
    data::Image image{w, h, 3, std::vector<uint8_t>(static_cast<size_t>(w * h * 3))};
    for (size_t b = 0; b < image.pixels.size(); ++b)
      image.pixels[b] = static_cast<uint8_t>((b * 7 + static_cast<size_t>(i) * 31) % 251);
    const auto file = fmt::format("p{:02d}.png", i);
    write_file_atomic(folder / file, data::encode_png(image));
    list += nlohmann::json{{"file", file}, {"caption", caption(i)}}.dump() + "\n";
  }
  write_file_atomic(folder / "captions.jsonl", list);
}

}  // namespace recap::test
