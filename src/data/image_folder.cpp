#include "data/image_folder.h"

#include <algorithm>

#include "core/atomic_file.h"
#include "core/error.h"
#include "data/rejects.h"

namespace recap::data {

namespace fs = std::filesystem;

namespace {

// The next line of `in` without its '\n' into `line`; false at the end of the stream. A line
// longer than `limit` bytes is read to its end but not kept (`too_long`): a list without
// newlines must not be held in memory whole.
bool read_line(std::istream& in, std::string& line, uint64_t limit, bool& too_long) {
  line.clear();
  too_long = false;
  bool any = false;
  for (int c = in.get(); c != std::char_traits<char>::eof(); c = in.get()) {
    any = true;
    if (c == '\n') return true;
    if (too_long) continue;
    if (line.size() >= limit) {
      too_long = true;
      std::string().swap(line);
      continue;
    }
    line.push_back(static_cast<char>(c));
  }
  return any;
}

}  // namespace

ImageFolderSource::ImageFolderSource(fs::path folder, ReadLimits limits)
    : shard_(folder.string()), limits_(limits) {
  fs::path list = folder / "captions.jsonl";
  lines_.open(list, std::ios::binary);
  if (!lines_) throw Error(list.string() + ": cannot open image folder caption list");
  folder_ = fs::canonical(folder);
}

std::optional<SourceItem> ImageFolderSource::next() {
  std::string line;
  bool too_long = false;
  while (read_line(lines_, line, limits_.max_entry_bytes, too_long)) {
    ++line_number_;
    if (!too_long && line.find_first_not_of(" \t\r") == std::string::npos)
      continue;  // blank: no sample
    SourceItem item = too_long ? SourceItem(Reject{shard_, "captions.jsonl:" +
                                                               std::to_string(line_number_),
                                                   std::string(reason::kBadJsonLine),
                                                   "line longer than " +
                                                       std::to_string(limits_.max_entry_bytes) +
                                                       " bytes (data.max_entry_bytes)"})
                               : parse(line);
    ++sample_index_;
    return item;
  }
  if (lines_.bad())
    throw Error(shard_ + "/captions.jsonl: read failed at line " +
                std::to_string(line_number_ + 1));
  return std::nullopt;
}

SourceItem ImageFolderSource::parse(const std::string& line) {
  std::string where = "captions.jsonl:" + std::to_string(line_number_);
  auto reject = [&](std::string key, std::string_view why, std::string detail) -> SourceItem {
    return Reject{shard_, std::move(key), std::string(why), std::move(detail)};
  };
  nlohmann::json meta = nlohmann::json::parse(line, nullptr, /*allow_exceptions=*/false);
  if (meta.is_discarded() || !meta.is_object())
    return reject(where, reason::kBadJsonLine, "not a JSON object");
  if (!meta.contains("file") || !meta["file"].is_string() || !meta.contains("caption") ||
      !meta["caption"].is_string())
    return reject(where, reason::kBadJsonLine, "needs string fields \"file\" and \"caption\"");
  std::string file = meta["file"];
  fs::path relative(file);
  bool dotdot =
      std::any_of(relative.begin(), relative.end(), [](const fs::path& p) { return p == ".."; });
  // A NUL would cut the name short in the system calls below.
  if (file.empty() || file.find('\0') != std::string::npos || relative.is_absolute() || dotdot)
    return reject(file, reason::kUnsafePath, where + ": path '" + file + "' leaves the folder");
  if (!seen_.emplace(file).second)
    return reject(file, reason::kDuplicateKey, where + ": file listed twice");

  std::error_code ec;
  fs::path full = folder_ / relative;
  if (!fs::exists(full, ec)) return reject(file, reason::kMissingImage, where + ": no such file");
  // A symlink inside the folder may still point outside it.
  fs::path real = fs::canonical(full, ec);
  auto [end, ignored] = std::mismatch(folder_.begin(), folder_.end(), real.begin(), real.end());
  if (ec || end != folder_.end())
    return reject(file, reason::kUnsafePath, where + ": resolves outside the folder");
  if (!fs::is_regular_file(real, ec))
    return reject(file, reason::kNotRegularFile, where + ": not a regular file");
  uint64_t size = fs::file_size(real, ec);
  if (ec || size > limits_.max_entry_bytes)
    return reject(file, reason::kEntryTooLarge,
                  where + ": " + std::to_string(size) + " bytes > limit " +
                      std::to_string(limits_.max_entry_bytes));
  std::string caption = meta["caption"];
  if (auto problem = check_caption(caption, limits_.caption))
    return reject(file, problem->reason, where + ": " + problem->detail);

  std::string ext = relative.extension().string();
  if (!ext.empty()) ext.erase(0, 1);
  std::transform(ext.begin(), ext.end(), ext.begin(),
                 [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
  std::string bytes;
  try {
    bytes = read_file(real);
  } catch (const Error& e) {  // e.g. permission denied: this sample's problem, not the run's
    return reject(file, reason::kMissingImage, where + ": " + e.what());
  }
  return Sample{file,           shard_, sample_index_, std::move(bytes), ext, std::move(caption),
                std::move(meta)};
}

}  // namespace recap::data
