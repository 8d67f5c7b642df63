// --images SRC... and --caption-field: the user's own data, for every command that reads it
// instead of the embedded world's corpus (tokenizer train, captioner train, t2i train).
#pragma once
#include <filesystem>
#include <string>
#include <vector>

#include <CLI/CLI.hpp>

#include "core/config.h"

namespace recap::cli {

struct ImageSourceArgs {
  std::vector<std::string> images;
  std::string caption_field;  // empty: the config's data.caption_field
};

// Adds both options to `command`; returns --images, e.g. to make it exclude --corpus.
CLI::Option* add_image_source_options(CLI::App* command, ImageSourceArgs& args);

// --caption-field into `config` (data.caption_field), and the sources --images names
// (data::expand_sources: a folder of tar shards stands for its shards).
std::vector<std::filesystem::path> image_sources(const ImageSourceArgs& args, Config& config);

}  // namespace recap::cli
