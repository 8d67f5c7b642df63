#include "data/source.h"

#include <algorithm>
#include <array>
#include <string>
#include <utility>

#include "core/error.h"
#include "data/folder_files.h"
#include "data/image_folder.h"
#include "data/manifest.h"
#include "data/rejects.h"
#include "data/shard_reader.h"
#include "data/sidecar_folder.h"

namespace recap::data {

namespace {

namespace fs = std::filesystem;

std::unique_ptr<SampleSource> open_plain(const fs::path& path, const ReadLimits& limits) {
  std::error_code ec;
  if (fs::is_directory(path, ec)) {
    if (fs::exists(path / "captions.jsonl", ec))
      return std::make_unique<ImageFolderSource>(path, limits);
    return std::make_unique<SidecarFolderSource>(path, limits);
  }
  const std::string ext = lower_extension(path);
  if (ext == "jsonl" || ext == "csv") return std::make_unique<ManifestSource>(path, limits);
  return std::make_unique<ShardReader>(path, limits);
}

bool is_shard_name(const std::string& name) {
  static constexpr std::array<std::string_view, 6> kEndings{".tar",    ".tar.gz", ".tgz",
                                                            ".tar.zst", ".tar.xz", ".tar.bz2"};
  return std::any_of(kEndings.begin(), kEndings.end(),
                     [&](std::string_view end) { return name.ends_with(end); });
}

// OnBroken::kReject: the source's own error, from opening or from next(), becomes its last item.
class RejectWhenBroken : public SampleSource {
 public:
  RejectWhenBroken(const std::filesystem::path& path, const ReadLimits& limits)
      : shard_(path.string()) {
    try {
      inner_ = open_plain(path, limits);
    } catch (const Error& e) {
      broken_ = e.what();
    }
  }

  std::optional<SourceItem> next() override {
    if (inner_) {
      try {
        if (auto item = inner_->next()) return item;
      } catch (const Error& e) {
        broken_ = e.what();
      }
      inner_.reset();  // ended or broken: never read past either
    }
    if (!broken_) return std::nullopt;
    return Reject{shard_, "", std::string(reason::kBrokenShard),
                  *std::exchange(broken_, std::nullopt)};
  }

 private:
  std::string shard_;
  std::unique_ptr<SampleSource> inner_;
  std::optional<std::string> broken_;  // the break not yet reported
};

}  // namespace

std::unique_ptr<SampleSource> open_source(const std::filesystem::path& path,
                                          const ReadLimits& limits, OnBroken on_broken) {
  std::error_code ec;
  if (on_broken == OnBroken::kThrow || !std::filesystem::exists(path, ec))
    return open_plain(path, limits);
  return std::make_unique<RejectWhenBroken>(path, limits);
}

std::vector<fs::path> expand_sources(const std::vector<fs::path>& paths) {
  if (paths.empty()) throw Error("no image sources given");
  std::vector<fs::path> sources;
  for (const auto& path : paths) {
    std::error_code ec;
    if (!fs::exists(path, ec)) throw Error(path.string() + ": no such file or folder");
    std::vector<fs::path> shards;
    if (fs::is_directory(path, ec) && !fs::exists(path / "captions.jsonl", ec)) {
      for (const auto& entry : fs::directory_iterator(path))
        if (entry.is_regular_file() && is_shard_name(entry.path().filename().string()))
          shards.push_back(entry.path());
    }
    std::sort(shards.begin(), shards.end());
    if (shards.empty()) shards.push_back(path);
    sources.insert(sources.end(), shards.begin(), shards.end());
  }
  return sources;
}

}  // namespace recap::data
