// Files named by a path relative to a folder: the checks every folder-based source shares (an
// image folder's captions.jsonl, a JSONL or CSV manifest, a folder of images with sidecar
// captions), so a path that escapes the folder, a symlink out of it, a directory, an oversized
// or unreadable file is refused the same way, with the same reasons, wherever it is named.
#pragma once
#include <cstdint>
#include <filesystem>
#include <string>
#include <string_view>
#include <variant>

namespace recap::data {

// The image extensions every source reads (lower case, no dot): png, jpg, jpeg, webp.
bool is_image_extension(std::string_view ext);
// `path`'s extension in lower case without its dot ("B.JPG" -> "jpg"); empty when none.
std::string lower_extension(const std::filesystem::path& path);

// Why a named file was not read: a reason from rejects.h and a human-readable detail.
struct FileProblem {
  std::string_view reason;
  std::string detail;
};

// Reads `relative` (a path as written in a list, '/'-separated) under `root`, which must be
// canonical. Refused: an empty name, a NUL, an absolute path or a ".." component
// (unsafe_path), no such file (missing_image), a path resolving outside `root` through a
// symlink (unsafe_path), anything but a regular file (not_regular_file), more than
// `max_bytes` (entry_too_large, checked before reading), a read error (missing_image).
std::variant<std::string, FileProblem> read_folder_file(const std::filesystem::path& root,
                                                        std::string_view relative,
                                                        uint64_t max_bytes);

}  // namespace recap::data
