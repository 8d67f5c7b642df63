// An image folder: FOLDER/captions.jsonl lists samples, one JSON object a line,
// {"file": "a.png", "caption": "..."} plus any other fields (kept as the sample's meta). It is
// a JSONL manifest (data/manifest.h) whose samples and rejects carry the folder's name: the
// key is the file path relative to the folder (or the line's "key"), the caption the field
// ReadLimits::caption_field names, and bad JSON, missing or duplicate files, paths (or
// symlinks) escaping the folder, oversized files and bad captions are counted, never fatal.
#pragma once
#include <filesystem>

#include "data/manifest.h"

namespace recap::data {

class ImageFolderSource : public ManifestSource {
 public:
  // Throws recap::Error when FOLDER/captions.jsonl cannot be opened.
  explicit ImageFolderSource(const std::filesystem::path& folder, ReadLimits limits = {})
      : ManifestSource(folder / "captions.jsonl", std::move(limits), folder.string()) {}
};

}  // namespace recap::data
