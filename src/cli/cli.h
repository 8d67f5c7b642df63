// The command line's shared state. main.cpp owns the CLI11 app and the global flags; each
// cmd_*.cpp file adds one family of subcommands through an add_*_commands function and
// registers, per leaf subcommand, the action to run when it was the one parsed.
#pragma once
#include <filesystem>
#include <functional>
#include <string>
#include <vector>

#include <CLI/CLI.hpp>

#include "core/config.h"
#include "core/runtime.h"

namespace recap::cli {

namespace fs = std::filesystem;

class Cli {
 public:
  explicit Cli(CLI::App& app) : app(app) {}

  CLI::App& app;
  RuntimeOptions runtime;  // --threads --device --seed --log-level

  // The top-level command group `name` ("corpus", "captioner", ...), created on first use so
  // several files can add subcommands to one group.
  CLI::App* group(const std::string& name, const std::string& description);
  // Registers what running `command` does; main runs the action of the parsed one.
  void on_run(CLI::App* command, std::function<void()> action);

  // Every command that reads a config takes --preset (quick by default) and --set; training
  // stages that read a corpus use its config.toml instead of a preset and take --set only.
  void add_config_options(CLI::App* command);
  void add_set_option(CLI::App* command);
  // The preset (or .toml file) given with --preset, plus --set and --seed.
  Config load_config() const;
  // Whether --preset was given on the command line (not just defaulted).
  bool preset_given() const;
  // DIR/config.toml of a finished corpus, plus --set and --seed.
  Config load_corpus_config(const fs::path& corpus_dir) const;
  Config load_config_file(const std::string& preset_or_path) const;

  // Runs the action of the parsed leaf command; false when none was registered for it.
  bool run_parsed() const;

 private:
  std::string preset_ = "quick";
  std::vector<CLI::Option*> preset_options_;
  std::vector<std::string> overrides_;
  std::vector<std::pair<CLI::App*, std::function<void()>>> actions_;
};

void add_basic_commands(Cli& cli);     // version, config show|keys, weights inspect
void add_corpus_commands(Cli& cli);    // corpus make|stats|show, tokenizer train
void add_training_commands(Cli& cli);  // evaluator train, captioner train, t2i train
void add_sample_eval_commands(Cli& cli);  // sample, eval
void add_recaption_commands(Cli& cli);  // recaption, captioner eval, view
void add_run_commands(Cli& cli);       // run, status

}  // namespace recap::cli
