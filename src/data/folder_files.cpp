#include "data/folder_files.h"

#include <algorithm>

#include "core/atomic_file.h"
#include "core/error.h"
#include "data/rejects.h"

namespace recap::data {

namespace fs = std::filesystem;

bool is_image_extension(std::string_view ext) {
  return ext == "png" || ext == "jpg" || ext == "jpeg" || ext == "webp";
}

std::string lower_extension(const fs::path& path) {
  std::string ext = path.extension().string();
  if (!ext.empty()) ext.erase(0, 1);
  std::transform(ext.begin(), ext.end(), ext.begin(),
                 [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
  return ext;
}

std::variant<std::string, FileProblem> read_folder_file(const fs::path& root,
                                                        std::string_view relative_name,
                                                        uint64_t max_bytes) {
  const std::string name(relative_name);
  const fs::path relative(name);
  const bool dotdot =
      std::any_of(relative.begin(), relative.end(), [](const fs::path& p) { return p == ".."; });
  // A NUL would cut the name short in the system calls below.
  if (name.empty() || name.find('\0') != std::string::npos || relative.is_absolute() || dotdot)
    return FileProblem{reason::kUnsafePath, "path '" + name + "' leaves the folder"};
  std::error_code ec;
  const fs::path full = root / relative;
  if (!fs::exists(full, ec)) return FileProblem{reason::kMissingImage, "no such file"};
  // A symlink inside the folder may still point outside it.
  const fs::path real = fs::canonical(full, ec);
  auto [end, ignored] = std::mismatch(root.begin(), root.end(), real.begin(), real.end());
  if (ec || end != root.end())
    return FileProblem{reason::kUnsafePath, "resolves outside the folder"};
  if (!fs::is_regular_file(real, ec))
    return FileProblem{reason::kNotRegularFile, "not a regular file"};
  const uint64_t size = fs::file_size(real, ec);
  if (ec || size > max_bytes)
    return FileProblem{reason::kEntryTooLarge, std::to_string(size) + " bytes > limit " +
                                                   std::to_string(max_bytes)};
  try {
    return read_file(real);
  } catch (const Error& e) {  // e.g. permission denied: this sample's problem, not the run's
    return FileProblem{reason::kMissingImage, e.what()};
  }
}

}  // namespace recap::data
