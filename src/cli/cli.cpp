#include "cli/cli.h"

#include <algorithm>

#include <fmt/format.h>

namespace recap::cli {

CLI::App* Cli::group(const std::string& name, const std::string& description) {
  for (auto* sub : app.get_subcommands([](const CLI::App*) { return true; }))
    if (sub->get_name() == name) return sub;
  auto* sub = app.add_subcommand(name, description);
  sub->require_subcommand(1);
  return sub;
}

void Cli::on_run(CLI::App* command, std::function<void()> action) {
  actions_.emplace_back(command, std::move(action));
}

void Cli::add_set_option(CLI::App* command) {
  command->add_option("--set", overrides_, "override one key: section.key=value (repeatable)");
}

void Cli::add_config_options(CLI::App* command) {
  auto* option = command->add_option("--preset", preset_,
                   fmt::format("preset name ({}) or a .toml file",
                               fmt::join(Config::preset_names(), ", ")));
  option->capture_default_str();
  preset_options_.push_back(option);
  add_set_option(command);
}

Config Cli::load_config_file(const std::string& preset_or_path) const {
  auto overrides = overrides_;
  // --seed is shorthand for --set run.seed=N and wins over the preset.
  if (runtime.seed) overrides.push_back(fmt::format("run.seed={}", *runtime.seed));
  return Config::load(preset_or_path, overrides);
}

Config Cli::load_config() const { return load_config_file(preset_); }

bool Cli::preset_given() const {
  return std::any_of(preset_options_.begin(), preset_options_.end(),
                     [](const CLI::Option* option) { return option->count() > 0; });
}

Config Cli::load_corpus_config(const fs::path& corpus_dir) const {
  return load_config_file((corpus_dir / "config.toml").string());
}

bool Cli::run_parsed() const {
  for (const auto& [command, action] : actions_) {
    if (command->parsed()) {
      action();
      return true;
    }
  }
  return false;
}

}  // namespace recap::cli
