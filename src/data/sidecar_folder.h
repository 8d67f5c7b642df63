// A folder of images with a sidecar caption per image, the convention of kohya sd-scripts,
// OneTrainer and taggui: `a.jpg` + `a.txt` (or `a.caption` when there is no `a.txt`),
// sub-folders walked too, everything in sorted order of the relative path (so the stream is
// the same on every machine). The key is the image's path relative to the folder
// (`sub/a.jpg`). A sidecar's non-blank lines, each trimmed of surrounding white space, are its
// captions: the first is the sample's caption, all of them (in order) its meta
// "caption_lines"; meta also holds "file" and "caption_file". An empty or blank sidecar is an
// empty caption (like empty alt-text: it passes, and trainers skip it counted).
//
// Rejected, counted: an image without a sidecar (missing_caption), a sidecar without an image
// beside it (missing_image; e.g. a typo in a name), a sidecar over data.max_caption_bytes or a
// line over the character limit (caption_too_long), invalid UTF-8 (caption_invalid_utf8), an
// image that escapes the folder through a symlink, is not a regular file or is too large.
// Names starting with '.' (hidden files and folders, macOS "._" forks) and files of other
// extensions (.json, .npz latent caches) are not samples and are passed over.
#pragma once
#include <filesystem>
#include <string>
#include <vector>

#include "data/source.h"

namespace recap::data {

class SidecarFolderSource : public SampleSource {
 public:
  // Lists the folder (its names only; files are read as they are handed out). Throws
  // recap::Error when it cannot be listed.
  explicit SidecarFolderSource(const std::filesystem::path& folder, ReadLimits limits = {});

  std::optional<SourceItem> next() override;

 private:
  // One stem (a relative path without its extension) with what it has, in stream order.
  struct Entry {
    std::string stem;
    std::vector<std::string> images;  // relative paths, sorted
    std::string caption_file;         // relative path; empty when none
  };

  SourceItem read(const std::string& image, const std::string& caption_file);

  std::filesystem::path folder_;  // canonical
  std::string shard_;             // the folder as given
  ReadLimits limits_;
  std::vector<Entry> entries_;
  std::size_t entry_ = 0;  // next entry
  std::size_t image_ = 0;  // next image of entries_[entry_]
  uint64_t sample_index_ = 0;
};

}  // namespace recap::data
