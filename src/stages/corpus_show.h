// `recap corpus show`: a contact sheet for looking at samples and their captions side by side,
// the quickest way to see what alt-text gets wrong about an image.
#pragma once
#include <filesystem>
#include <string>
#include <vector>

namespace recap::corpus {

// Writes a PNG to `out` (atomically) with one row per key, in the order given: the image
// scaled by nearest neighbour so its longer side is `image_px`, and beside it the key and
// every caption the sample has (alt-text with its mode, human long, human short), wrapped.
// Keys are looked up in every split of the finished corpus DIR. Throws recap::Error listing
// the keys that are in no shard (or were rejected there, with the reason). Same inputs give
// the same bytes.
void write_contact_sheet(const std::filesystem::path& dir, const std::vector<std::string>& keys,
                         const std::filesystem::path& out, int image_px = 128);

}  // namespace recap::corpus
