#include "data/sidecar_folder.h"

#include <algorithm>
#include <map>

#include "core/error.h"
#include "data/folder_files.h"
#include "data/rejects.h"

namespace recap::data {

namespace fs = std::filesystem;

namespace {

bool is_caption_extension(std::string_view ext) { return ext == "txt" || ext == "caption"; }

std::string_view trim(std::string_view text) {
  constexpr std::string_view kSpace = " \t\r\f\v";
  const std::size_t begin = text.find_first_not_of(kSpace);
  if (begin == std::string_view::npos) return {};
  return text.substr(begin, text.find_last_not_of(kSpace) + 1 - begin);
}

}  // namespace

SidecarFolderSource::SidecarFolderSource(const fs::path& folder, ReadLimits limits)
    : shard_(folder.string()), limits_(std::move(limits)) {
  std::error_code ec;
  folder_ = fs::canonical(folder, ec);
  if (ec) throw Error(shard_ + ": cannot open image folder: " + ec.message());
  std::map<std::string, Entry> by_stem;  // sorted: the stream's order
  try {
    for (auto it = fs::recursive_directory_iterator(folder_); it != fs::end(it); ++it) {
      const fs::path relative = it->path().lexically_relative(folder_);
      if (it->path().filename().string().starts_with(".")) {
        if (it->is_directory()) it.disable_recursion_pending();
        continue;
      }
      if (it->is_directory()) continue;
      const std::string ext = lower_extension(relative);
      const bool image = is_image_extension(ext);
      if (!image && !is_caption_extension(ext)) continue;
      const std::string stem = (relative.parent_path() / relative.stem()).generic_string();
      Entry& entry = by_stem[stem];
      entry.stem = stem;
      if (image) {
        entry.images.push_back(relative.generic_string());
      } else if (entry.caption_file.empty() || ext == "txt") {
        entry.caption_file = relative.generic_string();  // a.txt wins over a.caption
      }
    }
  } catch (const fs::filesystem_error& e) {
    throw Error(shard_ + ": cannot list image folder: " + e.what());
  }
  entries_.reserve(by_stem.size());
  for (auto& [stem, entry] : by_stem) {
    std::sort(entry.images.begin(), entry.images.end());
    entries_.push_back(std::move(entry));
  }
}

std::optional<SourceItem> SidecarFolderSource::next() {
  while (entry_ < entries_.size()) {
    const Entry& entry = entries_[entry_];
    if (entry.images.empty()) {  // a sidecar on its own
      ++entry_;
      ++sample_index_;
      return Reject{shard_, entry.caption_file, std::string(reason::kMissingImage),
                    "no image " + entry.stem + ".png|jpg|jpeg|webp beside it"};
    }
    if (image_ < entry.images.size()) {
      SourceItem item = read(entry.images[image_++], entry.caption_file);
      ++sample_index_;
      return item;
    }
    ++entry_;
    image_ = 0;
  }
  return std::nullopt;
}

SourceItem SidecarFolderSource::read(const std::string& image, const std::string& caption_file) {
  auto reject = [&](std::string_view why, std::string detail) -> SourceItem {
    return Reject{shard_, image, std::string(why), std::move(detail)};
  };
  if (caption_file.empty())
    return reject(reason::kMissingCaption, "no .txt or .caption sidecar beside it");
  auto text = read_folder_file(folder_, caption_file, limits_.caption.max_bytes);
  if (auto* problem = std::get_if<FileProblem>(&text))
    return reject(problem->reason == reason::kEntryTooLarge ? reason::kCaptionTooLong
                                                            : problem->reason,
                  caption_file + ": " + problem->detail);
  const std::string& whole = std::get<std::string>(text);
  if (!is_valid_utf8(whole))
    return reject(reason::kCaptionInvalidUtf8, caption_file + ": not valid UTF-8");
  nlohmann::json lines = nlohmann::json::array();
  for (std::size_t start = 0; start <= whole.size();) {
    const std::size_t end = std::min(whole.find('\n', start), whole.size());
    const std::string_view line = trim(std::string_view(whole).substr(start, end - start));
    start = end + 1;
    if (line.empty()) continue;
    if (auto problem = check_caption(line, limits_.caption))
      return reject(problem->reason, caption_file + ": " + problem->detail);
    lines.push_back(std::string(line));
  }
  auto bytes = read_folder_file(folder_, image, limits_.max_entry_bytes);
  if (auto* problem = std::get_if<FileProblem>(&bytes))
    return reject(problem->reason, problem->detail);
  std::string caption = lines.empty() ? std::string() : lines.front().get<std::string>();
  nlohmann::json meta{{"file", image}, {"caption_file", caption_file}, {"caption_lines", lines}};
  return Sample{image,
                shard_,
                sample_index_,
                std::move(std::get<std::string>(bytes)),
                lower_extension(image),
                std::move(caption),
                std::move(meta)};
}

}  // namespace recap::data
