#include "cli/image_sources.h"

#include <nlohmann/json.hpp>

#include "data/source.h"

namespace recap::cli {

CLI::Option* add_image_source_options(CLI::App* command, ImageSourceArgs& args) {
  auto* images = command->add_option(
      "--images", args.images,
      "your own images with their captions (the alt-text), any mix of: WebDataset tar shards "
      "or folders of them, image folders (captions.jsonl, or a.txt / a.caption beside a.jpg), "
      "JSONL or CSV manifests (docs/FORMATS.md)");
  images->type_name("SRC...");
  command
      ->add_option("--caption-field", args.caption_field,
                   "which caption a sample has: a manifest's column (e.g. re_caption), a field "
                   "of captions.jsonl or of a shard's KEY.json; sets data.caption_field "
                   "(default: caption, a shard's KEY.txt)")
      ->type_name("NAME");
  return images;
}

std::vector<std::filesystem::path> image_sources(const ImageSourceArgs& args, Config& config) {
  if (!args.caption_field.empty())
    config.set("data.caption_field", nlohmann::json(args.caption_field).dump(),
               "--caption-field");
  return data::expand_sources({args.images.begin(), args.images.end()});
}

}  // namespace recap::cli
