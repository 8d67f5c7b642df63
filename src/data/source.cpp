#include "data/source.h"

#include <string>
#include <utility>

#include "core/error.h"
#include "data/image_folder.h"
#include "data/rejects.h"
#include "data/shard_reader.h"

namespace recap::data {

namespace {

std::unique_ptr<SampleSource> open_plain(const std::filesystem::path& path,
                                         const ReadLimits& limits) {
  if (std::filesystem::is_directory(path)) return std::make_unique<ImageFolderSource>(path, limits);
  return std::make_unique<ShardReader>(path, limits);
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

}  // namespace recap::data
