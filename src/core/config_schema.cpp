// Every configuration key recap reads, with its default, range and meaning (`recap config
// keys` prints this table). A stage that needs a new setting declares it here; presets only
// override these defaults.
#include "core/config.h"

namespace recap {

namespace {

ConfigKey integer(std::string key, int64_t fallback, double min, double max, std::string help) {
  return {std::move(key), ConfigType::Int, fallback, std::move(help), min, max, {}};
}
ConfigKey number(std::string key, double fallback, double min, double max, std::string help) {
  return {std::move(key), ConfigType::Float, fallback, std::move(help), min, max, {}};
}
ConfigKey flag(std::string key, bool fallback, std::string help) {
  return {std::move(key), ConfigType::Bool, fallback, std::move(help), 0, 1, {}};
}
ConfigKey text(std::string key, std::string fallback, std::vector<std::string> choices,
               std::string help) {
  return {std::move(key), ConfigType::String, std::move(fallback), std::move(help), 0, 0,
          std::move(choices)};
}
ConfigKey words(std::string key, std::vector<std::string> fallback, std::string help) {
  return {std::move(key), ConfigType::StringList, std::move(fallback), std::move(help), 0, 0, {}};
}

std::vector<ConfigKey> build_schema() {
  return {
      // [run]: the experiment as a whole.
      integer("run.seed", 1234, 0, 9.2e18, "master seed; every stage derives its own from it"),

      // [checkpoint]: how trainers save and keep state.
      integer("checkpoint.every", 500, 1, 1e9, "save a checkpoint every N optimizer steps"),
      integer("checkpoint.keep_last", 3, 1, 1000, "how many recent checkpoints to keep"),
  };
}

}  // namespace

const std::vector<ConfigKey>& config_schema() {
  static const std::vector<ConfigKey> schema = build_schema();
  return schema;
}

}  // namespace recap
