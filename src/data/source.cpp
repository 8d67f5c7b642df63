#include "data/source.h"

#include "data/image_folder.h"
#include "data/shard_reader.h"

namespace recap::data {

std::unique_ptr<SampleSource> open_source(const std::filesystem::path& path,
                                          const ReadLimits& limits) {
  if (std::filesystem::is_directory(path)) return std::make_unique<ImageFolderSource>(path, limits);
  return std::make_unique<ShardReader>(path, limits);
}

}  // namespace recap::data
