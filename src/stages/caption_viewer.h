// A page to look at a recaptioned corpus with: each image beside its own caption and the
// captions of named sources (recaption sidecars, manifests), in one self-contained HTML file
// (thumbnails embedded as data: URIs, inline CSS and plain JS, nothing fetched), with a
// filter by image source, caption sources to show or hide and a search box. Torch-free.
#pragma once
#include <cstdint>
#include <filesystem>
#include <string>
#include <vector>

#include "data/source.h"
#include "stages/arm_captions.h"

namespace recap::stages {

namespace fs = std::filesystem;

struct ViewerOptions {
  std::string title;     // empty: "recap view" and the sources' names
  int thumb = 192;       // longest side of an embedded thumbnail, in pixels (never enlarged)
  int64_t limit = 2000;  // most images on the page: each costs ~5-15 KB of base64
};

struct ViewerResult {
  int64_t shown = 0;      // images on the page
  int64_t not_shown = 0;  // readable images past the limit
  std::string rejects;    // data::RejectLog::summary() of what could not be shown and why
};

// Reads `sources` (data::expand_sources paths) in order with `limits`, and writes the page to
// `out` atomically: per image its key, its source and thumbnail, the original caption (the
// sample's own) and each of `captions` in order (missing ones marked). Samples a source
// rejects and images that do not decode are counted in the result, not shown; a broken shard
// is counted as a broken_shard reject and the other sources are read. Throws recap::Error
// when `thumb` or `limit` is below 1, or when a caption source needs metadata a sample lacks.
ViewerResult write_caption_viewer(const std::vector<fs::path>& sources,
                                  const data::ReadLimits& limits,
                                  const std::vector<NamedCaptions>& captions,
                                  const ViewerOptions& options, const fs::path& out);

}  // namespace recap::stages
